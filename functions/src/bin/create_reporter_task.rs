//! Lambda function for the `create_reporter_task` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("create_reporter_task").await
}
