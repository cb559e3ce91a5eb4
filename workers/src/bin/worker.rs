//! The Fanout worker process (the container image's entry point).

use clap::Parser;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    fanout_workers::run(fanout_workers::Options::parse()).await
}
