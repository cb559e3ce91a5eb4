//! Lambda function for the `get_task_result` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("get_task_result").await
}
