//! Lambda function for the `delete_face` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("delete_face").await
}
