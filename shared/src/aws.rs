//! AWS clients built once per process from the standard environment.
//!
//! `AWS_ENDPOINT_URL` points every client at a local emulator (LocalStack or moto_server);
//! S3 then uses path-style addressing because `bucket.localhost` does not resolve.

use aws_config::BehaviorVersion;

/// The three SDK clients the service uses, sharing one configuration.
#[derive(Debug, Clone)]
pub struct AwsClients {
    /// Tables: tasks, objects, errors.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// Work and control queues.
    pub sqs: aws_sdk_sqs::Client,
    /// Contents, subtask outputs and results.
    pub s3: aws_sdk_s3::Client,
}

impl AwsClients {
    /// Loads region, credentials and endpoint from the environment.
    pub async fn from_env() -> AwsClients {
        let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
        let s3_config = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build();
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
        }
    }
}
