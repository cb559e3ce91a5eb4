//! Reads and writes of task records shared by the API and the engine.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use super::model::{SubtaskRecord, TaskError, TaskErrorRecord, TaskRecord, TaskStatus};
use crate::Services;
use crate::error::ApiError;
use crate::store::dynamo::{TransactError, from_item, put_new_op, put_op, s, to_item};
use crate::store::{KeyRange, TableQuery, blobs, keys};
use crate::timestamps;

/// Contents up to this many bytes of JSON stay in their item; larger ones go to S3.
pub const INLINE_CONTENT_MAX: usize = 16 * 1024;
/// A task's content stays in the task item up to this many bytes. Every subtask's count
/// updates the task item, and DynamoDB bills an update by the item's whole size (1 KB
/// units): a 16 KB content would make each count cost 17 write units instead of 2.
pub const TASK_CONTENT_INLINE_MAX: usize = 1024;

/// The two listing entries of a task (its account's and every account's), as items.
pub fn listing_entries(
    task_id: u64,
    account_id: uuid::Uuid,
) -> Vec<HashMap<String, AttributeValue>> {
    listing_keys(task_id, account_id)
        .into_iter()
        .map(|(pk, sk)| {
            HashMap::from([
                ("pk".to_string(), s(&pk)),
                ("sk".to_string(), s(&sk)),
                ("task_id".to_string(), n(task_id)),
            ])
        })
        .collect()
}

/// The keys of the listing entries of a task.
pub fn listing_keys(task_id: u64, account_id: uuid::Uuid) -> Vec<(String, String)> {
    [Some(account_id), None]
        .into_iter()
        .map(|account| (keys::task_listing(account), keys::padded_id(task_id)))
        .collect()
}

/// Takes the next value of the counter `name` (`TASK`, `ERROR`): 1, 2, 3, ...
pub async fn next_id(svc: &Services, name: &str) -> Result<u64, ApiError> {
    let after = svc
        .table
        .update(
            keys::COUNTERS,
            name,
            "ADD #value :one",
            None,
            HashMap::from([(":one".to_string(), n(1))]),
        )
        .await?
        .unwrap_or_default();
    after
        .get("value")
        .and_then(|v| v.as_n().ok().and_then(|n| n.parse().ok()))
        .ok_or_else(|| ApiError::internal("counter", "no value returned"))
}

/// The stored task, if any (strongly consistent).
pub async fn load(svc: &Services, task_id: u64) -> Result<Option<TaskRecord>, ApiError> {
    svc.table
        .get(&keys::task_pk(task_id), keys::TASK_SK)
        .await?
        .map(from_item)
        .transpose()
}

/// The task's validated content, from its item or from S3.
pub async fn content(svc: &Services, task: &TaskRecord) -> Result<Value, ApiError> {
    read_content(svc, task.content.as_deref(), task.content_key.as_deref()).await
}

/// A subtask's content, from its item or from S3.
pub async fn subtask_content<T: DeserializeOwned>(
    svc: &Services,
    subtask: &SubtaskRecord,
) -> Result<T, ApiError> {
    let value = read_content(
        svc,
        subtask.content.as_deref(),
        subtask.content_key.as_deref(),
    )
    .await?;
    serde_json::from_value(value).map_err(|e| ApiError::internal("subtask content", e))
}

async fn read_content(
    svc: &Services,
    inline: Option<&str>,
    key: Option<&str>,
) -> Result<Value, ApiError> {
    let bytes = match (inline, key) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(key)) => blobs::get(svc, key)
            .await?
            .ok_or_else(|| ApiError::internal("content object", format!("{key} missing")))?,
        (None, None) => return Ok(Value::Null),
    };
    serde_json::from_slice(&bytes).map_err(|e| ApiError::internal("stored content", e))
}

/// Keeps `content` in the item when up to `inline_max` bytes, else writes it to `key` in S3; returns the
/// values for the item's `content` and `content_key`.
pub async fn place_content(
    svc: &Services,
    content: &Value,
    key: String,
    inline_max: usize,
) -> Result<(Option<String>, Option<String>), ApiError> {
    let text = content.to_string();
    if text.len() <= inline_max {
        return Ok((Some(text), None));
    }
    blobs::put(svc, &key, text.into_bytes(), "application/json").await?;
    Ok((None, Some(key)))
}

/// The output of a done subtask: from its item, or from S3 when it was too large.
pub async fn subtask_output<T: DeserializeOwned>(
    svc: &Services,
    record: &SubtaskRecord,
) -> Result<T, ApiError> {
    if let Some(text) = &record.output {
        return serde_json::from_str(text).map_err(|e| ApiError::internal("subtask output", e));
    }
    let subtask = &record.subtask;
    let key = subtask
        .result_key
        .clone()
        .unwrap_or_else(|| blobs::subtask_output_key(subtask.task_id, subtask.subtask_id));
    let bytes = blobs::get(svc, &key)
        .await?
        .ok_or_else(|| ApiError::internal("subtask output", format!("{key} missing")))?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::internal("subtask output", e))
}

/// Every subtask of a task, in id order (one query of the task's partition).
pub async fn subtask_records(svc: &Services, task_id: u64) -> Result<Vec<SubtaskRecord>, ApiError> {
    let query = TableQuery {
        index: None,
        partition: keys::task_pk(task_id),
        range: KeyRange::Prefix("SUB#".into()),
        descending: false,
    };
    let mut subtasks = Vec::new();
    svc.table
        .for_each_record(&query, |s: SubtaskRecord| {
            subtasks.push(s);
            ControlFlow::Continue(())
        })
        .await?;
    Ok(subtasks)
}

/// A new error record of `task` (its id taken from the counter), not yet written.
pub async fn new_error(
    svc: &Services,
    task: &TaskRecord,
    subtask_id: Option<u32>,
    err: &ApiError,
    additional_info: Option<String>,
) -> Result<TaskErrorRecord, ApiError> {
    let error_id = next_id(svc, "ERROR").await?;
    let body = err.body();
    let error = TaskError {
        error_id,
        task_id: task.task_id,
        subtask_id,
        error_code: body.error_code,
        link: body.link,
        description: body.desc,
        detail: body.detail,
        additional_info,
        error_time: timestamps::format(timestamps::now()),
    };
    Ok(TaskErrorRecord::new(task, err.status(), error))
}

/// One object a task could not process (a face or event not found, an image that could
/// not be read): recorded as a task error of its own, the object named in
/// `additional_info`, while the task goes on with the other objects.
#[derive(Debug, Clone)]
pub struct ObjectError {
    /// The subtask that met it; none when the plan or the merge did.
    pub subtask_id: Option<u32>,
    /// What went wrong with the object.
    pub error: ApiError,
    /// The object (its id, say), shown as the error's `additional_info`.
    pub additional_info: String,
}

/// Error records written at once by [`record_object_errors`]: each is one transaction of
/// two writes, its mark and itself.
const ERROR_WRITES_IN_FLIGHT: usize = 16;

/// Records one task error per object failure, each once: a step retried after a crash (or
/// delivered twice and run side by side) that records the same failures again leaves one
/// record per failure. A failure is the same when its subtask, error code and
/// `additional_info` are.
///
/// The task's error records are read first and the failures already recorded skipped.
/// The others are written each with a mark in the task's partition whose key derives from
/// the failure ([`keys::error_mark_sk`]), in one transaction that puts the mark only if
/// absent: of two writers racing past the read, one records the failure and the other's
/// transaction is refused. (Such a loser has taken an error id from the counter for
/// nothing: error ids may have gaps.) The marks go with the task when it is deleted.
pub async fn record_object_errors(
    svc: &Services,
    task: &TaskRecord,
    errors: Vec<ObjectError>,
) -> Result<(), ApiError> {
    use futures::stream::{self, StreamExt, TryStreamExt};

    if errors.is_empty() {
        return Ok(());
    }
    let mut recorded: HashSet<Uuid> = HashSet::new();
    let query = TableQuery {
        index: None,
        partition: keys::task_pk(task.task_id),
        range: KeyRange::Prefix("ERR#".into()),
        descending: false,
    };
    svc.table
        .for_each_record(&query, |e: TaskErrorRecord| {
            recorded.insert(error_mark(
                task.task_id,
                e.error.subtask_id,
                e.error.error_code,
                e.error.additional_info.as_deref().unwrap_or_default(),
            ));
            ControlFlow::Continue(())
        })
        .await?;
    let fresh: Vec<(Uuid, ObjectError)> = errors
        .into_iter()
        .filter_map(|e| {
            let mark = error_mark(
                task.task_id,
                e.subtask_id,
                e.error.body().error_code,
                &e.additional_info,
            );
            recorded.insert(mark).then_some((mark, e))
        })
        .collect();
    stream::iter(fresh)
        .map(|(mark, e)| record_once(svc, task, mark, e))
        .buffer_unordered(ERROR_WRITES_IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Writes the error record of one failure with its mark, unless the mark exists.
async fn record_once(
    svc: &Services,
    task: &TaskRecord,
    mark: Uuid,
    failure: ObjectError,
) -> Result<(), ApiError> {
    let record = new_error(
        svc,
        task,
        failure.subtask_id,
        &failure.error,
        Some(failure.additional_info),
    )
    .await?;
    let mark_item = HashMap::from([
        ("pk".to_string(), s(&keys::task_pk(task.task_id))),
        ("sk".to_string(), s(&keys::error_mark_sk(mark))),
        ("error_id".to_string(), n(record.error.error_id)),
    ]);
    let table = svc.table.name();
    let writes = vec![
        put_new_op(table, mark_item)?,
        put_op(table, to_item(&record)?)?,
    ];
    match svc.table.transact(writes).await {
        Ok(()) | Err(TransactError::ConditionFailed) => Ok(()),
        Err(TransactError::Api(err)) => Err(err),
    }
}

/// The identity of an object failure within its task: the same failure, the same mark.
fn error_mark(task_id: u64, subtask_id: Option<u32>, error_code: u32, info: &str) -> Uuid {
    let subtask = subtask_id.map_or_else(|| "-".to_string(), |id| id.to_string());
    let name = format!("task/{task_id}/error/{subtask}/{error_code}/{info}");
    Uuid::new_v5(&crate::engine::ID_NAMESPACE, name.as_bytes())
}

/// Values for a conditional update of the task item.
pub type Values = HashMap<String, AttributeValue>;

pub use crate::store::dynamo::n;

/// A status write: the expressions and values of an update that moves a task to a status
/// only from the statuses [`TaskStatus::sources`] allows, also applying `also` (more
/// `SET` clauses, comma-separated, or empty) when `also_if` (more condition) holds. The
/// move stamps `last_update_time`, and `end_time` when it ends the task.
#[derive(Debug, Clone)]
pub struct StatusMove {
    /// The update expression.
    pub update: String,
    /// The condition expression.
    pub condition: String,
    /// Its values (the caller's and the move's own `:status_*` ones).
    pub values: Values,
}

/// Builds the [`StatusMove`] to `to`.
pub fn status_move(
    to: TaskStatus,
    also: &str,
    also_if: Option<&str>,
    values: Values,
) -> StatusMove {
    let mut values = values;
    let now = timestamps::format(timestamps::now());
    values.insert(":status_to".into(), n(to as u8));
    // A caller that stamps other times with the same instant passes it as `:status_now`.
    values
        .entry(":status_now".into())
        .or_insert_with(|| s(&now));
    let mut update = "SET task_status = :status_to, last_update_time = :status_now".to_string();
    if to.is_final() {
        update.push_str(", end_time = :status_now");
    }
    if !also.is_empty() {
        update.push_str(", ");
        update.push_str(also);
    }
    let sources: Vec<String> = to
        .sources()
        .iter()
        .map(|from| {
            let name = format!(":status_from{}", *from as u8);
            values.insert(name.clone(), n(*from as u8));
            name
        })
        .collect();
    let mut condition = if sources.is_empty() {
        "attribute_not_exists(pk)".to_string()
    } else {
        format!("task_status IN ({})", sources.join(", "))
    };
    if let Some(more) = also_if {
        condition = format!("{condition} AND ({more})");
    }
    StatusMove {
        update,
        condition,
        values,
    }
}

/// Applies a [`StatusMove`] to the task; `false` when its condition did not hold.
pub async fn move_status(
    svc: &Services,
    task_id: u64,
    change: StatusMove,
) -> Result<bool, ApiError> {
    update_task(
        svc,
        task_id,
        &change.update,
        &change.condition,
        change.values,
    )
    .await
}

/// Applies `update` to the task item if `condition` holds; `Ok(false)` when it did not
/// (or the task is gone).
pub async fn update_task(
    svc: &Services,
    task_id: u64,
    update: &str,
    condition: &str,
    values: Values,
) -> Result<bool, ApiError> {
    Ok(
        update_task_returning(svc, task_id, update, condition, values)
            .await?
            .is_some(),
    )
}

/// [`update_task`], answering the task as the update left it.
pub async fn update_task_returning(
    svc: &Services,
    task_id: u64,
    update: &str,
    condition: &str,
    values: Values,
) -> Result<Option<TaskRecord>, ApiError> {
    svc.table
        .update(
            &keys::task_pk(task_id),
            keys::TASK_SK,
            update,
            Some(&format!("attribute_exists(pk) AND ({condition})")),
            values,
        )
        .await?
        .map(from_item)
        .transpose()
}

/// Records that the result of `task_id` expires at `expire_time`: a marker in the
/// result-expiry partition, which the reconciler reads by time (idempotent).
pub async fn remember_expiry(
    svc: &Services,
    task_id: u64,
    expire_time: &str,
) -> Result<(), ApiError> {
    remember_due(svc, keys::RESULT_EXPIRY, task_id, expire_time).await
}

/// Deletes the result-expiry marker of `task_id` (idempotent).
pub async fn forget_expiry(
    svc: &Services,
    task_id: u64,
    expire_time: &str,
) -> Result<(), ApiError> {
    forget_due(svc, keys::RESULT_EXPIRY, task_id, expire_time).await
}

/// Records that the S3 prefix of the deleted task `task_id` is to be deleted once more at
/// `due`: a worker still running a subtask of it when it was deleted may write there
/// after the first delete (idempotent).
pub async fn remember_sweep(svc: &Services, task_id: u64, due: &str) -> Result<(), ApiError> {
    remember_due(svc, keys::SWEEPS, task_id, due).await
}

/// Deletes the sweep marker of `task_id` due at `due` (idempotent).
pub async fn forget_sweep(svc: &Services, task_id: u64, due: &str) -> Result<(), ApiError> {
    forget_due(svc, keys::SWEEPS, task_id, due).await
}

/// A marker of `task_id` due at `due` in `partition`, sorted by time so that the markers
/// due by a time are one key range (the reconciler's `due_markers`).
async fn remember_due(
    svc: &Services,
    partition: &str,
    task_id: u64,
    due: &str,
) -> Result<(), ApiError> {
    let marker = HashMap::from([
        ("pk".to_string(), s(partition)),
        ("sk".to_string(), s(&keys::expiry_sk(due, task_id))),
        ("task_id".to_string(), n(task_id)),
        ("expire_time".to_string(), s(due)),
    ]);
    svc.table.batch_write(vec![marker], Vec::new()).await
}

async fn forget_due(
    svc: &Services,
    partition: &str,
    task_id: u64,
    due: &str,
) -> Result<(), ApiError> {
    let marker = (partition.to_string(), keys::expiry_sk(due, task_id));
    svc.table.batch_write(Vec::new(), vec![marker]).await
}

/// The ids of the tasks that have not ended (their markers in the active-task partition).
pub async fn active_task_ids(svc: &Services) -> Result<Vec<u64>, ApiError> {
    let mut ids = Vec::new();
    let query = TableQuery {
        index: None,
        partition: keys::ACTIVE_TASKS.into(),
        range: KeyRange::Prefix("TASK#".into()),
        descending: false,
    };
    svc.table
        .for_each(&query, |item| {
            if let Some(id) = item
                .get("task_id")
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<u64>().ok())
            {
                ids.push(id);
            }
            ControlFlow::Continue(())
        })
        .await?;
    Ok(ids)
}

/// Deletes the task's marker in the active-task partition (idempotent).
pub async fn forget_active(svc: &Services, task_id: u64) -> Result<(), ApiError> {
    svc.table
        .batch_write(
            Vec::new(),
            vec![(keys::ACTIVE_TASKS.to_string(), keys::active_sk(task_id))],
        )
        .await
}
