//! The LUNA Video Agent routes (seed 001): `/1/videosdk`, `/1/video/tasks/{task_id}`,
//! the streams (`/1/streams`, `/1/streams/{stream_id}`), their logs (`/1/streams/logs`)
//! and the agents (`/1/agents`).
//! The account is the caller's (the `account_id` query parameter, bound to the token,
//! filled in when left out).

use lambda_http::{Body, Request, Response};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use fanout::Services;
use fanout::error::ApiError;
use fanout::video::api::{self, SYNC_WAIT, VideoTaskCreated};
use fanout::video::streams::{self, NewStream, STREAM_TARGETS, StreamFilter, default_targets};
use fanout::video::task::{VideoRequest, video_task_uuid};

use crate::request::{json, json_body, path_uuid, query_of};

const ACCOUNT: &[&str] = &["account_id"];

fn account(req: &Request) -> Result<Uuid, ApiError> {
    query_of(req, ACCOUNT)?.account_id()
}

/// `POST /1/videosdk`: deferred, 201 with the task id at once; synchronous, 200 with
/// the result once the analysis ends (videos of at most 30 s).
pub async fn videosdk(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = account(&req)?;
    let request: VideoRequest = json_body(&req)?;
    let (task_id, sync) = api::create(svc, account_id, &request).await?;
    if !sync {
        return Ok(json(
            201,
            &VideoTaskCreated {
                task_id: video_task_uuid(task_id),
            },
        ));
    }
    Ok(json(200, &api::wait(svc, task_id, SYNC_WAIT).await?))
}

/// `GET /1/video/tasks/{task_id}`.
pub async fn get_task(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = account(&req)?;
    let uuid = path_uuid(&req, "task_id")?;
    Ok(json(200, &api::get(svc, account_id, uuid).await?))
}

/// `DELETE /1/video/tasks/{task_id}`: cancel (a Fanout route; 200 with `{}`).
pub async fn cancel_task(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = account(&req)?;
    let uuid = path_uuid(&req, "task_id")?;
    api::cancel(svc, account_id, uuid).await?;
    Ok(json(200, &serde_json::json!({})))
}

// ---- streams, their logs and the agents (seed 001's Video Manager surface) ----------

/// Query parameters of `GET /1/streams/{stream_id}`.
pub const GET_STREAM_PARAMS: &[&str] = &["account_id", "targets"];
/// Query parameters of `PATCH /1/streams/{stream_id}` (`action` required).
pub const PATCH_STREAM_PARAMS: &[&str] = &["account_id", "action"];
/// Query parameters of `DELETE /1/streams/logs` (`log_time__lt` required).
pub const DELETE_LOGS_PARAMS: &[&str] = &["account_id", "log_time__lt"];

/// Answer of `PATCH /1/streams/{stream_id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamsPatched {
    /// Streams changed: 0 when the stream was in that state already.
    pub patched_count: u32,
}

/// Answer of `DELETE /1/streams/logs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamLogsDeleted {
    /// Log records deleted.
    pub deleted_count: u64,
}

/// `POST /1/streams`: 201 with the new stream's id and path (pending: the next agent
/// with room takes it).
pub async fn create_stream(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = account(&req)?;
    let new: NewStream = json_body(&req)?;
    Ok(json(201, &streams::create(svc, account_id, new).await?))
}

/// `GET /1/streams`: a page of the account's streams matching the filters.
pub async fn list_streams(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let query = query_of(&req, streams::LIST_PARAMS)?;
    let account_id = query.account_id()?;
    let filter = StreamFilter::from_query(&query)?;
    let targets = streams::targets(&query, STREAM_TARGETS, default_targets())?;
    let page = query.page()?;
    Ok(json(
        200,
        &streams::list(svc, account_id, &filter, page, &targets).await?,
    ))
}

/// `GET /1/streams/{stream_id}`: the stream's `targets`.
pub async fn get_stream(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let query = query_of(&req, GET_STREAM_PARAMS)?;
    let account_id = query.account_id()?;
    let targets = streams::targets(&query, STREAM_TARGETS, default_targets())?;
    let stream_id = path_uuid(&req, "stream_id")?;
    let stream = streams::get(svc, account_id, stream_id).await?;
    Ok(json(200, &streams::shown(&stream, &targets)?))
}

/// `PATCH /1/streams/{stream_id}?action=stop|resume`.
pub async fn patch_stream(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let query = query_of(&req, PATCH_STREAM_PARAMS)?;
    let account_id = query.account_id()?;
    let action = query.required("action")?;
    let stream_id = path_uuid(&req, "stream_id")?;
    let patched_count = streams::patch(svc, account_id, stream_id, action).await?;
    Ok(json(200, &StreamsPatched { patched_count }))
}

/// `DELETE /1/streams/{stream_id}`: 200 with `{}`; its logs stay.
pub async fn delete_stream(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = account(&req)?;
    let stream_id = path_uuid(&req, "stream_id")?;
    streams::delete(svc, account_id, stream_id).await?;
    Ok(json(200, &serde_json::json!({})))
}

/// `GET /1/streams/logs`: the account's stream log records, newest first.
pub async fn list_stream_logs(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let query = query_of(&req, streams::LOG_PARAMS)?;
    let account_id = query.account_id()?;
    Ok(json(200, &streams::logs(svc, account_id, &query).await?))
}

/// `DELETE /1/streams/logs?log_time__lt=...`: the records older than that, each
/// stream's last record kept.
pub async fn delete_stream_logs(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let query = query_of(&req, DELETE_LOGS_PARAMS)?;
    let account_id = query.account_id()?;
    // Absent: 12014, as every required parameter.
    query.required("log_time__lt")?;
    let before = query
        .time("log_time__lt")?
        .ok_or_else(|| ApiError::bad_query("log_time__lt", "missing"))?;
    let deleted_count = streams::delete_logs(svc, account_id, before).await?;
    Ok(json(200, &StreamLogsDeleted { deleted_count }))
}

/// `GET /1/agents`: the agents seen within the last minute.
pub async fn get_agents(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = account(&req)?;
    Ok(json(200, &streams::agents(svc, account_id).await?))
}
