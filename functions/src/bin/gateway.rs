//! Local HTTP gateway: every route on one port (default 127.0.0.1:3000, `FANOUT_ADDR`).

use std::sync::Arc;

use fanout::{Services, telemetry};
use fanout_functions::gateway;

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
    tokio::select! {
        result = gateway::serve(svc, listener) => result?,
        _ = tokio::signal::ctrl_c() => println!("Fanout gateway stopped"),
    }
    Ok(())
}
