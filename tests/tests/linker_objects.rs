//! The linker and the objects it cannot link: faces or events named by its filters that
//! are not in the account are each a task error (22002 or 23001, the id in
//! `additional_info`) while the others are linked and the task ends done; and the faces it
//! makes from events get the events' samples as avatars. Both hold when a subtask runs
//! again.
//!
//! The tasks are created through the gateway and driven in-process, step by step, with
//! the engine's own functions (plan, each subtask, advance): no worker process is needed.
//! A worker that runs meanwhile may take some of the steps (each is idempotent), so the
//! tests wait for the task to end rather than assume who ended it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use fanout::engine::control;
use fanout::engine::messages::{ControlMessage, WorkMessage};
use fanout::engine::work;
use fanout::kinds::linker::face_of_event;
use fanout::kinds::{self, CancelFlag, SubtaskContext};
use fanout::objects::images;
use fanout::tasks::model::SubtaskStatus;
use fanout::tasks::store as task_store;
use fanout_e2e::{Stack, account, stack};
use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

/// The errors of a task, through the API.
async fn errors_of(acc: &str, task_id: u64) -> Vec<Value> {
    let answer = stack()
        .get(&format!(
            "/1/tasks/{task_id}/errors?account_id={acc}&page_size=100"
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json["errors"].as_array().unwrap().clone()
}

/// `(error_code, additional_info)` of each error.
fn codes_and_infos(errors: &[Value]) -> BTreeSet<(u64, String)> {
    errors
        .iter()
        .map(|e| {
            (
                e["error_code"].as_u64().unwrap(),
                e["additional_info"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

async fn create_face(acc: &str) -> String {
    let answer = stack().post("/1/faces", &json!({"account_id": acc})).await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.json["face_id"].as_str().unwrap().to_string()
}

async fn create_event(acc: &str) -> String {
    let answer = stack()
        .post(
            "/1/events",
            &json!({"account_id": acc, "events": [{"source": "cam1", "user_data": "linked"}]}),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.json["events"][0]["event_id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A JPEG-looking body of `len` bytes.
fn jpeg(len: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..len).map(|i| (i * 11 % 253) as u8).collect();
    bytes[..4].copy_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
    bytes
}

async fn create_linker(acc: &str, content: Value) -> u64 {
    let answer = stack()
        .post(
            "/1/tasks/linker",
            &json!({"account_id": acc, "description": "object errors", "content": content}),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.json["task_id"].as_u64().unwrap()
}

/// Drives a one-stage task to its end in-process: plan, every pending subtask, advance
/// (which merges); then waits until the task has ended. Answers the task.
async fn run_task(stack: &Stack, acc: &str, task_id: u64) -> Value {
    let svc = &stack.services;
    control::handle(svc, &ControlMessage::Plan { task_id, stage: 0 })
        .await
        .unwrap();
    for subtask in task_store::subtask_records(svc, task_id).await.unwrap() {
        if subtask.subtask.status != SubtaskStatus::Pending {
            continue;
        }
        let message = WorkMessage {
            task_id,
            subtask_id: subtask.subtask.subtask_id,
            stage: subtask.subtask.stage,
        };
        work::run(svc, &message, None, 1, 3, &CancelFlag::default())
            .await
            .unwrap();
    }
    control::handle(svc, &ControlMessage::Advance { task_id, stage: 0 })
        .await
        .unwrap();
    let start = Instant::now();
    loop {
        let task = stack
            .get(&format!("/1/tasks/{task_id}?account_id={acc}"))
            .await;
        assert_eq!(task.status, 200, "{}", task.text);
        if [2, 3, 5].contains(&task.json["task_status"].as_u64().unwrap()) {
            return task.json;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "task {task_id} does not end: {}",
            task.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The linker's result: the task result, or its `result` member when the result is
/// wrapped in an envelope with the errors.
async fn linker_result(acc: &str, task_id: u64) -> Value {
    let answer = stack()
        .get(&format!("/1/tasks/{task_id}/result?account_id={acc}"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    if answer.json.get("linked_objects_count").is_some() {
        answer.json
    } else {
        answer.json["result"].clone()
    }
}

/// Runs every subtask of a done task once more through its kind, as a delivery after a
/// crash (the output not yet recorded) would.
async fn rerun_subtasks(stack: &Stack, task_id: u64) {
    let svc = &stack.services;
    let task = task_store::load(svc, task_id).await.unwrap().unwrap();
    let task_content = task_store::content(svc, &task).await.unwrap();
    let kind = kinds::by_type(task.task_type).unwrap();
    let subtasks = task_store::subtask_records(svc, task_id).await.unwrap();
    assert!(!subtasks.is_empty());
    for subtask in subtasks {
        let content: Value = task_store::subtask_content(svc, &subtask).await.unwrap();
        let cancel = CancelFlag::default();
        let context = SubtaskContext {
            svc,
            task: &task,
            task_content: &task_content,
            subtask: &subtask,
            content: &content,
            cancel: &cancel,
        };
        kind.execute(&context).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn linker_records_a_task_error_per_face_not_found_and_links_the_others() {
    let stack = stack();
    let (acc, other) = (account(), account());
    let mut ours = Vec::new();
    for _ in 0..3 {
        ours.push(create_face(&acc).await);
    }
    let theirs = create_face(&other).await;
    let unknown = Uuid::new_v4().to_string();
    let mut named = ours.clone();
    named.extend([unknown.clone(), theirs.clone()]);
    let task_id = create_linker(
        &acc,
        json!({
            "objects_type": "faces",
            "create_list": 1,
            "filters": {"face_ids": named},
            "objects_per_subtask": 2,
        }),
    )
    .await;
    let task = run_task(stack, &acc, task_id).await;
    assert_eq!(task["task_status"], 5, "{task}");

    let result = linker_result(&acc, task_id).await;
    assert_eq!(result["linked_objects_count"], 3, "{result}");
    let list_id = result["list_id"].as_str().unwrap();
    // The list's partition: its item and one membership per face linked.
    assert_eq!(stack.stored_in_list(list_id).await, 1 + 3);

    let expected: BTreeSet<(u64, String)> =
        [(22002, unknown.clone()), (22002, theirs.clone())].into();
    let errors = errors_of(&acc, task_id).await;
    assert_eq!(codes_and_infos(&errors), expected, "{errors:#?}");
    assert_eq!(errors.len(), 2, "{errors:#?}");
    for e in &errors {
        let info = e["additional_info"].as_str().unwrap();
        assert!(e["detail"].as_str().unwrap().contains(info), "{e}");
        assert!(e["subtask_id"].as_u64().is_some(), "{e}");
    }
    // The other account's face is left alone.
    assert_eq!(
        stack
            .get(&format!("/1/faces/{theirs}?account_id={other}"))
            .await
            .json["lists"],
        json!([])
    );

    // A subtask run again (a crash before its output was recorded) records nothing twice.
    rerun_subtasks(stack, task_id).await;
    assert_eq!(errors_of(&acc, task_id).await.len(), 2);
    assert_eq!(stack.stored_in_list(list_id).await, 1 + 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn linker_on_events_gives_the_faces_it_makes_the_event_samples() {
    let stack = stack();
    let acc = account();
    let with_sample = create_event(&acc).await;
    let without = create_event(&acc).await;
    let image = jpeg(3000);
    let put = stack
        .send_bytes(
            Method::PUT,
            &format!("/1/events/{with_sample}/sample?account_id={acc}"),
            Some("image/jpeg"),
            image.clone(),
        )
        .await;
    assert!(put.status.is_success(), "{}", put.text);
    let unknown = Uuid::new_v4().to_string();
    let task_id = create_linker(
        &acc,
        json!({
            "objects_type": "events",
            "create_list": 1,
            "filters": {"event_ids": [with_sample, without, unknown]},
        }),
    )
    .await;
    let task = run_task(stack, &acc, task_id).await;
    assert_eq!(task["task_status"], 5, "{task}");
    let result = linker_result(&acc, task_id).await;
    assert_eq!(result["linked_objects_count"], 2, "{result}");
    assert_eq!(result["created_faces_count"], 2, "{result}");
    let face = face_of_event(with_sample.parse().unwrap());
    let avatar = format!("/1/faces/{face}/avatar?account_id={acc}");
    let got = stack.get_bytes(&avatar).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.content_type(), "image/jpeg");
    assert!(
        got.bytes == image,
        "the face's avatar is not the event's sample"
    );
    let shown = stack
        .get(&format!("/1/faces/{face}?account_id={acc}"))
        .await;
    assert_eq!(shown.json["avatar"], format!("/1/faces/{face}/avatar"));
    assert_eq!(shown.json["event_id"], with_sample.as_str());

    let bare = face_of_event(without.parse().unwrap());
    let none = stack
        .get(&format!("/1/faces/{bare}/avatar?account_id={acc}"))
        .await;
    assert_eq!(none.error_code(), 40006, "{}", none.text);
    let shown = stack
        .get(&format!("/1/faces/{bare}?account_id={acc}"))
        .await;
    assert_eq!(shown.json["avatar"], "");

    let errors = errors_of(&acc, task_id).await;
    let expected: BTreeSet<(u64, String)> = [(23001, unknown.clone())].into();
    assert_eq!(codes_and_infos(&errors), expected, "{errors:#?}");

    // Run again: the faces exist, nothing is copied twice or fails, nothing recorded twice.
    rerun_subtasks(stack, task_id).await;
    let again = stack.get_bytes(&avatar).await;
    assert!(again.bytes == image);
    let faces_dir = format!("{}faces/", images::account_prefix(acc.parse().unwrap()));
    assert_eq!(
        stack.stored_objects(&faces_dir).await,
        [images::face_avatar_key(acc.parse().unwrap(), face)]
    );
    assert_eq!(errors_of(&acc, task_id).await.len(), 1);
}
