//! `/1/events` routes.

use lambda_http::{Body, Request, Response};

use fanout::Services;
use fanout::error::{ApiError, ErrorCode};
use fanout::objects::events::{self, EventFilter, NewEvents};

use crate::request::{json, json_body, path_uuid, query_of};

/// `POST /1/events`, made repeatable by an `Idempotency-Key` header.
pub async fn create(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    query_of(&req, &[])?;
    let key = match req.headers().get(events::IDEMPOTENCY_HEADER) {
        Some(value) => Some(value.to_str().map_err(|_| {
            ApiError::new(
                ErrorCode::BadIdempotencyKey,
                format!("{} is not printable ASCII", events::IDEMPOTENCY_HEADER),
            )
        })?),
        None => None,
    };
    let batch: NewEvents = json_body(&req)?;
    Ok(json(201, &events::create_keyed(svc, batch, key).await?))
}

/// `GET /1/events`.
pub async fn list(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let query = query_of(&req, events::LIST_PARAMS)?;
    let filter = EventFilter::from_query(&query)?;
    let page = query.page()?;
    Ok(json(200, &events::list(svc, &filter, page).await?))
}

/// `GET /1/events/{event_id}`.
pub async fn get(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = query_of(&req, &["account_id"])?.account_id()?;
    let event_id = path_uuid(&req, "event_id")?;
    Ok(json(200, &events::get(svc, account_id, event_id).await?))
}
