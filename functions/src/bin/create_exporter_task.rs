//! Lambda function for the `create_exporter_task` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("create_exporter_task").await
}
