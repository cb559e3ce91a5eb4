//! `/1/tasks` and `/1/errors` routes.

use lambda_http::{Body, Request, Response};
use serde::Deserialize;

use fanout::Services;
use fanout::error::{ApiError, ErrorCode};
use fanout::kinds;
use fanout::tasks::api::{
    self, ACCOUNT_PARAM, ERROR_COUNT_PARAMS, ERROR_LIST_PARAMS, ErrorFilter, NewTask,
    SUBTASK_LIST_PARAMS, SUBTASK_PAGE_SIZE_DEFAULT, TASK_COUNT_PARAMS, TASK_ERROR_COUNT_PARAMS,
    TASK_ERROR_LIST_PARAMS, TASK_LIST_PARAMS, TaskFilter, TaskResult,
};

use crate::request::{json, json_body, path_param, query_of};

/// `POST /1/tasks/<kind>`: the kind is the last path segment, looked up in the registry.
pub async fn create(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    query_of(&req, &[])?;
    let name = req
        .uri()
        .path()
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let kind = kinds::by_name(name).ok_or_else(|| crate::routes::unknown_task_kind(name))?;
    let new: NewTask = json_body(&req)?;
    Ok(json(201, &api::create(svc, kind, new).await?))
}

/// `GET /1/tasks`.
pub async fn list(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let query = query_of(&req, TASK_LIST_PARAMS)?;
    let filter = TaskFilter::from_query(&query)?;
    Ok(json(200, &api::list(svc, &filter, query.page()?).await?))
}

/// `GET /1/tasks/count`.
pub async fn count(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let query = query_of(&req, TASK_COUNT_PARAMS)?;
    let filter = TaskFilter::from_query(&query)?;
    Ok(json(200, &api::count(svc, &filter).await?))
}

/// `GET /1/tasks/{task_id}`.
pub async fn get(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = query_of(&req, ACCOUNT_PARAM)?.uuid("account_id")?;
    let task_id = task_id(&req)?;
    Ok(json(200, &api::get(svc, account_id, task_id).await?))
}

/// Body of `PATCH /1/tasks/{task_id}`; absent or `{"action": "cancel"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    action: Option<CancelAction>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum CancelAction {
    Cancel,
}

/// The answer of cancel and delete: `200` with `{}`, as LUNA's samples show them (seed
/// 000, `cancel task` and `delete task`: a JSON body `{}`, which a 204 could not carry).
fn empty_object() -> Response<Body> {
    json(200, &serde_json::json!({}))
}

/// `PATCH /1/tasks/{task_id}`: cancel.
pub async fn cancel(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = query_of(&req, ACCOUNT_PARAM)?.uuid("account_id")?;
    let task_id = task_id(&req)?;
    match json_body::<CancelBody>(&req) {
        Ok(CancelBody {
            action: None | Some(CancelAction::Cancel),
        }) => {}
        Err(err) if err.code == ErrorCode::NoData => {}
        Err(err) => return Err(err),
    }
    api::cancel(svc, account_id, task_id).await?;
    Ok(empty_object())
}

/// `DELETE /1/tasks/{task_id}`.
pub async fn delete(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = query_of(&req, ACCOUNT_PARAM)?.uuid("account_id")?;
    let task_id = task_id(&req)?;
    api::delete(svc, account_id, task_id).await?;
    Ok(empty_object())
}

/// `GET /1/tasks/{task_id}/result`: the JSON result or the zip archive (as an attachment
/// named `task_<id>.zip`), or a redirect to S3 when large or when a `Range` is asked.
pub async fn result(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = query_of(&req, ACCOUNT_PARAM)?.uuid("account_id")?;
    let task_id = task_id(&req)?;
    let ranged = req.headers().contains_key(http::header::RANGE);
    let response = match api::result(svc, account_id, task_id, ranged).await? {
        TaskResult::Body {
            bytes,
            content_type,
        } => {
            let mut builder = Response::builder()
                .status(200)
                .header("content-type", &content_type);
            if content_type == api::ZIP {
                builder = builder.header("content-disposition", TaskResult::attachment(task_id));
            }
            builder.body(Body::Binary(bytes))
        }
        TaskResult::Redirect(url) => Response::builder()
            .status(302)
            .header("location", url)
            .body(Body::Empty),
    };
    response.map_err(|e| ApiError::internal("result response", e))
}

/// `GET /1/tasks/{task_id}/subtasks`: a page of them, 100 unless `page_size` says less.
pub async fn subtasks(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let query = query_of(&req, SUBTASK_LIST_PARAMS)?;
    let account_id = query.uuid("account_id")?;
    let task_id = task_id(&req)?;
    let page = query.page_sized(SUBTASK_PAGE_SIZE_DEFAULT)?;
    Ok(json(
        200,
        &api::subtasks(svc, account_id, task_id, page).await?,
    ))
}

/// `GET /1/tasks/{task_id}/errors`.
pub async fn task_errors(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let query = query_of(&req, TASK_ERROR_LIST_PARAMS)?;
    let account_id = query.uuid("account_id")?;
    let task_id = task_id(&req)?;
    let page = query.page()?;
    api::record(svc, account_id, task_id).await?;
    let filter = ErrorFilter {
        task_ids: Some(vec![task_id]),
        ..ErrorFilter::default()
    };
    Ok(json(200, &api::errors(svc, &filter, page).await?))
}

/// `GET /1/tasks/{task_id}/errors/count`.
pub async fn count_task_errors(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let query = query_of(&req, TASK_ERROR_COUNT_PARAMS)?;
    let task_id = task_id(&req)?;
    let filter = ErrorFilter {
        task_ids: Some(vec![task_id]),
        ..ErrorFilter::from_query(&query)?
    };
    api::record(svc, filter.account_id, task_id).await?;
    Ok(json(200, &api::count_errors(svc, &filter).await?))
}

/// `GET /1/errors`.
pub async fn errors(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let query = query_of(&req, ERROR_LIST_PARAMS)?;
    let filter = ErrorFilter::from_query(&query)?;
    Ok(json(200, &api::errors(svc, &filter, query.page()?).await?))
}

/// `GET /1/errors/count`.
pub async fn count_errors(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let query = query_of(&req, ERROR_COUNT_PARAMS)?;
    let filter = ErrorFilter::from_query(&query)?;
    Ok(json(200, &api::count_errors(svc, &filter).await?))
}

/// `GET /1/errors/{error_id}`.
pub async fn error(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = query_of(&req, ACCOUNT_PARAM)?.uuid("account_id")?;
    let error_id = id_param(&req, "error_id")?;
    Ok(json(200, &api::error(svc, account_id, error_id).await?))
}

fn task_id(req: &Request) -> Result<u64, ApiError> {
    id_param(req, "task_id")
}

/// An integer id ≥ 1 from the path.
fn id_param(req: &Request, name: &str) -> Result<u64, ApiError> {
    let raw = path_param(req, name)?;
    raw.parse::<u64>()
        .ok()
        .filter(|id| *id >= 1)
        .ok_or_else(|| ApiError::bad_query(name, format!("'{raw}' is not an integer ≥ 1")))
}
