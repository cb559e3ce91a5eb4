//! `/1/faces` routes.

use lambda_http::{Body, Request, Response};

use fanout::Services;
use fanout::error::ApiError;
use fanout::objects::faces::{self, FaceFilter, FacePatch, NewFace};

use crate::request::{json, json_body, no_content, path_uuid, query_of};

const ACCOUNT: &[&str] = &["account_id"];

/// `POST /1/faces`.
pub async fn create(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    query_of(&req, &[])?;
    let new: NewFace = json_body(&req)?;
    Ok(json(201, &faces::create(svc, new).await?))
}

/// `GET /1/faces`.
pub async fn list(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let query = query_of(&req, faces::LIST_PARAMS)?;
    let filter = FaceFilter::from_query(&query)?;
    let page = query.page()?;
    Ok(json(200, &faces::list(svc, &filter, page).await?))
}

/// `GET /1/faces/count`.
pub async fn count(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let query = query_of(&req, faces::COUNT_PARAMS)?;
    let filter = FaceFilter::from_query(&query)?;
    Ok(json(200, &faces::count(svc, &filter).await?))
}

/// `GET /1/faces/{face_id}`.
pub async fn get(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = query_of(&req, ACCOUNT)?.account_id()?;
    let face_id = path_uuid(&req, "face_id")?;
    Ok(json(200, &faces::get(svc, account_id, face_id).await?))
}

/// `PATCH /1/faces/{face_id}`.
pub async fn patch(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = query_of(&req, ACCOUNT)?.account_id()?;
    let face_id = path_uuid(&req, "face_id")?;
    let patch: FacePatch = json_body(&req)?;
    faces::patch(svc, account_id, face_id, patch).await?;
    Ok(no_content())
}

/// `DELETE /1/faces/{face_id}`.
pub async fn delete(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = query_of(&req, ACCOUNT)?.account_id()?;
    let face_id = path_uuid(&req, "face_id")?;
    faces::delete(svc, account_id, face_id).await?;
    Ok(no_content())
}
