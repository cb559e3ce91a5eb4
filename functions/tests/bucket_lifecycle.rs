//! The results bucket deployed into the local stack carries the lifecycle rules of
//! `infra/template.yaml`. LocalStack's CloudFormation ignores `LifecycleConfiguration`,
//! so `localstack/deploy_stack.py` applies the template's rules through the S3 API; this
//! test reads the rules from the template (not from a copy) and from the bucket, and
//! compares them. Needs the local stack's environment (`make test`).

use std::collections::BTreeMap;

use aws_sdk_s3::types::{ExpirationStatus, LifecycleRuleFilter};
use fanout::Services;
use serde_norway::Value;

/// What a rule says, in one comparable shape: status, prefix, expiration days,
/// days after which incomplete multipart uploads are aborted.
type Rule = (String, String, Option<i64>, Option<i64>);

fn template_rules() -> BTreeMap<String, Rule> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml");
    let text = std::fs::read_to_string(path).expect("infra/template.yaml");
    let template: Value = serde_norway::from_str(&text).expect("template is plain YAML");
    let rules =
        template["Resources"]["ResultsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
            .as_sequence()
            .expect("the template's ResultsBucket has lifecycle rules");
    rules
        .iter()
        .map(|r| {
            let id = r["Id"].as_str().expect("rule Id").to_string();
            let rule = (
                r["Status"].as_str().expect("Status").to_string(),
                r["Prefix"].as_str().unwrap_or("").to_string(),
                r["ExpirationInDays"].as_i64(),
                r["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"].as_i64(),
            );
            (id, rule)
        })
        .collect()
}

#[tokio::test]
async fn results_bucket_has_the_template_lifecycle_rules() {
    let services = Services::from_env()
        .await
        .expect("local stack environment: run `make test`");
    let want = template_rules();
    assert!(!want.is_empty());

    let got = services
        .aws
        .s3
        .get_bucket_lifecycle_configuration()
        .bucket(&services.config.bucket)
        .send()
        .await
        .expect("the bucket has a lifecycle configuration");
    let got: BTreeMap<String, Rule> = got
        .rules()
        .iter()
        .map(|r| {
            let prefix = match r.filter() {
                Some(LifecycleRuleFilter {
                    prefix: Some(p), ..
                }) => p.clone(),
                _ => String::new(),
            };
            let status = match r.status() {
                ExpirationStatus::Enabled => "Enabled".to_string(),
                other => other.as_str().to_string(),
            };
            let rule = (
                status,
                prefix,
                r.expiration().and_then(|e| e.days()).map(i64::from),
                r.abort_incomplete_multipart_upload()
                    .and_then(|a| a.days_after_initiation())
                    .map(i64::from),
            );
            (r.id().unwrap_or_default().to_string(), rule)
        })
        .collect();
    assert_eq!(got, want);
}
