//! Counts of the AWS requests this process sends, per service and operation — for the
//! engine benchmark (BENCHMARKS.md), switched on with `FANOUT_COUNT_REQUESTS=1`. Counted
//! at transmission, so SDK retries count too. DynamoDB writes also count the items they
//! carry (a batch of 25 puts is one request and 25 items).

use std::collections::BTreeMap;
use std::sync::Mutex;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde::Serialize;

/// Requests and items of one operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Requests sent.
    pub requests: u64,
    /// Items written or read by them (DynamoDB and SQS batch calls; 1 per request otherwise).
    pub items: u64,
}

static COUNTS: Mutex<BTreeMap<String, Tally>> = Mutex::new(BTreeMap::new());

/// Whether counting is switched on for this process.
pub fn enabled() -> bool {
    std::env::var("FANOUT_COUNT_REQUESTS").is_ok_and(|v| v == "1")
}

/// The counts so far, keyed `service:Operation`.
pub fn snapshot() -> BTreeMap<String, Tally> {
    COUNTS.lock().map(|c| c.clone()).unwrap_or_default()
}

/// The interceptor that counts the requests of one service's client.
#[derive(Debug)]
pub struct Counter(pub &'static str);

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "fanout-request-counter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let operation = match request.headers().get("x-amz-target") {
            Some(target) => target.rsplit('.').next().unwrap_or(target).to_string(),
            None => request.method().to_string(),
        };
        let body = request
            .body()
            .bytes()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok());
        let items = body.as_ref().map_or(1, items_in);
        let key = match body.as_ref().and_then(queue_of) {
            Some(queue) => format!("{}:{operation} {queue}", self.0),
            None => format!("{}:{operation}", self.0),
        };
        if let Ok(mut counts) = COUNTS.lock() {
            let tally = counts.entry(key).or_default();
            tally.requests += 1;
            tally.items += items;
        }
        Ok(())
    }
}

/// The queue an SQS request is for (the last part of its URL), so that work and control
/// queue traffic count apart.
fn queue_of(body: &serde_json::Value) -> Option<&str> {
    let url = body.get("QueueUrl")?.as_str()?;
    url.rsplit('/').next()
}

/// Items a batch or transaction request carries.
fn items_in(body: &serde_json::Value) -> u64 {
    if let Some(items) = body.get("TransactItems").and_then(|v| v.as_array()) {
        return items.len() as u64;
    }
    if let Some(entries) = body.get("Entries").and_then(|v| v.as_array()) {
        return entries.len() as u64;
    }
    if let Some(tables) = body.get("RequestItems").and_then(|v| v.as_object()) {
        return tables
            .values()
            .map(|t| match t {
                serde_json::Value::Array(requests) => requests.len() as u64,
                other => other
                    .get("Keys")
                    .and_then(|k| k.as_array())
                    .map_or(1, |k| k.len() as u64),
            })
            .sum();
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn batches_count_their_items() {
        assert_eq!(items_in(&json!({"TransactItems": [{}, {}, {}]})), 3);
        assert_eq!(items_in(&json!({"RequestItems": {"t": [{}, {}]}})), 2);
        assert_eq!(
            items_in(&json!({"RequestItems": {"t": {"Keys": [{}, {}, {}, {}]}}})),
            4
        );
        assert_eq!(items_in(&json!({"Entries": [{}]})), 1);
        assert_eq!(items_in(&json!({"TableName": "t"})), 1);
    }

    #[test]
    fn sqs_requests_name_their_queue() {
        let body = json!({"QueueUrl": "http://127.0.0.1:4566/123456789012/fanout-local-work"});
        assert_eq!(queue_of(&body), Some("fanout-local-work"));
        assert_eq!(queue_of(&json!({"TableName": "t"})), None);
    }
}
