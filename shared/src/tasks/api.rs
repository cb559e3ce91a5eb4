//! The LUNA Tasks routes over the task records: create, read, count, cancel, delete,
//! result, subtasks, errors.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::model::{
    ResultStoragePolicy, Subtask, SubtaskPage, SubtaskRecord, SubtaskStatus, Task, TaskCreated,
    TaskError, TaskErrorPage, TaskErrorRecord, TaskPage, TaskRecord, TaskStatus, TaskType,
};
use super::store::{self as task_store, n};
use crate::Services;
use crate::engine::messages::{ControlMessage, send_control};
use crate::error::{ApiError, ErrorCode};
use crate::kinds::TaskKind;
use crate::objects::{Count, USER_DATA_MAX, check_text};
use crate::query::{MAX_IDS_IN_FILTER, PAGE_SIZE_MAX, Page, PageBuffer, Query, TimeRange};
use crate::store::dynamo::{from_item, put_new_op, s, to_item};
use crate::store::{KeyRange, TableQuery, blobs, keys};
use crate::timestamps;

/// JSON results larger than this are answered with a redirect to S3 (a Lambda answer is
/// at most 6 MB).
pub const INLINE_RESULT_MAX: u64 = 5 * 1024 * 1024;
/// Archives larger than this are answered with a redirect: a binary answer travels
/// base64-encoded, 4/3 of its size.
pub const INLINE_ARCHIVE_MAX: u64 = 4 * 1024 * 1024;
/// Content type of archive results.
pub const ZIP: &str = "application/zip";
/// Lifetime of a presigned result URL.
pub const RESULT_URL_LIFETIME: Duration = Duration::from_secs(3600);

/// Body of `POST /1/tasks/<kind>`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    /// Owner of the task and of every object it touches.
    pub account_id: Uuid,
    /// Client's text, at most 128 characters.
    pub description: Option<String>,
    /// What to do; its shape depends on the kind.
    #[schema(value_type = Object)]
    pub content: Value,
    /// How long the result is kept (`{"ttl": days}`); kept until deleted without it.
    pub result_storage_policy: Option<ResultStoragePolicy>,
}

/// Validates and stores a task of `kind` as pending, and asks a worker to plan it.
pub async fn create(
    svc: &Services,
    kind: &dyn TaskKind,
    new: NewTask,
) -> Result<TaskCreated, ApiError> {
    check_text("description", new.description.as_deref(), USER_DATA_MAX)?;
    if let Some(policy) = new.result_storage_policy
        && !(1..=ResultStoragePolicy::TTL_MAX_DAYS).contains(&policy.ttl)
    {
        return Err(ApiError::bad_json(format!(
            "result_storage_policy: 'ttl' must be 1 to {} days, not {}",
            ResultStoragePolicy::TTL_MAX_DAYS,
            policy.ttl
        )));
    }
    let now = timestamps::now();
    let content = kind.validate(svc, new.account_id, new.content, now).await?;
    let task_id = task_store::next_id(svc, "TASK").await?;
    let now_text = timestamps::format(now);
    let mut record = TaskRecord::new(
        task_id,
        kind.task_type(),
        new.account_id,
        new.description.unwrap_or_default(),
        &now_text,
    );
    record.result_storage_policy = new.result_storage_policy;
    (record.content, record.content_key) = task_store::place_content(
        svc,
        &content,
        blobs::task_content_key(task_id),
        task_store::TASK_CONTENT_INLINE_MAX,
    )
    .await?;
    let marker = HashMap::from([
        ("pk".to_string(), s(keys::ACTIVE_TASKS)),
        ("sk".to_string(), s(&keys::active_sk(task_id))),
        ("task_id".to_string(), n(task_id)),
    ]);
    let table = svc.table.name();
    let mut writes = vec![
        put_new_op(table, to_item(&record)?)?,
        put_new_op(table, marker)?,
    ];
    for entry in task_store::listing_entries(task_id, new.account_id) {
        writes.push(put_new_op(table, entry)?);
    }
    svc.table.transact(writes).await.map_err(|e| match e {
        crate::store::dynamo::TransactError::Api(err) => err,
        crate::store::dynamo::TransactError::ConditionFailed => {
            ApiError::internal("task create", format!("task id {task_id} taken"))
        }
    })?;
    // The task is stored: if this send is lost, the reconciler sends it again.
    if let Err(err) = send_control(svc, &ControlMessage::Plan { task_id, stage: 0 }).await {
        tracing::error!(task_id, %err, "plan message not sent; the reconciler will");
    }
    Ok(TaskCreated { task_id })
}

/// The task if it exists and, when `account_id` is given, belongs to it.
pub async fn record(
    svc: &Services,
    account_id: Option<Uuid>,
    task_id: u64,
) -> Result<TaskRecord, ApiError> {
    match task_store::load(svc, task_id).await? {
        Some(task) if account_id.is_none_or(|a| a == task.account_id) => Ok(task),
        _ => Err(ApiError::task_not_found(task_id)),
    }
}

/// One task.
pub async fn get(svc: &Services, account_id: Option<Uuid>, task_id: u64) -> Result<Task, ApiError> {
    let task = record(svc, account_id, task_id).await?;
    let content = task_store::content(svc, &task).await?;
    Ok(task.view(content))
}

/// Cancels a task that has not ended. Immediate for the API: the status is 2 at once and
/// no result will appear; workers stop its subtasks at their next check. Cancelling a
/// cancelled task again is accepted; a done or failed task cannot be cancelled.
pub async fn cancel(
    svc: &Services,
    account_id: Option<Uuid>,
    task_id: u64,
) -> Result<(), ApiError> {
    let task = record(svc, account_id, task_id).await?;
    match task.task_status {
        TaskStatus::Cancelled => return Ok(()),
        TaskStatus::Done | TaskStatus::Failed => {
            return Err(ApiError::new(
                ErrorCode::TaskNotCancellable,
                format!(
                    "Task '{task_id}' with status {} cannot be cancelled",
                    u8::from(task.task_status)
                ),
            ));
        }
        _ => {}
    }
    let cancelled = task_store::move_status(
        svc,
        task_id,
        task_store::status_move(TaskStatus::Cancelled, "", None, HashMap::new()),
    )
    .await?;
    if !cancelled {
        // It ended between the read and the write: answer as for its new status.
        return Box::pin(cancel(svc, account_id, task_id)).await;
    }
    task_store::forget_active(svc, task_id).await
}

/// How long after a delete the deleted task's S3 prefix is deleted once more: longer than
/// any step or subtask attempt runs on without learning that its task is gone (a worker's
/// heartbeat tells it within a third of its lease; a control step is bounded by the
/// control function's 15-minute timeout).
pub const SWEEP_DELAY: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Deletes a task: cancels it if it runs, then removes its records and every object
/// under its S3 prefix, and leaves a marker for the reconciler to delete the prefix once
/// more after [`SWEEP_DELAY`], so that whatever was still running leaves nothing.
pub async fn delete(
    svc: &Services,
    account_id: Option<Uuid>,
    task_id: u64,
) -> Result<(), ApiError> {
    let task = record(svc, account_id, task_id).await?;
    // First the promise to delete the task's objects once more later: a subtask running
    // now may still write some after the delete below (the reconciler keeps it).
    let due = timestamps::now() + chrono::Duration::from_std(SWEEP_DELAY).unwrap_or_default();
    task_store::remember_sweep(svc, task_id, &timestamps::format(due)).await?;
    if !task.task_status.is_final() {
        let _ = cancel(svc, account_id, task_id).await;
    }
    let mut doomed = Vec::new();
    let query = TableQuery {
        index: None,
        partition: keys::task_pk(task_id),
        range: KeyRange::All,
        descending: false,
    };
    svc.table
        .for_each(&query, |item| {
            if let (Some(pk), Some(sk)) = (item.get("pk"), item.get("sk"))
                && let (Ok(pk), Ok(sk)) = (pk.as_s(), sk.as_s())
            {
                doomed.push((pk.clone(), sk.clone()));
            }
            ControlFlow::Continue(())
        })
        .await?;
    // The task item last, so a retried delete still finds the task.
    let (task_item, others): (Vec<_>, Vec<_>) =
        doomed.into_iter().partition(|(_, sk)| sk == keys::TASK_SK);
    svc.table.batch_write(Vec::new(), others).await?;
    blobs::delete_prefix(svc, &blobs::task_prefix(task_id)).await?;
    svc.table
        .batch_write(
            Vec::new(),
            task_store::listing_keys(task_id, task.account_id),
        )
        .await?;
    if let Some(expire_time) = &task.result_expire_time {
        task_store::forget_expiry(svc, task_id, expire_time).await?;
    }
    svc.table.batch_write(Vec::new(), task_item).await?;
    task_store::forget_active(svc, task_id).await
}

/// A task result as the API answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskResult {
    /// The result itself, with its content type (JSON, or a zip archive).
    Body {
        /// The stored bytes.
        bytes: Vec<u8>,
        /// `application/json` or `application/zip`.
        content_type: String,
    },
    /// Too large to answer directly, or a range was asked: a presigned S3 URL (which
    /// answers range requests itself).
    Redirect(String),
}

/// A JSON task result, as stored and answered (LUNA's sample of
/// `GET /1/tasks/{task_id}/result`); archives are answered as files.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ResultEnvelope {
    /// What the task's kind built (its fields per kind: README, "Task kinds").
    #[schema(value_type = Object)]
    pub result: Value,
    /// The task's errors when the result was written, newest first, as
    /// `GET /1/tasks/{task_id}/errors` shows them (every subtask had ended by then).
    pub errors: Vec<TaskError>,
}

impl TaskResult {
    /// The `Content-Disposition` of an archive result: `attachment; filename=task_<id>.zip`.
    pub fn attachment(task_id: u64) -> String {
        format!("attachment; filename=task_{task_id}.zip")
    }
}

/// The result of a done task of `account_id`: inline when small enough for a Lambda
/// answer, otherwise (or when `ranged`, the client asking for part of it) a redirect to a
/// presigned URL. An expired result, or one removed, is 28017.
pub async fn result(
    svc: &Services,
    account_id: Option<Uuid>,
    task_id: u64,
    ranged: bool,
) -> Result<TaskResult, ApiError> {
    let task = record(svc, account_id, task_id).await?;
    match task.task_status {
        TaskStatus::Done => {}
        TaskStatus::Cancelled => {
            return Err(ApiError::new(
                ErrorCode::TaskCancelled,
                format!("Task '{task_id}' has been cancelled"),
            ));
        }
        TaskStatus::Failed => {
            return Err(ApiError::new(
                ErrorCode::TaskResultImpossible,
                format!(
                    "Impossible get a result of task {task_id} with status {}",
                    u8::from(task.task_status)
                ),
            ));
        }
        _ => {
            return Err(ApiError::new(
                ErrorCode::TaskResultNotReady,
                format!("Task '{task_id}' does not have result yet"),
            ));
        }
    }
    let not_found = || {
        ApiError::new(
            ErrorCode::TaskResultNotFound,
            format!("Result of the task '{task_id}' not found"),
        )
    };
    if !task.result_kept(timestamps::now()) {
        return Err(not_found());
    }
    let key = blobs::result_key(task_id);
    let head = blobs::head(svc, &key).await?.ok_or_else(not_found)?;
    let archive = head.content_type == ZIP;
    let limit = if archive {
        INLINE_ARCHIVE_MAX
    } else {
        INLINE_RESULT_MAX
    };
    if ranged || head.size > limit {
        let disposition = archive.then(|| TaskResult::attachment(task_id));
        let url = blobs::presigned_get(svc, &key, RESULT_URL_LIFETIME, disposition).await?;
        return Ok(TaskResult::Redirect(url));
    }
    let mut bytes = blobs::get(svc, &key).await?.ok_or_else(not_found)?;
    if task.task_type == TaskType::VideoAnalysis {
        // A video analysis stores the plain result its own route's `result_url` gives;
        // here it comes in the envelope every task result has.
        let result: Value =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::internal("video result", e))?;
        let errors = task_errors(svc, task_id).await?;
        bytes = serde_json::to_vec(&ResultEnvelope { result, errors })
            .map_err(|e| ApiError::internal("video result", e))?;
    }
    Ok(TaskResult::Body {
        bytes,
        content_type: head.content_type,
    })
}

/// Query parameters of `GET /1/tasks/{task_id}/subtasks`.
pub const SUBTASK_LIST_PARAMS: &[&str] = &["account_id", "page", "page_size"];

/// `page_size` of `GET /1/tasks/{task_id}/subtasks` unless given: LUNA's route has no
/// paging, so a client that does not page gets as many subtasks as a page may hold.
pub const SUBTASK_PAGE_SIZE_DEFAULT: u32 = PAGE_SIZE_MAX;

/// One page of the subtasks of a task, in id order. The task's partition is read only
/// up to the end of the page. A subtask of a cancelled task that has not ended is shown
/// as cancelled (see [`as_listed`]).
pub async fn subtasks(
    svc: &Services,
    account_id: Option<Uuid>,
    task_id: u64,
    page: Page,
) -> Result<SubtaskPage, ApiError> {
    let task = record(svc, account_id, task_id).await?;
    let query = TableQuery {
        index: None,
        partition: keys::task_pk(task_id),
        range: KeyRange::Prefix("SUB#".into()),
        descending: false,
    };
    let mut buffer = PageBuffer::new(page);
    svc.table
        .for_each_record(&query, |s: SubtaskRecord| {
            buffer.offer(as_listed(&task, s.subtask))
        })
        .await?;
    Ok(SubtaskPage {
        subtasks: buffer.into_items(),
    })
}

/// A subtask as the listing shows it: one still pending in a cancelled task is shown
/// cancelled, ended when its task was.
///
/// Why the listing and not the cancel: a cancel writes one item, the task's status, so
/// `PATCH` answers at once whatever the task's size. Marking every subtask there would be
/// up to 100,000 conditional writes in the API Lambda (minutes, and a burst of write
/// capacity) for subtasks that will never run anyway. Instead the worker that receives a
/// subtask's message for a cancelled task marks it cancelled (`engine::work`, with the
/// task's end time, so the record then says what the listing said), and until then —
/// for ever for a subtask whose message was never sent, as the planner stops queueing a
/// cancelled task — the listing shows it so: a worker checks the task's status before it
/// starts a subtask, so a pending one of a cancelled task does not start. (One started
/// just before the cancel, or on a read of the task from just before it, learns of the
/// cancel at its next heartbeat and stops at its kind's next check; if it ends first,
/// done or failed, its record shows that.)
///
/// A done subtask shows the `result_id` of its output (derived from its ids, see
/// [`crate::engine::subtask_result_id`]); any other shows null.
pub fn as_listed(task: &TaskRecord, mut subtask: Subtask) -> Subtask {
    if task.task_status == TaskStatus::Cancelled && subtask.status == SubtaskStatus::Pending {
        subtask.status = SubtaskStatus::Cancelled;
        if subtask.end_time.is_none() {
            subtask.end_time.clone_from(&task.end_time);
        }
    }
    subtask.result_id = (subtask.status == SubtaskStatus::Done)
        .then(|| crate::engine::subtask_result_id(subtask.task_id, subtask.subtask_id));
    subtask
}

/// Filters of `GET /1/tasks` and `GET /1/tasks/count`.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// Only tasks of this account.
    pub account_id: Option<Uuid>,
    /// Only these tasks.
    pub task_ids: Option<Vec<u64>>,
    /// Only tasks of this type.
    pub task_type: Option<TaskType>,
    /// Only tasks with this status.
    pub task_status: Option<TaskStatus>,
    /// Only the task with this result.
    pub result_id: Option<Uuid>,
    /// Creation time range.
    pub create_time: TimeRange,
    /// End time range (tasks that have not ended never match a bound).
    pub end_time: TimeRange,
}

/// Query parameters `GET /1/tasks/count` knows.
pub const TASK_COUNT_PARAMS: &[&str] = &[
    "account_id",
    "task_ids",
    "task_type",
    "task_status",
    "result_id",
    "create_time__gte",
    "create_time__lt",
    "end_time__gte",
    "end_time__lt",
];
/// Query parameters `GET /1/tasks` knows.
pub const TASK_LIST_PARAMS: &[&str] = &[
    "account_id",
    "task_ids",
    "task_type",
    "task_status",
    "result_id",
    "create_time__gte",
    "create_time__lt",
    "end_time__gte",
    "end_time__lt",
    "page",
    "page_size",
];
/// Query parameter of the routes about one task.
pub const ACCOUNT_PARAM: &[&str] = &["account_id"];

/// The `task_type` filter: a LUNA type (0 to 9) or a video analysis (20).
fn task_type_param(query: &Query) -> Result<Option<TaskType>, ApiError> {
    let max = TaskType::ALL.iter().map(|t| *t as u8).max().unwrap_or(0);
    query
        .int("task_type", 0u8, max)?
        .map(|t| {
            TaskType::try_from(t).map_err(|_| {
                ApiError::bad_query(
                    "task_type",
                    format!("{t} is not a task type (0 to 9, or 20)"),
                )
            })
        })
        .transpose()
}

impl TaskFilter {
    /// Reads the filter from a query string.
    pub fn from_query(query: &Query) -> Result<TaskFilter, ApiError> {
        Ok(TaskFilter {
            account_id: query.uuid("account_id")?,
            task_ids: int_list(query, "task_ids")?,
            task_type: task_type_param(query)?,
            task_status: query
                .int("task_status", 0u8, 5)?
                .map(|t| TaskStatus::try_from(t).expect("0..=5 are task statuses")),
            result_id: query.uuid("result_id")?,
            create_time: query.time_range("create_time")?,
            end_time: query.time_range("end_time")?,
        })
    }

    fn matches(&self, task: &TaskRecord) -> bool {
        let bounded = self.end_time.gte.is_some() || self.end_time.lt.is_some();
        self.account_id.is_none_or(|a| a == task.account_id)
            && self
                .task_ids
                .as_ref()
                .is_none_or(|ids| ids.contains(&task.task_id))
            && self.task_type.is_none_or(|t| t == task.task_type)
            && self.task_status.is_none_or(|s| s == task.task_status)
            && self.result_id.is_none_or(|r| task.result_id == Some(r))
            && timestamps::parse(&task.create_time).is_some_and(|t| self.create_time.contains(t))
            && (!bounded
                || task
                    .end_time
                    .as_deref()
                    .and_then(timestamps::parse)
                    .is_some_and(|t| self.end_time.contains(t)))
    }
}

/// A comma-separated list of positive integers (at most [`MAX_IDS_IN_FILTER`]).
fn int_list(query: &Query, name: &str) -> Result<Option<Vec<u64>>, ApiError> {
    query
        .string_list(name)?
        .map(|items| {
            items
                .iter()
                .map(|raw| {
                    raw.parse::<u64>()
                        .ok()
                        .filter(|id| *id >= 1)
                        .ok_or_else(|| {
                            ApiError::bad_query(name, format!("'{raw}' is not an id ≥ 1"))
                        })
                })
                .collect()
        })
        .transpose()
}

/// Hands every task matching `filter` to `visit`, newest first. Reads the given ids, or
/// the account's index partition, or the partition of every task.
async fn visit_tasks(
    svc: &Services,
    filter: &TaskFilter,
    mut visit: impl FnMut(TaskRecord) -> ControlFlow<()>,
) -> Result<(), ApiError> {
    if let Some(ids) = &filter.task_ids {
        let mut ids = ids.clone();
        ids.sort_unstable_by_key(|id| std::cmp::Reverse(*id));
        ids.dedup();
        for task in newest_by_id(svc, &ids).await? {
            if filter.matches(&task) && visit(task).is_break() {
                break;
            }
        }
        return Ok(());
    }
    // The listing entries newest first, a page at a time, each page's tasks read in one
    // batch and filtered here.
    let query = TableQuery {
        index: None,
        partition: keys::task_listing(filter.account_id),
        range: KeyRange::All,
        descending: true,
    };
    let mut start = None;
    loop {
        let (entries, next) = svc.table.query_page(&query, LISTING_PAGE, start).await?;
        let ids: Vec<u64> = entries
            .iter()
            .filter_map(|entry| entry.get("task_id").and_then(|v| v.as_n().ok()))
            .filter_map(|id| id.parse::<u64>().ok())
            .collect();
        for task in newest_by_id(svc, &ids).await? {
            if filter.matches(&task) && visit(task).is_break() {
                return Ok(());
            }
        }
        match next {
            Some(key) => start = Some(key),
            None => return Ok(()),
        }
    }
}

/// The stored tasks of `ids` (missing ones left out), newest first.
async fn newest_by_id(svc: &Services, ids: &[u64]) -> Result<Vec<TaskRecord>, ApiError> {
    let keys: Vec<(String, String)> = ids
        .iter()
        .map(|&id| (keys::task_pk(id), keys::TASK_SK.to_string()))
        .collect();
    let mut tasks: Vec<TaskRecord> = svc
        .table
        .batch_get(&keys)
        .await?
        .into_iter()
        .map(from_item)
        .collect::<Result<_, _>>()?;
    tasks.sort_unstable_by_key(|t| std::cmp::Reverse(t.task_id));
    Ok(tasks)
}

/// Listing entries read per page (one `BatchGetItem` of their tasks each).
const LISTING_PAGE: i32 = 100;

/// The index partition listing records of one kind newest first: the account's (gsi1)
/// when an account is given, every account's (gsi2) otherwise.
fn newest_first(account_id: Option<Uuid>, kind: &str, all: &str) -> TableQuery {
    let (index, partition) = match account_id {
        Some(account_id) => (keys::GSI1, keys::account_partition(account_id, kind)),
        None => (keys::GSI2, all.to_string()),
    };
    TableQuery {
        index: Some(index),
        partition,
        range: KeyRange::All,
        descending: true,
    }
}

/// One page of the tasks matching `filter`, newest first, each with its content only
/// when small (see [`TaskRecord::listed_content`]).
pub async fn list(svc: &Services, filter: &TaskFilter, page: Page) -> Result<TaskPage, ApiError> {
    let mut buffer = PageBuffer::new(page);
    visit_tasks(svc, filter, |task| buffer.offer(task)).await?;
    let tasks = buffer
        .into_items()
        .into_iter()
        .map(|task| task.view(task.listed_content()))
        .collect();
    Ok(TaskPage { tasks })
}

/// Number of tasks matching `filter`.
pub async fn count(svc: &Services, filter: &TaskFilter) -> Result<Count, ApiError> {
    let mut count = 0;
    visit_tasks(svc, filter, |_| {
        count += 1;
        ControlFlow::Continue(())
    })
    .await?;
    Ok(Count { count })
}

/// Filters of the error listings and counts.
#[derive(Debug, Clone, Default)]
pub struct ErrorFilter {
    /// Only errors of this account.
    pub account_id: Option<Uuid>,
    /// Only errors of these tasks.
    pub task_ids: Option<Vec<u64>>,
    /// Only these errors.
    pub error_ids: Option<Vec<u64>>,
    /// Only errors with this code.
    pub error_code: Option<u32>,
    /// Only errors of tasks of this type.
    pub task_type: Option<TaskType>,
    /// Only errors answered with this HTTP status.
    pub status_code: Option<u16>,
    /// Error time range.
    pub error_time: TimeRange,
}

/// Query parameters of `GET /1/errors`.
pub const ERROR_LIST_PARAMS: &[&str] = &[
    "account_id",
    "task_ids",
    "error_ids",
    "error_code",
    "task_type",
    "status_code",
    "error_time__gte",
    "error_time__lt",
    "page",
    "page_size",
];
/// Query parameters of `GET /1/errors/count`.
pub const ERROR_COUNT_PARAMS: &[&str] = &[
    "account_id",
    "task_ids",
    "error_ids",
    "error_code",
    "task_type",
    "error_time__gte",
    "error_time__lt",
];
/// Query parameters of `GET /1/tasks/{task_id}/errors`.
pub const TASK_ERROR_LIST_PARAMS: &[&str] = &["account_id", "page", "page_size"];
/// Query parameters of `GET /1/tasks/{task_id}/errors/count`.
pub const TASK_ERROR_COUNT_PARAMS: &[&str] = &[
    "account_id",
    "error_code",
    "error_time__gte",
    "error_time__lt",
];

impl ErrorFilter {
    /// Reads the filter from a query string (parameters the route does not know were
    /// rejected before).
    pub fn from_query(query: &Query) -> Result<ErrorFilter, ApiError> {
        Ok(ErrorFilter {
            account_id: query.uuid("account_id")?,
            task_ids: int_list(query, "task_ids")?,
            error_ids: int_list(query, "error_ids")?,
            error_code: query.int("error_code", 0u32, u32::MAX)?,
            task_type: task_type_param(query)?,
            status_code: query.int("status_code", 400u16, 599)?,
            error_time: query.time_range("error_time")?,
        })
    }

    fn matches(&self, error: &TaskErrorRecord) -> bool {
        self.account_id.is_none_or(|a| a == error.account_id)
            && self
                .task_ids
                .as_ref()
                .is_none_or(|ids| ids.contains(&error.error.task_id))
            && self
                .error_ids
                .as_ref()
                .is_none_or(|ids| ids.contains(&error.error.error_id))
            && self.error_code.is_none_or(|c| c == error.error.error_code)
            && self.task_type.is_none_or(|t| t == error.task_type)
            && self.status_code.is_none_or(|c| c == error.status_code)
            && timestamps::parse(&error.error.error_time)
                .is_some_and(|t| self.error_time.contains(t))
    }
}

/// Hands every error matching `filter` to `visit`, newest first. Reads the partitions of
/// the given tasks, or the account's index partition, or the partition of every error.
async fn visit_errors(
    svc: &Services,
    filter: &ErrorFilter,
    mut visit: impl FnMut(TaskErrorRecord) -> ControlFlow<()>,
) -> Result<(), ApiError> {
    if let Some(task_ids) = &filter.task_ids {
        let mut errors = Vec::new();
        for &task_id in task_ids.iter().take(MAX_IDS_IN_FILTER) {
            let query = TableQuery {
                index: None,
                partition: keys::task_pk(task_id),
                range: KeyRange::Prefix("ERR#".into()),
                descending: true,
            };
            svc.table
                .for_each_record(&query, |e: TaskErrorRecord| {
                    if filter.matches(&e) {
                        errors.push(e);
                    }
                    ControlFlow::Continue(())
                })
                .await?;
        }
        errors.sort_unstable_by_key(|e| std::cmp::Reverse(e.error.error_id));
        errors.dedup_by_key(|e| e.error.error_id);
        for error in errors {
            if visit(error).is_break() {
                break;
            }
        }
        return Ok(());
    }
    let query = newest_first(filter.account_id, "ERROR", keys::ALL_ERRORS);
    svc.table
        .for_each_matching(&query, |r: &TaskErrorRecord| filter.matches(r), visit)
        .await
}

/// One page of the errors matching `filter`, newest first.
pub async fn errors(
    svc: &Services,
    filter: &ErrorFilter,
    page: Page,
) -> Result<TaskErrorPage, ApiError> {
    let mut buffer = PageBuffer::new(page);
    visit_errors(svc, filter, |e| buffer.offer(e.error)).await?;
    Ok(TaskErrorPage {
        errors: buffer.into_items(),
    })
}

/// Every error of a task, as its error listing shows them (newest first): what a JSON
/// result carries beside the kind's result.
pub async fn task_errors(svc: &Services, task_id: u64) -> Result<Vec<TaskError>, ApiError> {
    let filter = ErrorFilter {
        task_ids: Some(vec![task_id]),
        ..ErrorFilter::default()
    };
    let mut all = Vec::new();
    visit_errors(svc, &filter, |e| {
        all.push(e.error);
        ControlFlow::Continue(())
    })
    .await?;
    Ok(all)
}

/// Number of errors matching `filter`.
pub async fn count_errors(svc: &Services, filter: &ErrorFilter) -> Result<Count, ApiError> {
    let mut count = 0;
    visit_errors(svc, filter, |_| {
        count += 1;
        ControlFlow::Continue(())
    })
    .await?;
    Ok(Count { count })
}

/// Sort keys of one error id in the index of every error: from the id up to the next,
/// open above for the largest id, which has no next (`u64::MAX + 1` overflowed: a panic
/// in a debug build, a reversed range in a release one).
fn error_id_keys(error_id: u64) -> KeyRange {
    KeyRange::Between {
        gte: Some(keys::padded_id(error_id)),
        lt: error_id.checked_add(1).map(keys::padded_id),
    }
}

/// One error by id.
pub async fn error(
    svc: &Services,
    account_id: Option<Uuid>,
    error_id: u64,
) -> Result<TaskError, ApiError> {
    let query = TableQuery {
        index: Some(keys::GSI2),
        partition: keys::ALL_ERRORS.into(),
        range: error_id_keys(error_id),
        descending: false,
    };
    let mut found = None;
    svc.table
        .for_each_record(&query, |e: TaskErrorRecord| {
            if e.error.error_id == error_id {
                found = Some(e);
            }
            ControlFlow::Break(())
        })
        .await?;
    match found {
        Some(e) if account_id.is_none_or(|a| a == e.account_id) => Ok(e.error),
        _ => Err(ApiError::new(
            ErrorCode::TaskErrorNotFound,
            format!("Task error with id '{error_id}' not found"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by a new user: the subtasks of a cancelled task that had not ended showed
    /// `status 0` for ever.
    #[test]
    fn pending_subtasks_of_a_cancelled_task_are_listed_as_cancelled() {
        let mut task = TaskRecord::new(7, TaskType::Linker, Uuid::new_v4(), String::new(), "t0");
        let pending = SubtaskRecord::new(7, 1, 0, "t0").subtask;
        let mut done = SubtaskRecord::new(7, 2, 0, "t0").subtask;
        done.status = SubtaskStatus::Done;
        done.end_time = Some("t1".into());
        task.task_status = TaskStatus::InProgress;
        assert_eq!(
            as_listed(&task, pending.clone()),
            pending,
            "running: as stored"
        );

        task.task_status = TaskStatus::Cancelled;
        task.end_time = Some("t2".into());
        let listed = as_listed(&task, pending.clone());
        assert_eq!(listed.status, SubtaskStatus::Cancelled);
        assert_eq!(
            listed.end_time.as_deref(),
            Some("t2"),
            "ended with its task"
        );
        assert_eq!(listed.attempts, 0);
        assert_eq!(
            as_listed(&task, done.clone()),
            Subtask {
                result_id: Some(crate::engine::subtask_result_id(7, 2)),
                ..done.clone()
            },
            "ended before: as stored, with its result id"
        );
        let mut marked = pending;
        marked.status = SubtaskStatus::Cancelled;
        marked.end_time = Some("t2".into());
        assert_eq!(as_listed(&task, marked.clone()), marked);
    }

    /// Seed 000, `get subtasks`: a done subtask names its stored output; one that has not
    /// ended, failed or was cancelled has none (null).
    #[test]
    fn only_a_done_subtask_shows_a_result_id() {
        let mut task = TaskRecord::new(8, TaskType::Gc, Uuid::new_v4(), String::new(), "t0");
        task.task_status = TaskStatus::InProgress;
        for status in SubtaskStatus::ALL {
            let mut subtask = SubtaskRecord::new(8, 3, 0, "t0").subtask;
            subtask.status = status;
            let listed = as_listed(&task, subtask);
            let expected =
                (status == SubtaskStatus::Done).then(|| crate::engine::subtask_result_id(8, 3));
            assert_eq!(listed.result_id, expected, "{status:?}");
            let shown = serde_json::to_value(&listed).unwrap();
            assert!(shown.get("result_id").is_some(), "{shown}: always shown");
        }
        let one = crate::engine::subtask_result_id(8, 3);
        assert_eq!(one, crate::engine::subtask_result_id(8, 3), "derived");
        assert_ne!(one, crate::engine::subtask_result_id(8, 4));
        assert_ne!(one, crate::engine::subtask_result_id(9, 3));
        assert_ne!(one, crate::engine::result_id(8));
    }

    /// Found by schemathesis: `GET /1/errors/18446744073709551615` panicked on
    /// `error_id + 1` and the gateway closed the connection without an answer.
    #[test]
    fn the_largest_error_id_has_an_open_upper_bound() {
        let KeyRange::Between { gte, lt } = error_id_keys(u64::MAX) else {
            panic!("not a range");
        };
        assert_eq!(gte.as_deref(), Some("18446744073709551615"));
        assert_eq!(lt, None);
        let KeyRange::Between { gte, lt } = error_id_keys(7) else {
            panic!("not a range");
        };
        assert_eq!(gte, Some(keys::padded_id(7)));
        assert_eq!(lt, Some(keys::padded_id(8)));
    }

    /// Found reviewing the video tasks: `GET /1/tasks?task_type=20` was refused although
    /// `/1/videosdk` creates tasks of type 20 that the listing shows.
    #[test]
    fn every_task_type_can_be_filtered_on_and_no_other() {
        let filter = |value: &str| {
            let query = Query::new([("task_type".to_string(), value.to_string())]);
            TaskFilter::from_query(&query).map(|f| f.task_type)
        };
        for t in TaskType::ALL {
            assert_eq!(filter(&(t as u8).to_string()).unwrap(), Some(t));
        }
        for bad in ["10", "19", "21", "-1", "x"] {
            let err = filter(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::BadQuery, "{bad}");
        }
        let errors = |value: &str| {
            let query = Query::new([("task_type".to_string(), value.to_string())]);
            ErrorFilter::from_query(&query).map(|f| f.task_type)
        };
        assert_eq!(errors("20").unwrap(), Some(TaskType::VideoAnalysis));
        assert!(errors("15").is_err());
    }
}
