//! Runs one route for one request: request id, log span, handler, error rendering.
//! Lambda and the local gateway both come through here.

use std::time::Instant;

use http::HeaderValue;
use lambda_http::{Body, Request, Response};
use tracing::Instrument;

use fanout::Services;
use fanout::error::{ApiError, ErrorCode};
use fanout::request_id::{self, RequestId};

use crate::access;
use crate::handlers::clearml;
use crate::request;
use crate::routes::{Route, Surface};

/// Answers `req` with `route`, echoing (or generating) the `Luna-Request-Id`.
pub async fn dispatch(svc: &Services, route: &Route, mut req: Request) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (request_id, result) = match client_request_id(&req) {
        Ok(id) => {
            let span = tracing::info_span!("request", request_id = %id, route = route.name);
            req.extensions_mut().insert(id.clone());
            let result = async {
                access::admit(svc, route, &mut req).await?;
                (route.handler)(svc, req).await
            }
            .instrument(span.clone())
            .await;
            (id, result.map_err(|e| (e, span)))
        }
        Err(err) => (
            RequestId::generate(),
            Err((err, tracing::info_span!("request", route = route.name))),
        ),
    };
    let mut response = match result {
        Ok(response) => response,
        Err((err, span)) => {
            span.in_scope(|| {
                if err.status() >= 500 {
                    tracing::error!(error_code = err.code.code(), detail = %err.detail, "request failed");
                } else {
                    tracing::info!(error_code = err.code.code(), detail = %err.detail, "request rejected");
                }
            });
            let mut response = render(route, &path, &request_id, &err);
            challenge(&mut response, &err);
            response
        }
    };
    with_request_id(&mut response, &request_id);
    access_line(&method, &path, &response, &request_id, started);
    response
}

/// One access log line per request: method, path (never the query, which may name
/// accounts), status, milliseconds and the request id. JSON in Lambda like every line.
fn access_line(
    method: &http::Method,
    path: &str,
    response: &Response<Body>,
    request_id: &RequestId,
    started: Instant,
) {
    tracing::info!(
        target: "access",
        method = %method,
        path,
        status = response.status().as_u16(),
        ms = started.elapsed().as_secs_f64() * 1000.0,
        request_id = %request_id,
        "{method} {path} {}",
        response.status().as_u16()
    );
}

/// The headers that tell a client what to do about a refusal: how to authenticate
/// (401, RFC 6750) and when to come back (429).
fn challenge(response: &mut Response<Body>, err: &ApiError) {
    let value = match err.status() {
        401 if err.code == ErrorCode::Unauthenticated => Some((
            http::header::WWW_AUTHENTICATE,
            r#"Bearer realm="fanout""#.to_string(),
        )),
        401 => Some((
            http::header::WWW_AUTHENTICATE,
            r#"Bearer realm="fanout", error="invalid_token""#.to_string(),
        )),
        429 => Some((
            http::header::RETRY_AFTER,
            fanout::auth::rate::retry_after(fanout::timestamps::now()).to_string(),
        )),
        _ => None,
    };
    if let Some((name, value)) = value
        && let Ok(value) = HeaderValue::from_str(&value)
    {
        response.headers_mut().insert(name, value);
    }
}

/// An error in the form of the route's surface: Fanout's error body, or ClearML's
/// envelope.
fn render(route: &Route, path: &str, request_id: &RequestId, err: &ApiError) -> Response<Body> {
    match route.surface {
        Surface::Fanout | Surface::CatchAll => request::error(err),
        Surface::Clearml => clearml::refusal(path, request_id.as_str(), err),
    }
}

/// Answer for a request to `route` refused before it ran (the local authorizer failed),
/// in the route's surface's shape.
pub fn refused_at(route: &Route, req: &Request, err: &ApiError) -> Response<Body> {
    answer_refusal(req, |request_id| {
        render(route, req.uri().path(), request_id, err)
    })
}

/// Answer for a request refused before any route ran (an unknown task kind).
pub fn refused(req: &Request, err: &ApiError) -> Response<Body> {
    answer_refusal(req, |_| request::error(err))
}

/// A refusal's response from `render`, with the request id and its access line.
fn answer_refusal(
    req: &Request,
    render: impl FnOnce(&RequestId) -> Response<Body>,
) -> Response<Body> {
    let started = Instant::now();
    let request_id = client_request_id(req).unwrap_or_else(|_| RequestId::generate());
    let mut response = render(&request_id);
    with_request_id(&mut response, &request_id);
    access_line(
        req.method(),
        req.uri().path(),
        &response,
        &request_id,
        started,
    );
    response
}

/// Answer for a request no route takes.
pub fn unrouted(req: &Request, method_known_path: bool) -> Response<Body> {
    let request_id = client_request_id(req).unwrap_or_else(|_| RequestId::generate());
    let mut response = unrouted_error(req, method_known_path);
    with_request_id(&mut response, &request_id);
    access_line(
        req.method(),
        req.uri().path(),
        &response,
        &request_id,
        Instant::now(),
    );
    response
}

/// The error a request no route takes gets, the same from the local gateway and from the
/// catch-all route on AWS: 106 as 404 for an unknown path, as 405 for a path known with
/// other methods.
pub fn unrouted_error(req: &Request, method_known_path: bool) -> Response<Body> {
    let err = if method_known_path {
        ApiError::new(
            ErrorCode::BadRoute,
            format!(
                "Method {} is not allowed on {}",
                req.method(),
                req.uri().path()
            ),
        )
    } else {
        ApiError::new(
            ErrorCode::BadRoute,
            format!("Resource {} not found", req.uri().path()),
        )
    };
    let mut response = request::error(&err);
    if method_known_path {
        *response.status_mut() = http::StatusCode::METHOD_NOT_ALLOWED;
    }
    response
}

fn client_request_id(req: &Request) -> Result<RequestId, ApiError> {
    match req.headers().get(request_id::HEADER) {
        None => Ok(RequestId::generate()),
        Some(value) => value
            .to_str()
            .ok()
            .and_then(RequestId::parse)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::BadRequestId,
                    "Luna-Request-Id must look like 1536751345,8b8b5937-2e9c-4e8b-a7a7-5caf86621b5a",
                )
            }),
    }
}

fn with_request_id(response: &mut Response<Body>, id: &RequestId) {
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(request_id::HEADER, value);
    }
}
