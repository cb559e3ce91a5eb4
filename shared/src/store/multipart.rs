//! An S3 object written as a stream of bytes of unknown length, in bounded memory.
//!
//! [`MultipartUpload`] buffers what it is given until it holds [`PART_SIZE`] bytes, uploads
//! that buffer as the next part and starts a new one, so memory is one part however large
//! the object grows. Parts go up one at a time: the next write waits for the part in flight.
//! With 8 MiB parts and S3's 10,000 parts an object can reach 78 GiB.
//!
//! An upload that fails or is given up must be [`MultipartUpload::abort`]ed: S3 keeps (and
//! bills) the parts of an unfinished upload until it is aborted or a bucket lifecycle rule
//! removes it. [`MultipartUpload::finish`] aborts by itself when completing fails.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};

use super::dynamo::aws_error;
use crate::Services;
use crate::error::ApiError;

/// Size of every part but the last (S3 needs >= 5 MiB).
pub const PART_SIZE: usize = 8 * 1024 * 1024;

// S3 rejects every part but the last below 5 MiB.
const _: () = assert!(PART_SIZE >= 5 * 1024 * 1024);

/// Most parts one upload may have.
const MAX_PARTS: usize = 10_000;

/// An object of `svc.config.bucket` being uploaded part by part.
pub struct MultipartUpload<'a> {
    svc: &'a Services,
    key: String,
    upload_id: String,
    /// Bytes of the next part; allocated on first use, handed to the SDK when full.
    buffer: Vec<u8>,
    /// Parts uploaded so far, in order.
    parts: Vec<CompletedPart>,
    written: u64,
}

impl<'a> MultipartUpload<'a> {
    /// Starts a multipart upload of `key` in svc.config.bucket with this content type.
    pub async fn begin(svc: &'a Services, key: &str, content_type: &str) -> Result<Self, ApiError> {
        let out = svc
            .aws
            .s3
            .create_multipart_upload()
            .bucket(&svc.config.bucket)
            .key(key)
            .content_type(content_type)
            .send()
            .await
            .map_err(|e| ApiError::internal("s3 create_multipart_upload", aws_error(&e)))?;
        let upload_id = out
            .upload_id
            .ok_or_else(|| ApiError::internal("s3 create_multipart_upload", "no upload id"))?;
        Ok(MultipartUpload {
            svc,
            key: key.to_string(),
            upload_id,
            buffer: Vec::new(),
            parts: Vec::new(),
            written: 0,
        })
    }

    /// Appends bytes; uploads a part whenever PART_SIZE bytes are buffered.
    pub async fn write(&mut self, mut bytes: &[u8]) -> Result<(), ApiError> {
        while !bytes.is_empty() {
            if self.buffer.capacity() == 0 {
                self.buffer.reserve_exact(PART_SIZE);
            }
            let room = PART_SIZE - self.buffer.len();
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.buffer.extend_from_slice(now);
            self.written += now.len() as u64;
            bytes = rest;
            if self.buffer.len() == PART_SIZE {
                self.upload_part().await?;
            }
        }
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Uploads the last part and completes; returns the object size.
    ///
    /// Nothing written makes an empty object: S3 completes no upload without a part, so
    /// the empty buffer goes up as the one part. On failure the upload is aborted.
    pub async fn finish(mut self) -> Result<u64, ApiError> {
        match self.complete().await {
            Ok(()) => Ok(self.written),
            Err(err) => {
                self.abort().await;
                Err(err)
            }
        }
    }

    /// Aborts the upload (best effort, logs failures).
    pub async fn abort(self) {
        let aborted = self
            .svc
            .aws
            .s3
            .abort_multipart_upload()
            .bucket(&self.svc.config.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await;
        if let Err(err) = aborted {
            let error = aws_error(&err);
            tracing::warn!(key = %self.key, %error, "s3 abort_multipart_upload failed");
        }
    }

    /// Uploads what is buffered as the last part and completes the upload.
    async fn complete(&mut self) -> Result<(), ApiError> {
        if !self.buffer.is_empty() || self.parts.is_empty() {
            self.upload_part().await?;
        }
        let parts = CompletedMultipartUpload::builder()
            .set_parts(Some(std::mem::take(&mut self.parts)))
            .build();
        self.svc
            .aws
            .s3
            .complete_multipart_upload()
            .bucket(&self.svc.config.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(parts)
            .send()
            .await
            .map_err(|e| ApiError::internal("s3 complete_multipart_upload", aws_error(&e)))?;
        Ok(())
    }

    /// Uploads the buffer as the next part and empties it.
    async fn upload_part(&mut self) -> Result<(), ApiError> {
        if self.parts.len() == MAX_PARTS {
            return Err(ApiError::internal(
                "s3 upload_part",
                format!("{} is larger than {MAX_PARTS} parts", self.key),
            ));
        }
        // At most 10,000: fits.
        let number = self.parts.len() as i32 + 1;
        // The buffer moves into the request; the next one is allocated only after this part
        // is up, so one part buffer is alive at a time.
        let body = ByteStream::from(std::mem::take(&mut self.buffer));
        let out = self
            .svc
            .aws
            .s3
            .upload_part()
            .bucket(&self.svc.config.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .body(body)
            .send()
            .await
            .map_err(|e| ApiError::internal("s3 upload_part", aws_error(&e)))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag)
                .build(),
        );
        Ok(())
    }
}
