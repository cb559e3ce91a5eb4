//! The orchestrator's storage (Morpheo's Storage service): workflows, algorithms, data,
//! models and predictions as S3 objects of the account (`orchestrator/<account>/<uuid>`).
//! A client uploads with a presigned `PUT` and registers the uuid; a model or a
//! prediction is written by the compute worker; any of them is read through a presigned
//! `GET`. They go with the account's other records when it is deleted.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::store::blob_key;
use crate::Services;
use crate::error::{ApiError, ErrorCode};
use crate::store::blobs;

/// How long a presigned URL works.
pub const URL_LIFETIME: Duration = Duration::from_secs(3600);
/// The content type every blob is uploaded with.
pub const CONTENT_TYPE: &str = "application/octet-stream";

/// Body of `POST /orchestrator/storage`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBlob {
    /// The uuid to store under (a new one when absent).
    pub uuid: Option<Uuid>,
}

/// Answer to `POST /orchestrator/storage`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct BlobUpload {
    /// The blob's uuid, to register as a workflow, algo or data.
    pub uuid: Uuid,
    /// Presigned URL to `PUT` the bytes to, with `Content-Type: application/octet-stream`.
    pub url: String,
    /// Content type the `PUT` must send.
    pub content_type: String,
    /// Seconds the URL works.
    pub expires_in: u64,
}

/// Answer to `GET /orchestrator/storage/{uuid}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct BlobDownload {
    /// The blob's uuid.
    pub uuid: Uuid,
    /// Its size in bytes.
    pub size: u64,
    /// Presigned URL that reads it.
    pub url: String,
    /// Seconds the URL works.
    pub expires_in: u64,
}

/// A presigned upload for a new blob; 40023 when `uuid` is taken already (a registered
/// archive is never replaced under its users).
pub async fn upload(
    svc: &Services,
    account_id: Uuid,
    new: NewBlob,
) -> Result<BlobUpload, ApiError> {
    let uuid = new.uuid.unwrap_or_else(Uuid::new_v4);
    let key = blob_key(account_id, uuid);
    if blobs::head(svc, &key).await?.is_some() {
        return Err(ApiError::new(
            ErrorCode::DocumentExists,
            format!("storage '{uuid}' exists already"),
        ));
    }
    let url = blobs::presigned_put(svc, &key, URL_LIFETIME, CONTENT_TYPE).await?;
    Ok(BlobUpload {
        uuid,
        url,
        content_type: CONTENT_TYPE.into(),
        expires_in: URL_LIFETIME.as_secs(),
    })
}

/// A presigned download of a stored blob; 40022 when there is none.
pub async fn download(
    svc: &Services,
    account_id: Uuid,
    uuid: Uuid,
) -> Result<BlobDownload, ApiError> {
    let key = blob_key(account_id, uuid);
    let Some(head) = blobs::head(svc, &key).await? else {
        return Err(ApiError::new(
            ErrorCode::DocumentNotFound,
            format!("storage '{uuid}' not found"),
        ));
    };
    let url = blobs::presigned_get(svc, &key, URL_LIFETIME, None).await?;
    Ok(BlobDownload {
        uuid,
        size: head.size,
        url,
        expires_in: URL_LIFETIME.as_secs(),
    })
}
