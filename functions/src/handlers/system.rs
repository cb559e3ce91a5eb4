//! Service routes: version, health, configuration, API documentation.

use lambda_http::{Body, Request, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use fanout::Services;
use fanout::error::ApiError;
use fanout::health;

use crate::dispatch;
use crate::openapi;
use crate::request::{json, query_of};
use crate::routes::{self, Match};

/// Answer to `GET /version`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VersionBody {
    /// The version parts.
    #[serde(rename = "Version")]
    pub version: Version,
}

/// Version parts of the service.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Version {
    /// API generation (the `/1/` prefix).
    pub api: u32,
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
}

/// `GET /version`.
pub async fn version(_: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    query_of(&req, &[])?;
    let part = |s: &str| s.parse().unwrap_or(0);
    Ok(json(
        200,
        &VersionBody {
            version: Version {
                api: 1,
                major: part(env!("CARGO_PKG_VERSION_MAJOR")),
                minor: part(env!("CARGO_PKG_VERSION_MINOR")),
                patch: part(env!("CARGO_PKG_VERSION_PATCH")),
            },
        },
    ))
}

/// `GET /1/healthcheck[?include_luna_services=0|1]`: 200 when every dependency answers,
/// 502 otherwise. Fanout has no dependent LUNA services: both values check its own
/// dependencies (DynamoDB, SQS, S3); any other value is 400.
pub async fn healthcheck(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    query_of(&req, &["include_luna_services"])?.int::<u8>("include_luna_services", 0, 1)?;
    let health = health::check(svc).await;
    let status = if health.is_ok() { 200 } else { 502 };
    Ok(json(status, &health))
}

/// Environment variables that hold credentials: shown only as set or unset.
const SECRETS: &[&str] = &[
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ACCESS_KEY_ID",
];

/// `GET /1/config`: the settings in force; credentials are hidden.
pub async fn config(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    query_of(&req, &[])?;
    let credentials: serde_json::Map<String, serde_json::Value> = SECRETS
        .iter()
        .map(|name| {
            let shown = if std::env::var_os(name).is_some() {
                "******"
            } else {
                ""
            };
            (name.to_string(), json!(shown))
        })
        .collect();
    Ok(json(
        200,
        &json!({
            "FANOUT_TABLE": svc.config.table,
            "FANOUT_WORK_QUEUE_URL": svc.config.work_queue_url,
            "FANOUT_CONTROL_QUEUE_URL": svc.config.control_queue_url,
            "FANOUT_BUCKET": svc.config.bucket,
            "FANOUT_DESCRIPTOR_VERSIONS": svc.config.descriptor_versions,
            "FANOUT_DEFAULT_DESCRIPTOR_VERSION": svc.config.default_descriptor_version,
            "AWS_ENDPOINT_URL": svc.config.endpoint_url,
            "AWS_REGION": std::env::var("AWS_REGION").ok(),
            "CREDENTIALS": credentials,
        }),
    ))
}

/// `GET /docs/dev`: LUNA's development manual is at `/docs/dev/index.html`, where this
/// redirects (302), as LUNA does.
pub async fn docs_dev(_: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    query_of(&req, &[])?;
    Ok(Response::builder()
        .status(302)
        .header(http::header::LOCATION, openapi::HTML_PAGE)
        .body(Body::Empty)
        .expect("static response parts are valid"))
}

/// `GET /docs/dev/index.html`: the OpenAPI document rendered as one HTML page.
pub async fn docs_dev_page(_: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    query_of(&req, &[])?;
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/html; charset=utf-8")
        .body(Body::Text(openapi::html()))
        .expect("static response parts are valid"))
}

/// `GET /docs/spec` and `GET /1/docs/spec`: YAML for `Accept: application/x-yaml`, JSON
/// for `Accept: application/json` (without HTML), the rendered page otherwise.
pub async fn docs_spec(_: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    query_of(&req, &[])?;
    let accept = req
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (content_type, body) = if accept.contains("yaml") {
        ("application/x-yaml", openapi::yaml()?)
    } else if accept.contains("application/json") && !accept.contains("text/html") {
        ("application/json", openapi::json()?)
    } else {
        ("text/html; charset=utf-8", openapi::html())
    };
    Ok(Response::builder()
        .status(200)
        .header("content-type", content_type)
        .body(Body::Text(body))
        .expect("static response parts are valid"))
}

/// The catch-all route (`ANY /{proxy+}`): API Gateway hands it every request no other
/// route of the HTTP API takes, which it would otherwise answer with its own
/// `{"message":"Not Found"}`. It answers as the local gateway does, from the route table:
/// 106 as 404 for an unknown path (naming the kinds for `POST /1/tasks/<unknown>`), as
/// 405 for a known path with another method. A path the table knows only with a trailing
/// slash (`/docs/dev/`; API Gateway matches paths exactly) is redirected (308) to the
/// path without it, query kept; a redirect, never the route itself, so no route is
/// reached past its authorizer.
pub async fn catch_all(_: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path();
    match routes::find(req.method(), path) {
        Match::UnknownTaskKind(kind) => Err(routes::unknown_task_kind(&kind)),
        Match::MethodNotAllowed => Ok(dispatch::unrouted_error(&req, true)),
        Match::Found(..) if path.len() > 1 && path.ends_with('/') => {
            let mut location = path.trim_end_matches('/').to_string();
            if location.is_empty() {
                return Ok(dispatch::unrouted_error(&req, false));
            }
            if let Some(query) = req.uri().query() {
                location.push('?');
                location.push_str(query);
            }
            Response::builder()
                .status(308)
                .header(http::header::LOCATION, location)
                .body(Body::Empty)
                .map_err(|e| ApiError::internal("redirect", e))
        }
        Match::Found(..) | Match::NotFound => Ok(dispatch::unrouted_error(&req, false)),
    }
}
