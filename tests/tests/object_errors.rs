//! Per-object task errors (`tasks::store::record_object_errors`): a failure with one
//! object of a task (a face or event not found, say) is one task error naming the object,
//! recorded once however often the step that met it runs, alone or racing.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use fanout::error::ApiError;
use fanout::store::dynamo::to_item;
use fanout::store::{KeyRange, TableQuery, keys};
use fanout::tasks::model::{TaskRecord, TaskType};
use fanout::tasks::store::{self as task_store, ObjectError, record_object_errors};
use fanout::timestamps;
use fanout_e2e::{account, stack};
use serde_json::Value;
use uuid::Uuid;

/// A stored task of `acc` that nothing will run (no message is sent for it).
async fn idle_task(acc: &str) -> TaskRecord {
    let svc = &stack().services;
    let task_id = task_store::next_id(svc, "TASK").await.unwrap();
    let now = timestamps::format(timestamps::now());
    let task = TaskRecord::new(
        task_id,
        TaskType::Linker,
        acc.parse().unwrap(),
        "object errors".into(),
        &now,
    );
    svc.table
        .batch_write(vec![to_item(&task).unwrap()], Vec::new())
        .await
        .unwrap();
    task
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn object_errors_are_recorded_once_however_often_written() {
    let stack = stack();
    let svc = &stack.services;
    let acc = account();
    let task = idle_task(&acc).await;
    let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    let mut failures: Vec<ObjectError> = ids
        .iter()
        .map(|id| ObjectError {
            subtask_id: Some(1),
            error: ApiError::face_not_found(id),
            additional_info: id.to_string(),
        })
        .collect();
    // The same object met by another subtask, and by the merge: other failures.
    failures.push(ObjectError {
        subtask_id: Some(2),
        error: ApiError::face_not_found(ids[0]),
        additional_info: ids[0].to_string(),
    });
    failures.push(ObjectError {
        subtask_id: None,
        error: ApiError::event_not_found(ids[1]),
        additional_info: ids[1].to_string(),
    });
    // A failure listed twice in one call is one failure.
    failures.push(failures[0].clone());

    record_object_errors(svc, &task, failures.clone())
        .await
        .unwrap();
    assert_eq!(errors_of(&acc, task.task_id).await.len(), 5);
    // A retried step writes them again, alone and racing with others.
    record_object_errors(svc, &task, failures.clone())
        .await
        .unwrap();
    let racing = (0..4).map(|_| record_object_errors(svc, &task, failures.clone()));
    for outcome in futures::future::join_all(racing).await {
        outcome.unwrap();
    }
    // And with one more failure, which is recorded.
    let extra = ObjectError {
        subtask_id: Some(3),
        error: ApiError::face_not_found(ids[2]),
        additional_info: ids[2].to_string(),
    };
    let mut more = failures.clone();
    more.push(extra);
    record_object_errors(svc, &task, more).await.unwrap();

    let errors = errors_of(&acc, task.task_id).await;
    assert_eq!(errors.len(), 6, "{errors:#?}");
    let keys: BTreeSet<(Option<u64>, u64, String)> = errors
        .iter()
        .map(|e| {
            (
                e["subtask_id"].as_u64(),
                e["error_code"].as_u64().unwrap(),
                e["additional_info"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(keys.len(), 6, "one record per failure: {errors:#?}");
    assert!(keys.contains(&(None, 23001, ids[1].to_string())));
    assert!(keys.contains(&(Some(3), 22002, ids[2].to_string())));
    for e in &errors {
        assert_eq!(e["task_id"], task.task_id);
        assert!(e["detail"].as_str().unwrap().contains("not found"), "{e}");
    }
    // Delete takes the marks with the records: the task's partition is left empty.
    let partition = TableQuery {
        index: None,
        partition: keys::task_pk(task.task_id),
        range: KeyRange::All,
        descending: false,
    };
    let count = async || {
        let mut n = 0;
        svc.table
            .for_each(&partition, |_| {
                n += 1;
                ControlFlow::Continue(())
            })
            .await
            .unwrap();
        n
    };
    assert_eq!(
        count().await,
        1 + 6 + 6,
        "the task, 6 records and their marks"
    );
    let removed = stack
        .delete(&format!("/1/tasks/{}?account_id={acc}", task.task_id))
        .await;
    assert!(removed.status.is_success(), "{}", removed.text);
    assert_eq!(count().await, 0);
}
