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

/// How many messages of a queue wait to be received: visible now or delayed (SQS's
/// approximate counts; in-flight messages are not waiting).
pub async fn backlog(svc: &Services, queue_url: &str) -> Result<u64, ApiError> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = svc
        .aws
        .sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|e| ApiError::internal("sqs get_queue_attributes", aws_error(&e)))?;
    let attributes = out.attributes.unwrap_or_default();
    Ok([
        A::ApproximateNumberOfMessages,
        A::ApproximateNumberOfMessagesDelayed,
    ]
    .iter()
    .filter_map(|name| attributes.get(name))
    .filter_map(|n| n.parse::<u64>().ok())
    .sum())
}

/// Batch calls in flight at once while sending many bodies.
const SEND_CONCURRENCY: usize = 8;

/// Sends every body, ten per call, several calls at once.
pub async fn send_all(svc: &Services, queue_url: &str, bodies: &[String]) -> Result<(), ApiError> {
    use futures::{StreamExt, TryStreamExt, stream};
    // The calls made first, then run a few at a time (a closure inside the stream would
    // make the future not `Send` for the spawners that run it).
    let calls: Vec<_> = bodies
        .chunks(BATCH_MAX)
        .map(|chunk| send_batch(svc, queue_url, chunk))
        .collect();
    stream::iter(calls)
        .buffer_unordered(SEND_CONCURRENCY)
        .try_collect::<()>()
        .await
}

/// Sends up to ten bodies in one call, again for those SQS refused.
async fn send_batch(svc: &Services, queue_url: &str, chunk: &[String]) -> Result<(), ApiError> {
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
    Ok(())
}
