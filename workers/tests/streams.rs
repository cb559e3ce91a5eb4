//! Streams processed by workers acting as agents: a file stream (a clip of no one, two
//! men, no one, six people, no one) read at its own pace by one worker, which is
//! SIGKILLed mid-way; another worker takes the stream over once the first one's lease
//! runs out, resumes where it was and finishes it; crowd events reach an http callback;
//! the logs show both agents. Then stop, resume and delete end the work at once.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use fanout::video::streams;
use fanout_e2e::{Stack, account, stack};

use common::{Worker, clip, exclusive, ffmpeg_children, upload};

/// The agent lease of the test workers: a silent agent's stream is taken over after it.
const LEASE_SECONDS: &str = "6";

fn agent() -> Worker {
    Worker::start_with(
        "work",
        &["--streams", "4", "--stream-lease-seconds", LEASE_SECONDS],
        &[],
    )
}

/// An http server that keeps the JSON bodies POSTed to it; its URL.
async fn callback_server() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length: usize = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse().ok())?
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + length {
                            let body = &buf[end + 4..end + 4 + length];
                            if let Ok(value) = serde_json::from_slice(body) {
                                kept.lock().unwrap().push(value);
                            }
                            let _ = socket
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                                .await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (url, bodies)
}

async fn stream_of(stack: &Stack, account: &str, id: &str) -> Value {
    let answer = stack
        .get(&format!(
            "/1/streams/{id}?account_id={account}&targets=status,stream_id,last_error"
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json
}

async fn logs_of(stack: &Stack, account: &str, id: &str) -> Vec<Value> {
    let answer = stack
        .get(&format!(
            "/1/streams/logs?account_id={account}&stream_ids={id}&page_size=100&targets=status,agent_id,log_time,last_processed_frame_time"
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let mut logs = answer.json["logs"].as_array().unwrap().clone();
    logs.reverse(); // oldest first
    logs
}

async fn wait_status(stack: &Stack, account: &str, id: &str, status: u64, limit: Duration) {
    let start = Instant::now();
    loop {
        let s = stream_of(stack, account, id).await;
        if s["status"] == status {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "stream {id} not in status {status}: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn create_stream(stack: &Stack, account: &str, key: &str, callback: &str) -> String {
    let answer = stack
        .post(
            &format!("/1/streams?account_id={account}"),
            &json!({
                "name": "entrance",
                "data": {"reference": key, "type": "file"},
                "autorestart": {"restart": 0},
                "analytics": [{"analytic_name": "people_count", "parameters": {
                    "parameters": {"people_count__gte": 2, "probe_count": 2, "rate": {"period": 5}},
                    "callbacks": [{"type": "http", "url": callback}]
                }}]
            }),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.json["stream_id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_agent_s_stream_is_taken_over_and_finished() {
    let _guard = exclusive().await;
    let stack = stack();
    let account = account();
    let (callback, events) = callback_server().await;
    // 0-4 s no one, 4-10 s two men, 10-14 s no one, 14-20 s six people, 20-24 s no one.
    let bytes = clip(
        "stream.mp4",
        &[
            (None, 4),
            (Some("zidane.jpg"), 6),
            (None, 4),
            (Some("t1.jpg"), 6),
            (None, 4),
        ],
    );
    let key = upload(stack, &account, bytes, "video/mp4").await;
    let first = agent();
    let id = create_stream(stack, &account, &key, &callback).await;
    wait_status(stack, &account, &id, 1, Duration::from_secs(30)).await;
    // Agent info shows the agent holding it (from its next poll).
    let start = Instant::now();
    loop {
        let agents = stack.get(&format!("/1/agents?account_id={account}")).await;
        if agents.text.contains(&id) {
            // Its record ends with the table's TTL an hour after its last poll (dead
            // agents' records used to stay for ever).
            let agent_id = agents.json["agents"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a.to_string().contains(&id))
                .map(|a| a["agent_id"].as_str().unwrap().to_string())
                .unwrap();
            let item = stack
                .services
                .table
                .get("VAGENTS", &agent_id)
                .await
                .unwrap()
                .unwrap();
            let expires_at: i64 = item["expires_at"].as_n().unwrap().parse().unwrap();
            let now = chrono::Utc::now().timestamp();
            assert!(
                (now + 3500..=now + 3610).contains(&expires_at),
                "{expires_at} vs {now}"
            );
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{}", agents.text);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The first crowd ends at 10 s of the file: its event comes from the first agent.
    let start = Instant::now();
    while events.lock().unwrap().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "no event from the first agent"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its feedback records the event sent; then the agent dies.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    first.kill();
    let killed = Instant::now();
    let _second = agent();
    let start = Instant::now();
    let taken = loop {
        let logs = logs_of(stack, &account, &id).await;
        if logs.iter().any(|l| l["status"] == 7) && logs.last().unwrap()["status"] == 1 {
            break logs;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not taken over: {logs:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("taken over {:?} after the kill", killed.elapsed());
    assert!(killed.elapsed() < Duration::from_secs(15));
    wait_status(stack, &account, &id, 3, Duration::from_secs(60)).await;

    // Logs: pending, in progress (first agent), lost, restart, pending, in progress
    // (second agent, resuming past the first crowd), done.
    let logs = logs_of(stack, &account, &id).await;
    let statuses: Vec<u64> = logs.iter().map(|l| l["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, vec![0, 1, 7, 4, 0, 1, 3], "{logs:?}");
    let (a, b) = (&logs[1]["agent_id"], &logs[5]["agent_id"]);
    assert!(a.is_string() && b.is_string() && a != b, "{logs:?}");
    assert_eq!(&logs[2]["agent_id"], a);
    assert_eq!(&logs[6]["agent_id"], b);
    assert!(
        taken[5]["last_processed_frame_time"].as_f64().unwrap() >= 10.0,
        "{taken:?}"
    );

    // Both crowds, each once, at their places in the file.
    let events = events.lock().unwrap().clone();
    let spans: Vec<(u64, u64, u64)> = events
        .iter()
        .map(|e| {
            let s = &e["event"]["video_segment"];
            (
                s["start_frame"].as_u64().unwrap(),
                s["end_frame"].as_u64().unwrap(),
                e["event"]["people_count"].as_u64().unwrap(),
            )
        })
        .collect();
    println!("events: {spans:?}");
    assert_eq!(spans.len(), 2, "{events:?}");
    assert_eq!((spans[0].0, spans[0].1, spans[0].2), (100, 250, 2));
    assert_eq!((spans[1].0, spans[1].1), (350, 500));
    assert!(spans[1].2 >= 4);
    for e in &events {
        assert_eq!(e["event_type"], "crowd");
        assert_eq!(e["event"]["stream_id"], id.as_str());
    }
    let answer = stack
        .delete(&format!("/1/streams/{id}?account_id={account}"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_resume_and_delete_end_the_work() {
    let _guard = exclusive().await;
    let stack = stack();
    let account = account();
    let worker = agent();
    let (callback, _) = callback_server().await;
    let key = upload(
        stack,
        &account,
        clip("long-stream.mp4", &[(Some("zidane.jpg"), 60)]),
        "video/mp4",
    )
    .await;
    let id = create_stream(stack, &account, &key, &callback).await;
    wait_status(stack, &account, &id, 1, Duration::from_secs(30)).await;
    let decoding = |limit: Duration, want: bool| {
        let pid = worker.pid();
        async move {
            let start = Instant::now();
            while (ffmpeg_children(pid) > 0) != want {
                assert!(start.elapsed() < limit, "decoder running: {}", !want);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    decoding(Duration::from_secs(20), true).await;
    let patch = |action: &'static str| {
        let path = format!("/1/streams/{id}?account_id={account}&action={action}");
        async move { stack.call(reqwest::Method::PATCH, &path, None).await }
    };
    let stopped = patch("stop").await;
    assert_eq!(stopped.json["patched_count"], 1, "{}", stopped.text);
    assert_eq!(stream_of(stack, &account, &id).await["status"], 6);
    // Within a feedback period (2 s) and a frame.
    decoding(Duration::from_secs(6), false).await;
    assert_eq!(patch("stop").await.json["patched_count"], 0);
    assert_eq!(patch("resume").await.json["patched_count"], 1);
    wait_status(stack, &account, &id, 1, Duration::from_secs(20)).await;
    decoding(Duration::from_secs(20), true).await;
    let answer = stack
        .delete(&format!("/1/streams/{id}?account_id={account}"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    decoding(Duration::from_secs(6), false).await;
    let gone = stack
        .get(&format!("/1/streams/{id}?account_id={account}"))
        .await;
    assert_eq!((gone.status.as_u16(), gone.error_code()), (404, 40026));
    // Its logs stay.
    let statuses: Vec<u64> = logs_of(stack, &account, &id)
        .await
        .iter()
        .map(|l| l["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![0, 1, 6, 0, 1], "{statuses:?}");
}

/// A create is two writes, the agents' marker and then the stream: an agent that reads
/// in between finds a marker without its stream. It must keep the marker (it used to
/// drop it, and the stream then waited for an agent forever: CI saw a stream stay
/// pending for 30 s beside an idle agent). Same for a resume's marker written before
/// the stream reopens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marker_read_before_its_stream_is_written_is_kept() {
    let _guard = exclusive().await;
    let stack = stack();
    let svc = &stack.services;
    let account: uuid::Uuid = account().parse().unwrap();
    let stream_id = uuid::Uuid::new_v4();
    let agent_id = uuid::Uuid::new_v4();
    streams::mark_open(svc, account, stream_id).await.unwrap();
    let taken = streams::claim(svc, account, stream_id, agent_id, 6_000)
        .await
        .unwrap();
    assert!(taken.is_none());
    let open = streams::open_streams(svc).await.unwrap();
    assert!(open.contains(&(account, stream_id)), "marker dropped");

    // The stream's own write follows: the marker still lists it, so an agent takes it.
    let (callback, _) = callback_server().await;
    let key = upload(
        stack,
        &account.to_string(),
        clip("marker.mp4", &[(None, 1)]),
        "video/mp4",
    )
    .await;
    let id: uuid::Uuid = create_stream(stack, &account.to_string(), &key, &callback)
        .await
        .parse()
        .unwrap();
    // A stopped stream being resumed: the resume's marker comes before its write.
    let stop = format!("/1/streams/{id}?account_id={account}&action=stop");
    let stopped = stack.call(reqwest::Method::PATCH, &stop, None).await;
    assert_eq!(stopped.json["patched_count"], 1, "{}", stopped.text);
    streams::mark_open(svc, account, id).await.unwrap();
    assert!(
        streams::claim(svc, account, id, agent_id, 6_000)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        streams::open_streams(svc)
            .await
            .unwrap()
            .contains(&(account, id))
    );
    let resume = format!("/1/streams/{id}?account_id={account}&action=resume");
    let resumed = stack.call(reqwest::Method::PATCH, &resume, None).await;
    assert_eq!(resumed.json["patched_count"], 1, "{}", resumed.text);
    let held = streams::claim(svc, account, id, agent_id, 6_000)
        .await
        .unwrap();
    assert!(held.is_some_and(|h| h.stream.processing.agent_id == Some(agent_id)));
    // Deleted: its marker goes at once.
    let answer = stack
        .delete(&format!("/1/streams/{id}?account_id={account}"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(
        !streams::open_streams(svc)
            .await
            .unwrap()
            .contains(&(account, id))
    );
}
