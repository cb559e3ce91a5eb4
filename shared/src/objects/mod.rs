//! The objects LUNA-style tasks work on: faces (with descriptors), lists of faces, and
//! events, and the images of faces and events (kept in S3). Every record carries its
//! `account_id`; a record of another account is answered exactly like a missing one.

pub mod events;
pub mod faces;
pub mod images;
pub mod lists;
pub mod uploads;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;

/// Most characters in `user_data`.
pub const USER_DATA_MAX: usize = 128;
/// Most characters in short identifiers (`external_id`, `track_id`, tags, location parts).
pub const SHORT_TEXT_MAX: usize = 36;

/// Answer to a count request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Count {
    /// Number of matching objects.
    pub count: usize,
}

/// Rejects text longer than `max` characters, naming the field.
pub(crate) fn check_text(field: &str, value: Option<&str>, max: usize) -> Result<(), ApiError> {
    match value {
        Some(text) if text.chars().count() > max => Err(ApiError::bad_json(format!(
            "'{field}' is longer than {max} characters"
        ))),
        _ => Ok(()),
    }
}
