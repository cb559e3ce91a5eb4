//! The API over HTTP, as the command line speaks to it: where it is, the token, and
//! answers turned into JSON or into the API's error.

use std::fmt;
use std::path::{Path, PathBuf};

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The API's address when nothing says otherwise (`make run`'s gateway).
pub const DEFAULT_URL: &str = "http://127.0.0.1:3000";

/// Why a command did not get what it asked for.
#[derive(Debug)]
pub enum CliError {
    /// The API refused or failed: its status and error body.
    Api {
        /// HTTP status.
        status: u16,
        /// `error_code` (0 when the body was not a Fanout error).
        code: u64,
        /// `desc`.
        desc: String,
        /// `detail`.
        detail: String,
    },
    /// No answer at all (connection, TLS, a body that does not read).
    Transport(String),
    /// Something on this side: a file, an argument.
    Local(String),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Api {
                status,
                code,
                desc,
                detail,
            } => write!(f, "error {code} (HTTP {status}): {desc}: {detail}"),
            CliError::Transport(message) => write!(f, "no answer from the API: {message}"),
            CliError::Local(message) => f.write_str(message),
        }
    }
}

impl CliError {
    /// The error as JSON (for `--json`).
    pub fn to_json(&self) -> Value {
        match self {
            CliError::Api {
                status,
                code,
                desc,
                detail,
            } => {
                serde_json::json!({"status": status, "error_code": code, "desc": desc, "detail": detail})
            }
            other => serde_json::json!({"error": other.to_string()}),
        }
    }
}

/// A body to send.
pub enum Payload {
    /// Nothing.
    None,
    /// JSON.
    Json(Value),
    /// Raw bytes with their content type (images).
    Bytes(&'static str, Vec<u8>),
}

/// An answer that is not JSON (images, archives) or a redirect to it.
pub struct RawAnswer {
    /// The response, to stream from.
    pub response: reqwest::Response,
}

/// The API client: base URL, token, and one HTTP client that never follows redirects by
/// itself (a presigned S3 URL must not receive the token).
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// Reads `KEY=VALUE` lines of an env file.
fn env_file_value(path: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_string())
        .next_back()
}

/// `.fanout/local.env` in the current directory or the nearest parent that has one.
pub fn local_env_file() -> Option<PathBuf> {
    let mut dir = std::env::current_dir().ok()?;
    loop {
        let candidate = dir.join(".fanout").join("local.env");
        if candidate.is_file() {
            return Some(candidate);
        }
        if !dir.pop() {
            return None;
        }
    }
}

/// The token to send: `--token`, else `FANOUT_TOKEN`, else `FANOUT_TOKEN` of
/// `.fanout/local.env` (written by `make run`). `admin` picks `FANOUT_ADMIN_TOKEN`
/// instead of `FANOUT_TOKEN` in the last two.
pub fn find_token(given: Option<String>, admin: bool) -> Option<String> {
    let key = if admin {
        "FANOUT_ADMIN_TOKEN"
    } else {
        "FANOUT_TOKEN"
    };
    given
        .or_else(|| std::env::var(key).ok().filter(|t| !t.is_empty()))
        .or_else(|| local_env_file().and_then(|path| env_file_value(&path, key)))
}

impl Client {
    /// A client of the API at `base` sending `token`.
    pub fn new(base: &str, token: Option<String>) -> Result<Client, CliError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("fanout-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError::Transport(e.to_string()))?;
        Ok(Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            http,
        })
    }

    fn request(&self, method: Method, path: &str, payload: Payload) -> reqwest::RequestBuilder {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        match payload {
            Payload::None => request,
            Payload::Json(value) => request
                .header("content-type", "application/json")
                .body(value.to_string()),
            Payload::Bytes(content_type, bytes) => {
                request.header("content-type", content_type).body(bytes)
            }
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        payload: Payload,
        headers: &[(&str, &str)],
    ) -> Result<reqwest::Response, CliError> {
        let mut request = self.request(method, path, payload);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
            .send()
            .await
            .map_err(|e| CliError::Transport(format!("{}: {e}", self.base)))
    }

    /// Sends a request and reads a JSON answer (`Value::Null` for 204).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        payload: Payload,
    ) -> Result<Value, CliError> {
        self.call_with(method, path, payload, &[]).await
    }

    /// [`Client::call`] with extra headers.
    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        payload: Payload,
        headers: &[(&str, &str)],
    ) -> Result<Value, CliError> {
        let response = self.send(method, path, payload, headers).await?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| CliError::Transport(e.to_string()))?;
        if !status.is_success() {
            return Err(api_error(status, &text));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .map_err(|e| CliError::Transport(format!("the answer is not JSON ({e}): {text}")))
    }

    /// `GET path` answered by anything: the response to stream, after following one
    /// redirect to a presigned URL (without the token).
    pub async fn get_raw(&self, path: &str) -> Result<RawAnswer, CliError> {
        let response = self.send(Method::GET, path, Payload::None, &[]).await?;
        let response = if response.status() == StatusCode::FOUND {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| CliError::Transport("a redirect without a location".into()))?
                .to_string();
            self.http
                .get(&location)
                .send()
                .await
                .map_err(|e| CliError::Transport(format!("{location}: {e}")))?
        } else {
            response
        };
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(api_error(status, &text));
        }
        Ok(RawAnswer { response })
    }
}

/// The API's error body, or what came instead of one.
fn api_error(status: StatusCode, text: &str) -> CliError {
    let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let field = |name: &str| body[name].as_str().unwrap_or_default().to_string();
    match body["error_code"].as_u64() {
        Some(code) => CliError::Api {
            status: status.as_u16(),
            code,
            desc: field("desc"),
            detail: field("detail"),
        },
        // API Gateway's own answers ({"message": ...}) and anything else.
        None => CliError::Api {
            status: status.as_u16(),
            code: 0,
            desc: status.canonical_reason().unwrap_or("error").to_string(),
            detail: body["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| text.chars().take(200).collect()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fanout_errors_and_other_bodies_read_as_api_errors() {
        let err = api_error(
            StatusCode::NOT_FOUND,
            r#"{"error_code":28001,"desc":"Object not found","detail":"Task with id '9' not found","link":"x"}"#,
        );
        assert_eq!(
            err.to_string(),
            "error 28001 (HTTP 404): Object not found: Task with id '9' not found"
        );
        let gateway = api_error(StatusCode::UNAUTHORIZED, r#"{"message":"Unauthorized"}"#);
        assert_eq!(
            gateway.to_string(),
            "error 0 (HTTP 401): Unauthorized: Unauthorized"
        );
        assert_eq!(gateway.to_json()["status"], 401);
    }
}
