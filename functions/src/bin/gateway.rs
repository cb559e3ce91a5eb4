//! Local HTTP gateway: every route on one port (default 127.0.0.1:3000, `FANOUT_ADDR`).
//! Stops on SIGINT (ctrl-c) or SIGTERM; with `FANOUT_COUNT_REQUESTS=1` it then prints
//! the AWS requests it sent, by operation, as one JSON line (bench/clearml.sh).

use std::sync::Arc;

use fanout::{Services, request_count, telemetry};
use fanout_functions::gateway;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    telemetry::init();
    let addr = std::env::var("FANOUT_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let svc = Arc::new(Services::from_env().await?);
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "Fanout gateway listening on http://{}",
        listener.local_addr()?
    );
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        result = gateway::serve(svc, listener) => result?,
        _ = tokio::signal::ctrl_c() => println!("Fanout gateway stopped"),
        _ = term.recv() => println!("Fanout gateway stopped"),
    }
    if request_count::enabled() {
        println!("{}", serde_json::to_string(&request_count::snapshot())?);
    }
    Ok(())
}
