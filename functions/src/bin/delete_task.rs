//! Lambda function for the `delete_task` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("delete_task").await
}
