//! What the test binaries that run workers share: worker processes, task creation and
//! polling through the gateway, and a look at a task's S3 objects.
// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod augment;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{Mutex, MutexGuard};

use fanout::objects::faces::{self, NewFace};
use fanout::store::blobs;
use fanout::video::testclips::{Scene, make_clip};
use fanout_e2e::{Stack, stack};
use std::path::PathBuf;

static ENGINE: Mutex<()> = Mutex::const_new(());

/// Holds the queues for one scenario.
pub async fn exclusive() -> MutexGuard<'static, ()> {
    ENGINE.lock().await
}

/// The vision models `make models` laid out: `FANOUT_MODELS_DIR`, else the workspace's
/// `.fanout/models` (absolute, so workers started from any directory find them).
pub fn models_dir() -> std::path::PathBuf {
    std::env::var_os("FANOUT_MODELS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.fanout/models")
        })
}

/// The vision models of [`models_dir`], loaded once per test binary (one thread).
pub fn models() -> &'static fanout::vision::models::Models {
    static MODELS: std::sync::OnceLock<fanout::vision::models::Models> = std::sync::OnceLock::new();
    MODELS.get_or_init(|| {
        fanout::vision::models::Models::load(&models_dir(), 1)
            .unwrap_or_else(|e| panic!("{e} (run `make models`)"))
    })
}

/// A package-shipped image of the models directory, decoded.
pub fn image(name: &str) -> fanout::vision::geometry::Rgb {
    fanout::vision::picture::decode(&package_image(name)).expect("package image decodes")
}

/// A package-shipped image of the models directory (`t1.jpg`, `zidane.jpg`, `bus.jpg`).
pub fn package_image(name: &str) -> Vec<u8> {
    std::fs::read(models_dir().join("images").join(name))
        .unwrap_or_else(|e| panic!("{name}: {e} (run `make models`)"))
}

/// A worker process; killed when dropped.
pub struct Worker(Child);

impl Worker {
    /// Starts a worker on `queues` ("work", "control" or "work,control") with a short
    /// lease, so a message of a killed worker comes back within seconds.
    pub fn start(queues: &str) -> Worker {
        Worker::start_with(queues, &[], &[])
    }

    /// [`Worker::start`] with more arguments and environment variables (a fault point
    /// armed with `FANOUT_FAULT`, a reconciler loop).
    pub fn start_with(queues: &str, args: &[&str], envs: &[(&str, &str)]) -> Worker {
        Worker::start_logged(queues, args, envs, None)
    }

    /// [`Worker::start_with`], its standard error written to `stderr` when given.
    pub fn start_logged(
        queues: &str,
        args: &[&str],
        envs: &[(&str, &str)],
        stderr: Option<&std::path::Path>,
    ) -> Worker {
        stack();
        // Defaults unless `args` sets them (clap refuses a flag given twice).
        let defaults = [
            ("--lease-seconds", "6"),
            ("--wait-seconds", "1"),
            ("--concurrency", "4"),
            ("--drain-seconds", "10"),
        ];
        let mut all = vec!["--queues", queues];
        for (flag, value) in defaults {
            if !args.contains(&flag) {
                all.extend([flag, value]);
            }
        }
        all.extend(args);
        let child = Command::new(env!("CARGO_BIN_EXE_worker"))
            .args(all)
            .env("FANOUT_MODELS_DIR", models_dir())
            .envs(envs.iter().copied())
            .env(
                "RUST_LOG",
                std::env::var("FANOUT_TEST_WORKER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(match stderr {
                Some(path) => Stdio::from(std::fs::File::create(path).expect("stderr file")),
                None => Stdio::inherit(),
            })
            .spawn()
            .expect("start worker");
        Worker(child)
    }

    /// Waits up to `limit` for the process to end by itself (a fault point killed it);
    /// whether it did.
    pub async fn ended_within(&mut self, limit: Duration) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit {
            if self.0.try_wait().expect("worker status").is_some() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// The most memory the process has held so far (its VmHWM, KiB).
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id()))
            .expect("worker status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM")
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// SIGKILL: no chance to finish or release anything.
    pub fn kill(mut self) {
        self.0.kill().expect("kill worker");
        self.0.wait().expect("reap worker");
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Creates `n` faces of `account` through the bulk loader.
pub async fn faces_of(stack: &Stack, account: &str, n: usize) -> Vec<String> {
    let account_id = account.parse().unwrap();
    let mut ids = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let batch = chunk
            .iter()
            .map(|i| NewFace {
                account_id,
                descriptor: None,
                descriptor_version: None,
                external_id: None,
                user_data: Some(format!("face {i}")),
                event_id: None,
                avatar: None,
                lists: None,
            })
            .collect();
        let created = faces::create_batch(&stack.services, batch).await.unwrap();
        ids.extend(created.into_iter().map(|id| id.to_string()));
    }
    ids
}

pub async fn create_task(stack: &Stack, kind: &str, account: &str, content: Value) -> u64 {
    let answer = stack
        .post(
            &format!("/1/tasks/{kind}"),
            &json!({"account_id": account, "description": "engine test", "content": content}),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.json["task_id"].as_u64().unwrap()
}

/// A linker task over every face of `account`, to `list_id` or to a new list.
pub async fn task(stack: &Stack, task_id: u64) -> Value {
    let answer = stack.get(&format!("/1/tasks/{task_id}")).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json
}

/// Polls the task until `done` holds (or fails the test after `limit`).
pub async fn wait_task(
    stack: &Stack,
    task_id: u64,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    loop {
        let current = task(stack, task_id).await;
        if done(&current) {
            return current;
        }
        assert!(start.elapsed() < limit, "task {task_id} stuck: {current}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn status_is(status: u64) -> impl Fn(&Value) -> bool {
    move |t| t["task_status"] == status
}

/// The kind's result of a done task: `result` of the answer's envelope (whose `errors`
/// are the task's errors when it was written).
pub async fn result(stack: &Stack, task_id: u64) -> Value {
    let answer = stack.get(&format!("/1/tasks/{task_id}/result")).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(answer.json["errors"].is_array(), "{}", answer.text);
    answer.json["result"].clone()
}

/// Uploads `bytes` through `POST /1/uploads` and the presigned PUT; returns the key.
pub async fn upload(stack: &Stack, account: &str, bytes: Vec<u8>, content_type: &str) -> String {
    let answer = stack
        .post(
            "/1/uploads",
            &json!({"account_id": account, "content_type": content_type}),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    let url = answer.json["url"].as_str().unwrap();
    let put = reqwest::Client::new()
        .put(url)
        .header("content-type", content_type)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{}", put.text().await.unwrap());
    answer.json["key"].as_str().unwrap().to_string()
}

/// The ffmpeg processes `pid` runs.
pub fn ffmpeg_children(pid: u32) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // pid (comm) state ppid ...
            let Some((comm, rest)) = stat.split_once(") ") else {
                return false;
            };
            let ppid = rest.split(' ').nth(1).and_then(|p| p.parse::<u32>().ok());
            comm.ends_with("(ffmpeg") && ppid == Some(pid)
        })
        .count()
}

/// Frames a second of the test clips, and frames between keyframes.
pub const FPS: u32 = 25;
pub const GOP: u32 = 25;

fn workdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fanout-video-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn package_path(name: &str) -> PathBuf {
    models_dir().join("images").join(name)
}

/// Encodes `scenes` (image name or none for grey, seconds) as a 640 × 360 clip.
pub fn clip(name: &str, scenes: &[(Option<&str>, u32)]) -> Vec<u8> {
    let paths: Vec<Option<PathBuf>> = scenes.iter().map(|(i, _)| i.map(package_path)).collect();
    let scenes: Vec<Scene> = scenes
        .iter()
        .zip(&paths)
        .map(|((_, seconds), path)| Scene {
            image: path.as_deref(),
            seconds: *seconds,
        })
        .collect();
    let out = workdir().join(name);
    let path = make_clip(&out, &scenes, 640, 360, FPS, GOP).expect("ffmpeg encodes the clip");
    std::fs::read(path).unwrap()
}

/// Objects stored under the task's S3 prefix.
pub async fn objects_of(stack: &Stack, task_id: u64) -> Vec<String> {
    stack.stored_objects(&blobs::task_prefix(task_id)).await
}

/// Fails a test that needs fault points when they are not compiled in.
pub fn require_faults() {
    assert!(
        fanout::fault::enabled(),
        "build with --features fanout/faults (make test does)"
    );
}

/// Messages in a queue, visible or in flight.
pub async fn queue_depth(stack: &Stack, url: &str) -> u64 {
    let out = stack
        .services
        .aws
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        )
        .send()
        .await
        .unwrap();
    out.attributes()
        .map(|a| a.values().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0)
}

/// Waits until a queue holds no message (or fails the test after `limit`).
pub async fn wait_queue_empty(stack: &Stack, url: &str, limit: Duration) {
    let start = Instant::now();
    while queue_depth(stack, url).await > 0 {
        assert!(start.elapsed() < limit, "queue {url} does not drain");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Receives and deletes every visible message of a queue: messages lost in transit.
/// Answers how many there were.
pub async fn lose_messages(stack: &Stack, url: &str) -> usize {
    let sqs = &stack.services.aws.sqs;
    let mut lost = 0;
    loop {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(60)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return lost;
        }
        for message in messages {
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
            lost += 1;
        }
    }
}

/// One reconciler pass; waits while another pass (a killed worker's, say) holds the
/// reconciler's lease.
pub async fn reconcile(stack: &Stack, stall: Duration) -> fanout::engine::reconcile::Report {
    let start = Instant::now();
    loop {
        let report = fanout::engine::reconcile::run(&stack.services, stall)
            .await
            .unwrap();
        if !report.skipped {
            return report;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the reconciler's lease stays held"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Lets a worker take whatever earlier tests left in the work queue (duplicates of ended
/// subtasks, tasks that failed), so a test can count the queue's messages as its own.
pub async fn settle_work_queue(stack: &Stack) {
    let worker = Worker::start("work");
    wait_queue_empty(
        stack,
        &stack.services.config.work_queue_url,
        Duration::from_secs(120),
    )
    .await;
    worker.kill();
    // The emulator may still hold the killed worker's last long poll (1 s here) and would
    // hand it the next messages sent.
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// Cancels every task earlier tests left running or pending, so that a reconciler pass
/// with a zero stall period drives only the calling test's task; then settles the work
/// queue.
pub async fn settle_tasks(stack: &Stack) {
    let svc = &stack.services;
    let ids = fanout::tasks::store::active_task_ids(svc).await.unwrap();
    for task_id in ids {
        // Already ended, gone or unreadable: the pass forgets or skips it either way.
        let _ = fanout::tasks::api::cancel(svc, None, task_id).await;
    }
    settle_work_queue(stack).await;
}
