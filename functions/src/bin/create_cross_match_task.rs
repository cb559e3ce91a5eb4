//! Lambda function for the `create_cross_match_task` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("create_cross_match_task").await
}
