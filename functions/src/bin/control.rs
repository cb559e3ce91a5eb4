//! Lambda function fed by the control queue: the task engine's control steps (plan,
//! advance, merge), with partial batch failures reported.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run_control_steps().await
}
