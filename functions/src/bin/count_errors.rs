//! Lambda function for the `count_errors` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("count_errors").await
}
