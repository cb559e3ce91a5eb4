//! Image routes: `/1/faces/{face_id}/avatar` and `/1/events/{event_id}/sample`.
//!
//! Uploads are raw bytes (not JSON, not multipart). Under Lambda, API Gateway delivers a
//! binary body base64-encoded with `isBase64Encoded` and `lambda_http` decodes it into
//! bytes; the local gateway passes the bytes through unchanged. Either way the body may
//! arrive as text when it happens to be valid UTF-8, so both forms are read as bytes.
//! The Content-Type header is advisory: the image's first bytes decide (see
//! [`images::validate`]).

use lambda_http::{Body, Request, Response};

use fanout::Services;
use fanout::error::ApiError;
use fanout::objects::images::{self, Image};

use crate::request::{no_content, path_uuid, query_of};

const ACCOUNT: &[&str] = &["account_id"];

/// `PUT /1/faces/{face_id}/avatar`.
pub async fn put_face_avatar(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = query_of(&req, ACCOUNT)?.account_id()?;
    let face_id = path_uuid(&req, "face_id")?;
    let (body, declared) = upload(req);
    images::put_face_avatar(svc, account_id, face_id, body, declared.as_deref()).await?;
    Ok(no_content())
}

/// `GET /1/faces/{face_id}/avatar`.
pub async fn get_face_avatar(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = query_of(&req, ACCOUNT)?.account_id()?;
    let face_id = path_uuid(&req, "face_id")?;
    image_response(images::get_face_avatar(svc, account_id, face_id).await?)
}

/// `DELETE /1/faces/{face_id}/avatar`.
pub async fn delete_face_avatar(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = query_of(&req, ACCOUNT)?.account_id()?;
    let face_id = path_uuid(&req, "face_id")?;
    images::delete_face_avatar(svc, account_id, face_id).await?;
    Ok(no_content())
}

/// `PUT /1/events/{event_id}/sample`.
pub async fn put_event_sample(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = query_of(&req, ACCOUNT)?.account_id()?;
    let event_id = path_uuid(&req, "event_id")?;
    let (body, declared) = upload(req);
    images::put_event_sample(svc, account_id, event_id, body, declared.as_deref()).await?;
    Ok(no_content())
}

/// `GET /1/events/{event_id}/sample`.
pub async fn get_event_sample(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = query_of(&req, ACCOUNT)?.account_id()?;
    let event_id = path_uuid(&req, "event_id")?;
    image_response(images::get_event_sample(svc, account_id, event_id).await?)
}

/// The raw body and the declared Content-Type of an upload.
fn upload(req: Request) -> (Vec<u8>, Option<String>) {
    let declared = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = match req.into_body() {
        Body::Text(text) => text.into_bytes(),
        Body::Binary(bytes) => bytes,
        _ => Vec::new(),
    };
    (bytes, declared)
}

/// `200` with the image bytes and their content type (base64-encoded by `lambda_http`
/// for API Gateway, which decodes them for the client).
fn image_response(image: Image) -> Result<Response<Body>, ApiError> {
    Response::builder()
        .status(200)
        .header("content-type", image.content_type)
        .body(Body::Binary(image.bytes))
        .map_err(|e| ApiError::internal("image response", e))
}
