//! Lambda function for the `cancel_task` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("cancel_task").await
}
