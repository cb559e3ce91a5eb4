//! `/1/videosdk` and `/1/video/tasks/{task_id}`: a video task created on the engine,
//! its status and progress as the Video Agent shows them, its result, its cancel.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::merge::VideoResult;
use super::task::{VideoAnalysis, VideoRequest, engine_task_id, validate_request, video_task_uuid};
use crate::Services;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::kinds::to_json;
use crate::store::blobs;
use crate::tasks::api::{self as tasks, NewTask, RESULT_URL_LIFETIME};
use crate::tasks::model::{TaskRecord, TaskStatus};

/// How long a synchronous request waits for its result (API Gateway answers within
/// 29 s).
pub const SYNC_WAIT: Duration = Duration::from_secs(25);

/// Answer of a deferred `POST /1/videosdk`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct VideoTaskCreated {
    /// Id to poll at `/1/video/tasks/{task_id}`.
    pub task_id: Uuid,
}

/// A video task as `GET /1/video/tasks/{task_id}` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct VideoTask {
    /// Its id.
    pub task_id: Uuid,
    /// 0 pending, 1 in progress, 2 done, 3 failed, 4 cancelled (the seed gives an
    /// integer without its table: this one is Fanout's, reference notes §3).
    pub status: u8,
    /// Segments analysed over all segments, 0 to 1; 1 once done.
    pub progress: f64,
    /// Presigned URL of the result JSON (one hour) once done; null before.
    pub result_url: Option<String>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    /// The same task on the LUNA Tasks routes (`/1/tasks/{id}`).
    pub engine_task_id: u64,
}

/// The video task status of an engine status.
pub fn status_of(status: TaskStatus) -> u8 {
    match status {
        TaskStatus::Pending => 0,
        TaskStatus::InProgress | TaskStatus::CollectResults => 1,
        TaskStatus::Done => 2,
        TaskStatus::Failed => 3,
        TaskStatus::Cancelled => 4,
    }
}

/// Progress of a task: its stage-1 (segment) subtasks ended over all of them; stage 0
/// (the probe) counts for nothing. Never falls: the engine's counters only grow.
pub fn progress_of(task: &TaskRecord) -> f64 {
    if task.task_status == TaskStatus::Done {
        return 1.0;
    }
    if task.stages_planned < 2 || task.count_task_parts_all <= 1 {
        return 0.0;
    }
    let segments = task.count_task_parts_all - 1;
    let done = task.count_task_parts_done.saturating_sub(1).min(segments);
    done as f64 / segments as f64
}

fn not_found(uuid: Uuid) -> ApiError {
    ApiError::new(
        ErrorCode::TaskNotFound,
        format!("Video task '{uuid}' not found"),
    )
}

/// The engine record of the video task `uuid` of `account_id` (28001 for any other).
pub async fn record(svc: &Services, account_id: Uuid, uuid: Uuid) -> Result<TaskRecord, ApiError> {
    let task_id = engine_task_id(uuid).ok_or_else(|| not_found(uuid))?;
    match tasks::record(svc, Some(account_id), task_id).await {
        Ok(task) if task.task_type == crate::tasks::model::TaskType::VideoAnalysis => Ok(task),
        Ok(_) => Err(not_found(uuid)),
        Err(err) if err.code == ErrorCode::TaskNotFound => Err(not_found(uuid)),
        Err(err) => Err(err),
    }
}

/// Creates a video task of `account_id`.
pub async fn create(
    svc: &Services,
    account_id: Uuid,
    request: &VideoRequest,
) -> Result<(u64, bool), ApiError> {
    let content = validate_request(svc, account_id, request).await?;
    let sync = content.sync;
    let created = tasks::create(
        svc,
        &VideoAnalysis,
        NewTask {
            account_id,
            description: Some("videosdk".to_string()),
            content: to_json(&content)?,
            result_storage_policy: None,
        },
    )
    .await?;
    Ok((created.task_id, sync))
}

/// The task's first error, for a failed task's answer.
async fn first_error(svc: &Services, task_id: u64) -> Result<Option<ApiError>, ApiError> {
    let errors = tasks::task_errors(svc, task_id).await?;
    Ok(errors.into_iter().last().map(|e| ApiError {
        code: ErrorCode::from_code(e.error_code).unwrap_or(ErrorCode::VideoProcessing),
        detail: e.detail,
    }))
}

/// A video task as shown.
pub async fn get(svc: &Services, account_id: Uuid, uuid: Uuid) -> Result<VideoTask, ApiError> {
    let task = record(svc, account_id, uuid).await?;
    let result_url = if task.task_status == TaskStatus::Done {
        let key = blobs::result_key(task.task_id);
        Some(blobs::presigned_get(svc, &key, RESULT_URL_LIFETIME, None).await?)
    } else {
        None
    };
    let error = if task.task_status == TaskStatus::Failed {
        first_error(svc, task.task_id).await?.map(|e| e.body())
    } else {
        None
    };
    Ok(VideoTask {
        task_id: uuid,
        status: status_of(task.task_status),
        progress: progress_of(&task),
        result_url,
        error,
        engine_task_id: task.task_id,
    })
}

/// Cancels a video task that has not ended (cancelling twice is accepted).
pub async fn cancel(svc: &Services, account_id: Uuid, uuid: Uuid) -> Result<(), ApiError> {
    let task = record(svc, account_id, uuid).await?;
    tasks::cancel(svc, Some(account_id), task.task_id).await
}

/// Waits for a synchronous task's result. A task still running at the deadline is
/// cancelled and answered with 40025 pointing at deferred mode; a failed one with its
/// error.
pub async fn wait(
    svc: &Services,
    task_id: u64,
    deadline: Duration,
) -> Result<VideoResult, ApiError> {
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        let task = tasks::record(svc, None, task_id).await?;
        match task.task_status {
            TaskStatus::Done => {
                let key = blobs::result_key(task_id);
                let bytes = blobs::get(svc, &key)
                    .await?
                    .ok_or_else(|| ApiError::internal("video result", "result object missing"))?;
                return serde_json::from_slice(&bytes)
                    .map_err(|e| ApiError::internal("video result", e));
            }
            TaskStatus::Failed => {
                return Err(first_error(svc, task_id).await?.unwrap_or_else(|| {
                    ApiError::new(ErrorCode::VideoProcessing, "the analysis failed")
                }));
            }
            TaskStatus::Cancelled => {
                return Err(ApiError::new(
                    ErrorCode::VideoTaskCancelled,
                    format!(
                        "Video task '{}' was cancelled during execution",
                        video_task_uuid(task_id)
                    ),
                ));
            }
            _ => {}
        }
        if started.elapsed() >= deadline {
            let _ = tasks::cancel(svc, None, task_id).await;
            return Err(ApiError::new(
                ErrorCode::VideoTooLongForSync,
                format!(
                    "the analysis did not finish within {} s; send the request with \"deferred_task\": {{\"enable\": true}} and poll /1/video/tasks/{{task_id}}",
                    deadline.as_secs()
                ),
            ));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}
