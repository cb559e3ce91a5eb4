//! Lambda function for the `get_list` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("get_list").await
}
