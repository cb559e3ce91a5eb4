//! Video tasks end to end (`/1/videosdk`, `/1/video/tasks/{task_id}`): clips encoded
//! with ffmpeg from the package images (scenes of no one, zidane's two men and t1's
//! six people, so the crowds are known), uploaded by presigned PUT, analysed by worker
//! processes segment by segment on the real models, results read from `result_url`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use fanout::descriptor::Descriptor;
use fanout::vision::faces::{self, Extractor, Wanted};
use fanout_e2e::{Stack, account, stack};

use common::{Worker, clip, exclusive, ffmpeg_children, models, upload};

fn video_workers() -> (Worker, Worker) {
    let args = ["--lease-seconds", "30"];
    (
        Worker::start_with("work,control", &args, &[]),
        Worker::start_with("work", &args, &[]),
    )
}

/// Creates a deferred video task; its uuid.
async fn deferred(stack: &Stack, account: &str, video: Value, analytics: Value) -> String {
    let answer = stack
        .post(
            &format!("/1/videosdk?account_id={account}"),
            &json!({"deferred_task": {"enable": true}, "video": video, "analytics": analytics}),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.json["task_id"].as_str().unwrap().to_string()
}

async fn video_task(stack: &Stack, account: &str, id: &str) -> Value {
    let answer = stack
        .get(&format!("/1/video/tasks/{id}?account_id={account}"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json
}

/// Polls a video task until it ends; its last view and every progress seen.
async fn until_ended(stack: &Stack, account: &str, id: &str, limit: Duration) -> (Value, Vec<f64>) {
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        let task = video_task(stack, account, id).await;
        seen.push(task["progress"].as_f64().unwrap());
        if task["status"].as_u64().unwrap() >= 2 {
            return (task, seen);
        }
        assert!(start.elapsed() < limit, "video task {id} stuck: {task}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

async fn fetch(url: &str) -> Value {
    let answer = reqwest::get(url).await.unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    answer.json().await.unwrap()
}

/// (start frame, end frame, people) of each crowd event.
fn crowds(result: &Value) -> Vec<(u64, u64, u64)> {
    result["analytics"][0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = &e["video_segment"];
            (
                s["start_frame"].as_u64().unwrap(),
                s["end_frame"].as_u64().unwrap(),
                e["people_count"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn near(actual: u64, expected: u64, tolerance: u64) -> bool {
    actual.abs_diff(expected) <= tolerance
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_count_finds_the_crowds_whatever_the_segments() {
    let _guard = exclusive().await;
    let stack = stack();
    let account = account();
    // 0-4 s no one, 4-8 s two men, 8-12 s no one, 12-16 s six people, 16-20 s no one.
    let bytes = clip(
        "crowds.mp4",
        &[
            (None, 4),
            (Some("zidane.jpg"), 4),
            (None, 4),
            (Some("t1.jpg"), 4),
            (None, 4),
        ],
    );
    let key = upload(stack, &account, bytes, "video/mp4").await;
    let _workers = video_workers();
    let analytics = json!([{
        "name": "people_count",
        "targets": ["frames", "coordinates", "overview"],
        "parameters": {"rate": {"period": 5}, "probe_count": 2, "people_count__gte": 2}
    }]);
    let mut results = Vec::new();
    for segments in [1, 3, 10] {
        let id = deferred(
            stack,
            &account,
            json!({"key": key, "segments": segments}),
            analytics.clone(),
        )
        .await;
        let (task, progress) = until_ended(stack, &account, &id, Duration::from_secs(180)).await;
        assert_eq!(task["status"], 2, "{task}");
        assert!(
            progress.windows(2).all(|w| w[0] <= w[1]),
            "progress fell: {progress:?}"
        );
        assert_eq!(*progress.last().unwrap(), 1.0);
        let result = fetch(task["result_url"].as_str().unwrap()).await;
        // The tasks route answers the same result in the envelope of every task kind.
        let task_id = uuid::Uuid::parse_str(&id).unwrap().as_u64_pair().1;
        let answer = stack
            .get(&format!("/1/tasks/{task_id}/result?account_id={account}"))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.json, json!({"result": result, "errors": []}));
        let data = &result["video_data"];
        assert_eq!(data["frame_count"], 500, "{data}");
        assert_eq!(data["frame_rate"], 25.0);
        assert!(
            (data["duration"].as_f64().unwrap() - 20.0).abs() < 0.05,
            "{data}"
        );
        assert_eq!(data["segments"], segments, "{data}");
        let found = crowds(&result);
        println!("{segments} segment(s): {found:?}");
        assert_eq!(found.len(), 2, "{found:?}");
        // Within two sampled frames of the scene changes.
        assert!(
            near(found[0].0, 100, 10) && near(found[0].1, 200, 10),
            "{found:?}"
        );
        assert!(
            near(found[1].0, 300, 10) && near(found[1].1, 400, 10),
            "{found:?}"
        );
        assert_eq!(found[0].2, 2, "{found:?}");
        assert!(found[1].2 >= 4, "{found:?}");
        let event = &result["analytics"][0]["events"][1];
        let overview = &event["overview"];
        assert_eq!(
            overview["people_coordinates"].as_array().unwrap().len() as u64,
            found[1].2
        );
        assert!(
            overview["image"]
                .as_str()
                .unwrap()
                .starts_with("data:image/jpeg;base64,")
        );
        // Every sampled frame once, in order.
        let frames: Vec<u64> = result["analytics"][0]["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["frame"].as_u64().unwrap())
            .collect();
        assert_eq!(frames, (0..500).step_by(5).collect::<Vec<u64>>());
        results.push(result);
    }
    // The same counts and events whatever the cut (event ids name the task).
    let counts = |r: &Value| -> Vec<Value> {
        r["analytics"][0]["frames"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["people_count"].clone())
            .collect()
    };
    for other in &results[1..] {
        assert_eq!(counts(other), counts(&results[0]));
        assert_eq!(crowds(other), crowds(&results[0]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_file_is_a_clear_error_and_short_videos_answer_at_once() {
    let _guard = exclusive().await;
    let stack = stack();
    let account = account();
    let _workers = video_workers();
    let analytics = json!([{"name": "people_count"}]);

    // Not a video: the task fails with 45001 saying so.
    let garbage: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let bad_key = upload(stack, &account, garbage, "video/mp4").await;
    let id = deferred(stack, &account, json!({"key": bad_key}), analytics.clone()).await;
    let (task, _) = until_ended(stack, &account, &id, Duration::from_secs(60)).await;
    assert_eq!(task["status"], 3, "{task}");
    assert_eq!(task["error"]["error_code"], 45001, "{task}");
    assert!(task["result_url"].is_null());
    let detail = task["error"]["detail"].as_str().unwrap();
    assert!(detail.contains("not a readable video"), "{detail}");

    // The same synchronously: the answer is the error.
    let answer = stack
        .post(
            &format!("/1/videosdk?account_id={account}"),
            &json!({"deferred_task": {}, "video": {"key": bad_key}, "analytics": analytics}),
        )
        .await;
    assert_eq!(
        (answer.status.as_u16(), answer.error_code()),
        (400, 45001),
        "{}",
        answer.text
    );

    // A short clip synchronously: the result in the answer.
    let short = upload(
        stack,
        &account,
        clip("short.mp4", &[(None, 1), (Some("zidane.jpg"), 3)]),
        "video/mp4",
    )
    .await;
    let answer = stack
        .post(
            &format!("/1/videosdk?account_id={account}"),
            &json!({"deferred_task": {"enable": false}, "video": {"key": short},
                    "analytics": [{"name": "people_count", "parameters": {"people_count__gte": 2, "rate": {"period": 5}}}]}),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["video_data"]["frame_count"], 100);
    let found = crowds(&answer.json);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(near(found[0].0, 25, 15) && found[0].1 == 100, "{found:?}");

    // Longer than a synchronous answer allows: 40025 pointing at deferred mode.
    let long = upload(
        stack,
        &account,
        clip("long.mp4", &[(None, 40)]),
        "video/mp4",
    )
    .await;
    let answer = stack
        .post(
            &format!("/1/videosdk?account_id={account}"),
            &json!({"deferred_task": {}, "video": {"key": long}, "analytics": [{"name": "people_count"}]}),
        )
        .await;
    assert_eq!(
        (answer.status.as_u16(), answer.error_code()),
        (400, 40025),
        "{}",
        answer.text
    );
    assert!(answer.text.contains("deferred_task"), "{}", answer.text);

    // Bad requests change nothing: another account's key, an unknown analytic, nothing
    // uploaded, link-local URLs (the instance's metadata).
    let before = stack
        .get(&format!("/1/tasks/count?account_id={account}"))
        .await
        .json;
    for (video, analytics) in [
        (
            json!({"key": format!("uploads/{}/x.mp4", fanout_e2e::account())}),
            json!([{"name": "people_count"}]),
        ),
        (json!({"key": short}), json!([{"name": "fight"}])),
        (
            json!({"key": format!("uploads/{account}/missing.mp4")}),
            json!([{"name": "people_count"}]),
        ),
        (
            json!({"url": "http://169.254.169.254/latest/meta-data"}),
            json!([{"name": "people_count"}]),
        ),
        // The same address spelt as one number, and a callback to it as mapped IPv6
        // (the first one used to be accepted and read by the worker).
        (
            json!({"url": "http://2852039166/latest/meta-data"}),
            json!([{"name": "people_count"}]),
        ),
        (
            json!({"key": short}),
            json!([{"name": "people_count", "callbacks": [{"type": "http", "url": "http://[::ffff:a9fe:a9fe]/events"}]}]),
        ),
        (
            json!({"key": short, "segments": 0}),
            json!([{"name": "people_count"}]),
        ),
    ] {
        let answer = stack
            .post(
                &format!("/1/videosdk?account_id={account}"),
                &json!({"deferred_task": {"enable": true}, "video": video, "analytics": analytics}),
            )
            .await;
        assert_eq!(
            (answer.status.as_u16(), answer.error_code()),
            (400, 12027),
            "{}",
            answer.text
        );
    }
    let after = stack
        .get(&format!("/1/tasks/count?account_id={account}"))
        .await
        .json;
    assert_eq!(before, after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_the_decoding() {
    let _guard = exclusive().await;
    let stack = stack();
    let account = account();
    let worker = Worker::start_with("work,control", &["--lease-seconds", "30"], &[]);
    // 90 s of one person at every frame: minutes of work in one segment.
    let key = upload(
        stack,
        &account,
        clip("cancel.mp4", &[(Some("zidane.jpg"), 90)]),
        "video/mp4",
    )
    .await;
    let id = deferred(
        stack,
        &account,
        json!({"key": key, "segments": 1}),
        json!([{"name": "people_count", "parameters": {"rate": {"period": 1}}}]),
    )
    .await;
    // Wait for the segment's decoder.
    let start = Instant::now();
    while ffmpeg_children(worker.pid()) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no decoder started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = stack
        .delete(&format!("/1/video/tasks/{id}?account_id={account}"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let cancelled = Instant::now();
    assert_eq!(video_task(stack, &account, &id).await["status"], 4);
    while ffmpeg_children(worker.pid()) > 0 {
        assert!(
            cancelled.elapsed() < Duration::from_secs(20),
            "the decoder still runs 20 s after the cancel"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("decoder stopped {:?} after the cancel", cancelled.elapsed());
    // Cancelling again is accepted; the task stays cancelled with no result.
    let answer = stack
        .delete(&format!("/1/video/tasks/{id}?account_id={account}"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let task = video_task(stack, &account, &id).await;
    assert_eq!(
        (task["status"].as_u64(), task["result_url"].is_null()),
        (Some(4), true)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn human_tracking_follows_each_face_and_describes_it() {
    let _guard = exclusive().await;
    let stack = stack();
    let account = account();
    let _workers = video_workers();
    let key = upload(
        stack,
        &account,
        clip(
            "faces.mp4",
            &[(None, 1), (Some("zidane.jpg"), 4), (None, 1)],
        ),
        "video/mp4",
    )
    .await;
    let id = deferred(
        stack,
        &account,
        json!({"key": key, "segments": 3}),
        json!([{"name": "human_tracking", "targets": ["face_detection", "aggregated_face_descriptor"],
                "parameters": {"rate": {"period": 5}}}]),
    )
    .await;
    let (task, _) = until_ended(stack, &account, &id, Duration::from_secs(120)).await;
    assert_eq!(task["status"], 2, "{task}");
    let result = fetch(task["result_url"].as_str().unwrap()).await;
    let tracks = result["analytics"][0]["tracks"].as_array().unwrap().clone();
    // The faces the vision module finds in the image itself.
    let wanted = Wanted {
        descriptors: vec![Extractor::FaceRes],
        ..Wanted::default()
    };
    let still = faces::analyse(models(), &common::image("zidane.jpg"), 0.6, &wanted).unwrap();
    assert_eq!(still.len(), 2);
    assert_eq!(tracks.len(), 2, "{tracks:?}");
    for track in &tracks {
        let segment = &track["video_segment"];
        // In view from 1 s to 5 s: seen from its first sampled frames to its last.
        assert!(
            near(segment["start_frame"].as_u64().unwrap(), 25, 5),
            "{track}"
        );
        assert!(
            near(segment["end_frame"].as_u64().unwrap(), 120, 5),
            "{track}"
        );
        assert!(track["detections_count"].as_u64().unwrap() >= 18, "{track}");
        // The track's descriptor is one faces take (version 1001, base64).
        assert_eq!(track["descriptor_version"], 1001);
        let descriptor =
            Descriptor::from_json(&track["descriptor"], Some(1001), &stack.services.config)
                .expect("a face descriptor")
                .values;
        let cosines: Vec<f32> = still
            .iter()
            .map(|f| faces::cosine(&descriptor, &f.descriptors[0].1))
            .collect();
        println!(
            "track at x={}: cosines {cosines:?}",
            track["first_bbox"]["x"]
        );
        let (best, cos) = cosines
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap();
        // The same person as the face at the same place in the image (the clip scales
        // 1280 × 720 to 640 × 360).
        let x = still[best].detection.rect.x / 2.0;
        assert!(
            (track["first_bbox"]["x"].as_f64().unwrap() as f32 - x).abs() < 30.0,
            "{track}"
        );
        assert!(*cos > 0.85, "{cosines:?}");
    }
}

/// A file server for the worker: `GET`/`HEAD /clip.mp4` (with byte ranges, as ffmpeg
/// seeks in an MP4), `/moved`, a redirect to it, and `/huge`, which announces a body over
/// 1 GiB; its address and the paths asked for.
async fn file_server(bytes: Vec<u8>) -> (String, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let bytes = Arc::new(bytes);
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = asked.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let bytes = bytes.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut chunk = [0u8; 2048];
                // One request per connection, headers only (ffmpeg sends no body).
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&chunk[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let mut lines = text.lines();
                let request: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
                let (method, path) = (request[0], request.get(1).copied().unwrap_or("/"));
                seen.lock().unwrap().push(path.to_string());
                let range_start = lines.find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("range").then(|| {
                        v.trim()
                            .strip_prefix("bytes=")?
                            .split('-')
                            .next()?
                            .parse::<usize>()
                            .ok()
                    })?
                });
                let (status, extra, body): (&str, String, &[u8]) = match (path, range_start) {
                    ("/moved", _) => ("302 Found", "location: /clip.mp4\r\n".into(), &[]),
                    ("/huge", _) => {
                        let header = "HTTP/1.1 200 OK\r\ncontent-length: 1073741825\r\nconnection: close\r\n\r\n";
                        let _ = socket.write_all(header.as_bytes()).await;
                        let _ = socket.write_all(&bytes[..]).await;
                        return;
                    }
                    ("/clip.mp4", Some(start)) if start < bytes.len() => (
                        "206 Partial Content",
                        format!(
                            "content-range: bytes {start}-{}/{}\r\n",
                            bytes.len() - 1,
                            bytes.len()
                        ),
                        &bytes[start..],
                    ),
                    ("/clip.mp4", _) => ("200 OK", String::new(), &bytes[..]),
                    _ => ("404 Not Found", String::new(), &[]),
                };
                let header = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: video/mp4\r\naccept-ranges: bytes\r\ncontent-length: {}\r\n{extra}connection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(header.as_bytes()).await;
                if method != "HEAD" {
                    let _ = socket.write_all(body).await;
                }
            });
        }
    });
    (base, asked)
}

/// A video given by URL is read from its server once, by the probe subtask, into the
/// task's scratch, where the segments read it; a URL that redirects is refused (its
/// target was never checked: shared/src/outbound.rs), as is one announcing over 1 GiB,
/// and the task says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_url_is_copied_once_and_a_redirect_or_a_huge_file_is_refused() {
    let _guard = exclusive().await;
    let stack = stack();
    let account = account();
    let _workers = video_workers();
    let (base, asked) =
        file_server(clip("served.mp4", &[(None, 1), (Some("zidane.jpg"), 3)])).await;
    let analytics = json!([{"name": "people_count", "parameters": {"people_count__gte": 2, "rate": {"period": 5}}}]);
    let started = Instant::now();
    let id = deferred(
        stack,
        &account,
        json!({"url": format!("{base}/clip.mp4"), "segments": 3}),
        analytics.clone(),
    )
    .await;
    let (task, _) = until_ended(stack, &account, &id, Duration::from_secs(120)).await;
    println!(
        "url task ended in {:?}; the server was asked {:?}",
        started.elapsed(),
        asked.lock().unwrap()
    );
    assert_eq!(task["status"], 2, "{task}");
    let result = fetch(task["result_url"].as_str().unwrap()).await;
    assert_eq!(result["video_data"]["frame_count"], 100, "{result}");
    assert_eq!(crowds(&result).len(), 1, "{result}");
    assert_eq!(*asked.lock().unwrap(), vec!["/clip.mp4".to_string()]);

    // Each refused with the reason in the task's error (45001).
    let failure = |path: &'static str| {
        let url = format!("{base}{path}");
        let account = account.clone();
        async move {
            let analytics = json!([{"name": "people_count"}]);
            let id = deferred(stack, &account, json!({"url": url}), analytics).await;
            let (task, _) = until_ended(stack, &account, &id, Duration::from_secs(60)).await;
            assert_eq!(task["status"], 3, "{task}");
            assert_eq!(task["error"]["error_code"], 45001, "{task}");
            task["error"]["detail"].as_str().unwrap().to_string()
        }
    };
    let detail = failure("/moved").await;
    assert!(
        detail.contains("302") && detail.contains("redirects are not followed"),
        "{detail}"
    );
    // A file the server does not have: its answer, not ffmpeg's "Input/output error".
    let detail = failure("/gone.mp4").await;
    assert!(detail.contains("answered 404"), "{detail}");
    let detail = failure("/huge").await;
    assert!(detail.contains("over the limit"), "{detail}");
}
