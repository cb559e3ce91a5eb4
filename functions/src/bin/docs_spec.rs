//! Lambda function for the `docs_spec` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("docs_spec").await
}
