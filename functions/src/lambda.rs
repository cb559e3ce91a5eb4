//! The body of every per-route Lambda binary.

use std::convert::Infallible;

use lambda_http::{Error, service_fn};

use fanout::{Services, telemetry};

use crate::dispatch::dispatch;
use crate::routes;

/// Serves the route named `name` as a Lambda function.
pub async fn run(name: &str) -> Result<(), Error> {
    telemetry::init();
    let route = routes::by_name(name).ok_or_else(|| format!("no route named {name}"))?;
    let svc: &'static Services = Box::leak(Box::new(Services::from_env().await?));
    lambda_http::run(service_fn(move |req| async move {
        Ok::<_, Infallible>(dispatch(svc, route, req).await)
    }))
    .await
}

/// A task with no progress for this long counts as stalled (override with
/// `FANOUT_STALL_SECONDS`).
const DEFAULT_STALL_SECONDS: u64 = 300;

/// Serves the scheduled reconciler: each invocation (an EventBridge event, ignored) runs
/// one pass and returns its report.
pub async fn run_reconciler() -> Result<(), Error> {
    use lambda_http::lambda_runtime::{self, LambdaEvent};
    telemetry::init();
    let svc: &'static Services = Box::leak(Box::new(Services::from_env().await?));
    let stall = std::env::var("FANOUT_STALL_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_STALL_SECONDS);
    lambda_runtime::run(service_fn(
        move |_: LambdaEvent<serde_json::Value>| async move {
            let report =
                fanout::engine::reconcile::run(svc, std::time::Duration::from_secs(stall)).await?;
            tracing::info!(?report, "reconciled");
            Ok::<_, Error>(report)
        },
    ))
    .await
}

/// One SQS record as Lambda hands it over (the fields the control function reads).
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SqsRecord {
    message_id: String,
    #[serde(default)]
    body: String,
}

/// An SQS event: a batch of records.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SqsEvent {
    #[serde(default)]
    records: Vec<SqsRecord>,
}

/// The answer that reports partial batch failures (`ReportBatchItemFailures`): only the
/// listed messages come back to the queue, the others are deleted.
#[derive(Debug, Default, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BatchResponse {
    batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct ItemFailure {
    item_identifier: String,
}

/// Runs the control steps (plan, advance, merge) of one SQS batch side by side, as the
/// worker's control consumer does, and names the messages to try again: those whose step
/// failed in a way a retry can fix. An unreadable message is dropped (logged), never
/// retried.
pub async fn control_batch(svc: &Services, event: serde_json::Value) -> BatchResponse {
    use fanout::engine::{control, messages::ControlMessage};
    let event: SqsEvent = match serde_json::from_value(event) {
        Ok(event) => event,
        Err(err) => {
            tracing::error!(%err, "not an SQS event; nothing done");
            return BatchResponse::default();
        }
    };
    let steps = event.records.into_iter().map(|record| async move {
        let step: ControlMessage = match serde_json::from_str(&record.body) {
            Ok(step) => step,
            Err(err) => {
                tracing::error!(%err, body = record.body, "unreadable control message dropped");
                return None;
            }
        };
        match control::handle(svc, &step).await {
            Ok(()) => None,
            Err(err) => {
                tracing::error!(%err, ?step, "step failed; message will come back");
                Some(ItemFailure {
                    item_identifier: record.message_id,
                })
            }
        }
    });
    BatchResponse {
        batch_item_failures: futures::future::join_all(steps)
            .await
            .into_iter()
            .flatten()
            .collect(),
    }
}

/// Serves the control queue's event source: every control step runs here on AWS, so a
/// task starts on a stack with no worker running, and scaling the workers in never stops
/// a plan or a merge half-way.
pub async fn run_control_steps() -> Result<(), Error> {
    use lambda_http::lambda_runtime::{self, LambdaEvent};
    telemetry::init();
    let svc: &'static Services = Box::leak(Box::new(Services::from_env().await?));
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            Ok::<_, Error>(control_batch(svc, event.payload).await)
        },
    ))
    .await
}
