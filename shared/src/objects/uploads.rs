//! The upload area of an account: where a client puts what a task reads — the
//! estimator's zip archives and images, videos for `/1/videosdk` — with a presigned `PUT` (API Gateway and Lambda
//! take at most 6 MB per request; S3 takes the file directly, up to 5 GB).
//!
//! Every upload lives under `uploads/<account_id>/`; a task names its inputs by key and
//! may only name keys under its own account's prefix. The bucket's lifecycle rule removes
//! uploads after [`UPLOAD_DAYS`] days.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::Services;
use crate::error::ApiError;
use crate::store::blobs;

/// How long a presigned upload URL works.
pub const UPLOAD_URL_LIFETIME: Duration = Duration::from_secs(3600);
/// Days an upload is kept (the bucket's lifecycle rule in infra/template.yaml).
pub const UPLOAD_DAYS: u32 = 7;
/// The content types an upload may have.
pub const CONTENT_TYPES: &[&str] = &[
    "application/zip",
    "image/jpeg",
    "image/png",
    "video/mp4",
    "video/quicktime",
    "video/webm",
    "video/x-matroska",
    "video/x-msvideo",
];

/// Body of `POST /1/uploads`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUpload {
    /// Owner of the upload.
    pub account_id: Uuid,
    /// `application/zip` (the default), `image/jpeg` or `image/png`; the `PUT` must send
    /// the same `Content-Type`.
    pub content_type: Option<String>,
}

/// Answer to `POST /1/uploads`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct UploadCreated {
    /// Id of the upload.
    pub upload_id: Uuid,
    /// Its S3 key, which tasks take as a source.
    pub key: String,
    /// Presigned URL to `PUT` the file to (with the `Content-Type` given).
    pub url: String,
    /// Content type the `PUT` must send.
    pub content_type: String,
    /// Seconds the URL works.
    pub expires_in: u64,
}

/// Prefix of an account's upload area.
pub fn area_prefix(account_id: Uuid) -> String {
    format!("uploads/{account_id}/")
}

/// Checks that `key` names an object in `account_id`'s upload area (12027 otherwise,
/// naming `field`).
pub fn check_key(account_id: Uuid, field: &str, key: &str) -> Result<(), ApiError> {
    let prefix = area_prefix(account_id);
    let rest = key.strip_prefix(&prefix).unwrap_or_default();
    if rest.is_empty()
        || rest
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(ApiError::bad_json(format!(
            "{field}: '{key}' is not a key in the account's upload area ('{prefix}...')"
        )));
    }
    Ok(())
}

/// Gives a new upload's key and presigned `PUT` URL.
pub async fn create(svc: &Services, new: NewUpload) -> Result<UploadCreated, ApiError> {
    let content_type = new
        .content_type
        .unwrap_or_else(|| "application/zip".to_string());
    if !CONTENT_TYPES.contains(&content_type.as_str()) {
        return Err(ApiError::bad_json(format!(
            "content_type '{content_type}' is not one of {CONTENT_TYPES:?}"
        )));
    }
    let upload_id = Uuid::new_v4();
    let key = format!("{}{upload_id}", area_prefix(new.account_id));
    let url = blobs::presigned_put(svc, &key, UPLOAD_URL_LIFETIME, &content_type).await?;
    Ok(UploadCreated {
        upload_id,
        key,
        url,
        content_type,
        expires_in: UPLOAD_URL_LIFETIME.as_secs(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_stay_in_the_account_area() {
        let account = Uuid::new_v4();
        let other = Uuid::new_v4();
        let good = format!("uploads/{account}/x/a.jpg");
        assert!(check_key(account, "keys", &good).is_ok());
        for bad in [
            format!("uploads/{other}/a.jpg"),
            format!("uploads/{account}/"),
            format!("uploads/{account}/../{other}/a.jpg"),
            format!("uploads/{account}//a.jpg"),
            "tasks/1/result".to_string(),
            format!("xuploads/{account}/a.jpg"),
        ] {
            assert!(check_key(account, "keys", &bad).is_err(), "{bad}");
        }
    }
}
