//! Lambda function for the `count_tasks` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("count_tasks").await
}
