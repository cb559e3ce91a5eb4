//! Lambda function for the `healthcheck` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("healthcheck").await
}
