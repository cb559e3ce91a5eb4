//! Running one subtask: the part of the engine a worker calls for each work message.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, Utc};

use super::is_transient;
use super::messages::{ControlMessage, WorkMessage, send_control};
use crate::Services;
use crate::error::{ApiError, ErrorCode};
use crate::kinds::{CancelFlag, SubtaskContext};
use crate::store::dynamo::{from_item, s, to_item, unless_condition_failed};
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

/// Runs the subtask of `message`, delivered for the `attempt`-th time (from SQS's
/// receive count); on the last allowed attempt a passing failure becomes final.
pub async fn run(
    svc: &Services,
    message: &WorkMessage,
    attempt: u32,
    max_attempts: u32,
    cancel: &CancelFlag,
) -> Result<Outcome, ApiError> {
    let Some((task, subtask)) = load_pair(svc, message).await? else {
        return Ok(Outcome::Stale);
    };
    if subtask.subtask.status != SubtaskStatus::Pending {
        return Ok(Outcome::Duplicate);
    }
    if task.task_status == TaskStatus::Cancelled {
        return mark_cancelled(svc, &subtask).await;
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
            let key = blobs::subtask_output_key(task.task_id, subtask.subtask.subtask_id);
            let body = serde_json::to_vec(&output).map_err(|e| ApiError::internal("output", e))?;
            blobs::put(svc, &key, body, "application/json").await?;
            return finish(svc, &task, &subtask, attempt, start, Ok(key)).await;
        }
        Err(err) if err.code == ErrorCode::TaskCancelled => {
            return mark_cancelled(svc, &subtask).await;
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
        return mark_cancelled(svc, &subtask).await;
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

async fn load_pair(
    svc: &Services,
    message: &WorkMessage,
) -> Result<Option<(TaskRecord, SubtaskRecord)>, ApiError> {
    let pk = keys::task_pk(message.task_id);
    let sub_sk = keys::subtask_sk(message.subtask_id);
    let items = svc
        .table
        .batch_get(&[
            (pk.clone(), keys::TASK_SK.to_string()),
            (pk, sub_sk.clone()),
        ])
        .await?;
    let mut task = None;
    let mut subtask = None;
    for item in items {
        let is_task = item
            .get("sk")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
            == Some(keys::TASK_SK);
        if is_task {
            task = Some(from_item::<TaskRecord>(item)?);
        } else {
            subtask = Some(from_item::<SubtaskRecord>(item)?);
        }
    }
    Ok(task.zip(subtask))
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
    result: Result<String, ApiError>,
) -> Result<Outcome, ApiError> {
    let table = svc.table.name();
    let now = timestamps::format(timestamps::now());
    let failed = result.is_err();
    let (status, result_key) = match &result {
        Ok(key) => (SubtaskStatus::Done, s(key)),
        Err(_) => (SubtaskStatus::Failed, AttributeValue::Null(true)),
    };
    let ended = svc
        .table
        .client()
        .update_item()
        .table_name(table)
        .key("pk", s(&keys::task_pk(task.task_id)))
        .key("sk", s(&keys::subtask_sk(subtask.subtask.subtask_id)))
        .update_expression(
            "SET #status = :status, attempts = :attempts, start_time = :start, \
             end_time = :now, result_key = :key",
        )
        .condition_expression("#status = :pending")
        .expression_attribute_names("#status", "status")
        .set_expression_attribute_values(Some(HashMap::from([
            (":status".to_string(), n(status as u8)),
            (":pending".to_string(), n(SubtaskStatus::Pending as u8)),
            (":attempts".to_string(), n(attempt)),
            (":start".to_string(), s(&timestamps::format(start))),
            (":now".to_string(), s(&now)),
            (":key".to_string(), result_key),
        ])))
        .send()
        .await;
    if unless_condition_failed(ended, "dynamodb update_item subtask")?.is_none() {
        return Ok(Outcome::Duplicate);
    }
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
    let counted = svc
        .table
        .client()
        .update_item()
        .table_name(table)
        .key("pk", s(&keys::task_pk(task.task_id)))
        .key("sk", s(keys::TASK_SK))
        .update_expression(
            "ADD count_task_parts_done :one, stage_parts_done :one, stage_parts_failed :failed \
             SET last_update_time = :now",
        )
        .condition_expression("attribute_exists(pk) AND stages_planned = :planned")
        .set_expression_attribute_values(Some(HashMap::from([
            (":one".to_string(), n(1)),
            (":failed".to_string(), n(u8::from(failed))),
            (":planned".to_string(), n(subtask.subtask.stage + 1)),
            (":now".to_string(), s(&now)),
        ])))
        .return_values(ReturnValue::AllNew)
        .send()
        .await;
    let Some(counted) = unless_condition_failed(counted, "dynamodb update_item task")? else {
        // The task is gone: take back the output this attempt wrote.
        if let Ok(key) = &result {
            blobs::delete(svc, key).await?;
        }
        return Ok(Outcome::Stale);
    };
    let after: TaskRecord = from_item(counted.attributes.unwrap_or_default())?;
    if after.stage_parts_done >= after.stage_parts_all {
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

/// Marks a pending subtask of a cancelled task as cancelled.
async fn mark_cancelled(svc: &Services, subtask: &SubtaskRecord) -> Result<Outcome, ApiError> {
    let result = svc
        .table
        .client()
        .update_item()
        .table_name(svc.table.name())
        .key("pk", s(&keys::task_pk(subtask.subtask.task_id)))
        .key("sk", s(&keys::subtask_sk(subtask.subtask.subtask_id)))
        .update_expression("SET #status = :cancelled, end_time = :now")
        .condition_expression("#status = :pending")
        .expression_attribute_names("#status", "status")
        .expression_attribute_values(":cancelled", n(SubtaskStatus::Cancelled as u8))
        .expression_attribute_values(":pending", n(SubtaskStatus::Pending as u8))
        .expression_attribute_values(":now", s(&timestamps::format(timestamps::now())))
        .send()
        .await;
    Ok(
        match unless_condition_failed(result, "dynamodb update_item subtask")? {
            Some(_) => Outcome::Cancelled,
            None => Outcome::Duplicate,
        },
    )
}

/// Records a worker's heartbeat on a task and answers its status, so a running subtask
/// learns of a cancel within one heartbeat. `None` when the task is gone.
pub async fn heartbeat(svc: &Services, task_id: u64) -> Result<Option<TaskStatus>, ApiError> {
    let result = svc
        .table
        .client()
        .update_item()
        .table_name(svc.table.name())
        .key("pk", s(&keys::task_pk(task_id)))
        .key("sk", s(keys::TASK_SK))
        .update_expression("SET heartbeat_time = :now")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_values(":now", s(&timestamps::format(timestamps::now())))
        .return_values(ReturnValue::AllNew)
        .send()
        .await;
    unless_condition_failed(result, "dynamodb update_item task")?
        .map(|out| from_item::<TaskRecord>(out.attributes.unwrap_or_default()))
        .transpose()
        .map(|task| task.map(|t| t.task_status))
}
