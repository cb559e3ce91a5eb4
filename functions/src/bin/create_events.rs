//! Lambda function for the `create_events` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("create_events").await
}
