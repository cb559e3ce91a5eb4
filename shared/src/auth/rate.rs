//! The per-token request rate limit: one counter item per token and minute, raised by a
//! conditional update, so every host (each Lambda instance, the local gateway) counts
//! against the same budget. Counters expire with DynamoDB TTL.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::Services;
use crate::error::{ApiError, ErrorCode};
use crate::store::keys;

/// Seconds a window lasts.
const WINDOW_SECONDS: i64 = 60;

/// Counts one request of `token_id` at `now`; 429 when the token already sent `limit`
/// in this minute (the detail says when the next minute starts). `limit` 0: no limit.
pub async fn count_request(
    svc: &Services,
    token_id: Uuid,
    limit: u32,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    if limit == 0 {
        return Ok(());
    }
    let window = now.timestamp().div_euclid(WINDOW_SECONDS);
    let values = HashMap::from([
        (":one".to_string(), AttributeValue::N("1".into())),
        (":limit".to_string(), AttributeValue::N(limit.to_string())),
        (
            ":expires".to_string(),
            AttributeValue::N(((window + 2) * WINDOW_SECONDS).to_string()),
        ),
    ]);
    let counted = svc
        .table
        .update(
            &keys::rate_pk(token_id),
            &format!("{window}"),
            "ADD requests :one SET expires_at = :expires",
            Some("attribute_not_exists(requests) OR requests < :limit"),
            values,
        )
        .await?;
    if counted.is_some() {
        return Ok(());
    }
    let retry = (window + 1) * WINDOW_SECONDS - now.timestamp();
    Err(ApiError::new(
        ErrorCode::RateLimited,
        format!("the token sent {limit} requests this minute; retry in {retry} s"),
    ))
}

/// Seconds until the window after `now` starts (the `Retry-After` of a 429).
pub fn retry_after(now: DateTime<Utc>) -> i64 {
    let window = now.timestamp().div_euclid(WINDOW_SECONDS);
    (window + 1) * WINDOW_SECONDS - now.timestamp()
}
