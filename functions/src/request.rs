//! Reading requests and writing responses, the same way under Lambda and the gateway.

use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use fanout::error::{ApiError, ErrorCode};
use fanout::query::{Query, parse_uuid};

/// The decoded query string.
pub fn query(req: &Request) -> Query {
    let pairs = req
        .query_string_parameters_ref()
        .map(|map| {
            map.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    Query::new(pairs)
}

/// The query string, with parameters outside `known` rejected.
pub fn query_of(req: &Request, known: &[&str]) -> Result<Query, ApiError> {
    let query = query(req);
    query.reject_unknown(known)?;
    Ok(query)
}

/// A path parameter such as `{task_id}`.
pub fn path_param<'r>(req: &'r Request, name: &str) -> Result<&'r str, ApiError> {
    req.path_parameters_ref()
        .and_then(|p| p.first(name))
        .ok_or_else(|| ApiError::new(ErrorCode::BadRoute, format!("no path parameter {name}")))
}

/// A UUID path parameter such as `{face_id}`.
pub fn path_uuid(req: &Request, name: &str) -> Result<Uuid, ApiError> {
    let raw = path_param(req, name)?;
    parse_uuid(raw).ok_or_else(|| ApiError::bad_query(name, format!("'{raw}' is not a UUID")))
}

/// The JSON body as `T`: an absent body is 12030, anything unparsable 12027.
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let bytes: &[u8] = match req.body() {
        Body::Empty => &[],
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(
            ErrorCode::NoData,
            "Request does not contain data",
        ));
    }
    serde_json::from_slice(bytes).map_err(ApiError::bad_json)
}

/// A JSON response.
pub fn json<T: Serialize>(status: u16, value: &T) -> Response<Body> {
    match serde_json::to_string(value) {
        Ok(text) => Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::Text(text))
            .expect("static response parts are valid"),
        Err(err) => error(&ApiError::internal("serialize response", err)),
    }
}

/// `204 No Content`.
pub fn no_content() -> Response<Body> {
    Response::builder()
        .status(204)
        .body(Body::Empty)
        .expect("static response parts are valid")
}

/// The rendering of every error: status from the registry, LUNA-style body.
pub fn error(err: &ApiError) -> Response<Body> {
    let body = serde_json::to_string(&err.body()).unwrap_or_default();
    Response::builder()
        .status(err.status())
        .header("content-type", "application/json")
        .body(Body::Text(body))
        .expect("static response parts are valid")
}
