//! The ClearML surface over HTTP: `/clearml/[v<X.Y>/]<service>.<action>` with GET, POST
//! or PUT, a JSON body (also on GET; json-lines for `events.add_batch`) with the query
//! string merged in, and every answer — refusals, unknown endpoints and failures
//! included — in ClearML's envelope with the HTTP status of its `result_code`.

use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::{Map, Value};

use fanout::Services;
use fanout::clearml::envelope::{self, Endpoint};
use fanout::clearml::error::ClearmlError;
use fanout::clearml::{Ctx, dispatch};
use fanout::error::ApiError;
use fanout::request_id::RequestId;

use crate::access;

/// Runs one ClearML call. Never an `Err`: every outcome is an envelope.
pub async fn call(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let id = call_id(&req);
    let path = req.uri().path().to_string();
    let endpoint = match envelope::parse_path(&path) {
        Ok(endpoint) => endpoint,
        Err(name) => {
            return Ok(answer(
                &id,
                &name,
                None,
                Err(ClearmlError::unknown_endpoint(&name)),
            ));
        }
    };
    let name = endpoint.name();
    let result = run(svc, &req, &endpoint).await;
    if let Err(err) = &result {
        if err.code >= 500 {
            tracing::error!(endpoint = %name, code = err.code, msg = %err.msg, "clearml call failed");
        } else {
            tracing::info!(endpoint = %name, code = err.code, subcode = err.subcode, msg = %err.msg, "clearml call refused");
        }
    }
    Ok(answer(&id, &name, endpoint.version.as_deref(), result))
}

async fn run(svc: &Services, req: &Request, endpoint: &Endpoint) -> Result<Value, ClearmlError> {
    let method = req.method().as_str();
    if !matches!(method, "GET" | "POST" | "PUT") {
        return Err(ClearmlError::method_not_allowed(method));
    }
    let name = endpoint.name();
    dispatch::permission(&name).ok_or_else(|| ClearmlError::unknown_endpoint(&name))?;
    let args = arguments(req, &endpoint.action)?;
    let caller = access::caller(req)?.clone();
    let ctx = Ctx::new(caller);
    dispatch::call(svc, &ctx, &name, args).await
}

/// The call's arguments: the body (a JSON object; for `add_batch` or a json-lines body,
/// its events as `requests`), with the query string's parameters it lacks.
fn arguments(req: &Request, action: &str) -> Result<Map<String, Value>, ClearmlError> {
    let bytes: &[u8] = match req.body() {
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => &[],
    };
    let json_lines = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("json-lines") || t.contains("jsonlines"));
    let mut args = if json_lines || action == "add_batch" {
        batch(bytes)?
    } else {
        object(bytes)?
    };
    if let Some(query) = req.query_string_parameters_ref() {
        let mut merged: Map<String, Value> = Map::new();
        for (key, value) in query.iter() {
            if args.contains_key(key) {
                continue;
            }
            let value = Value::String(value.to_string());
            match merged.get_mut(key) {
                None => {
                    merged.insert(key.to_string(), value);
                }
                Some(Value::Array(list)) => list.push(value),
                Some(first) => *first = Value::Array(vec![first.take(), value]),
            }
        }
        args.extend(merged);
    }
    Ok(args)
}

fn bad_body(reason: impl std::fmt::Display) -> ClearmlError {
    ClearmlError::validation(format!("the body does not read: {reason}"))
}

/// A JSON object body (empty: no arguments).
fn object(bytes: &[u8]) -> Result<Map<String, Value>, ClearmlError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(_) => Err(bad_body("it is not a JSON object")),
        Err(err) => Err(bad_body(err)),
    }
}

/// A batch of events: json-lines (one per line), a JSON array, or an object with
/// `requests`.
fn batch(bytes: &[u8]) -> Result<Map<String, Value>, ClearmlError> {
    let mut args = Map::new();
    let requests = match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Array(items)) => items,
        Ok(Value::Object(mut map)) => match map.remove("requests") {
            Some(Value::Array(items)) => {
                args = map;
                items
            }
            _ => vec![Value::Object(map)],
        },
        _ => {
            let text = std::str::from_utf8(bytes).map_err(bad_body)?;
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_str(l).map_err(bad_body))
                .collect::<Result<Vec<Value>, _>>()?
        }
    };
    args.insert("requests".into(), Value::Array(requests));
    Ok(args)
}

fn call_id(req: &Request) -> String {
    req.extensions()
        .get::<RequestId>()
        .map(|id| id.as_str().to_string())
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

fn answer(
    id: &str,
    name: &str,
    version: Option<&str>,
    result: Result<Value, ClearmlError>,
) -> Response<Body> {
    let (status, body) = match result {
        Ok(data) => (200, envelope::success(id, name, version, data)),
        Err(err) => (err.code, envelope::failure(id, name, version, &err)),
    };
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::Text(body.to_string()))
        .expect("static response parts are valid")
}

/// The envelope of a request refused before its call ran (authentication, permission,
/// rate, size, a failed authorizer): the Fanout error's status as `result_code`.
pub fn refusal(path: &str, request_id: &str, err: &ApiError) -> Response<Body> {
    let (name, version) = match envelope::parse_path(path) {
        Ok(endpoint) => (endpoint.name(), endpoint.version),
        Err(name) => (name, None),
    };
    answer(
        request_id,
        &name,
        version.as_deref(),
        Err(err.clone().into()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn batches_read_as_json_lines_arrays_or_requests() {
        let lines = b"{\"type\": \"log\", \"msg\": \"a\"}\n\n{\"type\": \"log\", \"msg\": \"b\"}\n";
        assert_eq!(
            batch(lines).unwrap()["requests"].as_array().unwrap().len(),
            2
        );
        let array = br#"[{"msg": "a"}]"#;
        assert_eq!(batch(array).unwrap()["requests"], json!([{"msg": "a"}]));
        let single = br#"{"msg": "a"}"#;
        assert_eq!(batch(single).unwrap()["requests"], json!([{"msg": "a"}]));
        assert!(batch(b"{not json\n").is_err());
    }

    #[test]
    fn bodies_are_objects_or_nothing() {
        assert!(object(b"").unwrap().is_empty());
        assert!(object(b"null").unwrap().is_empty());
        assert_eq!(object(br#"{"task": "x"}"#).unwrap()["task"], "x");
        let err = object(b"[1]").unwrap_err();
        assert_eq!((err.code, err.subcode), (400, 12));
    }
}
