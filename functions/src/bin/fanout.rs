//! `fanout`: the command line client of the Fanout API (see `fanout --help`).

use std::process::ExitCode;

use clap::Parser;
use fanout_functions::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::run(cli).await.into()
}
