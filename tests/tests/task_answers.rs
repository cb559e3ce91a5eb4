//! What the task routes answer, as the LUNA Tasks samples (seed 000) show it: a JSON
//! result in its envelope `{"result", "errors"}`, cancel and delete answering `{}`, and
//! subtasks naming their stored output by `result_id`.
//!
//! The tasks here are driven by the engine in-process (plan, merge), not by workers: the
//! test writes a task record as creation does and runs its control steps itself.

use fanout::error::{ApiError, ErrorCode};
use fanout::kinds;
use fanout::store::dynamo::to_item;
use fanout::tasks::model::{TaskRecord, TaskType};
use fanout::tasks::store as task_store;
use fanout::timestamps;
use fanout_e2e::{account, stack};
use reqwest::Method;
use serde_json::{Value, json};

/// A gc task of `acc` over its events (it has none, so the plan is empty and the task
/// merges at once), with one error record written before the merge, as a failed object
/// of a subtask leaves one. Returns the task id once the engine has finished it.
async fn done_task_with_an_error(acc: &str) -> u64 {
    let svc = &stack().services;
    let account_id = acc.parse().unwrap();
    let kind = kinds::by_name("gc").unwrap();
    let content = kind
        .validate(
            svc,
            account_id,
            json!({"target": "events", "filters": {}}),
            timestamps::now(),
        )
        .await
        .unwrap();
    let task_id = task_store::next_id(svc, "TASK").await.unwrap();
    let now = timestamps::format(timestamps::now());
    let mut record = TaskRecord::new(task_id, TaskType::Gc, account_id, String::new(), &now);
    record.content = Some(content.to_string());
    assert!(
        svc.table
            .put_if_absent(to_item(&record).unwrap())
            .await
            .unwrap()
    );
    let err = ApiError::new(ErrorCode::EventNotFound, "Event 'x' not found");
    let error = task_store::new_error(svc, &record, Some(1), &err, Some("x".into()))
        .await
        .unwrap();
    assert!(
        svc.table
            .put_if_absent(to_item(&error).unwrap())
            .await
            .unwrap()
    );
    fanout::engine::control::plan_with(svc, record, 0)
        .await
        .unwrap();
    task_id
}

#[tokio::test]
async fn a_json_result_is_the_kinds_result_with_the_tasks_errors() {
    let acc = account();
    let task_id = done_task_with_an_error(&acc).await;
    let task = stack()
        .get(&format!("/1/tasks/{task_id}?account_id={acc}"))
        .await;
    assert_eq!(task.json["task_status"], 5, "{}", task.text);
    // An integer, as the filters take it (README: the seed's sample shows a string).
    assert_eq!(task.json["task_type"], 4, "{}", task.text);

    let result = stack()
        .get(&format!("/1/tasks/{task_id}/result?account_id={acc}"))
        .await;
    assert_eq!(result.status, 200, "{}", result.text);
    assert_eq!(result.headers["content-type"], "application/json");
    let envelope = result.json.as_object().expect("an object");
    let mut keys: Vec<&str> = envelope.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["errors", "result"], "{}", result.text);
    assert_eq!(
        result.json["result"],
        json!({"target": "events", "removed_count": 0, "skipped_count": 0, "failed_count": 0}),
        "{}",
        result.text
    );
    // The errors as the task's error listing shows them.
    let errors = stack()
        .get(&format!("/1/tasks/{task_id}/errors?account_id={acc}"))
        .await;
    assert_eq!(errors.json["errors"].as_array().unwrap().len(), 1);
    assert_eq!(
        result.json["errors"], errors.json["errors"],
        "{}",
        result.text
    );
    assert_eq!(result.json["errors"][0]["error_code"], 23001);

    // The presigned URL (a Range asks for it) serves the same stored envelope.
    let ranged = stack()
        .call_with(
            Method::GET,
            &format!("/1/tasks/{task_id}/result?account_id={acc}"),
            None,
            &[("Range", "bytes=0-")],
        )
        .await;
    assert!(ranged.status.is_success(), "{}", ranged.text);
    assert_eq!(ranged.json, result.json);
}

/// The result of a task without errors has an empty `errors`.
#[tokio::test]
async fn a_result_without_errors_has_an_empty_error_list() {
    let svc = &stack().services;
    let acc = account();
    let created = stack()
        .post(
            "/1/tasks/gc",
            &json!({"account_id": acc, "content": {"target": "events", "filters": {}}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let task_id = created.json["task_id"].as_u64().unwrap();
    // Planned here (a worker may plan it too: either finishes it, the other finds it done).
    let record = task_store::load(svc, task_id).await.unwrap().unwrap();
    fanout::engine::control::plan_with(svc, record, 0)
        .await
        .unwrap();
    let result = stack()
        .get(&format!("/1/tasks/{task_id}/result?account_id={acc}"))
        .await;
    assert_eq!(result.status, 200, "{}", result.text);
    assert_eq!(result.json["errors"], json!([]), "{}", result.text);
    assert_eq!(result.json["result"]["removed_count"], 0, "{}", result.text);
}

/// Seed 000: `cancel task` and `delete task` answer `{}` (JSON).
#[tokio::test]
async fn cancel_and_delete_answer_an_empty_object() {
    let acc = account();
    let created = stack()
        .post(
            "/1/tasks/gc",
            &json!({"account_id": acc, "content": {"target": "events", "filters": {}}}),
        )
        .await;
    let task_id = created.json["task_id"].as_u64().unwrap();
    let path = format!("/1/tasks/{task_id}?account_id={acc}");
    // A worker may have finished the tiny task already: cancel what is still running.
    let task = stack().get(&path).await;
    if task.json["task_status"].as_u64().unwrap() < 2 {
        let cancelled = stack().patch(&path, &json!({"action": "cancel"})).await;
        if cancelled.status != 400 {
            assert_eq!(cancelled.status, 200, "{}", cancelled.text);
            assert_eq!(cancelled.headers["content-type"], "application/json");
            assert_eq!(cancelled.json, json!({}), "{}", cancelled.text);
        }
    }
    // A cancelled task cancelled again answers the same.
    let svc = &stack().services;
    let second = task_store::load(svc, task_id).await.unwrap().unwrap();
    if second.task_status == fanout::tasks::model::TaskStatus::Cancelled {
        let again = stack().patch(&path, &json!({})).await;
        assert_eq!(again.status, 200, "{}", again.text);
        assert_eq!(again.json, json!({}));
    }
    let deleted = stack().delete(&path).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(deleted.headers["content-type"], "application/json");
    assert_eq!(deleted.json, json!({}), "{}", deleted.text);
    assert_eq!(stack().get(&path).await.status, 404);
}

/// A pending task is cancelled for certain (written as creation writes it, never planned).
#[tokio::test]
async fn cancelling_a_pending_task_answers_an_empty_object() {
    let svc = &stack().services;
    let acc = account();
    let task_id = task_store::next_id(svc, "TASK").await.unwrap();
    let now = timestamps::format(timestamps::now());
    let mut record = TaskRecord::new(
        task_id,
        TaskType::Gc,
        acc.parse().unwrap(),
        String::new(),
        &now,
    );
    record.content = Some(json!({"target": "events", "filters": {}}).to_string());
    assert!(
        svc.table
            .put_if_absent(to_item(&record).unwrap())
            .await
            .unwrap()
    );
    let path = format!("/1/tasks/{task_id}?account_id={acc}");
    let cancelled = stack().patch(&path, &json!({"action": "cancel"})).await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    assert_eq!(cancelled.headers["content-type"], "application/json");
    assert_eq!(cancelled.json, json!({}), "{}", cancelled.text);
    assert_eq!(stack().get(&path).await.json["task_status"], 2);
    let deleted = stack().delete(&path).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(deleted.json, json!({}));
}

/// Seed 000, `get subtasks`: a done subtask names its stored output by `result_id` (a
/// UUID derived from the task and subtask ids, so the same on every read); a subtask
/// that has not ended shows null.
#[tokio::test]
async fn a_done_subtask_shows_the_result_id_of_its_output() {
    let svc = &stack().services;
    let acc = account();
    let created = stack()
        .post("/1/events", &json!({"account_id": acc, "events": [{}]}))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let task_id = task_store::next_id(svc, "TASK").await.unwrap();
    let now = timestamps::format(timestamps::now());
    let account_id = acc.parse().unwrap();
    let content = kinds::by_name("gc")
        .unwrap()
        .validate(
            svc,
            account_id,
            json!({"target": "events", "filters": {}}),
            timestamps::now(),
        )
        .await
        .unwrap();
    let mut record = TaskRecord::new(task_id, TaskType::Gc, account_id, String::new(), &now);
    record.content = Some(content.to_string());
    assert!(
        svc.table
            .put_if_absent(to_item(&record).unwrap())
            .await
            .unwrap()
    );
    fanout::engine::control::plan_with(svc, record, 0)
        .await
        .unwrap();
    let subtasks_path = format!("/1/tasks/{task_id}/subtasks?account_id={acc}");
    let pending = stack().get(&subtasks_path).await;
    assert_eq!(pending.status, 200, "{}", pending.text);
    let first = &pending.json["subtasks"][0];
    let subtask_id = first["subtask_id"].as_u64().unwrap() as u32;
    if first["status"] == 0 {
        assert!(first.get("result_id").is_some(), "{first}");
        assert_eq!(first["result_id"], Value::Null, "{first}");
    }
    // Run it here (a worker may run it too: the second finds it ended).
    let message = fanout::engine::messages::WorkMessage {
        task_id,
        subtask_id,
        stage: 0,
    };
    fanout::engine::work::run(
        svc,
        &message,
        None,
        1,
        3,
        &fanout::kinds::CancelFlag::default(),
    )
    .await
    .unwrap();
    let done = stack().get(&subtasks_path).await;
    let first = &done.json["subtasks"][0];
    assert_eq!(first["status"], 5, "{first}");
    let expected = fanout::engine::subtask_result_id(task_id, subtask_id);
    assert_eq!(first["result_id"], json!(expected.to_string()), "{first}");
    assert_ne!(expected, fanout::engine::result_id(task_id));
    let again = stack().get(&subtasks_path).await;
    assert_eq!(again.json["subtasks"][0]["result_id"], first["result_id"]);
}
