//! The `fanout` command line, run as a process against the local stack and real
//! workers: a task created with `--wait` ends with its result, `watch` follows a task of
//! several subtasks to its end, `result` downloads an archive, and the exit code says
//! how a task ended.

mod common;

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use fanout_e2e::{Stack, User, stack};
use serde_json::{Value, json};

use common::{Worker, exclusive, faces_of, status_is, wait_task};

/// The `fanout` binary cargo built next to this test (`cargo test --workspace` builds
/// it; alone: `cargo build -p fanout-functions --bin fanout`).
fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join("fanout");
    assert!(
        path.exists(),
        "{} missing: cargo build -p fanout-functions --bin fanout",
        path.display()
    );
    path
}

/// Runs `fanout` with the user's token against the stack, from a scratch directory (so
/// no `.fanout/local.env` of the checkout is read).
async fn fanout(stack: &Stack, user: &User, args: &[&str]) -> Output {
    let dir = std::env::temp_dir().join(format!("fanout-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut command = std::process::Command::new(binary());
    command
        .args(["--url", &stack.url])
        .args(args)
        .current_dir(&dir)
        .env("FANOUT_TOKEN", &user.token)
        .env_remove("FANOUT_URL");
    run(command).await
}

/// Runs a command to its end off the test's runtime.
async fn run(mut command: std::process::Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The `task N: <status>, D/A parts` lines `watch` writes when not on a terminal.
fn progress(stderr: &str) -> Vec<(String, u64, u64)> {
    stderr
        .lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once(": ")?;
            let (status, parts) = rest.split_once(", ")?;
            let (done, all) = parts.strip_suffix(" parts")?.split_once('/')?;
            Some((status.to_string(), done.parse().ok()?, all.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn a_task_created_with_wait_shows_its_progress_and_ends_with_its_result() {
    let _one = exclusive().await;
    let stack = stack();
    let user = stack.user().await;
    faces_of(stack, &user.account_id, 50).await;
    let _worker = Worker::start("work,control");
    let content = json!({"objects_type": "faces", "objects_per_subtask": 10, "create_list": 1});
    let run = fanout(
        stack,
        &user,
        &[
            "tasks",
            "create",
            "linker",
            "--content",
            &content.to_string(),
            "--wait",
            "--interval",
            "0.1",
        ],
    )
    .await;
    let (stdout, stderr) = (text(&run.stdout), text(&run.stderr));
    assert_eq!(run.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("task "), "{stdout}");
    assert!(stdout.contains(" done after "), "{stdout}");
    assert!(stdout.contains(": 5/5 parts"), "{stdout}");
    assert!(stdout.contains("linked_objects_count: 50"), "{stdout}");
    // Progress: counts never go back, and it ends at 5 of 5, done.
    let seen = progress(&stderr);
    assert!(!seen.is_empty(), "{stderr}");
    assert!(seen.windows(2).all(|w| w[0].1 <= w[1].1), "{seen:?}");
    assert_eq!(
        seen.last().unwrap(),
        &("done".to_string(), 5, 5),
        "{stderr}"
    );

    // The same task's result in full, as JSON for a script.
    let id: u64 = stdout.split_whitespace().nth(1).unwrap().parse().unwrap();
    let result = fanout(
        stack,
        &user,
        &["--json", "tasks", "result", &id.to_string()],
    )
    .await;
    assert_eq!(result.status.code(), Some(0));
    let result: Value = serde_json::from_slice(&result.stdout).unwrap();
    assert_eq!(result["result"]["linked_objects_count"], 50);
}

#[tokio::test]
async fn watch_follows_a_task_of_many_subtasks_and_result_saves_the_archive() {
    let _one = exclusive().await;
    let stack = stack();
    let user = stack.user().await;
    faces_of(stack, &user.account_id, 40).await;
    // Created through the CLI without waiting, then watched while a worker runs it.
    let content = json!({"objects_type": "faces", "objects_per_subtask": 10, "create_list": 1});
    let created = fanout(
        stack,
        &user,
        &[
            "--json",
            "tasks",
            "create",
            "linker",
            "--content",
            &content.to_string(),
        ],
    )
    .await;
    assert_eq!(created.status.code(), Some(0), "{}", text(&created.stderr));
    let id = serde_json::from_slice::<Value>(&created.stdout).unwrap()["task_id"]
        .as_u64()
        .unwrap();
    let _worker = Worker::start("work,control");
    let watched = fanout(
        stack,
        &user,
        &["tasks", "watch", &id.to_string(), "--interval", "0.1"],
    )
    .await;
    let (stdout, stderr) = (text(&watched.stdout), text(&watched.stderr));
    assert_eq!(watched.status.code(), Some(0), "{stdout}\n{stderr}");
    let seen = progress(&stderr);
    assert!(seen.windows(2).all(|w| w[0].1 <= w[1].1), "{seen:?}");
    assert_eq!(
        seen.last().unwrap(),
        &("done".to_string(), 4, 4),
        "{stderr}"
    );
    assert!(stdout.contains("linked_objects_count: 40"), "{stdout}");

    // An exporter's result is an archive: --wait names it, `result` saves it.
    let content = json!({"objects_type": "faces", "columns": ["face_id", "user_data"]});
    let exported = fanout(
        stack,
        &user,
        &[
            "tasks",
            "create",
            "exporter",
            "--content",
            &content.to_string(),
            "--wait",
        ],
    )
    .await;
    let stdout = text(&exported.stdout);
    assert_eq!(exported.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("zip archive"), "{stdout}");
    let id: u64 = stdout.split_whitespace().nth(1).unwrap().parse().unwrap();
    let saved = fanout(stack, &user, &["tasks", "result", &id.to_string()]).await;
    assert_eq!(saved.status.code(), Some(0), "{}", text(&saved.stderr));
    let dir = std::env::temp_dir().join(format!("fanout-cli-{}", std::process::id()));
    let path = dir.join(format!("task_{id}.zip"));
    let bytes = std::fs::read(&path).expect("task_<id>.zip saved");
    assert!(text(&saved.stdout).contains(&format!("{} bytes saved", bytes.len())));
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let csv = {
        use std::io::Read;
        let mut text = String::new();
        archive
            .by_name("faces.csv")
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text
    };
    assert_eq!(csv.lines().count(), 41, "a header and 40 rows");
    std::fs::remove_file(path).unwrap();
}

#[tokio::test]
async fn a_failing_task_exits_3_with_its_errors_and_api_errors_exit_1() {
    let _one = exclusive().await;
    let stack = stack();
    let user = stack.user().await;
    faces_of(stack, &user.account_id, 30).await;
    let list = stack
        .post("/1/lists", &json!({"account_id": user.account_id}))
        .await
        .json["list_id"]
        .as_str()
        .unwrap()
        .to_string();
    let content = json!({"objects_type": "faces", "objects_per_subtask": 10, "list_id": list});
    let created = fanout(
        stack,
        &user,
        &[
            "--json",
            "tasks",
            "create",
            "linker",
            "--content",
            &content.to_string(),
        ],
    )
    .await;
    let id = serde_json::from_slice::<Value>(&created.stdout).unwrap()["task_id"]
        .as_u64()
        .unwrap();
    // Planned by a control worker; then the list goes away, so every subtask fails.
    {
        let _control = Worker::start("control");
        wait_task(stack, id, Duration::from_secs(60), status_is(1)).await;
        let start = Instant::now();
        while fanout::tasks::store::load(&stack.services, id)
            .await
            .unwrap()
            .unwrap()
            .stages_enqueued
            < 1
        {
            assert!(start.elapsed() < Duration::from_secs(30));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let gone = stack
        .delete(&format!("/1/lists/{list}?account_id={}", user.account_id))
        .await;
    assert_eq!(gone.status, 204);
    let _worker = Worker::start("work,control");
    let watched = fanout(stack, &user, &["tasks", "watch", &id.to_string()]).await;
    let stdout = text(&watched.stdout);
    assert_eq!(
        watched.status.code(),
        Some(3),
        "{stdout}\n{}",
        text(&watched.stderr)
    );
    assert!(stdout.contains(" failed after "), "{stdout}");
    assert!(stdout.contains("4 task error(s):"), "{stdout}");
    assert!(stdout.contains("error 22003"), "{stdout}");

    // An API error: its code, description and detail, and exit 1.
    let missing = fanout(stack, &user, &["tasks", "get", "999999999"]).await;
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        text(&missing.stderr).trim(),
        "fanout: error 28001 (HTTP 404): Object not found: Task with id '999999999' not found"
    );
    // Without a token: 401, exit 1; a bad argument: exit 2.
    let mut command = std::process::Command::new(binary());
    command
        .args(["--url", &stack.url, "faces", "list"])
        .env_remove("FANOUT_TOKEN")
        .current_dir(std::env::temp_dir());
    let anonymous = run(command).await;
    assert_eq!(anonymous.status.code(), Some(1));
    assert!(text(&anonymous.stderr).contains("error 40011 (HTTP 401)"));
    let usage = fanout(stack, &user, &["tasks", "watch", "not-a-number"]).await;
    assert_eq!(usage.status.code(), Some(2));
}
