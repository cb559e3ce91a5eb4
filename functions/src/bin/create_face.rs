//! Lambda function for the `create_face` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("create_face").await
}
