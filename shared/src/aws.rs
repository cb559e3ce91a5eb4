//! AWS clients built once per process from the standard environment.
//!
//! `AWS_ENDPOINT_URL` points every client at a local emulator (LocalStack); S3 then uses
//! path-style addressing because `bucket.localhost` does not resolve.

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
        AwsClients::from_sdk_config(&sdk)
    }

    /// Builds the clients from a loaded configuration (tests give theirs an HTTP client).
    pub fn from_sdk_config(sdk: &aws_config::SdkConfig) -> AwsClients {
        use crate::request_count::{Counter, enabled};
        let mut s3 =
            aws_sdk_s3::config::Builder::from(sdk).force_path_style(sdk.endpoint_url().is_some());
        let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(sdk);
        let mut sqs = aws_sdk_sqs::config::Builder::from(sdk);
        if enabled() {
            s3 = s3.interceptor(Counter("s3"));
            dynamodb = dynamodb.interceptor(Counter("dynamodb"));
            sqs = sqs.interceptor(Counter("sqs"));
        }
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb.build()),
            sqs: aws_sdk_sqs::Client::from_conf(sqs.build()),
            s3: aws_sdk_s3::Client::from_conf(s3.build()),
        }
    }
}
