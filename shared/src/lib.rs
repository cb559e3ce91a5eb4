//! Fanout's domain: configuration, the error registry, request ids and query parsing,
//! the objects LUNA-style tasks work on, and the stores over DynamoDB, SQS and S3.
//!
//! Nothing here knows about Lambda or HTTP: the `functions` crate parses requests, calls
//! these functions and renders their results or [`error::ApiError`]s.

pub mod auth;
pub mod aws;
pub mod clearml;
pub mod config;
pub mod descriptor;
pub mod engine;
pub mod error;
pub mod fault;
pub mod health;
pub mod kinds;
pub mod objects;
pub mod orchestrator;
pub mod outbound;
pub mod query;
pub mod request_count;
pub mod request_id;
pub mod store;
pub mod tasks;
pub mod telemetry;
pub mod timestamps;
pub mod vectors;
pub mod video;
pub mod vision;

use crate::aws::AwsClients;
use crate::config::{Config, ConfigError};
use crate::store::Table;

/// Everything a handler or worker needs, built once per process.
#[derive(Debug, Clone)]
pub struct Services {
    /// Settings read from the environment.
    pub config: Config,
    /// SDK clients.
    pub aws: AwsClients,
    /// The table of every record.
    pub table: Table,
}

impl Services {
    /// Reads the configuration and builds the clients.
    pub async fn from_env() -> Result<Services, ConfigError> {
        let config = Config::from_env()?;
        let aws = AwsClients::from_env().await;
        Ok(Services::new(config, aws))
    }

    /// Assembles services from parts.
    pub fn new(config: Config, aws: AwsClients) -> Services {
        let table = Table::new(aws.dynamodb.clone(), config.table.clone());
        Services { config, aws, table }
    }
}
