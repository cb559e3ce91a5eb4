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
