//! Lambda function for the `list_subtasks` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("list_subtasks").await
}
