//! `/1/uploads`: presigned uploads into the account's upload area.

use lambda_http::{Body, Request, Response};

use fanout::Services;
use fanout::error::ApiError;
use fanout::objects::uploads::{self, NewUpload};

use crate::request::{json, json_body, query_of};

/// `POST /1/uploads`.
pub async fn create(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    query_of(&req, &[])?;
    let new: NewUpload = json_body(&req)?;
    Ok(json(201, &uploads::create(svc, new).await?))
}
