//! `/1/lists` routes.

use lambda_http::{Body, Request, Response};

use fanout::Services;
use fanout::error::ApiError;
use fanout::objects::lists::{self, ListFilter, ListPatch, NewList};

use crate::request::{json, json_body, no_content, path_uuid, query_of};

const ACCOUNT: &[&str] = &["account_id"];

/// `POST /1/lists`.
pub async fn create(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    query_of(&req, &[])?;
    let new: NewList = json_body(&req)?;
    Ok(json(201, &lists::create(svc, new).await?))
}

/// `GET /1/lists`.
pub async fn list(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let query = query_of(&req, lists::LIST_PARAMS)?;
    let filter = ListFilter::from_query(&query)?;
    let page = query.page()?;
    Ok(json(200, &lists::list(svc, &filter, page).await?))
}

/// `GET /1/lists/{list_id}`.
pub async fn get(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = query_of(&req, ACCOUNT)?.account_id()?;
    let list_id = path_uuid(&req, "list_id")?;
    Ok(json(200, &lists::get(svc, account_id, list_id).await?))
}

/// `PATCH /1/lists/{list_id}`.
pub async fn patch(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = query_of(&req, ACCOUNT)?.account_id()?;
    let list_id = path_uuid(&req, "list_id")?;
    let patch: ListPatch = json_body(&req)?;
    lists::patch(svc, account_id, list_id, patch).await?;
    Ok(no_content())
}

/// `DELETE /1/lists/{list_id}`.
pub async fn delete(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = query_of(&req, ACCOUNT)?.account_id()?;
    let list_id = path_uuid(&req, "list_id")?;
    lists::delete(svc, account_id, list_id).await?;
    Ok(no_content())
}
