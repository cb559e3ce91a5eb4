//! Scheduled Lambda function (every minute): the task engine's reconciler.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run_reconciler().await
}
