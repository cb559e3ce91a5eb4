//! SQS: messages of the engine, sent in batches of 10 (the SQS maximum) with the
//! entries SQS refused sent again.

use std::time::Duration;

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use super::dynamo::aws_error;
use crate::Services;
use crate::error::ApiError;

/// Most entries one `SendMessageBatch` call takes.
pub const BATCH_MAX: usize = 10;
/// Attempts at entries a batch call refused.
const ATTEMPTS: u32 = 5;

/// Sends one message.
pub async fn send(svc: &Services, queue_url: &str, body: String) -> Result<(), ApiError> {
    svc.aws
        .sqs
        .send_message()
        .queue_url(queue_url)
        .message_body(body)
        .send()
        .await
        .map_err(|e| ApiError::internal("sqs send_message", aws_error(&e)))?;
    Ok(())
}

/// Sends every body, ten per call.
pub async fn send_all(svc: &Services, queue_url: &str, bodies: &[String]) -> Result<(), ApiError> {
    for chunk in bodies.chunks(BATCH_MAX) {
        let mut pending: Vec<SendMessageBatchRequestEntry> = chunk
            .iter()
            .enumerate()
            .map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .build()
                    .map_err(|e| ApiError::internal("sqs batch entry", e))
            })
            .collect::<Result<_, _>>()?;
        let mut attempt = 0;
        while !pending.is_empty() {
            let out = svc
                .aws
                .sqs
                .send_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(pending.clone()))
                .send()
                .await
                .map_err(|e| ApiError::internal("sqs send_message_batch", aws_error(&e)))?;
            let failed: Vec<&str> = out.failed().iter().map(|f| f.id()).collect();
            pending.retain(|entry| failed.contains(&entry.id()));
            attempt += 1;
            if !pending.is_empty() {
                if attempt >= ATTEMPTS {
                    return Err(ApiError::internal(
                        "sqs send_message_batch",
                        format!("{} entries refused after retries", pending.len()),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
            }
        }
    }
    Ok(())
}
