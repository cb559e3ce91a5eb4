//! One helper for every end-to-end test: it finds the local stack (the emulator and the
//! resources `make deploy-local` created, described by `.fanout/local.env`), starts the
//! gateway once per test binary on a free port, and speaks HTTP to it like a client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use aws_sdk_dynamodb::types::AttributeValue;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

use fanout::Services;
use fanout::aws::AwsClients;
use fanout::config::Config;

pub mod clearml;

/// A running gateway over the local emulator.
pub struct Stack {
    /// Base URL of the gateway, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// Services for checking the store directly through the SDK, from any test's runtime
    /// (see [`on_runtime`]).
    pub services: Arc<Services>,
    /// A token of an admin account, made through the store when the stack starts: every
    /// request of [`Stack::call`] and its kin carries it unless it sends its own
    /// `Authorization` header (an admin acts on the account its request names).
    pub admin_token: String,
}

/// An account of type `user` with a token allowed everything, made through the API.
#[derive(Debug, Clone)]
pub struct User {
    /// The account.
    pub account_id: String,
    /// Its token.
    pub token: String,
}

/// An HTTP answer, read whole.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body parsed as JSON (`Value::Null` when empty or not JSON).
    pub json: Value,
    /// The raw body.
    pub text: String,
}

impl Answer {
    /// The LUNA `error_code` of an error answer.
    pub fn error_code(&self) -> u64 {
        self.json["error_code"]
            .as_u64()
            .unwrap_or_else(|| panic!("not an error body: {} {}", self.status, self.text))
    }
}

static STACK: OnceLock<Stack> = OnceLock::new();

/// SDK clients whose requests all run on the stack's long-lived runtime.
///
/// Each `#[tokio::test]` has a runtime of its own that ends with the test. A connection the
/// SDK opens lives on the runtime that opened it and goes back to the client's pool; once
/// that test's runtime is gone, the next test that draws the connection from the pool gets
/// "runtime dropped the dispatch task" (seen with LocalStack, which keeps connections
/// alive). Running every request on the stack's runtime keeps the pool's connections alive
/// for all tests; the futures are awaited from any runtime through a `JoinHandle`.
pub mod on_runtime {
    use aws_config::BehaviorVersion;
    use aws_smithy_runtime_api::client::http::{
        HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
        SharedHttpConnector,
    };
    use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
    use fanout::aws::AwsClients;
    use tokio::runtime::Handle;

    /// The service's three clients, over the default HTTP client moved onto `handle`.
    pub async fn clients(handle: Handle) -> AwsClients {
        let http = OnRuntime {
            inner: aws_smithy_http_client::Builder::new().build_http(),
            handle,
        };
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .http_client(SharedHttpClient::new(http))
            .load()
            .await;
        AwsClients::from_sdk_config(&sdk)
    }

    #[derive(Debug)]
    struct OnRuntime {
        inner: SharedHttpClient,
        handle: Handle,
    }

    impl HttpClient for OnRuntime {
        fn http_connector(
            &self,
            settings: &HttpConnectorSettings,
            components: &RuntimeComponents,
        ) -> SharedHttpConnector {
            SharedHttpConnector::new(OnRuntimeConnector {
                inner: self.inner.http_connector(settings, components),
                handle: self.handle.clone(),
            })
        }
    }

    #[derive(Debug)]
    struct OnRuntimeConnector {
        inner: SharedHttpConnector,
        handle: Handle,
    }

    impl HttpConnector for OnRuntimeConnector {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            let sent = self.handle.spawn(self.inner.call(request));
            HttpConnectorFuture::new(async move {
                sent.await
                    .map_err(|e| ConnectorError::other(Box::new(e), None))?
            })
        }
    }
}

/// The shared stack, started on first use.
pub fn stack() -> &'static Stack {
    STACK.get_or_init(start)
}

fn start() -> Stack {
    load_local_env();
    let (tx, rx) = std::sync::mpsc::channel();
    // The gateway gets its own runtime: each #[tokio::test] runtime ends with its test.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async move {
            let config = Config::from_env()
                .expect("configuration: run the tests with `make test`, which starts the emulator");
            let gateway = Arc::new(Services::new(config.clone(), AwsClients::from_env().await));
            let checks = Arc::new(Services::new(
                config,
                on_runtime::clients(tokio::runtime::Handle::current()).await,
            ));
            let admin = fanout::auth::bootstrap(
                &checks,
                fanout::auth::AccountType::Admin,
                None,
                "end-to-end tests",
            )
            .await
            .expect("bootstrap an admin token");
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr: SocketAddr = listener.local_addr().expect("addr");
            tx.send((addr, checks, admin.token)).expect("send");
            fanout_functions::gateway::serve(gateway, listener)
                .await
                .expect("gateway");
        });
    });
    let (addr, services, admin_token) = rx.recv().expect("gateway did not start");
    Stack {
        url: format!("http://{addr}"),
        services,
        admin_token,
    }
}

/// Exports `.fanout/local.env` (written by `localstack/deploy.sh`) unless already set.
fn load_local_env() {
    if std::env::var_os("FANOUT_TABLE").is_some() {
        return;
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.fanout/local.env");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    for line in text.lines() {
        if let Some((key, value)) = line.split_once('=') {
            // SAFETY: runs once, before any thread of this test binary reads the environment.
            unsafe { std::env::set_var(key.trim(), value.trim()) };
        }
    }
}

impl Stack {
    /// Sends a request; `body` is sent as JSON when given.
    pub async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Answer {
        self.call_with(method, path, body, &[]).await
    }

    /// Sends a request with extra headers.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = client().request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("authorization"))
        {
            request = request.bearer_auth(&self.admin_token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        answer(request.send().await.expect("request")).await
    }

    /// Sends a request with `token` (`None`: no `Authorization` header at all).
    pub async fn call_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Answer {
        match token {
            Some(token) => {
                let header = format!("Bearer {token}");
                self.call_with(method, path, body, &[("authorization", &header)])
                    .await
            }
            None => {
                let mut request = client().request(method, format!("{}{path}", self.url));
                if let Some(body) = body {
                    request = request
                        .header("content-type", "application/json")
                        .body(body.to_string());
                }
                answer(request.send().await.expect("request")).await
            }
        }
    }

    /// Sends raw bytes with `token` (`None`: no `Authorization` header), with a
    /// Content-Type when given.
    pub async fn send_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let mut request = client()
            .request(method, format!("{}{path}", self.url))
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        answer(request.send().await.expect("request")).await
    }

    /// A new `user` account and a token for it with every permission (through the API,
    /// with the admin token).
    pub async fn user(&self) -> User {
        let created = self
            .post(
                "/1/accounts",
                &serde_json::json!({"description": "test user"}),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        let account_id = created.json["account_id"]
            .as_str()
            .expect("account_id")
            .to_string();
        let token = self.token_for(&account_id, &serde_json::json!({})).await;
        User { account_id, token }
    }

    /// A token for `account_id` made by the admin with `extra` fields of `POST /1/tokens`
    /// (permissions, expiration_time).
    pub async fn token_for(&self, account_id: &str, extra: &Value) -> String {
        let mut body = serde_json::json!({"account_id": account_id});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let made = self.post("/1/tokens", &body).await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
        made.json["token"].as_str().expect("token").to_string()
    }

    /// Sends a raw text body (for malformed JSON).
    pub async fn send_raw(&self, method: Method, path: &str, body: &str) -> Answer {
        let request = client()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.admin_token)
            .header("content-type", "application/json")
            .body(body.to_string());
        answer(request.send().await.expect("request")).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `PATCH path` with a JSON body.
    pub async fn patch(&self, path: &str, body: &Value) -> Answer {
        self.call(Method::PATCH, path, Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, None).await
    }

    /// Number of items stored under one account partition of the index (`FACE`, `LIST`,
    /// `EVENT`), read straight from DynamoDB — the ground truth for "nothing changed".
    pub async fn stored(&self, account_id: &str, kind: &str) -> usize {
        self.count_partition(Some("gsi1"), "gsi1pk", format!("ACC#{account_id}#{kind}"))
            .await
    }

    /// Number of items in a list's partition (the list and its memberships).
    pub async fn stored_in_list(&self, list_id: &str) -> usize {
        self.count_partition(None, "pk", format!("LIST#{list_id}"))
            .await
    }

    async fn count_partition(&self, index: Option<&str>, key: &str, value: String) -> usize {
        let out = self
            .services
            .aws
            .dynamodb
            .query()
            .table_name(&self.services.config.table)
            .set_index_name(index.map(str::to_string))
            .key_condition_expression(format!("{key} = :v"))
            .expression_attribute_values(":v", AttributeValue::S(value))
            .select(aws_sdk_dynamodb::types::Select::Count)
            .send()
            .await
            .expect("dynamodb query");
        out.count as usize
    }
}

/// A client for one request: pooled connections would belong to the runtime of the
/// test that opened them, and every `#[tokio::test]` has its own.
fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        json,
        text,
    }
}

/// A new account id: tests never see each other's records.
pub fn account() -> String {
    Uuid::new_v4().to_string()
}

/// A descriptor of the default version (512 values) derived from `seed`.
pub fn descriptor(seed: u32) -> Vec<f32> {
    (0..512)
        .map(|i| ((seed as f32 + 1.0) * (i as f32 + 1.0)).sin())
        .collect()
}

/// Cosine similarity of two descriptors clamped to [0, 1] (0 for a zero vector), in f64:
/// the brute-force reference the vector kinds' results are checked against.
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        (dot / (na * nb)).clamp(0.0, 1.0)
    }
}

/// Deterministic values in [-0.5, 0.5) (a linear congruential generator), so test and
/// benchmark data are the same on every run.
pub struct Lcg(pub u64);

impl Lcg {
    /// The next value.
    pub fn next_value(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as f64 / (1u64 << 31) as f64) as f32 - 0.5
    }

    /// Descriptors with cluster structure: object `i` is centre `i % centres` plus noise
    /// of amplitude `noise`, so similarities inside a cluster are high and across low.
    pub fn clustered(&mut self, n: usize, centres: usize, noise: f32) -> Vec<Vec<f32>> {
        let centres: Vec<Vec<f32>> = (0..centres)
            .map(|_| (0..512).map(|_| self.next_value()).collect())
            .collect();
        (0..n)
            .map(|i| {
                centres[i % centres.len()]
                    .iter()
                    .map(|c| c + noise * self.next_value())
                    .collect()
            })
            .collect()
    }
}

/// Faces of `account_id` with the given descriptors and `user_data`, through the bulk
/// loader; their ids in order.
pub async fn faces_with_descriptors(
    svc: &Services,
    account_id: Uuid,
    descriptors: &[Vec<f32>],
    user_data: &str,
) -> Vec<Uuid> {
    let batch = descriptors
        .iter()
        .map(|d| fanout::objects::faces::NewFace {
            account_id,
            descriptor: Some(serde_json::json!(d)),
            descriptor_version: None,
            external_id: None,
            user_data: Some(user_data.to_string()),
            event_id: None,
            avatar: None,
            lists: None,
        })
        .collect();
    fanout::objects::faces::create_batch(svc, batch)
        .await
        .expect("bulk load faces")
}

/// An HTTP answer whose body is kept as bytes (images).
#[derive(Debug)]
pub struct RawAnswer {
    /// Status code.
    pub status: StatusCode,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body as sent.
    pub bytes: Vec<u8>,
}

impl RawAnswer {
    /// The LUNA `error_code` of an error answer.
    pub fn error_code(&self) -> u64 {
        let json: Value = serde_json::from_slice(&self.bytes).unwrap_or(Value::Null);
        json["error_code"].as_u64().unwrap_or_else(|| {
            panic!(
                "not an error body: {} {}",
                self.status,
                String::from_utf8_lossy(&self.bytes)
            )
        })
    }

    /// The `content-type` header ("" when absent).
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

impl Stack {
    /// Sends raw bytes (an image upload), with a Content-Type when given.
    pub async fn send_bytes(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let mut request = client()
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.admin_token)
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        answer(request.send().await.expect("request")).await
    }

    /// `GET path`, keeping the body's bytes.
    pub async fn get_bytes(&self, path: &str) -> RawAnswer {
        let response = client()
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .expect("request");
        RawAnswer {
            status: response.status(),
            headers: response.headers().clone(),
            bytes: response.bytes().await.expect("body").to_vec(),
        }
    }

    /// Keys of the S3 objects under `prefix`, read straight from the bucket.
    pub async fn stored_objects(&self, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .services
                .aws
                .s3
                .list_objects_v2()
                .bucket(&self.services.config.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .expect("s3 list_objects_v2");
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_string)),
            );
            match page.next_continuation_token {
                Some(next) if page.is_truncated == Some(true) => token = Some(next),
                _ => return keys,
            }
        }
    }
}
