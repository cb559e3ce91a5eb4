//! Reachability of the service's dependencies: the table, both queues and the bucket.
//!
//! A failed check answers with the component and a LUNA error body whose detail is a
//! short reason (`unreachable`, `timeout`, `access denied`, ...). The SDK's error chain
//! names endpoints, request ids, ARNs and where credentials were looked for: it goes to
//! the log, never to the caller.

use std::time::Instant;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::Services;
use crate::error::{ApiError, ErrorBody, ErrorCode};
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
    /// Why it failed, when it failed: code 28000 with `<component> unavailable: <reason>`
    /// as the detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
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

/// Why a dependency check failed, in the few words a caller may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The call ran out of time.
    Timeout,
    /// No connection to the endpoint (DNS, connect, I/O).
    Unreachable,
    /// The service refused the caller's identity or policy.
    AccessDenied,
    /// No credentials to sign with, or expired ones.
    Credentials,
    /// The table, queue or bucket does not exist.
    NotFound,
    /// The service is throttling the caller.
    Throttled,
    /// The service answered with a server error.
    Unavailable,
    /// Anything else.
    Failed,
}

impl Reason {
    /// The words shown to the caller.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Timeout => "timeout",
            Reason::Unreachable => "unreachable",
            Reason::AccessDenied => "access denied",
            Reason::Credentials => "no valid credentials",
            Reason::NotFound => "not found",
            Reason::Throttled => "throttled",
            Reason::Unavailable => "service error",
            Reason::Failed => "unexpected error",
        }
    }

    /// Classifies a failed SDK call by its kind, then by its error code, then by its
    /// HTTP status (S3 answers HEAD requests without a code).
    pub fn of_sdk<E>(err: &SdkError<E, HttpResponse>) -> Reason
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        match err {
            SdkError::TimeoutError(_) => Reason::Timeout,
            SdkError::DispatchFailure(failure) if failure.is_timeout() => Reason::Timeout,
            SdkError::DispatchFailure(failure) if failure.is_io() => Reason::Unreachable,
            SdkError::ServiceError(service) => service
                .err()
                .code()
                .map(Reason::of_text)
                .filter(|reason| *reason != Reason::Failed)
                .unwrap_or_else(|| Reason::of_status(service.raw().status().as_u16())),
            SdkError::DispatchFailure(_) => match Reason::of_text(&aws_error(err)) {
                // It never got an answer: whatever else it says, the service was not reached.
                Reason::Failed => Reason::Unreachable,
                reason => reason,
            },
            _ => Reason::of_text(&aws_error(err)),
        }
    }

    /// Classifies an error code or an error chain by the words in it.
    pub fn of_text(text: &str) -> Reason {
        let text = text.to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| text.contains(w));
        if has(&[
            "accessdenied",
            "access denied",
            "forbidden",
            "unrecognizedclient",
            "invalidclienttokenid",
            "signaturedoesnotmatch",
            "not authorized",
        ]) {
            Reason::AccessDenied
        } else if has(&["credential", "expiredtoken", "security token"]) {
            Reason::Credentials
        } else if has(&["timeout", "timed out"]) {
            Reason::Timeout
        } else if has(&[
            "throttl",
            "slowdown",
            "slow down",
            "provisionedthroughputexceeded",
            "requestlimitexceeded",
            "too many requests",
        ]) {
            Reason::Throttled
        } else if has(&[
            "notfound",
            "not found",
            "nonexistent",
            "doesnotexist",
            "nosuchbucket",
        ]) {
            Reason::NotFound
        } else if has(&[
            "dispatch failure",
            "connect",
            "dns error",
            "io error",
            "unreachable",
        ]) {
            Reason::Unreachable
        } else if has(&[
            "unavailable",
            "internalerror",
            "internalservererror",
            "internal server error",
        ]) {
            Reason::Unavailable
        } else {
            Reason::Failed
        }
    }

    /// Classifies an HTTP status of a service's error answer.
    pub fn of_status(status: u16) -> Reason {
        match status {
            401 | 403 => Reason::AccessDenied,
            404 => Reason::NotFound,
            408 => Reason::Timeout,
            429 => Reason::Throttled,
            500..=599 => Reason::Unavailable,
            _ => Reason::Failed,
        }
    }
}

/// A failed check: what the caller sees and what only the log sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Shown to the caller.
    pub reason: Reason,
    /// The whole error chain, for the log.
    pub chain: String,
}

impl Failure {
    /// A failed SDK call.
    pub fn sdk<E>(err: &SdkError<E, HttpResponse>) -> Failure
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        Failure {
            reason: Reason::of_sdk(err),
            chain: aws_error(err),
        }
    }
}

/// An error chain known only as text (classified by its words).
impl From<String> for Failure {
    fn from(chain: String) -> Failure {
        Failure {
            reason: Reason::of_text(&chain),
            chain,
        }
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
            .map_err(|e| Failure::sdk(&e))
    });
    let queue = |name: &'static str, url: &str| {
        let request = aws
            .sqs
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages);
        timed(name, async move {
            request.send().await.map(drop).map_err(|e| Failure::sdk(&e))
        })
    };
    let s3 = timed("s3", async {
        aws.s3
            .head_bucket()
            .bucket(&config.bucket)
            .send()
            .await
            .map(drop)
            .map_err(|e| Failure::sdk(&e))
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

/// Runs one check; a failure is logged in full and answered by its reason only.
async fn timed<E: Into<Failure>>(
    component: &str,
    check: impl Future<Output = Result<(), E>>,
) -> DependencyHealth {
    let started = Instant::now();
    let result = check.await.map_err(Into::into);
    let execution_time = started.elapsed().as_secs_f64();
    let error = result.err().map(|failure: Failure| {
        tracing::error!(
            component,
            reason = failure.reason.as_str(),
            error = %failure.chain,
            "dependency check failed"
        );
        ApiError::new(
            ErrorCode::DependencyUnavailable,
            format!("{component} unavailable: {}", failure.reason.as_str()),
        )
        .body()
    });
    DependencyHealth {
        component: component.to_string(),
        status: if error.is_none() { "ok" } else { "error" }.to_string(),
        execution_time,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use aws_sdk_dynamodb::operation::describe_table::DescribeTableError;
    use aws_sdk_s3::operation::head_bucket::HeadBucketError;
    use aws_sdk_sqs::operation::get_queue_attributes::GetQueueAttributesError;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    /// What the SDK prints for a call that never reached the service: the credential
    /// source, a key id, a request id, the endpoint and an account's role.
    const CHAIN: &str = "dispatch failure: other: an error occurred while loading credentials: \
        failed to load credentials from the provider chain (profile `prod-admin`, \
        AKIAIOSFODNN7EXAMPLE): request id: 7a62c49f-347e-4fc4-9331-6e8eEXAMPLE: \
        error sending request for url (https://dynamodb.eu-west-1.amazonaws.com/): \
        arn:aws:iam::123456789012:role/fanout-HealthcheckRole";

    /// Pieces of [`CHAIN`] and of the errors below that must never reach a caller.
    const LEAKS: &[&str] = &[
        "dispatch failure",
        "credentials from",
        "prod-admin",
        "AKIA",
        "request id",
        "7a62c49f",
        "eu-west-1",
        "amazonaws.com",
        "arn:aws",
        "123456789012",
        "10.0.3.17",
        "fanout-prod",
        "Connection refused",
        "AccessDeniedException",
    ];

    fn answer(component: &str, failure: impl Into<Failure>) -> DependencyHealth {
        let failure = failure.into();
        futures::executor::block_on(timed(component, async { Err::<(), _>(failure) }))
    }

    fn assert_no_leak(health: &DependencyHealth) {
        let body = serde_json::to_string(health).unwrap();
        for leak in LEAKS {
            assert!(!body.contains(leak), "{leak:?} leaked: {body}");
        }
    }

    fn response(status: u16) -> HttpResponse {
        HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty())
    }

    fn meta(code: &str, message: &str) -> ErrorMetadata {
        ErrorMetadata::builder()
            .code(code)
            .message(message)
            .custom("request_id", "7a62c49f-347e-4fc4-9331-6e8eEXAMPLE")
            .build()
    }

    #[test]
    fn a_failed_check_names_the_component_but_not_the_error_chain() {
        let health = futures::executor::block_on(timed("dynamodb", async {
            Err::<(), String>(CHAIN.to_string())
        }));
        assert_no_leak(&health);
        assert_eq!(health.component, "dynamodb");
        assert_eq!(health.status, "error");
        let error = health.error.expect("an error body");
        assert_eq!(error.error_code, ErrorCode::DependencyUnavailable.code());
        assert_eq!(error.desc, "Dependency unavailable");
        assert_eq!(error.detail, "dynamodb unavailable: no valid credentials");
    }

    #[test]
    fn a_refused_connection_is_unreachable() {
        let io = std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "tcp connect error: http://10.0.3.17:4566/: Connection refused (os error 111)",
        );
        let err: SdkError<DescribeTableError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io(Box::new(io)));
        assert_eq!(Reason::of_sdk(&err), Reason::Unreachable);
        let health = answer("dynamodb", Failure::sdk(&err));
        assert_no_leak(&health);
        assert_eq!(
            health.error.unwrap().detail,
            "dynamodb unavailable: unreachable"
        );
    }

    #[test]
    fn timeouts_are_timeouts() {
        let err: SdkError<GetQueueAttributesError, HttpResponse> = SdkError::timeout_error(
            "operation timeout (all attempts including retries) occurred after 3.1s",
        );
        assert_eq!(Reason::of_sdk(&err), Reason::Timeout);
        let err: SdkError<GetQueueAttributesError, HttpResponse> = SdkError::dispatch_failure(
            ConnectorError::timeout("HTTP connect timeout occurred after 3.1s".into()),
        );
        assert_eq!(Reason::of_sdk(&err), Reason::Timeout);
    }

    #[test]
    fn service_refusals_are_classified_by_code_then_status() {
        let denied: SdkError<DescribeTableError, HttpResponse> = SdkError::service_error(
            DescribeTableError::generic(meta(
                "AccessDeniedException",
                "User: arn:aws:sts::123456789012:assumed-role/fanout-prod/x is not authorized \
                 to perform: dynamodb:DescribeTable",
            )),
            response(400),
        );
        assert_eq!(Reason::of_sdk(&denied), Reason::AccessDenied);
        let health = answer("dynamodb", Failure::sdk(&denied));
        assert_no_leak(&health);
        assert_eq!(
            health.error.unwrap().detail,
            "dynamodb unavailable: access denied"
        );

        // S3 answers HEAD without a body, so without a code: the status decides.
        let head = |status| -> SdkError<HeadBucketError, HttpResponse> {
            SdkError::service_error(
                HeadBucketError::generic(ErrorMetadata::builder().build()),
                response(status),
            )
        };
        assert_eq!(Reason::of_sdk(&head(403)), Reason::AccessDenied);
        assert_eq!(Reason::of_sdk(&head(404)), Reason::NotFound);
        assert_eq!(Reason::of_sdk(&head(503)), Reason::Unavailable);

        let queue = |code: &str| -> SdkError<GetQueueAttributesError, HttpResponse> {
            SdkError::service_error(
                GetQueueAttributesError::generic(meta(code, "queue fanout-prod-work")),
                response(400),
            )
        };
        assert_eq!(
            Reason::of_sdk(&queue("AWS.SimpleQueueService.NonExistentQueue")),
            Reason::NotFound
        );
        assert_eq!(
            Reason::of_sdk(&queue("ThrottlingException")),
            Reason::Throttled
        );
        assert_eq!(Reason::of_sdk(&queue("ExpiredToken")), Reason::Credentials);
        assert_eq!(Reason::of_sdk(&queue("SomethingNew")), Reason::Failed);
    }

    #[test]
    fn an_answered_check_has_no_error() {
        let health = futures::executor::block_on(timed("s3", async { Ok::<(), String>(()) }));
        assert_eq!(health.status, "ok");
        assert!(health.error.is_none());
        let body = serde_json::to_value(&health).unwrap();
        assert!(body.get("error").is_none(), "{body}");
    }
}
