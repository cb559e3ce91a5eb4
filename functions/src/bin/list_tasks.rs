//! Lambda function for the `list_tasks` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("list_tasks").await
}
