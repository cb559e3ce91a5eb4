//! Lambda function for the `list_task_errors` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("list_task_errors").await
}
