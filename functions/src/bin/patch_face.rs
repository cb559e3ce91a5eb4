//! Lambda function for the `patch_face` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("patch_face").await
}
