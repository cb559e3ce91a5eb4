//! Task-level steps, run by whoever consumes the control queue: plan a stage and queue its
//! subtasks, advance past a finished stage, merge, fail.

use std::collections::HashMap;

use serde_json::Value;

use super::messages::{ControlMessage, WorkMessage, send_work};
use super::{is_transient, result_id};
use crate::Services;
use crate::error::ApiError;
use crate::kinds::{self, Merged, TaskContext};
use crate::store::dynamo::{TRANSACTION_MAX, TransactError, put_new_op, s, to_item, update_op};
use crate::store::{blobs, keys};
use crate::tasks::api as task_api;
use crate::tasks::model::{SubtaskRecord, SubtaskStatus, TaskRecord, TaskStatus};
use crate::tasks::store::{self as task_store, n, status_move, update_task};
use crate::timestamps;

/// Runs one control step. An `Err` means "try again later" (the message stays queued);
/// failures that retrying cannot fix end the task in status 3 with an error record.
pub async fn handle(svc: &Services, message: &ControlMessage) -> Result<(), ApiError> {
    match *message {
        ControlMessage::Plan { task_id, stage } => plan(svc, task_id, stage).await,
        ControlMessage::Advance { task_id, stage } => advance(svc, task_id, stage).await,
        ControlMessage::Merge { task_id } => merge(svc, task_id).await,
    }
}

/// Plans stage `stage` unless it is planned already, then makes sure its subtasks are
/// written and queued.
///
/// A stage's plan is fixed once: the planner writes its subtask contents to S3 under a key
/// of its own, then claims the stage with one conditional update of the task that records
/// that key and the stage's counts. Only the claim's plan is ever written as subtask
/// items, each put only if absent, by whoever gets there (the claimer, a duplicate Plan,
/// the reconciler), so a late or duplicate planner can neither reset a subtask that ran
/// nor add subtasks of a different plan. The stage is queued once every item is written.
async fn plan(svc: &Services, task_id: u64, stage: u32) -> Result<(), ApiError> {
    match task_store::load(svc, task_id).await? {
        Some(task) => plan_with(svc, task, stage).await,
        None => Ok(()),
    }
}

/// [`plan`] from a task record read earlier, as a planner that was delayed after its read
/// (or a duplicate delivery of the same step) runs it: whatever happened since, it
/// changes nothing that another planner did.
pub async fn plan_with(svc: &Services, task: TaskRecord, stage: u32) -> Result<(), ApiError> {
    let task_id = task.task_id;
    if !matches!(
        task.task_status,
        TaskStatus::Pending | TaskStatus::InProgress
    ) || task.stages_planned < stage
    {
        return Ok(());
    }
    if task.stages_planned == stage {
        if stage > 0 && task.stage_parts_done < task.stage_parts_all {
            return Ok(());
        }
        let kind = kind_of(&task)?;
        let content = task_store::content(svc, &task).await?;
        let context = TaskContext {
            svc,
            task: &task,
            content: &content,
        };
        let specs = match kind.plan(&context, stage).await {
            Ok(specs) => specs,
            Err(err) if is_transient(&err) => return Err(err),
            Err(err) => {
                return fail(svc, &task, &err, Some(format!("planning stage {stage}"))).await;
            }
        };
        if specs.is_empty() {
            return begin_merge(svc, &task).await;
        }
        claim_stage(svc, &task, stage, &specs).await?;
    }
    let Some(task) = task_store::load(svc, task_id).await? else {
        return Ok(());
    };
    if task.task_status != TaskStatus::InProgress || task.stages_planned <= stage {
        return Ok(());
    }
    // Whoever records the stage as written queues it; a step that finds it written but
    // not queued (its writer stopped in between) queues it too.
    let queue = if stage_written(&task) <= stage {
        write_stage(svc, &task, stage).await?
    } else {
        true
    };
    if queue && task.stages_enqueued <= stage {
        enqueue(svc, &task, stage).await?;
    }
    Ok(())
}

/// Stages whose subtask items are all written. A task planned before plans were kept
/// (no plan key) wrote its items before claiming.
fn stage_written(task: &TaskRecord) -> u32 {
    if task.stage_plan_key.is_none() {
        task.stages_planned
    } else {
        task.stages_written
    }
}

/// Keeps the plan of `stage` in S3 and claims the stage with it: the task's counters move
/// to the stage only if no other planner claimed it first. A planner that lost leaves
/// nothing behind.
async fn claim_stage(
    svc: &Services,
    task: &TaskRecord,
    stage: u32,
    specs: &[Value],
) -> Result<(), ApiError> {
    let first = task.count_task_parts_all as u32 + 1;
    let key = blobs::stage_plan_key(task.task_id, stage, uuid::Uuid::new_v4());
    let body = serde_json::to_vec(specs).map_err(|e| ApiError::internal("stage plan", e))?;
    blobs::put(svc, &key, body, "application/json").await?;
    let values = HashMap::from([
        (":stage".to_string(), n(stage)),
        (":next".to_string(), n(stage + 1)),
        (":n".to_string(), n(specs.len())),
        (":zero".to_string(), n(0)),
        (":first".to_string(), n(first)),
        (":plan".to_string(), s(&key)),
    ]);
    let claimed = task_store::move_status(
        svc,
        task.task_id,
        status_move(
            TaskStatus::InProgress,
            "stages_planned = :next, stage_parts_all = :n, stage_parts_done = :zero, \
             stage_parts_failed = :zero, stage_first_subtask = :first, stage_plan_key = :plan, \
             count_task_parts_all = count_task_parts_all + :n",
            Some("stages_planned = :stage"),
            values,
        ),
    )
    .await?;
    if !claimed {
        blobs::delete(svc, &key).await?;
        return Ok(());
    }
    crate::fault::point("after_stage_claim").await;
    Ok(())
}

/// Writes the subtask items of the claimed plan of `stage` that are not there yet, then
/// records the stage as written; `true` when this call recorded it. Items go in
/// transactions of up to 100 puts, each only if absent; a transaction that meets an item
/// already written (a racing writer of the same plan) is redone one conditional put at a
/// time.
async fn write_stage(svc: &Services, task: &TaskRecord, stage: u32) -> Result<bool, ApiError> {
    let Some(key) = &task.stage_plan_key else {
        return Ok(true);
    };
    let body = blobs::get(svc, key)
        .await?
        .ok_or_else(|| ApiError::internal("stage plan", format!("{key} missing")))?;
    let specs: Vec<Value> =
        serde_json::from_slice(&body).map_err(|e| ApiError::internal("stage plan", e))?;
    let now = timestamps::format(timestamps::now());
    let first = task.stage_first_subtask;
    let mut items = Vec::with_capacity(specs.len());
    for (offset, spec) in specs.iter().enumerate() {
        let subtask_id = first + offset as u32;
        let mut record = SubtaskRecord::new(task.task_id, subtask_id, stage, &now);
        (record.content, record.content_key) = task_store::place_content(
            svc,
            spec,
            blobs::subtask_content_key(task.task_id, subtask_id),
            task_store::INLINE_CONTENT_MAX,
        )
        .await?;
        items.push(to_item(&record)?);
    }
    let table = svc.table.name();
    for chunk in items.chunks(TRANSACTION_MAX) {
        let puts = chunk
            .iter()
            .map(|item| put_new_op(table, item.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        match svc.table.transact(puts).await {
            Ok(()) => {}
            Err(TransactError::ConditionFailed) => {
                for item in chunk {
                    svc.table.put_if_absent(item.clone()).await?;
                }
            }
            Err(TransactError::Api(err)) => return Err(err),
        }
        crate::fault::point("inside_stage_write").await;
    }
    let values = HashMap::from([
        (":stage".to_string(), n(stage)),
        (":next".to_string(), n(stage + 1)),
    ]);
    let written = update_task(
        svc,
        task.task_id,
        "SET stages_written = :next",
        "attribute_not_exists(stages_written) OR stages_written <= :stage",
        values,
    )
    .await?;
    crate::fault::point("after_stage_written").await;
    Ok(written)
}

/// Sends a message for every subtask of `stage` still pending, then records the stage as
/// queued. Sending twice is harmless: a second delivery finds its subtask ended.
pub async fn enqueue(svc: &Services, task: &TaskRecord, stage: u32) -> Result<usize, ApiError> {
    let messages: Vec<WorkMessage> = task_store::subtask_records(svc, task.task_id)
        .await?
        .into_iter()
        .filter(|s| s.subtask.stage == stage && s.subtask.status == SubtaskStatus::Pending)
        .map(|s| WorkMessage {
            task_id: task.task_id,
            subtask_id: s.subtask.subtask_id,
            stage,
        })
        .collect();
    send_work(svc, &messages).await?;
    crate::fault::point("inside_enqueue").await;
    let values = HashMap::from([
        (":stage".to_string(), n(stage)),
        (":next".to_string(), n(stage + 1)),
    ]);
    update_task(
        svc,
        task.task_id,
        "SET stages_enqueued = :next",
        "stages_enqueued <= :stage",
        values,
    )
    .await?;
    Ok(messages.len())
}

/// Stage `stage` may have ended: fail the task if every subtask failed, otherwise plan
/// the next stage (which merges when there is none).
async fn advance(svc: &Services, task_id: u64, stage: u32) -> Result<(), ApiError> {
    let Some(task) = task_store::load(svc, task_id).await? else {
        return Ok(());
    };
    if task.task_status != TaskStatus::InProgress
        || task.current_stage() != Some(stage)
        || task.stage_parts_done < task.stage_parts_all
    {
        return Ok(());
    }
    if task.stage_parts_all > 0 && task.stage_parts_failed == task.stage_parts_all {
        let err = ApiError::new(
            crate::error::ErrorCode::SubtaskAttemptsExhausted,
            format!("Every subtask of stage {stage} of task '{task_id}' failed"),
        );
        return fail(svc, &task, &err, Some(format!("stage {stage}"))).await;
    }
    plan(svc, task_id, stage + 1).await
}

/// Moves the task to status 4 and merges; a racing worker that lost the move leaves the
/// merge to the winner.
async fn begin_merge(svc: &Services, task: &TaskRecord) -> Result<(), ApiError> {
    let moved = task_store::move_status(
        svc,
        task.task_id,
        status_move(TaskStatus::CollectResults, "", None, HashMap::new()),
    )
    .await?;
    if moved {
        merge(svc, task.task_id).await?;
    }
    Ok(())
}

/// Builds and stores the result of a task in status 4, then moves it to 5. If the task
/// was cancelled meanwhile the result is removed again: a cancelled task has none.
async fn merge(svc: &Services, task_id: u64) -> Result<(), ApiError> {
    let Some(task) = task_store::load(svc, task_id).await? else {
        return Ok(());
    };
    if task.task_status != TaskStatus::CollectResults {
        return Ok(());
    }
    let kind = kind_of(&task)?;
    let content = task_store::content(svc, &task).await?;
    let context = TaskContext {
        svc,
        task: &task,
        content: &content,
    };
    let result = match kind.merge(&context).await {
        Ok(result) => result,
        Err(err) if is_transient(&err) => return Err(err),
        Err(err) => return fail(svc, &task, &err, Some("merging results".into())).await,
    };
    let key = blobs::result_key(task_id);
    // A JSON result is stored in LUNA's envelope with the task's errors as they are now:
    // every subtask has ended, so a retried merge reads the same errors and writes the
    // same object. An archive the kind stored itself stays as it is.
    let errors = match result {
        Merged::Stored => Vec::new(),
        _ => task_api::task_errors(svc, task_id).await?,
    };
    if let Some(body) = result.into_envelope(&errors)? {
        blobs::put(svc, &key, body, "application/json").await?;
    }
    crate::fault::point("after_result_put").await;
    let now = timestamps::now();
    let mut values = HashMap::from([
        (":result".to_string(), s(&result_id(task_id).to_string())),
        // The end time and the expiry are counted from the same instant.
        (":status_now".to_string(), s(&timestamps::format(now))),
    ]);
    let mut also = "result_id = :result".to_string();
    // The expiry marker goes first: a crash after it leaves a marker the reconciler
    // handles like any other, never a result nobody will expire.
    let expiry = match task.result_storage_policy {
        Some(policy) => {
            let expire_time =
                timestamps::format(now + chrono::Duration::days(i64::from(policy.ttl)));
            task_store::remember_expiry(svc, task_id, &expire_time).await?;
            values.insert(":expire".to_string(), s(&expire_time));
            also.push_str(", result_expire_time = :expire");
            Some(expire_time)
        }
        None => None,
    };
    let finished = task_store::move_status(
        svc,
        task_id,
        status_move(TaskStatus::Done, &also, None, values),
    )
    .await?;
    if finished {
        crate::fault::point("after_done").await;
        task_store::forget_active(svc, task_id).await?;
        // The merge read them; a crash before this leaves them to the reconciler.
        remove_scratch(svc, task_id).await?;
    } else {
        // The move from 4 to 5 was lost: to a cancel, a failure or a delete (then no
        // result may stay), or to a duplicate merge of this task that finished first (a
        // re-sent or redelivered step) and stored the same result, which stays.
        let winner = task_store::load(svc, task_id).await?;
        let done = winner
            .as_ref()
            .is_some_and(|t| t.task_status == TaskStatus::Done);
        if !done {
            blobs::delete(svc, &key).await?;
        }
        let winner_expiry = winner.and_then(|t| t.result_expire_time);
        if let Some(expire_time) = expiry
            && !(done && winner_expiry.as_deref() == Some(expire_time.as_str()))
        {
            task_store::forget_expiry(svc, task_id, &expire_time).await?;
        }
    }
    Ok(())
}

/// Removes what a task kept only while it ran: the subtasks' parts for the merge and the
/// stage plans (its scratch objects).
pub async fn remove_scratch(svc: &Services, task_id: u64) -> Result<(), ApiError> {
    blobs::delete_prefix(svc, &blobs::task_scratch_prefix(task_id)).await?;
    Ok(())
}

/// Ends a task that has not ended in status 3 and records why, in one transaction: a
/// task that ended meanwhile gets neither.
pub async fn fail(
    svc: &Services,
    task: &TaskRecord,
    err: &ApiError,
    additional_info: Option<String>,
) -> Result<(), ApiError> {
    let record = task_store::new_error(svc, task, None, err, additional_info).await?;
    let change = status_move(TaskStatus::Failed, "", None, HashMap::new());
    let table = svc.table.name();
    let writes = vec![
        update_op(
            table,
            keys::task_pk(task.task_id),
            keys::TASK_SK.into(),
            &change.update,
            &format!("attribute_exists(pk) AND {}", change.condition),
            change.values,
        )?,
        put_new_op(table, to_item(&record)?)?,
    ];
    match svc.table.transact(writes).await {
        Ok(()) => tracing::warn!(task_id = task.task_id, error = %err, "task failed"),
        Err(TransactError::ConditionFailed) => tracing::info!(
            task_id = task.task_id,
            error = %err,
            "task had already ended or is gone: not failed again"
        ),
        Err(TransactError::Api(err)) => return Err(err),
    }
    task_store::forget_active(svc, task.task_id).await
}

/// The kind of a stored task; a task of a kind this build does not know cannot go on.
pub fn kind_of(task: &TaskRecord) -> Result<&'static dyn kinds::TaskKind, ApiError> {
    kinds::by_type(task.task_type).ok_or_else(|| {
        ApiError::internal(
            "task kind",
            format!("no kind for task type {:?}", task.task_type),
        )
    })
}
