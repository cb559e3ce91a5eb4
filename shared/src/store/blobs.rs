//! S3 objects of the task engine. Every object of a task lives under its prefix
//! `tasks/<task_id>/`, at a key derived from ids only, so a retried step overwrites what
//! an earlier attempt wrote instead of leaving a second copy, and delete removes the
//! prefix.

use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use super::dynamo::aws_error;
use super::keys::padded_id;
use crate::Services;
use crate::error::ApiError;

/// Most keys one `DeleteObjects` call takes.
const DELETE_MAX: usize = 1000;

/// Prefix of every object of a task.
pub fn task_prefix(task_id: u64) -> String {
    format!("tasks/{}/", padded_id(task_id))
}

/// Content of a task too large for its item.
pub fn task_content_key(task_id: u64) -> String {
    format!("{}content.json", task_prefix(task_id))
}

/// Content of a subtask too large for its item.
pub fn subtask_content_key(task_id: u64, subtask_id: u32) -> String {
    format!(
        "{}subtasks/{subtask_id:010}/content.json",
        task_prefix(task_id)
    )
}

/// Output of a subtask.
pub fn subtask_output_key(task_id: u64, subtask_id: u32) -> String {
    format!(
        "{}subtasks/{subtask_id:010}/output.json",
        task_prefix(task_id)
    )
}

/// The merged result of a task (JSON or a zip archive: its content type says which).
pub fn result_key(task_id: u64) -> String {
    format!("{}result", task_prefix(task_id))
}

/// Where one planner's plan of a stage is kept (unique per planning attempt: only the
/// plan of the attempt that claimed the stage is ever read). Plans are scratch objects:
/// removed with the others once the task is done.
pub fn stage_plan_key(task_id: u64, stage: u32, attempt: uuid::Uuid) -> String {
    format!("{}{stage:05}-{attempt}.json", task_plans_prefix(task_id))
}

/// Prefix of the stage plans of a task (within its scratch objects).
pub fn task_plans_prefix(task_id: u64) -> String {
    format!("{}plans/", task_scratch_prefix(task_id))
}

/// Prefix of the scratch objects of a task: what subtasks leave for the merge (CSV parts,
/// image packs) and the stage plans. Removed once the task is done; under the task's prefix, so delete
/// removes them too.
pub fn task_scratch_prefix(task_id: u64) -> String {
    format!("{}scratch/", task_prefix(task_id))
}

/// One scratch object of a task.
pub fn task_scratch_key(task_id: u64, name: &str) -> String {
    format!("{}{name}", task_scratch_prefix(task_id))
}

/// Writes an object.
pub async fn put(
    svc: &Services,
    key: &str,
    body: Vec<u8>,
    content_type: &str,
) -> Result<(), ApiError> {
    svc.aws
        .s3
        .put_object()
        .bucket(&svc.config.bucket)
        .key(key)
        .content_type(content_type)
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| ApiError::internal("s3 put_object", aws_error(&e)))?;
    Ok(())
}

/// Reads an object whole; `None` when it does not exist.
pub async fn get(svc: &Services, key: &str) -> Result<Option<Vec<u8>>, ApiError> {
    let out = svc
        .aws
        .s3
        .get_object()
        .bucket(&svc.config.bucket)
        .key(key)
        .send()
        .await;
    let out = match out {
        Ok(out) => out,
        Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
        Err(err) => return Err(ApiError::internal("s3 get_object", aws_error(&err))),
    };
    let bytes = out
        .body
        .collect()
        .await
        .map_err(|e| ApiError::internal("s3 get_object body", e))?;
    Ok(Some(bytes.to_vec()))
}

/// Reads bytes `start..end` of an object (end exclusive, clamped to its size by S3);
/// `None` when the object does not exist. Readers of large uploads (a zip's directory
/// and entries) hold only the part they need.
pub async fn get_range(
    svc: &Services,
    key: &str,
    start: u64,
    end: u64,
) -> Result<Option<Vec<u8>>, ApiError> {
    if end <= start {
        return Ok(Some(Vec::new()));
    }
    let out = svc
        .aws
        .s3
        .get_object()
        .bucket(&svc.config.bucket)
        .key(key)
        .range(format!("bytes={start}-{}", end - 1))
        .send()
        .await;
    let out = match out {
        Ok(out) => out,
        Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
        Err(err) => return Err(ApiError::internal("s3 get_object range", aws_error(&err))),
    };
    let bytes = out
        .body
        .collect()
        .await
        .map_err(|e| ApiError::internal("s3 get_object body", e))?;
    Ok(Some(bytes.to_vec()))
}

/// What `HeadObject` tells of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    /// Size in bytes.
    pub size: u64,
    /// Content type it was stored with.
    pub content_type: String,
}

/// Size and content type of an object; `None` when it does not exist.
pub async fn head(svc: &Services, key: &str) -> Result<Option<ObjectHead>, ApiError> {
    let out = svc
        .aws
        .s3
        .head_object()
        .bucket(&svc.config.bucket)
        .key(key)
        .send()
        .await;
    match out {
        Ok(out) => Ok(Some(ObjectHead {
            size: out.content_length.unwrap_or(0).max(0) as u64,
            content_type: out
                .content_type
                .unwrap_or_else(|| "application/octet-stream".into()),
        })),
        Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
        Err(err) => Err(ApiError::internal("s3 head_object", aws_error(&err))),
    }
}

/// Deletes one object (absent is fine).
pub async fn delete(svc: &Services, key: &str) -> Result<(), ApiError> {
    svc.aws
        .s3
        .delete_object()
        .bucket(&svc.config.bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| ApiError::internal("s3 delete_object", aws_error(&e)))?;
    Ok(())
}

/// Deletes objects by key, in `DeleteObjects` calls of up to 1000; absent keys are fine.
pub async fn delete_many(svc: &Services, keys: &[String]) -> Result<(), ApiError> {
    for chunk in keys.chunks(DELETE_MAX) {
        let objects = chunk
            .iter()
            .map(|key| ObjectIdentifier::builder().key(key).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ApiError::internal("s3 object identifier", e))?;
        let delete = Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| ApiError::internal("s3 delete request", e))?;
        let out = svc
            .aws
            .s3
            .delete_objects()
            .bucket(&svc.config.bucket)
            .delete(delete)
            .send()
            .await
            .map_err(|e| ApiError::internal("s3 delete_objects", aws_error(&e)))?;
        if let Some(failure) = out.errors().first() {
            return Err(ApiError::internal(
                "s3 delete_objects",
                format!("{:?}: {:?}", failure.key(), failure.message()),
            ));
        }
    }
    Ok(())
}

/// Deletes every object under `prefix`; returns how many there were.
pub async fn delete_prefix(svc: &Services, prefix: &str) -> Result<usize, ApiError> {
    let mut deleted = 0;
    let mut token = None;
    loop {
        let page = svc
            .aws
            .s3
            .list_objects_v2()
            .bucket(&svc.config.bucket)
            .prefix(prefix)
            .set_continuation_token(token.take())
            .send()
            .await
            .map_err(|e| ApiError::internal("s3 list_objects_v2", aws_error(&e)))?;
        let keys: Vec<String> = page
            .contents()
            .iter()
            .filter_map(|object| object.key().map(str::to_string))
            .collect();
        delete_many(svc, &keys).await?;
        deleted += keys.len();
        match page.next_continuation_token {
            Some(next) if page.is_truncated == Some(true) => token = Some(next),
            _ => return Ok(deleted),
        }
    }
}

/// A URL that reads the object without credentials for `expires`.
pub async fn presigned_get(
    svc: &Services,
    key: &str,
    expires: Duration,
    content_disposition: Option<String>,
) -> Result<String, ApiError> {
    let config =
        PresigningConfig::expires_in(expires).map_err(|e| ApiError::internal("s3 presign", e))?;
    let request = svc
        .aws
        .s3
        .get_object()
        .bucket(&svc.config.bucket)
        .key(key)
        .set_response_content_disposition(content_disposition)
        .presigned(config)
        .await
        .map_err(|e| ApiError::internal("s3 presign", aws_error(&e)))?;
    Ok(request.uri().to_string())
}

/// A URL that writes the object without credentials for `expires` (a client's upload
/// into its account's upload area).
pub async fn presigned_put(
    svc: &Services,
    key: &str,
    expires: Duration,
    content_type: &str,
) -> Result<String, ApiError> {
    let config =
        PresigningConfig::expires_in(expires).map_err(|e| ApiError::internal("s3 presign", e))?;
    let request = svc
        .aws
        .s3
        .put_object()
        .bucket(&svc.config.bucket)
        .key(key)
        .content_type(content_type)
        .presigned(config)
        .await
        .map_err(|e| ApiError::internal("s3 presign", aws_error(&e)))?;
    Ok(request.uri().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_task_is_under_its_prefix() {
        let prefix = task_prefix(42);
        for key in [
            task_content_key(42),
            subtask_content_key(42, 7),
            subtask_output_key(42, 7),
            result_key(42),
            task_scratch_key(42, "part-1.csv"),
        ] {
            assert!(key.starts_with(&prefix), "{key}");
        }
        // Task 4 must not share task 42's prefix.
        assert!(!task_prefix(42).starts_with(&task_prefix(4)));
    }
}
