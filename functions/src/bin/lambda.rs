//! The one Lambda binary: every function of infra/template.yaml runs it as its
//! `bootstrap`, and the function's `FANOUT_FUNCTION` variable picks what it serves (a
//! route of the table by name, `control` or `reconcile`). A missing or unknown name
//! stops it at startup with the list of valid names.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run_from_env().await
}
