//! Running one subtask: the part of the engine a worker calls for each work message.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use super::is_transient;
use super::messages::{ControlMessage, WorkMessage, send_control};
use crate::Services;
use crate::error::{ApiError, ErrorCode};
use crate::kinds::{CancelFlag, SubtaskContext};
use crate::store::dynamo::{from_item, s, to_item};
use crate::store::{blobs, keys};
use crate::tasks::model::{SubtaskRecord, SubtaskStatus, TaskRecord, TaskStatus};
use crate::tasks::store::{self as task_store, n};
use crate::timestamps;

/// What became of a work message; every outcome but `Retry` means "delete the message".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The subtask ran and its output is stored.
    Done,
    /// The subtask failed for good; an error record says why.
    Failed,
    /// The subtask had already ended (a duplicate or late delivery).
    Duplicate,
    /// The task was cancelled; the subtask did no (more) work.
    Cancelled,
    /// The task or subtask is gone, or the task has moved on.
    Stale,
    /// A dependency failed; let the message come back for another attempt.
    Retry(ApiError),
}

/// A task and one of its subtasks as read for a work message.
pub type Pair = (TaskRecord, SubtaskRecord);

/// Runs the subtask of `message`, delivered for the `attempt`-th time (from SQS's
/// receive count); on the last allowed attempt a passing failure becomes final.
/// `loaded` is the pair when the caller read it already (see [`load_pairs`]); it is read
/// here otherwise.
pub async fn run(
    svc: &Services,
    message: &WorkMessage,
    loaded: Option<Pair>,
    attempt: u32,
    max_attempts: u32,
    cancel: &CancelFlag,
) -> Result<Outcome, ApiError> {
    let loaded = match loaded {
        Some(pair) => Some(pair),
        None => load_pair(svc, message).await?,
    };
    let Some((task, subtask)) = loaded else {
        return Ok(Outcome::Stale);
    };
    if subtask.subtask.status != SubtaskStatus::Pending {
        return Ok(Outcome::Duplicate);
    }
    if task.task_status == TaskStatus::Cancelled {
        return mark_cancelled(svc, &task, &subtask).await;
    }
    if task.task_status != TaskStatus::InProgress
        || task.current_stage() != Some(subtask.subtask.stage)
    {
        return Ok(Outcome::Stale);
    }
    let kind = super::control::kind_of(&task)?;
    let task_content = task_store::content(svc, &task).await?;
    let content: serde_json::Value = task_store::subtask_content(svc, &subtask).await?;
    let start = timestamps::now();
    let context = SubtaskContext {
        svc,
        task: &task,
        task_content: &task_content,
        subtask: &subtask,
        content: &content,
        cancel,
    };
    let outcome = kind.execute(&context).await;
    let failure = match outcome {
        Ok(output) => {
            let text =
                serde_json::to_string(&output).map_err(|e| ApiError::internal("output", e))?;
            let stored = if text.len() <= INLINE_OUTPUT_MAX {
                Stored::Inline(text)
            } else {
                let key = blobs::subtask_output_key(task.task_id, subtask.subtask.subtask_id);
                blobs::put(svc, &key, text.into_bytes(), "application/json").await?;
                crate::fault::point("after_output_put").await;
                Stored::Blob(key)
            };
            return finish(svc, &task, &subtask, attempt, start, Ok(stored)).await;
        }
        Err(err) if err.code == ErrorCode::TaskCancelled => {
            return mark_cancelled(svc, &task, &subtask).await;
        }
        Err(err) if is_transient(&err) && attempt < max_attempts => {
            return Ok(Outcome::Retry(err));
        }
        Err(err) if is_transient(&err) => ApiError::new(
            ErrorCode::SubtaskAttemptsExhausted,
            format!(
                "Subtask {} of task '{}' failed {attempt} times; last error: {}",
                subtask.subtask.subtask_id, task.task_id, err.detail
            ),
        ),
        Err(err) => err,
    };
    finish(svc, &task, &subtask, attempt, start, Err(failure)).await
}

/// Fails a subtask whose message went to the dead-letter queue (a worker died on it, or
/// never managed to report it, on every attempt).
pub async fn fail_dead(
    svc: &Services,
    message: &WorkMessage,
    attempts: u32,
) -> Result<Outcome, ApiError> {
    let Some((task, subtask)) = load_pair(svc, message).await? else {
        return Ok(Outcome::Stale);
    };
    if subtask.subtask.status != SubtaskStatus::Pending {
        return Ok(Outcome::Duplicate);
    }
    if task.task_status == TaskStatus::Cancelled {
        return mark_cancelled(svc, &task, &subtask).await;
    }
    let err = ApiError::new(
        ErrorCode::SubtaskAttemptsExhausted,
        format!(
            "Subtask {} of task '{}' was delivered {attempts} times without ending",
            message.subtask_id, message.task_id
        ),
    );
    finish(svc, &task, &subtask, attempts, timestamps::now(), Err(err)).await
}

/// Outputs up to this size (JSON text) are kept in the subtask's item, larger ones in S3:
/// no S3 request per subtask for the usual small outputs, and the merge finds them in the
/// subtask records it reads anyway.
pub const INLINE_OUTPUT_MAX: usize = task_store::INLINE_CONTENT_MAX;

/// Where a done subtask's output went.
enum Stored {
    /// Into the subtask's item.
    Inline(String),
    /// Into S3 at this key.
    Blob(String),
}

async fn load_pair(svc: &Services, message: &WorkMessage) -> Result<Option<Pair>, ApiError> {
    Ok(load_pairs(svc, std::slice::from_ref(message))
        .await?
        .remove(&(message.task_id, message.subtask_id)))
}

/// The task and subtask of each message, in one strongly consistent BatchGetItem for a
/// received batch (each task read once); messages whose task or subtask is gone are absent.
pub async fn load_pairs(
    svc: &Services,
    messages: &[WorkMessage],
) -> Result<HashMap<(u64, u32), Pair>, ApiError> {
    let mut wanted: Vec<(String, String)> = Vec::with_capacity(messages.len() + 1);
    for m in messages {
        let task_key = (keys::task_pk(m.task_id), keys::TASK_SK.to_string());
        let sub_key = (keys::task_pk(m.task_id), keys::subtask_sk(m.subtask_id));
        for key in [task_key, sub_key] {
            if !wanted.contains(&key) {
                wanted.push(key);
            }
        }
    }
    let mut tasks: HashMap<u64, TaskRecord> = HashMap::new();
    let mut subtasks: Vec<SubtaskRecord> = Vec::new();
    for item in svc.table.batch_get(&wanted).await? {
        let is_task = item
            .get("sk")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
            == Some(keys::TASK_SK);
        if is_task {
            let task: TaskRecord = from_item(item)?;
            tasks.insert(task.task_id, task);
        } else {
            subtasks.push(from_item(item)?);
        }
    }
    Ok(subtasks
        .into_iter()
        .filter_map(|sub| {
            let task = tasks.get(&sub.subtask.task_id)?.clone();
            Some(((sub.subtask.task_id, sub.subtask.subtask_id), (task, sub)))
        })
        .collect())
}

/// Ends the subtask, then counts it on its task. The first write applies only while the
/// subtask is pending, so a second delivery can never count twice; the count is one
/// `ADD` whose answer tells whether this was the last subtask of the stage, and whoever
/// ends the last one asks the control queue to advance the task. (A crash between the two
/// writes leaves an ended subtask uncounted; the reconciler recounts such stages.)
async fn finish(
    svc: &Services,
    task: &TaskRecord,
    subtask: &SubtaskRecord,
    attempt: u32,
    start: DateTime<Utc>,
    result: Result<Stored, ApiError>,
) -> Result<Outcome, ApiError> {
    let now = timestamps::format(timestamps::now());
    let failed = result.is_err();
    let null = || AttributeValue::Null(true);
    let (status, result_key, output) = match &result {
        Ok(Stored::Inline(text)) => (SubtaskStatus::Done, null(), s(text)),
        Ok(Stored::Blob(key)) => (SubtaskStatus::Done, s(key), null()),
        Err(_) => (SubtaskStatus::Failed, null(), null()),
    };
    let ended = svc
        .table
        .update(
            &keys::task_pk(task.task_id),
            &keys::subtask_sk(subtask.subtask.subtask_id),
            "SET #status = :status, attempts = :attempts, start_time = :start, \
             end_time = :now, result_key = :key, #output = :output",
            Some("#status = :pending"),
            HashMap::from([
                (":output".to_string(), output),
                (":status".to_string(), n(status as u8)),
                (":pending".to_string(), n(SubtaskStatus::Pending as u8)),
                (":attempts".to_string(), n(attempt)),
                (":start".to_string(), s(&timestamps::format(start))),
                (":now".to_string(), s(&now)),
                (":key".to_string(), result_key),
            ]),
        )
        .await?;
    if ended.is_none() {
        // Ended already (a duplicate delivery: its output is the one recorded, under the
        // same key), or deleted with its task: then this attempt's output goes too.
        if let Ok(Stored::Blob(key)) = &result
            && task_store::load(svc, task.task_id).await?.is_none()
        {
            blobs::delete(svc, key).await?;
        }
        return Ok(Outcome::Duplicate);
    }
    crate::fault::point("after_subtask_end").await;
    if let Err(err) = &result {
        tracing::warn!(
            task_id = task.task_id,
            subtask_id = subtask.subtask.subtask_id,
            error = %err,
            "subtask failed"
        );
        let record = task_store::new_error(
            svc,
            task,
            Some(subtask.subtask.subtask_id),
            err,
            Some(format!("stage {}", subtask.subtask.stage)),
        )
        .await?;
        svc.table
            .batch_write(vec![to_item(&record)?], Vec::new())
            .await?;
    }
    let counted = task_store::update_task_returning(
        svc,
        task.task_id,
        "ADD count_task_parts_done :one, stage_parts_done :one, stage_parts_failed :failed \
         SET last_update_time = :now",
        &format!(
            "stages_planned = :planned AND {}",
            epoch_condition(task.count_epoch)
        ),
        HashMap::from([
            (":epoch".to_string(), n(task.count_epoch)),
            (":one".to_string(), n(1)),
            (":failed".to_string(), n(u8::from(failed))),
            (":planned".to_string(), n(subtask.subtask.stage + 1)),
            (":now".to_string(), s(&now)),
        ]),
    )
    .await?;
    let Some(after) = counted else {
        // Not counted: the task is gone (then the output this attempt wrote to S3 goes
        // too), or the reconciler recounted the stage from the subtask records after this
        // subtask ended (a new count epoch): it is counted there, and its output stays.
        if task_store::load(svc, task.task_id).await?.is_none()
            && let Ok(Stored::Blob(key)) = &result
        {
            blobs::delete(svc, key).await?;
        }
        return Ok(Outcome::Stale);
    };
    crate::fault::point("after_count").await;
    if after.stage_parts_done >= after.stage_parts_all {
        crate::fault::point("before_advance_send").await;
        send_control(
            svc,
            &ControlMessage::Advance {
                task_id: task.task_id,
                stage: subtask.subtask.stage,
            },
        )
        .await?;
    }
    Ok(if failed {
        Outcome::Failed
    } else {
        Outcome::Done
    })
}

/// The condition that a task's count epoch is still `epoch` (`:epoch`); tasks stored before
/// epochs existed have none, which counts as 0. The reconciler moves the epoch when it
/// recounts a stage, so a count sent by a worker that read the task before the recount
/// (and whose subtask the recount included) is refused instead of counted twice.
pub fn epoch_condition(epoch: u32) -> &'static str {
    if epoch == 0 {
        "(attribute_not_exists(count_epoch) OR count_epoch = :epoch)"
    } else {
        "count_epoch = :epoch"
    }
}

/// Marks a pending subtask of a cancelled task as cancelled. A subtask dropped unstarted
/// ends when its task was cancelled (the task's end time), which is what the subtask
/// listing shows for it until this write (`tasks::api::as_listed`); one stopped while
/// running (its task read before the cancel) ends now.
async fn mark_cancelled(
    svc: &Services,
    task: &TaskRecord,
    subtask: &SubtaskRecord,
) -> Result<Outcome, ApiError> {
    let ended = match (&task.end_time, task.task_status) {
        (Some(end_time), TaskStatus::Cancelled) => end_time.clone(),
        _ => timestamps::format(timestamps::now()),
    };
    let cancelled = svc
        .table
        .update(
            &keys::task_pk(subtask.subtask.task_id),
            &keys::subtask_sk(subtask.subtask.subtask_id),
            "SET #status = :cancelled, end_time = :now",
            Some("#status = :pending"),
            HashMap::from([
                (":cancelled".to_string(), n(SubtaskStatus::Cancelled as u8)),
                (":pending".to_string(), n(SubtaskStatus::Pending as u8)),
                (":now".to_string(), s(&ended)),
            ]),
        )
        .await?;
    Ok(match cancelled {
        Some(_) => Outcome::Cancelled,
        None => Outcome::Duplicate,
    })
}

/// Records a worker's heartbeat on a task and answers its status, so a running subtask
/// learns of a cancel within one heartbeat. `None` when the task is gone.
pub async fn heartbeat(svc: &Services, task_id: u64) -> Result<Option<TaskStatus>, ApiError> {
    let after = task_store::update_task_returning(
        svc,
        task_id,
        "SET heartbeat_time = :now",
        "attribute_exists(pk)",
        HashMap::from([(
            ":now".to_string(),
            s(&timestamps::format(timestamps::now())),
        )]),
    )
    .await?;
    Ok(after.map(|task| task.task_status))
}
