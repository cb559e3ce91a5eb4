//! Lambda function for the `list_errors` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("list_errors").await
}
