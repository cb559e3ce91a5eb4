//! Lambda function for the `delete_list` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("delete_list").await
}
