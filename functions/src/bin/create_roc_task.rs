//! Lambda function for the `create_roc_task` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("create_roc_task").await
}
