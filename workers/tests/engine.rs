//! The task engine end to end: the gateway in this process, workers as separate
//! processes (the `worker` binary), the emulator behind both. Tests that start workers
//! hold one lock, so each scenario owns the queues while it runs.

mod common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use fanout::engine::messages::WorkMessage;
use fanout_e2e::{Lcg, Stack, account, cosine, faces_with_descriptors, stack};

use common::{
    Worker, create_task, exclusive, faces_of, objects_of, queue_depth, result, status_is, task,
    wait_queue_empty, wait_task,
};

async fn faces_linker(stack: &Stack, account: &str, list_id: Option<&str>, per: usize) -> u64 {
    let mut content = json!({"objects_type": "faces", "objects_per_subtask": per});
    match list_id {
        Some(list_id) => content["list_id"] = json!(list_id),
        None => content["create_list"] = json!(1),
    }
    create_task(stack, "linker", account, content).await
}

/// A new empty list of `account`.
/// A linker over `faces` new faces of a new account, `per` faces a subtask; its id.
async fn linker_over(stack: &Stack, faces: usize, per: usize) -> u64 {
    let account = account();
    faces_of(stack, &account, faces).await;
    faces_linker(stack, &account, None, per).await
}

async fn new_list(stack: &Stack, account: &str) -> String {
    let list = stack
        .post("/1/lists", &json!({"account_id": account}))
        .await;
    assert_eq!(list.status, 201, "{}", list.text);
    list.json["list_id"].as_str().unwrap().to_string()
}

async fn list_size(stack: &Stack, account: &str, list_id: &str) -> u64 {
    let answer = stack
        .get(&format!("/1/lists/{list_id}?account_id={account}"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json["face_count"].as_u64().unwrap()
}

async fn subtask_statuses(stack: &Stack, task_id: u64) -> Vec<u64> {
    let answer = stack.get(&format!("/1/tasks/{task_id}/subtasks")).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json["subtasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_u64().unwrap())
        .collect()
}

/// The subtasks of a task as stored (not as the listing shows them): status and end time.
async fn stored_subtasks(stack: &Stack, task_id: u64) -> Vec<(u64, Option<String>)> {
    fanout::tasks::store::subtask_records(&stack.services, task_id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| (u64::from(u8::from(s.subtask.status)), s.subtask.end_time))
        .collect()
}

/// Waits until every stored subtask of the task has `status`.
async fn wait_stored_status(stack: &Stack, task_id: u64, status: u64) {
    let start = Instant::now();
    loop {
        let stored = stored_subtasks(stack, task_id).await;
        if stored.iter().all(|(s, _)| *s == status) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "subtasks not {status}: {stored:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Plans a task with a control-only worker and returns once its subtasks are queued
/// (no work worker runs, so none has started).
async fn planned(stack: &Stack, task_id: u64) -> Value {
    let control = Worker::start("control");
    let planned = wait_task(stack, task_id, Duration::from_secs(60), status_is(1)).await;
    // Let the planner finish queueing the stage, then stop it.
    let start = Instant::now();
    loop {
        let record = fanout::tasks::store::load(&stack.services, task_id)
            .await
            .unwrap()
            .unwrap();
        if record.stages_enqueued >= 1 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "stage never queued"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    control.kill();
    planned
}

#[tokio::test(flavor = "multi_thread")]
async fn linking_ten_thousand_faces_counts_every_part_exactly_once() {
    let _engine = exclusive().await;
    let stack = stack();
    let account = account();
    faces_of(stack, &account, 10_000).await;
    let _workers = [Worker::start("work,control"), Worker::start("work,control")];
    let task_id = create_task(
        stack,
        "linker",
        &account,
        json!({"objects_type": "faces", "create_list": 1, "list_data": {"user_data": "all"}}),
    )
    .await;
    let done = wait_task(stack, task_id, Duration::from_secs(300), status_is(5)).await;
    assert!(
        done["count_task_parts_all"].as_u64().unwrap() >= 10,
        "{done}"
    );
    assert_eq!(done["count_task_parts_done"], done["count_task_parts_all"]);
    let result = result(stack, task_id).await;
    assert_eq!(result["linked_objects_count"], 10_000, "{result}");
    assert_eq!(result["failed_objects_count"], 0);
    let list_id = result["list_id"].as_str().unwrap();
    assert_eq!(list_size(stack, &account, list_id).await, 10_000);
    assert!(
        subtask_statuses(stack, task_id)
            .await
            .iter()
            .all(|s| *s == 5)
    );
    assert!(done["result_id"].is_string() && done["end_time"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_task_loses_nothing() {
    let _engine = exclusive().await;
    let stack = stack();
    let account = account();
    faces_of(stack, &account, 3_000).await;
    let victim = Worker::start("work,control");
    let task_id = faces_linker(stack, &account, None, 100).await;
    let running = wait_task(stack, task_id, Duration::from_secs(60), |t| {
        t["count_task_parts_done"].as_u64() >= Some(2)
    })
    .await;
    victim.kill();
    let parts = running["count_task_parts_all"].as_u64().unwrap();
    assert_eq!(parts, 30);
    let after_kill = task(stack, task_id).await;
    assert!(
        after_kill["count_task_parts_done"].as_u64().unwrap() < parts,
        "the worker finished before it was killed: {after_kill}"
    );
    // The kill may land between a subtask's end and its count (CI under load: 29 of 30
    // counted, for good): recounting is the reconciler's job, so the rescuer runs one.
    let _rescuer = Worker::start_with(
        "work,control",
        &["--reconcile-every", "2", "--stall-seconds", "5"],
        &[],
    );
    let done = wait_task(stack, task_id, Duration::from_secs(120), status_is(5)).await;
    assert_eq!(done["count_task_parts_done"], parts);
    let result = result(stack, task_id).await;
    assert_eq!(result["linked_objects_count"], 3_000, "{result}");
    let list_id = result["list_id"].as_str().unwrap();
    assert_eq!(list_size(stack, &account, list_id).await, 3_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subtask_delivered_twice_is_counted_once() {
    let _engine = exclusive().await;
    let stack = stack();
    let account = account();
    faces_of(stack, &account, 500).await;
    let task_id = faces_linker(stack, &account, None, 50).await;
    planned(stack, task_id).await;
    // Every subtask message a second time, as SQS may deliver it.
    let copies: Vec<WorkMessage> = (1..=10)
        .map(|subtask_id| WorkMessage {
            task_id,
            subtask_id,
            stage: 0,
        })
        .collect();
    fanout::engine::messages::send_work(&stack.services, &copies)
        .await
        .unwrap();
    let _worker = Worker::start("work,control");
    let done = wait_task(stack, task_id, Duration::from_secs(120), status_is(5)).await;
    wait_queue_empty(
        stack,
        &stack.services.config.work_queue_url,
        Duration::from_secs(60),
    )
    .await;
    let settled = task(stack, task_id).await;
    assert_eq!(settled["count_task_parts_all"], 10);
    assert_eq!(settled["count_task_parts_done"], 10, "{done}");
    let result = result(stack, task_id).await;
    assert_eq!(result["linked_objects_count"], 500, "{result}");
    assert_eq!(
        list_size(stack, &account, result["list_id"].as_str().unwrap()).await,
        500
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_task_writes_no_result_and_its_subtasks_do_no_work() {
    let _engine = exclusive().await;
    let stack = stack();
    let account = account();
    faces_of(stack, &account, 200).await;
    let list_id = new_list(stack, &account).await;
    let task_id = faces_linker(stack, &account, Some(&list_id), 20).await;
    planned(stack, task_id).await;
    let cancel = stack
        .patch(&format!("/1/tasks/{task_id}"), &json!({"action": "cancel"}))
        .await;
    assert_eq!(cancel.status, 200, "{}", cancel.text);
    assert_eq!(cancel.json, json!({}));
    assert_eq!(task(stack, task_id).await["task_status"], 2);
    let _worker = Worker::start("work,control");
    // The listing shows them cancelled at once; the worker marks each it receives.
    wait_stored_status(stack, task_id, 2).await;
    assert_eq!(list_size(stack, &account, &list_id).await, 0);
    let after = task(stack, task_id).await;
    assert_eq!(after["task_status"], 2);
    assert_eq!(after["count_task_parts_done"], 0);
    assert!(after["result_id"].is_null());
    let answer = stack.get(&format!("/1/tasks/{task_id}/result")).await;
    assert_eq!(answer.error_code(), 28025);
    assert!(
        objects_of(stack, task_id)
            .await
            .iter()
            .all(|k| !k.ends_with("/result"))
    );
    // Cancelling again is accepted; it stays cancelled.
    let again = stack
        .patch(&format!("/1/tasks/{task_id}"), &json!({}))
        .await;
    assert_eq!(again.status, 200);
}

/// Found by a new user: after a cancel, the subtasks that had not ended stayed `status 0`
/// in the listing, forever for those whose message no worker received. The cancel still
/// writes only the task; the listing shows a pending subtask of a cancelled task as
/// cancelled (ended when the task was), and the worker that receives its message marks
/// it so, with the same end time.
#[tokio::test(flavor = "multi_thread")]
async fn the_subtasks_of_a_cancelled_task_show_as_cancelled_before_any_worker_marks_them() {
    let _engine = exclusive().await;
    let stack = stack();
    let account = account();
    faces_of(stack, &account, 100).await;
    let list_id = new_list(stack, &account).await;
    let task_id = faces_linker(stack, &account, Some(&list_id), 20).await;
    planned(stack, task_id).await;
    let cancel = stack
        .patch(&format!("/1/tasks/{task_id}"), &json!({"action": "cancel"}))
        .await;
    assert_eq!(cancel.status, 200, "{}", cancel.text);
    assert_eq!(cancel.json, json!({}));
    let cancelled = task(stack, task_id).await;
    let ended = cancelled["end_time"].as_str().unwrap().to_string();

    // No worker has received a message yet: nothing per subtask was written...
    let stored = stored_subtasks(stack, task_id).await;
    assert_eq!(stored.len(), 5);
    assert!(
        stored.iter().all(|(s, end)| *s == 0 && end.is_none()),
        "{stored:?}"
    );
    // ...and the listing shows them cancelled all the same.
    let listed = stack.get(&format!("/1/tasks/{task_id}/subtasks")).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let listed = listed.json["subtasks"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 5);
    for subtask in &listed {
        assert_eq!(subtask["status"], 2, "{subtask}");
        assert_eq!(subtask["end_time"], json!(ended), "{subtask}");
        assert_eq!(subtask["attempts"], 0, "{subtask}");
    }

    // A worker drops their messages and marks them, ended when the task was.
    let _worker = Worker::start("work,control");
    wait_stored_status(stack, task_id, 2).await;
    let stored = stored_subtasks(stack, task_id).await;
    assert!(
        stored
            .iter()
            .all(|(_, end)| end.as_deref() == Some(ended.as_str())),
        "{stored:?}"
    );
    let again = stack.get(&format!("/1/tasks/{task_id}/subtasks")).await;
    assert_eq!(again.json["subtasks"], json!(listed));
    assert_eq!(list_size(stack, &account, &list_id).await, 0);
    assert_eq!(task(stack, task_id).await["count_task_parts_done"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn subtasks_that_always_fail_end_in_error_records_and_a_failed_task() {
    let _engine = exclusive().await;
    let stack = stack();
    let account = account();
    faces_of(stack, &account, 30).await;
    let list_id = new_list(stack, &account).await;
    let task_id = faces_linker(stack, &account, Some(&list_id), 10).await;
    planned(stack, task_id).await;
    // The list goes away after planning: every subtask now fails, whatever the retry.
    let deleted = stack
        .delete(&format!("/1/lists/{list_id}?account_id={account}"))
        .await;
    assert_eq!(deleted.status, 204);
    let _worker = Worker::start("work,control");
    let failed = wait_task(stack, task_id, Duration::from_secs(60), status_is(3)).await;
    assert_eq!(failed["count_task_parts_done"], 3, "{failed}");
    assert!(failed["end_time"].is_string());
    assert_eq!(subtask_statuses(stack, task_id).await, [3, 3, 3]);
    let errors = stack
        .get(&format!("/1/tasks/{task_id}/errors?account_id={account}"))
        .await;
    let errors = errors.json["errors"].as_array().unwrap().clone();
    // One per subtask, and one for the task.
    assert_eq!(errors.len(), 4, "{errors:?}");
    let per_subtask: Vec<_> = errors.iter().filter(|e| e["subtask_id"].is_u64()).collect();
    assert_eq!(per_subtask.len(), 3);
    assert!(per_subtask.iter().all(|e| e["error_code"] == 22003));
    let count = stack
        .get(&format!("/1/tasks/{task_id}/errors/count?error_code=22003"))
        .await;
    assert_eq!(count.json["count"], 3);
    let one = &per_subtask[0];
    let by_id = stack
        .get(&format!(
            "/1/errors/{}?account_id={account}",
            one["error_id"]
        ))
        .await;
    assert_eq!(&by_id.json, *one);
    let across = stack
        .get(&format!(
            "/1/errors?account_id={account}&task_type=1&status_code=404"
        ))
        .await;
    assert_eq!(across.json["errors"].as_array().unwrap().len(), 3);
    let other = stack
        .get(&format!(
            "/1/errors/{}?account_id={}",
            one["error_id"],
            fanout_e2e::account()
        ))
        .await;
    assert_eq!(other.error_code(), 28003);
    let answer = stack.get(&format!("/1/tasks/{task_id}/result")).await;
    assert_eq!(answer.error_code(), 28020);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_lettered_subtask_becomes_an_error_record() {
    let _engine = exclusive().await;
    let stack = stack();
    let svc = &stack.services;
    let task_id = linker_over(stack, 4, 2).await;
    planned(stack, task_id).await;
    // A worker that dies on every delivery: receive without ever finishing, until the
    // queue's redrive policy moves the messages to the dead-letter queue.
    let start = Instant::now();
    while queue_depth(stack, &svc.config.work_queue_url).await > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "messages never dead-lettered"
        );
        svc.aws
            .sqs
            .receive_message()
            .queue_url(&svc.config.work_queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
    }
    assert_eq!(task(stack, task_id).await["count_task_parts_done"], 0);
    let report = common::reconcile(stack, Duration::from_secs(3600)).await;
    // Messages other tests left behind (duplicates of subtasks long ended) may have been
    // dead-lettered with these two; this task's own outcome is checked below.
    assert!(report.dead_subtasks >= 2, "{report:?}");
    // The last dead subtask asked for the stage to advance; a control worker ends it.
    let _worker = Worker::start("control");
    let failed = wait_task(stack, task_id, Duration::from_secs(60), status_is(3)).await;
    assert_eq!(failed["count_task_parts_done"], 2);
    let count = stack
        .get(&format!("/1/tasks/{task_id}/errors/count?error_code=40003"))
        .await;
    assert_eq!(count.json["count"], 3, "{}", count.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_removes_the_task_its_records_and_every_object() {
    let _engine = exclusive().await;
    let stack = stack();
    let account = account();
    faces_of(stack, &account, 30).await;
    let _worker = Worker::start("work,control");
    let task_id = faces_linker(stack, &account, None, 10).await;
    wait_task(stack, task_id, Duration::from_secs(60), status_is(5)).await;
    // Small subtask outputs live in the subtask items; the result is in S3.
    let objects = objects_of(stack, task_id).await;
    assert!(
        objects.contains(&fanout::store::blobs::result_key(task_id)),
        "{objects:?}"
    );
    let other = stack
        .delete(&format!(
            "/1/tasks/{task_id}?account_id={}",
            fanout_e2e::account()
        ))
        .await;
    assert_eq!(other.error_code(), 28001);
    let deleted = stack
        .delete(&format!("/1/tasks/{task_id}?account_id={account}"))
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(deleted.json, json!({}));
    assert!(objects_of(stack, task_id).await.is_empty());
    assert_eq!(
        stack.get(&format!("/1/tasks/{task_id}")).await.error_code(),
        28001
    );
    let items = stack
        .services
        .aws
        .dynamodb
        .query()
        .table_name(&stack.services.config.table)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(
            ":pk",
            aws_sdk_dynamodb::types::AttributeValue::S(fanout::store::keys::task_pk(task_id)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(items.count, 0);
}

/// Two merges of one task race (a step re-sent by the reconciler next to a redelivered
/// one): the loser of the move from 4 to 5 must leave the winner's result alone. Before
/// the fix the loser deleted `tasks/<id>/result`, leaving a task in 5 whose result was gone.
#[tokio::test(flavor = "multi_thread")]
async fn a_duplicate_merge_keeps_the_finished_result() {
    use fanout::engine::{control, messages::ControlMessage};
    let _engine = exclusive().await;
    let stack = stack();
    let account = account();
    faces_of(stack, &account, 30).await;
    let task_id = {
        let _worker = Worker::start("work,control");
        let task_id = faces_linker(stack, &account, None, 10).await;
        wait_task(stack, task_id, Duration::from_secs(60), status_is(5)).await;
        task_id
    };
    let first = result(stack, task_id).await;
    let svc = &stack.services;
    let key = fanout::store::blobs::result_key(task_id);
    for round in 0..3 {
        // Back to 4, as after a crash between the move to 4 and the end of the merge.
        let reset = fanout::tasks::store::update_task(
            svc,
            task_id,
            "SET task_status = :collect",
            "attribute_exists(pk)",
            std::collections::HashMap::from([(":collect".to_string(), fanout::tasks::store::n(4))]),
        )
        .await
        .unwrap();
        assert!(reset);
        let merge = ControlMessage::Merge { task_id };
        let (a, b) = tokio::join!(control::handle(svc, &merge), control::handle(svc, &merge));
        a.unwrap();
        b.unwrap();
        assert_eq!(
            task(stack, task_id).await["task_status"],
            5,
            "round {round}"
        );
        assert!(
            fanout::store::blobs::head(svc, &key)
                .await
                .unwrap()
                .is_some(),
            "round {round}: the result object is gone"
        );
        assert_eq!(result(stack, task_id).await, first, "round {round}");
    }
}

/// A planner delayed after reading the task (or a duplicate Plan delivered late) runs
/// after the stage was planned, run and merged: it must change nothing. Before the fix it
/// wrote its subtask items unconditionally, resetting done subtasks to pending.
#[tokio::test(flavor = "multi_thread")]
async fn a_late_planner_changes_nothing() {
    use fanout::engine::control;
    let _engine = exclusive().await;
    let stack = stack();
    let task_id = linker_over(stack, 30, 10).await;
    let svc = &stack.services;
    let stale = fanout::tasks::store::load(svc, task_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stale.stages_planned, 0);
    {
        let _worker = Worker::start("work,control");
        wait_task(stack, task_id, Duration::from_secs(60), status_is(5)).await;
    }
    let before = stack
        .get(&format!("/1/tasks/{task_id}/subtasks"))
        .await
        .json;
    let first = result(stack, task_id).await;
    control::plan_with(svc, stale, 0).await.unwrap();
    let after = stack
        .get(&format!("/1/tasks/{task_id}/subtasks"))
        .await
        .json;
    assert_eq!(after, before);
    assert_eq!(subtask_statuses(stack, task_id).await, vec![5, 5, 5]);
    let done = task(stack, task_id).await;
    assert_eq!(done["task_status"], 5);
    assert_eq!(done["count_task_parts_all"], 3);
    assert_eq!(result(stack, task_id).await, first);
}

/// Two planners of one stage at once: one claims the stage with its plan, the other
/// leaves nothing behind, and the task runs its one plan exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn racing_planners_claim_a_stage_once() {
    use fanout::engine::{control, messages::ControlMessage};
    let _engine = exclusive().await;
    let stack = stack();
    let task_id = linker_over(stack, 50, 10).await;
    let svc = &stack.services;
    let plan = ControlMessage::Plan { task_id, stage: 0 };
    let (a, b, c) = tokio::join!(
        control::handle(svc, &plan),
        control::handle(svc, &plan),
        control::handle(svc, &plan)
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();
    let planned = task(stack, task_id).await;
    assert_eq!(planned["task_status"], 1);
    assert_eq!(planned["count_task_parts_all"], 5);
    assert_eq!(subtask_statuses(stack, task_id).await, vec![0; 5]);
    let plans = stack
        .stored_objects(&fanout::store::blobs::task_plans_prefix(task_id))
        .await;
    assert_eq!(plans.len(), 1, "{plans:?}");
    let _worker = Worker::start("work,control");
    let done = wait_task(stack, task_id, Duration::from_secs(60), status_is(5)).await;
    assert_eq!(done["count_task_parts_done"], 5);
    assert_eq!(result(stack, task_id).await["linked_objects_count"], 50);
    // Each subtask was queued once: nothing is left for the next test.
    wait_queue_empty(stack, &svc.config.work_queue_url, Duration::from_secs(30)).await;
    // Done: the plan is removed with the scratch objects.
    let plans = stack
        .stored_objects(&fanout::store::blobs::task_plans_prefix(task_id))
        .await;
    assert!(plans.is_empty(), "{plans:?}");
}

/// The reconciler recounts a stalled stage from its subtask records while a worker that
/// ended a subtask has not counted it yet (held at the fault point between the two
/// writes). Before the fix the worker's late count came on top of the recount: 4 counted
/// of 3 subtasks. Now the recount moves the count epoch and the late count is refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_recount_next_to_a_live_worker_counts_each_subtask_once() {
    common::require_faults();
    let _engine = exclusive().await;
    let stack = stack();
    let task_id = linker_over(stack, 30, 10).await;
    planned(stack, task_id).await;
    let _held = Worker::start_with(
        "work",
        &[],
        &[("FANOUT_FAULT", "after_subtask_end:pause=8")],
    );
    // Two subtasks ended and counted, the third ended and held before its count.
    let start = Instant::now();
    loop {
        let statuses = subtask_statuses(stack, task_id).await;
        let counted = task(stack, task_id).await["count_task_parts_done"].clone();
        if statuses == [5, 5, 5] && counted == 2 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{statuses:?} {counted}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    common::reconcile(stack, Duration::ZERO).await;
    assert_eq!(task(stack, task_id).await["count_task_parts_done"], 3);
    // The held worker counts (or tries to) after its pause.
    tokio::time::sleep(Duration::from_secs(9)).await;
    let after = task(stack, task_id).await;
    assert_eq!(after["count_task_parts_done"], 3, "{after}");
    let _control = Worker::start("control");
    let done = wait_task(stack, task_id, Duration::from_secs(60), status_is(5)).await;
    assert_eq!(done["count_task_parts_done"], 3);
    assert_eq!(result(stack, task_id).await["linked_objects_count"], 30);
}

/// Tile kernels are CPU-bound; run on the async runtime they starve the lease heartbeats
/// (two runtime threads here, four tiles at once), the lease lapses and the tile is
/// delivered again. Each kernel is held 3 s (a fault point that blocks its thread, as a
/// long tile does) under a 2 s lease: every tile's kernel must run once, on its first
/// delivery. Before kernels ran on the blocking pool, leases lapsed and kernels ran again
/// for the same tiles.
#[tokio::test(flavor = "multi_thread")]
async fn long_tiles_keep_their_leases() {
    common::require_faults();
    let _one = exclusive().await;
    let stack = stack();
    let account = account();
    let descriptors = clustered_descriptors(40, 4, 11);
    faces_with(stack, &account, &descriptors, "slow").await;
    let log = std::env::temp_dir().join(format!("fanout-long-tiles-{account}.log"));
    let worker = Worker::start_logged(
        "work,control",
        &["--lease-seconds", "2"],
        &[("FANOUT_FAULT", "inside_tile_kernel@all:pause=3")],
        Some(&log),
    );
    let set = json!({"objects_type": "faces", "filters": {"user_data": "slow"}});
    let task_id = create_task(
        stack,
        "cross_match",
        &account,
        json!({"references": set, "candidates": set, "limit": 5, "objects_per_block": 10}),
    )
    .await;
    wait_task(stack, task_id, Duration::from_secs(120), status_is(5)).await;
    let subtasks = stack
        .get(&format!("/1/tasks/{task_id}/subtasks"))
        .await
        .json;
    let tiles: Vec<&Value> = subtasks["subtasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["stage"] == 1)
        .collect();
    assert_eq!(tiles.len(), 16);
    for tile in tiles {
        assert_eq!(tile["attempts"], 1, "{tile}");
    }
    drop(worker);
    let text = std::fs::read_to_string(&log).unwrap();
    let kernels = text.matches("fault point inside_tile_kernel").count();
    assert_eq!(kernels, 16, "tile kernels run for 16 tiles");
    let _ = std::fs::remove_file(&log);
}

#[tokio::test(flavor = "multi_thread")]
async fn linking_events_makes_faces_for_events_without_one() {
    let _engine = exclusive().await;
    let stack = stack();
    let account = account();
    let face = stack
        .post("/1/faces", &json!({"account_id": account}))
        .await;
    let face_id = face.json["face_id"].as_str().unwrap().to_string();
    let events = stack
        .post(
            "/1/events",
            &json!({"account_id": account, "events": [
                {"face_id": face_id, "tags": ["x"]},
                {"descriptor": fanout_e2e::descriptor(1), "user_data": "made", "tags": ["x"]},
                {"tags": ["x"], "external_id": "e3"},
                {"tags": ["other"]},
            ]}),
        )
        .await;
    assert_eq!(events.status, 201, "{}", events.text);
    let _worker = Worker::start("work,control");
    let task_id = create_task(
        stack,
        "linker",
        &account,
        json!({"objects_type": "events", "create_list": 1, "filters": {"tags": ["x"]}}),
    )
    .await;
    wait_task(stack, task_id, Duration::from_secs(60), status_is(5)).await;
    let result = result(stack, task_id).await;
    assert_eq!(result["linked_objects_count"], 3, "{result}");
    assert_eq!(result["created_faces_count"], 2);
    let list_id = result["list_id"].as_str().unwrap();
    let members = stack
        .get(&format!(
            "/1/faces?account_id={account}&list_id={list_id}&page_size=10"
        ))
        .await;
    let members = members.json["faces"].as_array().unwrap().clone();
    assert_eq!(members.len(), 3);
    let made = members.iter().find(|f| f["user_data"] == "made").unwrap();
    assert_eq!(made["descriptor_version"], 59);
    assert!(made["event_id"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn gc_removes_matching_events_and_descriptors_of_a_version() {
    let _engine = exclusive().await;
    let stack = stack();
    let account = account();
    let events: Vec<Value> = (0..25)
        .map(|i| json!({"tags": [if i % 5 == 0 { "keep" } else { "old" }]}))
        .collect();
    let saved = stack
        .post(
            "/1/events",
            &json!({"account_id": account, "events": events}),
        )
        .await;
    assert_eq!(saved.status, 201);
    for seed in 0..3 {
        stack
            .post(
                "/1/faces",
                &json!({"account_id": account, "descriptor": fanout_e2e::descriptor(seed)}),
            )
            .await;
    }
    stack
        .post("/1/faces", &json!({"account_id": account}))
        .await;
    let _worker = Worker::start("work,control");
    let events_gc = create_task(
        stack,
        "gc",
        &account,
        json!({"target": "events", "filters": {"tags": ["old"]}}),
    )
    .await;
    let descriptors_gc = create_task(
        stack,
        "gc",
        &account,
        json!({"target": "face_descriptors", "descriptor_version": 59}),
    )
    .await;
    wait_task(stack, events_gc, Duration::from_secs(60), status_is(5)).await;
    wait_task(stack, descriptors_gc, Duration::from_secs(60), status_is(5)).await;
    assert_eq!(result(stack, events_gc).await["removed_count"], 20);
    assert_eq!(stack.stored(&account, "EVENT").await, 5);
    assert_eq!(result(stack, descriptors_gc).await["removed_count"], 3);
    let faces = stack
        .get(&format!("/1/faces?account_id={account}&page_size=10"))
        .await;
    let faces = faces.json["faces"].as_array().unwrap().clone();
    assert_eq!(faces.len(), 4, "the faces stay");
    assert!(faces.iter().all(|f| f["descriptor_version"].is_null()));
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_and_counting_filters_return_exactly_the_matching_tasks() {
    let _engine = exclusive().await;
    let stack = stack();
    let account = account();
    let worker = Worker::start("work,control");
    let linker_done = create_task(
        stack,
        "linker",
        &account,
        json!({"objects_type": "faces", "create_list": 1}),
    )
    .await;
    let gc_done = create_task(stack, "gc", &account, json!({"target": "events"})).await;
    let done = wait_task(stack, linker_done, Duration::from_secs(60), status_is(5)).await;
    let gc = wait_task(stack, gc_done, Duration::from_secs(60), status_is(5)).await;
    worker.kill();
    let pending = create_task(
        stack,
        "linker",
        &account,
        json!({"objects_type": "events", "create_list": 1}),
    )
    .await;
    let cancelled = create_task(stack, "gc", &account, json!({"target": "events"})).await;
    stack
        .patch(
            &format!("/1/tasks/{cancelled}"),
            &json!({"action": "cancel"}),
        )
        .await;
    let after_gc = task(stack, pending).await["create_time"]
        .as_str()
        .unwrap()
        .to_string();

    let account = account.as_str();
    let ids = |query: String| async move {
        let answer = stack
            .get(&format!(
                "/1/tasks?account_id={account}&page_size=100{query}"
            ))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        let listed: Vec<u64> = answer.json["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["task_id"].as_u64().unwrap())
            .collect();
        let count = stack
            .get(&format!("/1/tasks/count?account_id={account}{query}"))
            .await;
        assert_eq!(
            count.json["count"].as_u64().unwrap() as usize,
            listed.len(),
            "{query}"
        );
        listed
    };
    let enc = |t: &str| t.replace('+', "%2B");
    assert_eq!(
        ids(String::new()).await,
        [cancelled, pending, gc_done, linker_done]
    );
    assert_eq!(ids("&task_type=1".into()).await, [pending, linker_done]);
    assert_eq!(ids("&task_type=4".into()).await, [cancelled, gc_done]);
    assert_eq!(ids("&task_status=5".into()).await, [gc_done, linker_done]);
    assert_eq!(ids("&task_status=0".into()).await, [pending]);
    assert_eq!(ids("&task_status=2".into()).await, [cancelled]);
    assert_eq!(
        ids(format!("&task_ids={linker_done},{cancelled}")).await,
        [cancelled, linker_done]
    );
    assert_eq!(
        ids(format!(
            "&result_id={}",
            done["result_id"].as_str().unwrap()
        ))
        .await,
        [linker_done]
    );
    assert_eq!(
        ids(format!("&create_time__gte={}", enc(&after_gc))).await,
        [cancelled, pending]
    );
    assert_eq!(
        ids(format!("&create_time__lt={}", enc(&after_gc))).await,
        [gc_done, linker_done]
    );
    let gc_end = gc["end_time"].as_str().unwrap();
    let ended_first = done["end_time"].as_str().unwrap().min(gc_end);
    assert_eq!(
        ids(format!("&end_time__gte={}", enc(ended_first))).await,
        [cancelled, gc_done, linker_done]
    );
    assert_eq!(
        ids(format!("&end_time__lt={}", enc(ended_first))).await,
        Vec::<u64>::new()
    );
    let page = stack
        .get(&format!("/1/tasks?account_id={account}&page=2&page_size=3"))
        .await;
    assert_eq!(page.json["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(page.json["tasks"][0]["task_id"], linker_done);

    let stranger = fanout_e2e::account();
    assert_eq!(
        stack
            .get(&format!("/1/tasks/count?account_id={stranger}"))
            .await
            .json["count"],
        0
    );
    for path in ["", "/result", "/subtasks", "/errors", "/errors/count"] {
        let answer = stack
            .get(&format!(
                "/1/tasks/{linker_done}{path}?account_id={stranger}"
            ))
            .await;
        assert_eq!(answer.error_code(), 28001, "{path}");
    }
    let cancel_other = stack
        .patch(
            &format!("/1/tasks/{pending}?account_id={stranger}"),
            &json!({}),
        )
        .await;
    assert_eq!(cancel_other.error_code(), 28001);
    assert_eq!(task(stack, pending).await["task_status"], 0);
    let cancel_done = stack
        .patch(
            &format!("/1/tasks/{linker_done}"),
            &json!({"action": "cancel"}),
        )
        .await;
    assert_eq!(cancel_done.error_code(), 40002);
    // Without account_id the listing reads every task (the index of all tasks).
    let everyone = stack
        .get(&format!("/1/tasks?task_ids={linker_done},{pending}"))
        .await;
    assert_eq!(everyone.json["tasks"].as_array().unwrap().len(), 2);
    let newest = stack.get("/1/tasks?page_size=1").await;
    assert!(newest.json["tasks"][0]["task_id"].as_u64().unwrap() >= cancelled);
    let not_yet = stack.get(&format!("/1/tasks/{pending}/result")).await;
    assert_eq!(not_yet.error_code(), 28018);
    stack.delete(&format!("/1/tasks/{pending}")).await;
}

// --- vector kinds --------------------------------------------------------------------

/// Descriptors of `n` objects around `centres` identities (seeded: the same every run).
fn clustered_descriptors(n: usize, centres: usize, seed: u64) -> Vec<Vec<f32>> {
    Lcg(seed).clustered(n, centres, 0.25)
}

/// Faces with the given descriptors and user data; their ids in order, as strings.
async fn faces_with(
    stack: &Stack,
    account: &str,
    descriptors: &[Vec<f32>],
    tag: &str,
) -> Vec<String> {
    faces_with_descriptors(&stack.services, account.parse().unwrap(), descriptors, tag)
        .await
        .into_iter()
        .map(|id| id.to_string())
        .collect()
}

async fn match_subtask_count(stack: &Stack, task_id: u64) -> usize {
    let answer = stack.get(&format!("/1/tasks/{task_id}/subtasks")).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json["subtasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["stage"] == 1)
        .count()
}

/// Runs a cross_match of the faces tagged `sets.0` (references) against those tagged
/// `sets.1` on a worker of its own, and returns the task's id once it is done.
async fn cross_match_run(
    stack: &Stack,
    account: &str,
    sets: (&str, &str),
    limit: usize,
    threshold: f64,
    per_block: usize,
) -> u64 {
    let _worker = Worker::start("work,control");
    let task_id = create_task(
        stack,
        "cross_match",
        account,
        json!({
            "references": {"objects_type": "faces", "filters": {"user_data": sets.0}},
            "candidates": {"objects_type": "faces", "filters": {"user_data": sets.1}},
            "limit": limit, "threshold": threshold, "objects_per_block": per_block
        }),
    )
    .await;
    wait_task(stack, task_id, Duration::from_secs(120), status_is(5)).await;
    task_id
}

#[tokio::test]
async fn cross_match_equals_brute_force_over_many_tiles() {
    let _one = exclusive().await;
    let stack = stack();
    let account = account();
    let mut references = clustered_descriptors(40, 5, 1);
    let candidates = clustered_descriptors(36, 5, 2);
    // Two identical references, and a zero vector: ties and a similarity of 0.
    references[1] = references[0].clone();
    references[2] = vec![0.0; 512];
    let reference_ids = faces_with(stack, &account, &references, "reference").await;
    let mut candidate_ids = faces_with(stack, &account, &candidates, "candidate").await;
    // A candidate duplicated: equal similarities are ordered by id.
    let twin = faces_with(stack, &account, &candidates[..1], "candidate").await;
    candidate_ids.extend(twin);
    let mut all_candidates = candidates.clone();
    all_candidates.push(candidates[0].clone());
    let (limit, threshold) = (5, 0.3);
    let task_id = cross_match_run(
        stack,
        &account,
        ("reference", "candidate"),
        limit,
        threshold,
        16,
    )
    .await;
    assert!(match_subtask_count(stack, task_id).await >= 4);
    let result = result(stack, task_id).await;
    assert_eq!(result["references_count"], 40);
    assert_eq!(result["candidates_count"], 37);
    let matches = result["matches"].as_array().unwrap();
    assert_eq!(matches.len(), 40);
    let candidates = (candidate_ids.as_slice(), all_candidates.as_slice());
    assert_brute_force(
        &result,
        (&reference_ids, &references),
        candidates,
        limit,
        threshold,
    );
    // The zero vector matches nothing above the threshold.
    let zero = matches
        .iter()
        .find(|m| m["reference_id"] == reference_ids[2].as_str())
        .unwrap();
    assert_eq!(zero["candidates"], json!([]));
}

/// Each reference's matches in a cross_match result are its top `limit` candidates at or
/// above `threshold` by brute force (equal similarities by candidate id).
fn assert_brute_force(
    result: &Value,
    (reference_ids, references): (&[String], &[Vec<f32>]),
    (candidate_ids, candidates): (&[String], &[Vec<f32>]),
    limit: usize,
    threshold: f64,
) {
    let candidates: Vec<(&str, &[f32])> = candidate_ids
        .iter()
        .map(String::as_str)
        .zip(candidates.iter().map(Vec::as_slice))
        .collect();
    for entry in result["matches"].as_array().unwrap() {
        let reference = entry["reference_id"].as_str().unwrap();
        let r = reference_ids.iter().position(|id| id == reference).unwrap();
        let mut expected: Vec<(f64, &str)> = candidates
            .iter()
            .map(|(id, d)| (cosine(&references[r], d), *id))
            .filter(|(s, _)| *s >= threshold)
            .collect();
        expected.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
        expected.truncate(limit);
        let got: Vec<(f64, &str)> = entry["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["similarity"].as_f64().unwrap(),
                    c["candidate_id"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(got.len(), expected.len(), "reference {r}");
        for ((gs, gid), (es, eid)) in got.iter().zip(&expected) {
            assert_eq!(gid, eid, "reference {r}");
            assert!((gs - es).abs() < 1e-5, "reference {r}: {gs} vs {es}");
        }
    }
}

/// Subtask outputs up to 16 KiB are kept in the subtask's item (no S3 object); larger
/// ones go to S3 and the subtask shows their `result_key`. Both kinds merge the same.
#[tokio::test]
async fn large_subtask_outputs_go_through_s3_and_small_ones_stay_in_the_item() {
    let _one = exclusive().await;
    let stack = stack();
    let account = account();
    let references = clustered_descriptors(600, 12, 3);
    let candidates = clustered_descriptors(100, 12, 4);
    let reference_ids = faces_with(stack, &account, &references, "big-reference").await;
    let candidate_ids = faces_with(stack, &account, &candidates, "big-candidate").await;
    let (limit, threshold) = (3, 0.0);
    let sets = ("big-reference", "big-candidate");
    let task_id = cross_match_run(stack, &account, sets, limit, threshold, 600).await;
    let subtasks = stack.get(&format!("/1/tasks/{task_id}/subtasks")).await;
    let subtasks = subtasks.json["subtasks"].as_array().unwrap().clone();
    let objects = objects_of(stack, task_id).await;
    // Collect outputs list their block's ids (~39 bytes each), match tiles their
    // references' top 3: the larger blocks and tiles go to S3, the smaller stay inline.
    let mut in_s3 = Vec::new();
    for subtask in &subtasks {
        let id = subtask["subtask_id"].as_u64().unwrap() as u32;
        let key = fanout::store::blobs::subtask_output_key(task_id, id);
        if subtask["result_key"].is_null() {
            assert!(!objects.contains(&key), "{key} in S3");
        } else {
            assert_eq!(subtask["result_key"], json!(key), "{subtask}");
            assert!(objects.contains(&key), "{key} not in {objects:?}");
            in_s3.push(id);
        }
    }
    assert!(
        !in_s3.is_empty() && in_s3.len() < subtasks.len(),
        "outputs in S3: {in_s3:?} of {subtasks:?}"
    );
    let result = result(stack, task_id).await;
    assert_eq!(result["matches"].as_array().unwrap().len(), 600);
    let candidates = (candidate_ids.as_slice(), candidates.as_slice());
    assert_brute_force(
        &result,
        (&reference_ids, &references),
        candidates,
        limit,
        threshold,
    );
}

#[tokio::test]
async fn clustering_gives_the_connected_components_of_the_threshold_graph() {
    let _one = exclusive().await;
    let stack = stack();
    let account = account();
    let descriptors = clustered_descriptors(60, 5, 3);
    let ids = faces_with(stack, &account, &descriptors, "clustered").await;
    // A face without a descriptor takes no part.
    faces_of(stack, &account, 1).await;
    let threshold = 0.75;
    let _worker = Worker::start("work,control");
    let task_id = create_task(
        stack,
        "clustering",
        &account,
        json!({"objects_type": "faces", "filters": {}, "threshold": threshold, "objects_per_block": 16}),
    )
    .await;
    wait_task(stack, task_id, Duration::from_secs(120), status_is(5)).await;
    assert!(match_subtask_count(stack, task_id).await >= 4);
    // Brute force: breadth-first components over similarities >= threshold.
    let n = ids.len();
    let mut component = vec![usize::MAX; n];
    let mut expected: Vec<Vec<&str>> = Vec::new();
    for start in 0..n {
        if component[start] != usize::MAX {
            continue;
        }
        let mut members = vec![start];
        component[start] = expected.len();
        let mut at = 0;
        while at < members.len() {
            let i = members[at];
            for j in 0..n {
                if component[j] == usize::MAX
                    && cosine(&descriptors[i], &descriptors[j]) >= threshold
                {
                    component[j] = expected.len();
                    members.push(j);
                }
            }
            at += 1;
        }
        let mut named: Vec<&str> = members.iter().map(|&i| ids[i].as_str()).collect();
        named.sort();
        expected.push(named);
    }
    let result = result(stack, task_id).await;
    assert_eq!(result["total_objects"], 60);
    assert_eq!(result["total_clusters"], expected.len());
    let mut got: Vec<Vec<&str>> = result["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let mut members: Vec<&str> = c
                .as_array()
                .unwrap()
                .iter()
                .map(|id| id.as_str().unwrap())
                .collect();
            members.sort();
            members
        })
        .collect();
    let sizes: Vec<usize> = got.iter().map(Vec::len).collect();
    assert!(
        sizes.windows(2).all(|w| w[0] >= w[1]),
        "largest first: {sizes:?}"
    );
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    assert!(
        expected.len() > 1 && expected.len() < n,
        "the data must have real clusters"
    );
}

/// Found by a new user: a clustering task echoed `"threshold": 0.800000011920929` (the
/// f32 it was kept as, widened to f64) in its content and result. Thresholds are shown as
/// given, in the task, the listing and the result, and similarities as the shortest text
/// of their f32 (`0.99999976`, not `0.9999997615814209`).
#[tokio::test]
async fn vector_tasks_show_thresholds_as_given_and_similarities_without_widening_noise() {
    let _one = exclusive().await;
    let stack = stack();
    let account = account();
    faces_with(stack, &account, &clustered_descriptors(8, 2, 7), "as-given").await;
    let set = json!({"objects_type": "faces", "filters": {"user_data": "as-given"}});
    let _worker = Worker::start("work,control");
    let clustering = create_task(
        stack,
        "clustering",
        &account,
        json!({"objects_type": "faces", "filters": {"user_data": "as-given"}, "threshold": 0.8}),
    )
    .await;
    let cross_match = create_task(
        stack,
        "cross_match",
        &account,
        json!({"references": set, "candidates": set, "limit": 4, "threshold": 0.1}),
    )
    .await;
    for (task_id, threshold) in [(clustering, 0.8), (cross_match, 0.1)] {
        let done = wait_task(stack, task_id, Duration::from_secs(120), status_is(5)).await;
        assert_eq!(done["content"]["threshold"], json!(threshold), "{done}");
        let listed = stack.get(&format!("/1/tasks?task_ids={task_id}")).await;
        assert_eq!(
            listed.json["tasks"][0]["content"]["threshold"],
            json!(threshold),
            "{}",
            listed.text
        );
        let result = stack.get(&format!("/1/tasks/{task_id}/result")).await;
        assert_eq!(result.status, 200, "{}", result.text);
        assert_eq!(
            result.json["result"]["threshold"],
            json!(threshold),
            "{}",
            result.text
        );
    }
    // Every similarity's text is the shortest that reads back as its f32.
    let result = stack.get(&format!("/1/tasks/{cross_match}/result")).await;
    let mut seen = 0;
    for piece in result.text.split("\"similarity\":").skip(1) {
        let text = &piece[..piece.find(['}', ',']).unwrap()];
        let value: f32 = text.parse().unwrap();
        // serde_json writes a whole f32 as `1.0`, Rust as `1`.
        assert_eq!(
            text.trim_end_matches(".0"),
            value.to_string(),
            "{}",
            result.text
        );
        seen += 1;
    }
    // Each face matches itself at least.
    assert!(seen >= 8, "{}", result.text);
}

#[tokio::test]
async fn bad_vector_task_content_is_a_400_and_creates_nothing() {
    let stack = stack();
    let account = account();
    let set = json!({"objects_type": "faces", "filters": {}});
    let cases = [
        ("cross_match", json!({"candidates": set})),
        (
            "cross_match",
            json!({"references": {"objects_type": "faces"}, "candidates": set}),
        ),
        (
            "cross_match",
            json!({"references": set, "candidates": set, "threshold": 1.5}),
        ),
        (
            "cross_match",
            json!({"references": set, "candidates": set, "threshold": -0.1}),
        ),
        (
            "cross_match",
            json!({"references": set, "candidates": set, "limit": 0}),
        ),
        (
            "cross_match",
            json!({"references": set, "candidates": set, "limit": 1001}),
        ),
        (
            "cross_match",
            json!({"references": {"objects_type": "faces", "filters": {}, "descriptor_version": 59},
                   "candidates": {"objects_type": "faces", "filters": {}, "descriptor_version": 60}}),
        ),
        (
            "cross_match",
            json!({"references": set, "candidates": set, "descriptor_version": 61}),
        ),
        ("clustering", json!({"objects_type": "faces"})),
        (
            "clustering",
            json!({"objects_type": "faces", "filters": {}, "threshold": 2}),
        ),
        (
            "clustering",
            json!({"objects_type": "faces", "filters": {"nope": 1}}),
        ),
        (
            "roc",
            json!({"objects_type": "faces", "markup": [
            {"object_id": account, "label": "a"}, {"object_id": "5f0c9d3e-0000-4000-8000-000000000001"}]}),
        ),
        (
            "roc",
            json!({"objects_type": "faces", "markup": [
            {"object_id": account, "label": "a"}, {"object_id": "5f0c9d3e-0000-4000-8000-000000000001", "label": "b"}]}),
        ),
        (
            "roc",
            json!({"objects_type": "faces", "limit": 0, "markup": []}),
        ),
    ];
    for (kind, content) in cases {
        let answer = stack
            .post(
                &format!("/1/tasks/{kind}"),
                &json!({"account_id": account, "content": content}),
            )
            .await;
        assert_eq!(answer.status, 400, "{kind} {content}: {}", answer.text);
        assert_eq!(answer.error_code(), 12027, "{kind} {content}");
    }
    let count = stack
        .get(&format!("/1/tasks/count?account_id={account}"))
        .await;
    assert_eq!(count.json["count"], 0);
}

#[tokio::test]
async fn roc_of_a_markup_equals_the_brute_force_curve() {
    let _one = exclusive().await;
    let stack = stack();
    let account = account();
    // 6 identities of 6 objects; noisy enough that identities overlap a little.
    let descriptors: Vec<Vec<f32>> = clustered_descriptors(36, 6, 4)
        .into_iter()
        .zip(clustered_descriptors(36, 36, 5))
        .map(|(own, noise)| own.iter().zip(&noise).map(|(a, b)| a + 0.6 * b).collect())
        .collect();
    let ids = faces_with(stack, &account, &descriptors, "markup").await;
    let label = |i: usize| format!("person {}", i % 6);
    let markup: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| json!({"object_id": id, "label": label(i)}))
        .collect();
    let limit = 4;
    let _worker = Worker::start("work,control");
    let task_id = create_task(
        stack,
        "roc",
        &account,
        json!({"objects_type": "faces", "markup": markup, "limit": limit,
               "key_FPRs": [0.01, 0.1], "objects_per_block": 10}),
    )
    .await;
    wait_task(stack, task_id, Duration::from_secs(120), status_is(5)).await;
    assert!(match_subtask_count(stack, task_id).await >= 4);
    let result = result(stack, task_id).await;

    // Brute force: each object's top `limit` others, then the curve over all pairs.
    let n = ids.len();
    let mut pairs: Vec<(f64, bool)> = Vec::new();
    let mut first_hit = vec![0usize; limit + 1];
    for r in 0..n {
        let mut group: Vec<(f64, &str, bool)> = (0..n)
            .filter(|&c| c != r)
            .map(|c| {
                (
                    cosine(&descriptors[r], &descriptors[c]),
                    ids[c].as_str(),
                    c % 6 == r % 6,
                )
            })
            .collect();
        group.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
        group.truncate(limit);
        if let Some(rank) = group.iter().position(|g| g.2) {
            first_hit[rank + 1] += 1;
        }
        pairs.extend(group.iter().map(|g| (g.0, g.2)));
    }
    let positives = (n * 5) as f64;
    let negatives = (n * (n - 1)) as f64 - positives;
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut auc, mut tp, mut fp, mut last) = (0.0, 0.0, 0.0, (0.0, 0.0));
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i;
        while j < pairs.len() && pairs[j].0 == pairs[i].0 {
            if pairs[j].1 {
                tp += 1.0
            } else {
                fp += 1.0
            }
            j += 1;
        }
        let point = (fp / negatives, tp / positives);
        auc += (point.0 - last.0) * (point.1 + last.1) / 2.0;
        last = point;
        i = j;
    }
    auc += (1.0 - last.0) * (1.0 + last.1) / 2.0;
    assert_eq!(result["positive_pairs_count"], n * 5);
    assert_eq!(result["objects_count"], n);
    let got_auc = result["auc"].as_f64().unwrap();
    assert!((got_auc - auc).abs() < 1e-6, "auc {got_auc} vs {auc}");
    let eer = &result["eer"];
    let (efpr, etpr) = (eer["fpr"].as_f64().unwrap(), eer["tpr"].as_f64().unwrap());
    assert!((efpr - (1.0 - etpr)).abs() < 1e-6, "eer {eer}");
    let hits = result["top_n_hit_probability"].as_array().unwrap();
    assert_eq!(hits.len(), limit);
    let top1 = first_hit[1] as f64 / n as f64;
    assert!(
        (hits[0].as_f64().unwrap() - top1).abs() < 1e-9,
        "{hits:?} vs {top1}"
    );
    assert_eq!(result["key_points"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn clustering_with_track_info_joins_the_events_of_a_track() {
    let _one = exclusive().await;
    let stack = stack();
    let account = account();
    // Four unrelated descriptors (four centres, one object each): no two are similar.
    let descriptors = clustered_descriptors(4, 4, 6);
    let events: Vec<Value> = descriptors
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut event = json!({"descriptor": d, "source": "track test"});
            if i < 3 {
                event["track_id"] = json!("track-1");
            }
            event
        })
        .collect();
    let created = stack
        .post(
            "/1/events",
            &json!({"account_id": account, "events": events}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let ids: Vec<String> = created.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    let _worker = Worker::start("work,control");
    let mut sizes = Vec::new();
    for use_track_info in [false, true] {
        let task_id = create_task(
            stack,
            "clustering",
            &account,
            json!({"objects_type": "events", "filters": {"sources": ["track test"]},
                   "threshold": 0.9, "use_track_info": use_track_info}),
        )
        .await;
        wait_task(stack, task_id, Duration::from_secs(60), status_is(5)).await;
        let result = result(stack, task_id).await;
        let clusters = result["clusters"].as_array().unwrap().clone();
        sizes.push(
            clusters
                .iter()
                .map(|c| c.as_array().unwrap().len())
                .collect::<Vec<_>>(),
        );
        if use_track_info {
            let mut tracked: Vec<&str> = clusters[0]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            tracked.sort();
            let mut expected: Vec<&str> = ids[..3].iter().map(String::as_str).collect();
            expected.sort();
            assert_eq!(tracked, expected);
        }
    }
    assert_eq!(sizes, vec![vec![1, 1, 1, 1], vec![3, 1]]);
}

/// A stage whose subtasks wait in the work queue (no worker has reached them yet) is not
/// stalled for want of messages. Before the fix every pass re-sent every pending subtask,
/// so a backlog grew by a copy of itself each stall period (here: 2 messages became 4).
#[tokio::test(flavor = "multi_thread")]
async fn a_stage_waiting_behind_a_backlog_is_not_sent_again() {
    let _engine = exclusive().await;
    let stack = stack();
    let svc = &stack.services;
    let work = &svc.config.work_queue_url;
    common::settle_tasks(stack).await;
    let task_id = linker_over(stack, 4, 2).await;
    planned(stack, task_id).await;
    assert_eq!(queue_depth(stack, work).await, 2);
    let report = common::reconcile(stack, Duration::ZERO).await;
    assert!(report.waiting >= 1, "{report:?}");
    assert_eq!(queue_depth(stack, work).await, 2, "{report:?}");
    let _worker = Worker::start("work,control");
    let done = wait_task(stack, task_id, Duration::from_secs(60), status_is(5)).await;
    assert_eq!(done["count_task_parts_done"], 2);
    assert_eq!(result(stack, task_id).await["linked_objects_count"], 4);
}

/// Lost messages are sent again, once, however many passes run at once: passes take a
/// lease. Before the fix two overlapping passes each re-sent the stage (4 messages for 2
/// subtasks).
#[tokio::test(flavor = "multi_thread")]
async fn overlapping_passes_send_lost_subtasks_once() {
    let _engine = exclusive().await;
    let stack = stack();
    let svc = &stack.services;
    let work = &svc.config.work_queue_url;
    common::settle_tasks(stack).await;
    let task_id = linker_over(stack, 4, 2).await;
    planned(stack, task_id).await;
    assert_eq!(common::lose_messages(stack, work).await, 2);
    // Let the received-and-deleted messages settle in the approximate counts.
    wait_queue_empty(stack, work, Duration::from_secs(30)).await;
    let (a, b) = tokio::join!(
        fanout::engine::reconcile::run(svc, Duration::ZERO),
        fanout::engine::reconcile::run(svc, Duration::ZERO)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.skipped != b.skipped, "exactly one pass runs: {a:?} {b:?}");
    assert_eq!(queue_depth(stack, work).await, 2, "{a:?} {b:?}");
    let _worker = Worker::start("work,control");
    let done = wait_task(stack, task_id, Duration::from_secs(60), status_is(5)).await;
    assert_eq!(done["count_task_parts_done"], 2);
}

/// A task the reconciler cannot read (here a marker whose task item is corrupt) is
/// logged and counted; the pass goes on to the others. Before the fix the first error
/// ended the pass, so one bad task stopped every stuck task behind it for good. And a pass
/// whose time is up leaves the stalled tasks for the next one instead of running over.
#[tokio::test(flavor = "multi_thread")]
async fn one_bad_task_does_not_stop_a_pass() {
    use aws_sdk_dynamodb::types::AttributeValue as V;
    use fanout::store::keys;
    let _engine = exclusive().await;
    let stack = stack();
    let svc = &stack.services;
    common::settle_tasks(stack).await;
    // A task created while no worker runs: pending, stalled at once for a zero stall.
    let task_id = linker_over(stack, 2, 2).await;
    let bad_id = u64::MAX - 7;
    let items = [
        (keys::task_pk(bad_id), keys::TASK_SK.to_string(), "corrupt"),
        (
            keys::ACTIVE_TASKS.to_string(),
            keys::active_sk(bad_id),
            "marker",
        ),
    ];
    for (pk, sk, _) in &items {
        svc.table
            .client()
            .put_item()
            .table_name(svc.table.name())
            .item("pk", V::S(pk.clone()))
            .item("sk", V::S(sk.clone()))
            .item("task_id", V::N(bad_id.to_string()))
            .item("task_status", V::S("not a status".into()))
            .send()
            .await
            .unwrap();
    }
    let late = fanout::engine::reconcile::run_within(svc, Duration::ZERO, Duration::ZERO).await;
    let report = fanout::engine::reconcile::run(svc, Duration::ZERO).await;
    for (pk, sk, _) in &items {
        svc.table
            .client()
            .delete_item()
            .table_name(svc.table.name())
            .key("pk", V::S(pk.clone()))
            .key("sk", V::S(sk.clone()))
            .send()
            .await
            .unwrap();
    }
    let (late, report) = (late.unwrap(), report.unwrap());
    assert!(!late.skipped && !report.skipped, "{late:?} {report:?}");
    assert!(late.driven == 0 && late.deferred >= 1, "{late:?}");
    assert!(report.failed >= 1, "{report:?}");
    assert!(report.driven >= 1, "{report:?}");
    let _worker = Worker::start("work,control");
    let done = wait_task(stack, task_id, Duration::from_secs(60), status_is(5)).await;
    assert_eq!(done["count_task_parts_done"], 1);
}

/// A task deleted while its subtasks run leaves nothing: the subtasks here were already
/// past their checks when the delete came (held at `before_part_put`), so they write their
/// CSV parts under the task's prefix after the delete removed it. Before the fix those
/// parts stayed for good; now the delete leaves a sweep marker and the reconciler deletes
/// the prefix once more when it is due.
#[tokio::test(flavor = "multi_thread")]
async fn a_task_deleted_while_running_leaves_nothing() {
    common::require_faults();
    let _engine = exclusive().await;
    let stack = stack();
    let svc = &stack.services;
    let account = account();
    faces_of(stack, &account, 30).await;
    common::settle_tasks(stack).await;
    let log = std::env::temp_dir().join(format!("fanout-delete-running-{account}.log"));
    let _worker = Worker::start_logged(
        "work,control",
        &[],
        &[("FANOUT_FAULT", "before_part_put@all:pause=8")],
        Some(&log),
    );
    let task_id = create_task(
        stack,
        "exporter",
        &account,
        json!({"objects_type": "faces"}),
    )
    .await;
    // Delete only once the subtask is held at the point, past its checks.
    let start = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("fault point: pausing")
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the subtask never reached before_part_put"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deleted = stack
        .delete(&format!("/1/tasks/{task_id}?account_id={account}"))
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.text);
    assert_eq!(deleted.json, json!({}));
    assert!(objects_of(stack, task_id).await.is_empty());
    // The held subtasks run on after the delete and write their parts.
    wait_queue_empty(stack, &svc.config.work_queue_url, Duration::from_secs(60)).await;
    let late = objects_of(stack, task_id).await;
    assert!(
        !late.is_empty(),
        "the subtasks wrote nothing after the delete"
    );
    let due = fanout::timestamps::now()
        + chrono::Duration::from_std(fanout::tasks::api::SWEEP_DELAY).unwrap()
        + chrono::Duration::minutes(1);
    let swept = fanout::engine::reconcile::sweep_deleted(svc, due)
        .await
        .unwrap();
    assert!(swept >= 1);
    assert_eq!(
        objects_of(stack, task_id).await,
        Vec::<String>::new(),
        "{late:?}"
    );
    // Nothing else of the task either: no records, no markers.
    assert_eq!(
        stack.get(&format!("/1/tasks/{task_id}")).await.error_code(),
        28001
    );
}

/// What a running task writes stays cheap: the task item (updated for every subtask
/// counted and every heartbeat) carries no index keys and no big content, yet the task is
/// listed for its account and for everyone. Before the fix the item carried gsi1/gsi2 keys
/// (both indexes projecting all of it, every task in one `TASKS` index partition) and a
/// 4 KB content inline, so each count was billed for 5 KB three times over.
#[tokio::test(flavor = "multi_thread")]
async fn a_running_task_item_stays_small_and_off_the_indexes() {
    let _engine = exclusive().await;
    let stack = stack();
    let svc = &stack.services;
    let account = account();
    let ids = faces_of(stack, &account, 100).await;
    let content = json!({
        "objects_type": "faces",
        "create_list": 1,
        "objects_per_subtask": 50,
        "filters": {"face_ids": ids},
    });
    let task_id = create_task(stack, "linker", &account, content).await;
    let raw_item = |_: ()| async {
        svc.table
            .get(&fanout::store::keys::task_pk(task_id), "TASK")
            .await
            .unwrap()
            .unwrap()
    };
    let item_size = |item: &fanout::store::Item| -> usize {
        item.iter()
            .map(|(name, value)| name.len() + format!("{value:?}").len())
            .sum()
    };
    let before = raw_item(()).await;
    let index_keys: Vec<&String> = before.keys().filter(|k| k.starts_with("gsi")).collect();
    assert!(index_keys.is_empty(), "{index_keys:?}");
    assert!(item_size(&before) < 2048, "{} bytes", item_size(&before));
    for listing in [
        format!("/1/tasks?account_id={account}&page_size=100"),
        "/1/tasks?page_size=100".to_string(),
    ] {
        let listed = stack.get(&listing).await;
        assert_eq!(listed.status, 200, "{}", listed.text);
        let found = listed.json["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["task_id"] == task_id);
        assert!(found, "{listing}: {}", listed.text);
    }
    let counted = stack
        .get(&format!("/1/tasks/count?account_id={account}"))
        .await;
    assert_eq!(counted.json["count"], 1, "{}", counted.text);
    let _worker = Worker::start("work,control");
    wait_task(stack, task_id, Duration::from_secs(60), status_is(5)).await;
    let after = raw_item(()).await;
    assert!(!after.keys().any(|k| k.starts_with("gsi")));
    let shown = task(stack, task_id).await;
    assert_eq!(
        shown["content"]["filters"]["face_ids"]
            .as_array()
            .unwrap()
            .len(),
        100
    );
    assert_eq!(result(stack, task_id).await["linked_objects_count"], 100);
}

/// Duplicate control steps injected concurrently while a task runs and after it ended
/// change nothing: Plan, Advance and Merge of every stage sent again and again (as a
/// reconciler re-send, a redelivery or a second consumer would), handled by two control
/// consumers at once. The task ends done once, with exact counts, every face linked once,
/// and its result stays.
#[tokio::test(flavor = "multi_thread")]
async fn duplicate_steps_during_and_after_a_run_change_nothing() {
    use fanout::engine::messages::{ControlMessage, send_control};
    let _engine = exclusive().await;
    let stack = stack();
    let svc = &stack.services;
    let account = account();
    faces_of(stack, &account, 40).await;
    let list_id = new_list(stack, &account).await;
    let _workers = [Worker::start("work,control"), Worker::start("work,control")];
    let task_id = faces_linker(stack, &account, Some(&list_id), 5).await;
    let duplicates = |task_id: u64| {
        [
            ControlMessage::Plan { task_id, stage: 0 },
            ControlMessage::Plan { task_id, stage: 1 },
            ControlMessage::Advance { task_id, stage: 0 },
            ControlMessage::Merge { task_id },
        ]
    };
    let start = Instant::now();
    loop {
        for message in duplicates(task_id) {
            send_control(svc, &message).await.unwrap();
        }
        if task(stack, task_id).await["task_status"] == 5 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "never done");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let first = result(stack, task_id).await;
    for _ in 0..5 {
        for message in duplicates(task_id) {
            send_control(svc, &message).await.unwrap();
        }
    }
    wait_queue_empty(
        stack,
        &svc.config.control_queue_url,
        Duration::from_secs(60),
    )
    .await;
    wait_queue_empty(stack, &svc.config.work_queue_url, Duration::from_secs(60)).await;
    let done = task(stack, task_id).await;
    assert_eq!(done["task_status"], 5, "{done}");
    assert_eq!(done["count_task_parts_all"], 8, "{done}");
    assert_eq!(done["count_task_parts_done"], 8, "{done}");
    assert_eq!(subtask_statuses(stack, task_id).await, vec![5; 8]);
    assert_eq!(result(stack, task_id).await, first);
    assert_eq!(first["linked_objects_count"], 40);
    assert_eq!(list_size(stack, &account, &list_id).await, 40);
}
