//! The body of the one Lambda binary (`src/bin/lambda.rs`): every function of the
//! template runs the same `bootstrap`, and its `FANOUT_FUNCTION` variable picks what it
//! serves: a route of the table by name, `control` (the control queue's consumer) or
//! `reconcile` (the scheduled reconciler).

use std::convert::Infallible;
use std::fmt;

use lambda_http::{Error, service_fn};

use fanout::{Services, telemetry};

use crate::dispatch::dispatch;
use crate::routes::{self, ROUTES, Route};

/// The environment variable, set per function in the template, that names what the
/// function serves.
pub const FUNCTION_VARIABLE: &str = "FANOUT_FUNCTION";

/// The function fed by the control queue.
pub const CONTROL: &str = "control";

/// The scheduled reconciler.
pub const RECONCILE: &str = "reconcile";

/// The HTTP API's Lambda authorizer.
pub const AUTHORIZE: &str = "authorize";

/// What one function serves.
#[derive(Clone, Copy)]
pub enum Function {
    /// One route of the table, as an API Gateway HTTP API integration.
    Route(&'static Route),
    /// The control steps of SQS batches ([`run_control_steps`]).
    Control,
    /// One reconciler pass per scheduled event ([`run_reconciler`]).
    Reconcile,
    /// The HTTP API's Lambda authorizer ([`run_authorizer`]).
    Authorize,
}

impl fmt::Debug for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Function::Route(route) => write!(f, "Route({})", route.name),
            Function::Control => f.write_str("Control"),
            Function::Reconcile => f.write_str("Reconcile"),
            Function::Authorize => f.write_str("Authorize"),
        }
    }
}

/// Every value `FANOUT_FUNCTION` may take: the route names, then `control`,
/// `reconcile` and `authorize`.
pub fn function_names() -> Vec<&'static str> {
    ROUTES
        .iter()
        .map(|route| route.name)
        .chain([CONTROL, RECONCILE, AUTHORIZE])
        .collect()
}

/// The function called `name`, if there is one.
pub fn function(name: &str) -> Option<Function> {
    match name {
        CONTROL => Some(Function::Control),
        RECONCILE => Some(Function::Reconcile),
        AUTHORIZE => Some(Function::Authorize),
        _ => routes::by_name(name).map(Function::Route),
    }
}

/// Whether `name` is a value of `FANOUT_FUNCTION` the binary serves.
pub fn known(name: &str) -> bool {
    function(name).is_some()
}

/// `FANOUT_FUNCTION` is missing, empty or names no function.
pub struct UnknownFunction {
    /// The value found (`None`: not set, or not Unicode).
    pub value: Option<String>,
}

impl fmt::Display for UnknownFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            None => write!(f, "{FUNCTION_VARIABLE} is not set")?,
            Some(value) => write!(f, "{FUNCTION_VARIABLE}={value:?} names no function")?,
        }
        write!(f, "; set it to one of: {}", function_names().join(", "))
    }
}

// `main` returning the error prints its `Debug`: make that the readable message.
impl fmt::Debug for UnknownFunction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for UnknownFunction {}

/// The function named by `value` (the content of `FANOUT_FUNCTION`, `None` when unset).
pub fn resolve(value: Option<&str>) -> Result<Function, UnknownFunction> {
    value.and_then(function).ok_or_else(|| UnknownFunction {
        value: value.map(str::to_string),
    })
}

/// The function named by this process's `FANOUT_FUNCTION`.
pub fn from_env() -> Result<Function, UnknownFunction> {
    let value = std::env::var(FUNCTION_VARIABLE).ok();
    resolve(value.as_deref())
}

/// The multi-call binary's body: serves the function `FANOUT_FUNCTION` names, or fails
/// at startup (before any SDK client is made) naming the variable and its valid values.
pub async fn run_from_env() -> Result<(), Error> {
    // Boxed: one future holding all three would be too deeply nested to lay out.
    match from_env()? {
        Function::Route(route) => Box::pin(run_route(route)).await,
        Function::Control => Box::pin(run_control_steps()).await,
        Function::Reconcile => Box::pin(run_reconciler()).await,
        Function::Authorize => Box::pin(run_authorizer()).await,
    }
}

/// Serves `route` as a Lambda function.
pub async fn run_route(route: &'static Route) -> Result<(), Error> {
    telemetry::init();
    let svc: &'static Services = Box::leak(Box::new(Services::from_env().await?));
    lambda_http::run(service_fn(move |req| async move {
        Ok::<_, Infallible>(dispatch(svc, route, req).await)
    }))
    .await
}

/// The authorizer's answer to one API Gateway REQUEST authorizer event (payload 2.0,
/// simple responses): always `isAuthorized`, with the verdict in the context — the
/// route function answers a denial with its 401 error body (an HTTP API cannot give its
/// own refusals a body). Only a store failure is an error (API Gateway then answers 500).
pub async fn authorizer_answer(
    svc: &Services,
    event: &serde_json::Value,
) -> Result<serde_json::Value, fanout::error::ApiError> {
    let header = event["headers"].as_object().and_then(|headers| {
        headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
            .and_then(|(_, value)| value.as_str())
    });
    let verdict = fanout::auth::authorize(svc, header).await?;
    if let fanout::auth::Verdict::Denied(err) = &verdict {
        tracing::info!(error_code = err.code.code(), detail = %err.detail, "token refused");
    }
    Ok(serde_json::json!({
        "isAuthorized": true,
        "context": verdict.to_context(),
    }))
}

/// Serves the HTTP API's Lambda authorizer.
pub async fn run_authorizer() -> Result<(), Error> {
    use lambda_http::lambda_runtime::{self, LambdaEvent};
    telemetry::init();
    let svc: &'static Services = Box::leak(Box::new(Services::from_env().await?));
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            authorizer_answer(svc, &event.payload)
                .await
                .map_err(|err| Error::from(err.to_string()))
        },
    ))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_the_engine_functions_and_the_authorizer_are_served() {
        let names = function_names();
        assert_eq!(names.len(), ROUTES.len() + 3);
        let unique: std::collections::BTreeSet<_> = names.iter().collect();
        assert_eq!(
            unique.len(),
            names.len(),
            "a route is named like another function"
        );
        for name in &names {
            assert!(known(name), "{name}");
        }
        assert!(matches!(function("control"), Some(Function::Control)));
        assert!(matches!(function("reconcile"), Some(Function::Reconcile)));
        assert!(matches!(function("authorize"), Some(Function::Authorize)));
        assert!(matches!(
            function("get_task"),
            Some(Function::Route(route)) if route.name == "get_task"
        ));
    }

    #[test]
    fn a_missing_or_unknown_name_is_a_startup_error_naming_the_variable_and_the_choices() {
        for value in [None, Some(""), Some("get_tasks"), Some("gateway")] {
            let err = resolve(value).expect_err("no such function");
            let message = format!("{err:?}");
            assert!(message.starts_with("FANOUT_FUNCTION"), "{message}");
            assert!(
                message.contains("get_task, ") || message.contains(", get_task,"),
                "{message}"
            );
            assert!(
                message.ends_with("control, reconcile, authorize"),
                "{message}"
            );
            assert_eq!(message, err.to_string());
        }
        assert_eq!(
            resolve(None).unwrap_err().to_string().split(';').next(),
            Some("FANOUT_FUNCTION is not set")
        );
        assert!(
            resolve(Some("get_tasks"))
                .unwrap_err()
                .to_string()
                .starts_with("FANOUT_FUNCTION=\"get_tasks\" names no function;")
        );
    }
}
