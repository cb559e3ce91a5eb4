//! Reachability of the service's dependencies: the table, both queues and the bucket.

use std::time::Instant;

use futures::future::join_all;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Services;
use crate::store::dynamo::aws_error;

/// State of one dependency.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct DependencyHealth {
    /// `dynamodb`, `sqs:work`, `sqs:control` or `s3`.
    pub component: String,
    /// `ok` or `error`.
    pub status: String,
    /// Seconds the check took.
    pub execution_time: f64,
    /// What failed, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Answer of the health check.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Health {
    /// Seconds all checks took together.
    pub execution_time: f64,
    /// Each dependency.
    pub dependencies: Vec<DependencyHealth>,
}

impl Health {
    /// Whether every dependency answered.
    pub fn is_ok(&self) -> bool {
        self.dependencies.iter().all(|d| d.status == "ok")
    }
}

/// Checks every dependency concurrently.
pub async fn check(svc: &Services) -> Health {
    let started = Instant::now();
    let aws = &svc.aws;
    let config = &svc.config;
    let dynamodb = timed("dynamodb", async {
        aws.dynamodb
            .describe_table()
            .table_name(&config.table)
            .send()
            .await
            .map(drop)
            .map_err(|e| aws_error(&e))
    });
    let queue = |name: &'static str, url: &str| {
        let request = aws
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages);
        timed(name, async move {
            request.send().await.map(drop).map_err(|e| aws_error(&e))
        })
    };
    let s3 = timed("s3", async {
        aws.s3
            .head_bucket()
            .bucket(&config.bucket)
            .send()
            .await
            .map(drop)
            .map_err(|e| aws_error(&e))
    });
    let (dynamodb, queues, s3) = futures::join!(
        dynamodb,
        join_all([
            queue("sqs:work", &config.work_queue_url),
            queue("sqs:control", &config.control_queue_url),
        ]),
        s3
    );
    let mut dependencies = vec![dynamodb];
    dependencies.extend(queues);
    dependencies.push(s3);
    Health {
        execution_time: started.elapsed().as_secs_f64(),
        dependencies,
    }
}

async fn timed(
    component: &str,
    check: impl Future<Output = Result<(), String>>,
) -> DependencyHealth {
    let started = Instant::now();
    let result = check.await;
    DependencyHealth {
        component: component.to_string(),
        status: if result.is_ok() { "ok" } else { "error" }.to_string(),
        execution_time: started.elapsed().as_secs_f64(),
        error: result.err(),
    }
}
