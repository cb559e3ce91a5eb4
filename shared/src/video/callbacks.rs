//! `http` callbacks: each event POSTed as JSON to the analytic's URLs, a few attempts
//! each with a short timeout. A callback that keeps failing is written down (a task
//! error, or a stream log record) and never stops the analysis. Deliveries are at least
//! once: a retried merge or a stream picked up again may send an event twice, with the
//! same `event_id`.

use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use super::analytics::Callback;
use super::merge::VideoResult;
use super::task::{VideoContent, processing_error, video_task_uuid};
use crate::Services;
use crate::error::ApiError;
use crate::outbound;
use crate::tasks::model::TaskRecord;
use crate::tasks::store::{self as task_store, ObjectError};

/// Attempts per event and URL.
pub const ATTEMPTS: u32 = 3;
/// Timeout of one attempt.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// POSTs `body` to `callback`'s URL; the last failure's reason when every attempt
/// failed.
pub async fn post(callback: &Callback, body: &Value) -> Result<(), String> {
    let client = outbound::client()?;
    // A host given as an address skips the client's resolver: checked here.
    outbound::check_literal(&callback.url)
        .map_err(|why| format!("callback to {} not sent: {why}", callback.url))?;
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(250 << attempt)).await;
        }
        match client
            .post(&callback.url)
            .timeout(TIMEOUT)
            .json(body)
            .send()
            .await
        {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) => last = format!("answered {}", resp.status()),
            Err(err) => last = err.to_string(),
        }
    }
    Err(format!(
        "callback to {} failed {ATTEMPTS} times: {last}",
        callback.url
    ))
}

/// Sends a finished task's events to its analytics' callbacks; failures become task
/// errors (45001 naming the URL).
pub async fn deliver_task_events(
    svc: &Services,
    task: &TaskRecord,
    content: &VideoContent,
    result: &VideoResult,
) -> Result<(), ApiError> {
    let mut failures = Vec::new();
    let now = crate::timestamps::format(crate::timestamps::now());
    for (index, callbacks) in content.callbacks.iter().enumerate() {
        if callbacks.is_empty() {
            continue;
        }
        let Some(analytic) = result.analytics.get(index) else {
            continue;
        };
        for event in &analytic.events {
            let body = json!({
                "account_id": task.account_id,
                "event_create_time": now,
                "event_type": event.event_type,
                "event": {
                    "task_id": video_task_uuid(task.task_id),
                    "analytic_index": index,
                    "event_id": event.event_id,
                    "people_count": event.people_count,
                    "video_segment": event.video_segment,
                    "overview": {
                        "time_offset": event.overview.time_offset,
                        "people_coordinates": event.overview.people_coordinates,
                    },
                },
            });
            for callback in callbacks {
                if let Err(reason) = post(callback, &body).await {
                    failures.push(failure(reason, event.event_id));
                }
            }
        }
    }
    if failures.is_empty() {
        return Ok(());
    }
    task_store::record_object_errors(svc, task, failures).await
}

fn failure(reason: String, event_id: Uuid) -> ObjectError {
    ObjectError {
        subtask_id: None,
        error: processing_error(reason),
        additional_info: event_id.to_string(),
    }
}
