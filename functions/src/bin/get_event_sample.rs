//! Lambda function for the `get_event_sample` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("get_event_sample").await
}
