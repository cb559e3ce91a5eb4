//! Lambda function for the `patch_list` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("patch_list").await
}
