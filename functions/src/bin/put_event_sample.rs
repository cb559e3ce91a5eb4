//! Lambda function for the `put_event_sample` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("put_event_sample").await
}
