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
