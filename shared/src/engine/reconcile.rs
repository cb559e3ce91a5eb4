//! The reconciler: run every minute (a scheduled Lambda on AWS, a loop in the local
//! worker), it turns dead-lettered messages into error records and drives on every task
//! whose last step was lost. Each action is one the engine might have sent anyway, so
//! running it twice, or next to busy workers, changes nothing.

use std::ops::ControlFlow;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{StreamExt, stream};
use serde::{Deserialize, Serialize};

use super::control::{self, enqueue};
use super::messages::{ControlMessage, WorkMessage, send_control};
use super::work;
use crate::Services;
use crate::error::{ApiError, ErrorCode};
use crate::store::dynamo::aws_error;
use crate::store::{KeyRange, TableQuery, blobs, keys, lease, queues};
use crate::tasks::model::{SubtaskStatus, TaskRecord, TaskStatus};
use crate::tasks::store as task_store;
use crate::timestamps;

/// Most dead-lettered messages handled per queue in one run (the rest wait a minute).
const DEAD_LETTERS_PER_RUN: usize = 1000;

/// How long one pass may work before it leaves the rest to the next (the reconcile
/// function's timeout is 120 s; the local worker runs a pass every 30 s or so).
pub const PASS_BUDGET: Duration = Duration::from_secs(90);
/// Most tasks loaded at once while a pass looks at the active ones.
const LOAD_CONCURRENCY: usize = 16;

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Another pass held the reconciler's lease: this one did nothing.
    pub skipped: bool,
    /// Tasks that have not ended, looked at.
    pub active: usize,
    /// Tasks driven on (a step re-sent or subtasks re-queued).
    pub driven: usize,
    /// Stalled stages whose pending subtasks were not re-sent because the work queue
    /// still holds messages: they may be waiting behind that backlog, not lost.
    pub waiting: usize,
    /// Tasks whose handling failed (logged; the next pass tries again).
    pub failed: usize,
    /// Stalled tasks left for the next pass because this one ran out of time.
    pub deferred: usize,
    /// Dead-lettered subtask messages turned into error records.
    pub dead_subtasks: usize,
    /// Dead-lettered control messages that failed their task.
    pub dead_steps: usize,
    /// Markers of ended tasks removed.
    pub forgotten: usize,
    /// Task results removed because their TTL ran out.
    pub expired: usize,
    /// Deleted tasks whose S3 prefix was deleted once more.
    pub swept: usize,
    /// Running ClearML tasks stopped by the watchdog: no update within
    /// `FANOUT_CLEARML_WATCHDOG_SECONDS`.
    pub clearml_stopped: usize,
    /// Run messages sent again for tasks waiting in queues Fanout serves.
    pub clearml_announced: usize,
    /// Orchestrator uplets whose claim ran out, handed back and announced again.
    pub orchestrator_requeued: usize,
    /// Orchestrator uplets failed for good after their last claim ran out.
    pub orchestrator_failed: usize,
    /// Runnable orchestrator uplets announced again (the work queue empty).
    pub orchestrator_announced: usize,
    /// Orchestrator ranks given their model late (their predecessor's reporter died).
    pub orchestrator_advanced: usize,
}

/// One reconciliation pass within [`PASS_BUDGET`]. A task counts as stuck when nothing
/// (no step, no subtask end, no heartbeat) happened to it for `stall`.
pub async fn run(svc: &Services, stall: Duration) -> Result<Report, ApiError> {
    run_within(svc, stall, PASS_BUDGET).await
}

/// One reconciliation pass that stops starting new work after `budget`.
///
/// Passes never overlap: each takes a lease in the table first (one item, taken by a
/// conditional write, lasting the budget and a third) and a pass that finds it held
/// does nothing. Stalled tasks come first, the longest-silent first, so a pass cut short
/// by its budget leaves the most recently driven for later and none starves; then dead
/// letters, then expired results, each while time is left. One task's failure is logged
/// and counted, never the end of the pass.
pub async fn run_within(
    svc: &Services,
    stall: Duration,
    budget: Duration,
) -> Result<Report, ApiError> {
    let started = std::time::Instant::now();
    let holder = uuid::Uuid::new_v4().to_string();
    // Longer than the budget by a third: a pass that overruns a little keeps it, one
    // that died frees it soon.
    let lease = budget + budget / 3;
    if !lease::take(svc, keys::RECONCILER_LEASE, &holder, lease).await? {
        tracing::info!("another reconciler pass holds the lease");
        return Ok(Report {
            skipped: true,
            ..Report::default()
        });
    }
    let out = pass(svc, stall, budget, started).await;
    lease::release(svc, keys::RECONCILER_LEASE, &holder).await?;
    out
}

async fn pass(
    svc: &Services,
    stall: Duration,
    budget: Duration,
    started: std::time::Instant,
) -> Result<Report, ApiError> {
    let time_left = || budget.saturating_sub(started.elapsed());
    let mut report = Report::default();
    crate::fault::point("inside_reconcile").await;

    let ids = task_store::active_task_ids(svc).await?;
    report.active = ids.len();
    let loads: Vec<_> = ids
        .into_iter()
        .map(|task_id| async move { (task_id, task_store::load(svc, task_id).await) })
        .collect();
    let loaded: Vec<(u64, Result<Option<TaskRecord>, ApiError>)> = stream::iter(loads)
        .buffer_unordered(LOAD_CONCURRENCY)
        .collect()
        .await;
    let stalled_before =
        timestamps::now() - chrono::Duration::from_std(stall).unwrap_or(chrono::Duration::MAX);
    let mut stalled = Vec::new();
    for (task_id, task) in loaded {
        let task = match task {
            Ok(task) => task,
            Err(err) => {
                tracing::error!(task_id, %err, "reconciler could not read the task");
                report.failed += 1;
                continue;
            }
        };
        let ended = match &task {
            None => true,
            Some(task) => task.task_status.is_final(),
        };
        if ended {
            // Gone, or a step that ended the task stopped before its cleanup: what the
            // merge read and the plans go now, before the marker that leads here.
            let forget = async {
                if task.is_some() {
                    control::remove_scratch(svc, task_id).await?;
                }
                task_store::forget_active(svc, task_id).await
            };
            match forget.await {
                Ok(()) => report.forgotten += 1,
                Err(err) => {
                    tracing::error!(task_id, %err, "reconciler could not forget an ended task");
                    report.failed += 1;
                }
            }
            continue;
        }
        let task = task.expect("not ended, so loaded");
        let last = last_activity(&task);
        if last.is_some_and(|t| t > stalled_before) {
            continue;
        }
        stalled.push((last, task));
    }
    // Longest silent first (a task with no time at all before any).
    stalled.sort_by_key(|(last, task)| (*last, task.task_id));
    let mut backlog = None;
    let count = stalled.len();
    for (done, (_, task)) in stalled.into_iter().enumerate() {
        if time_left().is_zero() {
            report.deferred = count - done;
            tracing::warn!(deferred = report.deferred, "reconciler out of time");
            break;
        }
        let task_id = task.task_id;
        match drive(svc, &task, &mut backlog).await {
            Ok(Driven::Yes) => report.driven += 1,
            Ok(Driven::Waiting) => report.waiting += 1,
            Ok(Driven::No) => {}
            Err(err) => {
                tracing::error!(task_id, %err, "reconciler could not drive the task");
                report.failed += 1;
            }
        }
    }

    if !time_left().is_zero() {
        report.dead_subtasks = drain(svc, &svc.config.work_dlq_url, time_left(), |body, receives| async move {
            match serde_json::from_str::<WorkMessage>(&body) {
                Ok(message) => work::fail_dead(svc, &message, receives).await.map(|_| true),
                Err(err) => {
                    tracing::error!(%err, body, "unreadable dead-lettered work message dropped");
                    Ok(false)
                }
            }
        })
        .await?;
    }
    if !time_left().is_zero() {
        report.dead_steps = drain(
            svc,
            &svc.config.control_dlq_url,
            time_left(),
            |body, receives| async move {
                let Ok(message) = serde_json::from_str::<ControlMessage>(&body) else {
                    tracing::error!(body, "unreadable dead-lettered control message dropped");
                    return Ok(false);
                };
                let Some(task) = task_store::load(svc, message.task_id()).await? else {
                    return Ok(false);
                };
                let err = ApiError::new(
                    ErrorCode::SubtaskAttemptsExhausted,
                    format!(
                        "Step {message:?} of task '{}' failed {receives} times",
                        task.task_id
                    ),
                );
                control::fail(svc, &task, &err, Some("task step dead-lettered".into()))
                    .await
                    .map(|_| true)
            },
        )
        .await?;
    }
    if !time_left().is_zero() {
        report.expired = expire_results(svc, timestamps::now()).await?;
    }
    if !time_left().is_zero() {
        report.swept = sweep_deleted(svc, timestamps::now()).await?;
    }
    if !time_left().is_zero() {
        let threshold = chrono::Duration::seconds(svc.config.clearml_watchdog_seconds as i64);
        match crate::clearml::tasks::watchdog(svc, timestamps::now(), threshold).await {
            Ok(stopped) => report.clearml_stopped = stopped,
            Err(err) => {
                tracing::error!(err = err.msg, "the ClearML watchdog failed");
                report.failed += 1;
            }
        }
        let after = chrono::Duration::seconds(crate::clearml::serve::SWEEP_AFTER_SECONDS);
        match crate::clearml::serve::sweep(svc, timestamps::now(), after).await {
            Ok(sent) => report.clearml_announced = sent,
            Err(err) => {
                tracing::error!(err = err.msg, "the sweep of served ClearML queues failed");
                report.failed += 1;
            }
        }
    }
    if !time_left().is_zero() {
        match crate::orchestrator::compute::sweep(svc, timestamps::now()).await {
            Ok(swept) => {
                report.orchestrator_requeued = swept.requeued;
                report.orchestrator_failed = swept.failed;
                report.orchestrator_announced = swept.announced;
                report.orchestrator_advanced = swept.advanced;
            }
            Err(err) => {
                tracing::error!(%err, "the orchestrator sweep failed");
                report.failed += 1;
            }
        }
    }
    Ok(report)
}

/// The last time anything happened to a task: a step, a subtask end or a heartbeat.
fn last_activity(task: &TaskRecord) -> Option<DateTime<Utc>> {
    [Some(&task.last_update_time), task.heartbeat_time.as_ref()]
        .into_iter()
        .flatten()
        .filter_map(|t| timestamps::parse(t))
        .max()
}

/// What the reconciler did with a stalled task.
enum Driven {
    /// A step was re-sent or subtasks re-queued.
    Yes,
    /// Its pending subtasks may be waiting behind the work queue's backlog: left alone.
    Waiting,
    /// Nothing to do.
    No,
}

/// Drives one stalled task on. `backlog` caches, for the pass, how many messages the
/// work queue holds (visible or delayed): while it holds any, a pending subtask may be
/// one of them, so re-sending it would only add a copy behind the same backlog.
async fn drive(
    svc: &Services,
    task: &TaskRecord,
    backlog: &mut Option<u64>,
) -> Result<Driven, ApiError> {
    let task_id = task.task_id;
    tracing::info!(task_id, status = ?task.task_status, "driving a stalled task on");
    match (task.task_status, task.current_stage()) {
        (TaskStatus::Pending, _) | (TaskStatus::InProgress, None) => {
            send_control(svc, &ControlMessage::Plan { task_id, stage: 0 }).await?;
        }
        (TaskStatus::InProgress, Some(stage)) if task.stages_enqueued <= stage => {
            send_control(svc, &ControlMessage::Plan { task_id, stage }).await?;
        }
        (TaskStatus::InProgress, Some(stage)) if task.stage_parts_done >= task.stage_parts_all => {
            send_control(svc, &ControlMessage::Advance { task_id, stage }).await?;
        }
        (TaskStatus::InProgress, Some(stage)) => {
            if recount(svc, task, stage).await? {
                send_control(svc, &ControlMessage::Advance { task_id, stage }).await?;
            } else {
                let waiting = match backlog {
                    Some(n) => *n,
                    None => {
                        *backlog.insert(queues::backlog(svc, &svc.config.work_queue_url).await?)
                    }
                };
                if waiting > 0 {
                    tracing::info!(
                        task_id,
                        waiting,
                        "stalled stage waits behind the work queue's backlog"
                    );
                    return Ok(Driven::Waiting);
                }
                // The work queue holds nothing waiting, so the pending subtasks' messages
                // are lost (a copy of one still running will find it ended): queue them
                // again, and count that as progress so the next pass waits a stall period.
                enqueue(svc, task, stage).await?;
                work::heartbeat(svc, task_id).await?;
            }
        }
        (TaskStatus::CollectResults, _) => {
            send_control(svc, &ControlMessage::Merge { task_id }).await?;
        }
        _ => return Ok(Driven::No),
    }
    Ok(Driven::Yes)
}

/// Removes every task result whose TTL (`result_storage_policy`) ran out by `now`: the
/// S3 object, then the task's `result_id`, then the expiry marker, so a crash part-way
/// leaves the marker for the next pass. The API answers 28017 from the expiry time on,
/// whether or not this pass has run yet. Returns how many results were removed.
pub async fn expire_results(svc: &Services, now: DateTime<Utc>) -> Result<usize, ApiError> {
    let due = due_markers(svc, keys::RESULT_EXPIRY, now).await?;
    for (expire_time, task_id) in &due {
        blobs::delete(svc, &blobs::result_key(*task_id)).await?;
        task_store::update_task(
            svc,
            *task_id,
            "REMOVE result_id",
            "attribute_exists(result_id)",
            Default::default(),
        )
        .await?;
        task_store::forget_expiry(svc, *task_id, expire_time).await?;
        tracing::info!(task_id, "expired task result removed");
    }
    Ok(due.len())
}

/// Deletes once more the S3 prefix of every deleted task whose sweep marker is due by
/// `now` (see `tasks::api::delete`), then the marker. Returns how many were swept.
pub async fn sweep_deleted(svc: &Services, now: DateTime<Utc>) -> Result<usize, ApiError> {
    let due = due_markers(svc, keys::SWEEPS, now).await?;
    for (due_time, task_id) in &due {
        if task_store::load(svc, *task_id).await?.is_none() {
            let removed = blobs::delete_prefix(svc, &blobs::task_prefix(*task_id)).await?;
            if removed > 0 {
                tracing::warn!(
                    task_id,
                    removed,
                    "objects written after the task was deleted removed"
                );
            }
        }
        task_store::forget_sweep(svc, *task_id, due_time).await?;
    }
    Ok(due.len())
}

/// The (time, task id) markers of `partition` due by `now`, in time order.
async fn due_markers(
    svc: &Services,
    partition: &str,
    now: DateTime<Utc>,
) -> Result<Vec<(String, u64)>, ApiError> {
    let mut due = Vec::new();
    let query = TableQuery {
        index: None,
        partition: partition.into(),
        range: KeyRange::Between {
            gte: None,
            lt: Some(timestamps::format(now)),
        },
        descending: false,
    };
    svc.table
        .for_each(&query, |item| {
            let time = item.get("expire_time").and_then(|v| v.as_s().ok()).cloned();
            let task_id = item
                .get("task_id")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<u64>().ok());
            if let (Some(time), Some(task_id)) = (time, task_id) {
                due.push((time, task_id));
            }
            ControlFlow::Continue(())
        })
        .await?;
    Ok(due)
}

/// Receives every message of a dead-letter queue (up to a bound, while `budget` lasts) and hands each body with
/// its receive count to `handle`; handled messages are deleted, failed ones stay.
async fn drain<F, Fut>(
    svc: &Services,
    queue_url: &str,
    budget: Duration,
    handle: F,
) -> Result<usize, ApiError>
where
    F: Fn(String, u32) -> Fut,
    Fut: std::future::Future<Output = Result<bool, ApiError>>,
{
    let started = std::time::Instant::now();
    let mut handled = 0;
    let mut seen = 0;
    while seen < DEAD_LETTERS_PER_RUN && started.elapsed() < budget {
        let out = svc
            .aws
            .sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(120)
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
            )
            .send()
            .await
            .map_err(|e| ApiError::internal("sqs receive_message", aws_error(&e)))?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            seen += 1;
            let receives = message
                .attributes()
                .and_then(|a| {
                    a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
                })
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let body = message.body().unwrap_or_default().to_string();
            match handle(body, receives).await {
                Ok(counted) => {
                    handled += usize::from(counted);
                    if let Some(receipt) = message.receipt_handle() {
                        svc.aws
                            .sqs
                            .delete_message()
                            .queue_url(queue_url)
                            .receipt_handle(receipt)
                            .send()
                            .await
                            .map_err(|e| ApiError::internal("sqs delete_message", aws_error(&e)))?;
                    }
                }
                Err(err) => tracing::error!(%err, "dead letter kept for the next run"),
            }
        }
    }
    Ok(handled)
}

/// Counts the ended subtasks of the current stage from their own records and repairs the
/// task's counters when a worker died between ending a subtask and counting it. Answers
/// whether the stage is complete.
async fn recount(svc: &Services, task: &TaskRecord, stage: u32) -> Result<bool, ApiError> {
    let subtasks = task_store::subtask_records(svc, task.task_id).await?;
    let of_stage = subtasks.iter().filter(|s| s.subtask.stage == stage);
    let (mut ended, mut failed) = (0u64, 0u64);
    for subtask in of_stage {
        match subtask.subtask.status {
            SubtaskStatus::Done => ended += 1,
            SubtaskStatus::Failed => {
                ended += 1;
                failed += 1;
            }
            _ => {}
        }
    }
    if ended > task.stage_parts_done {
        tracing::warn!(
            task_id = task.task_id,
            stage,
            ended,
            counted = task.stage_parts_done,
            "repairing lost counts"
        );
        let values = std::collections::HashMap::from([
            (":epoch".to_string(), task_store::n(task.count_epoch)),
            (
                ":next_epoch".to_string(),
                task_store::n(task.count_epoch + 1),
            ),
            (":ended".to_string(), task_store::n(ended)),
            (":failed".to_string(), task_store::n(failed)),
            (
                ":missing".to_string(),
                task_store::n(ended - task.stage_parts_done),
            ),
            (":old".to_string(), task_store::n(task.stage_parts_done)),
        ]);
        task_store::update_task(
            svc,
            task.task_id,
            "SET stage_parts_done = :ended, stage_parts_failed = :failed, \
             count_epoch = :next_epoch ADD count_task_parts_done :missing",
            &format!(
                "stage_parts_done = :old AND {}",
                work::epoch_condition(task.count_epoch)
            ),
            values,
        )
        .await?;
    }
    Ok(ended >= task.stage_parts_all)
}
