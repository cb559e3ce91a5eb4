//! Lambda function for the `get_error` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("get_error").await
}
