//! ClearML's answer envelope, `{"meta": {...}, "data": {...}}`, on every answer, errors
//! included; the clients refuse a body without `meta`, and read the HTTP status as
//! `meta.result_code`.
//!
//! Also the request line: `/clearml/[v<X.Y>/]<service>.<action>`.

use serde_json::{Map, Value, json};

use super::error::ClearmlError;

/// The API version this surface speaks (clearml-server 2.0.0).
pub const API_VERSION: &str = "2.31";
/// The server version the tokens name.
pub const SERVER_VERSION: &str = "2.0.0";

/// A parsed request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `tasks` of `tasks.enqueue`.
    pub service: String,
    /// `enqueue` of `tasks.enqueue`.
    pub action: String,
    /// The `vX.Y` of the path, without the `v`; `None` without one.
    pub version: Option<String>,
}

impl Endpoint {
    /// `service.action`.
    pub fn name(&self) -> String {
        format!("{}.{}", self.service, self.action)
    }
}

/// Reads the part of a path after the `/clearml/` prefix (anything before it, an API
/// Gateway stage for one, is ignored): an optional `v<major>.<minor>` segment, then
/// `<service>.<action>`. `Err` carries the name to report as unknown.
pub fn parse_path(path: &str) -> Result<Endpoint, String> {
    let rest = match path.find("/clearml/") {
        Some(at) => &path[at + "/clearml/".len()..],
        None => path.trim_start_matches('/'),
    };
    let rest = rest.trim_end_matches('/');
    let mut segments: Vec<&str> = rest.split('/').collect();
    let mut version = None;
    if segments.len() == 2 {
        let v = segments[0];
        let number = v.strip_prefix('v').filter(|n| is_version(n));
        match number {
            Some(n) => version = Some(n.to_string()),
            None => return Err(rest.to_string()),
        }
        segments.remove(0);
    }
    let [one] = segments.as_slice() else {
        return Err(rest.to_string());
    };
    let Some((service, action)) = one.split_once('.') else {
        return Err(one.to_string());
    };
    let word = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !word(service) || !word(action) {
        return Err(one.to_string());
    }
    Ok(Endpoint {
        service: service.to_string(),
        action: action.to_string(),
        version,
    })
}

fn is_version(text: &str) -> bool {
    match text.split_once('.') {
        Some((major, minor)) => {
            !major.is_empty()
                && !minor.is_empty()
                && major.bytes().all(|b| b.is_ascii_digit())
                && minor.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// `meta.endpoint`: the name, the version asked (the server's when none) and the one
/// answered (never above the server's).
fn endpoint_meta(name: &str, version: Option<&str>) -> Value {
    let requested = version.unwrap_or(API_VERSION);
    let actual = if newer(requested, API_VERSION) {
        API_VERSION
    } else {
        requested
    };
    json!({"name": name, "requested_version": requested, "actual_version": actual})
}

/// Whether version `a` is above `b` (`2.9` < `2.23`).
fn newer(a: &str, b: &str) -> bool {
    let parse = |v: &str| -> (u32, u32) {
        let (major, minor) = v.split_once('.').unwrap_or((v, "0"));
        (major.parse().unwrap_or(0), minor.parse().unwrap_or(0))
    };
    parse(a) > parse(b)
}

/// The body of a successful answer.
pub fn success(id: &str, name: &str, version: Option<&str>, data: Value) -> Value {
    let data = match data {
        Value::Null => Value::Object(Map::new()),
        other => other,
    };
    json!({
        "meta": {
            "id": id,
            "trx": id,
            "endpoint": endpoint_meta(name, version),
            "result_code": 200,
            "result_subcode": 0,
            "result_msg": "OK",
            "error_stack": null,
            "error_data": {},
        },
        "data": data,
    })
}

/// The body of a failed answer (its HTTP status is `err.code`).
pub fn failure(id: &str, name: &str, version: Option<&str>, err: &ClearmlError) -> Value {
    json!({
        "meta": {
            "id": id,
            "trx": id,
            "endpoint": endpoint_meta(name, version),
            "result_code": err.code,
            "result_subcode": err.subcode,
            "result_msg": err.msg,
            "error_stack": null,
            "error_data": err.data,
        },
        "data": {},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_and_without_a_version_and_prefix() {
        let e = parse_path("/clearml/tasks.enqueue").unwrap();
        assert_eq!((e.name(), e.version), ("tasks.enqueue".to_string(), None));
        let e = parse_path("/prod/clearml/v2.23/queues.get_next_task").unwrap();
        assert_eq!(e.name(), "queues.get_next_task");
        assert_eq!(e.version.as_deref(), Some("2.23"));
        assert_eq!(
            parse_path("/clearml/auth.login/").unwrap().name(),
            "auth.login"
        );
        for bad in [
            "/clearml/tasks",
            "/clearml/x/tasks.get_all",
            "/clearml/v2/tasks.get_all",
            "/clearml/v2.5/a/tasks.get_all",
            "/clearml/.x",
            "/clearml/tasks.",
            "/clearml/",
        ] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_answer_has_meta_with_the_status_as_result_code() {
        let ok = success("r1", "tasks.get_all", Some("2.5"), Value::Null);
        assert_eq!(ok["data"], json!({}));
        assert_eq!(ok["meta"]["result_code"], 200);
        assert_eq!(ok["meta"]["result_msg"], "OK");
        assert_eq!(ok["meta"]["id"], "r1");
        assert_eq!(ok["meta"]["trx"], "r1");
        assert_eq!(ok["meta"]["endpoint"]["requested_version"], "2.5");
        assert_eq!(ok["meta"]["endpoint"]["actual_version"], "2.5");
        assert!(ok["meta"]["error_stack"].is_null());
        let err = ClearmlError::invalid_status_change("completed", "queued");
        let bad = failure("r2", "tasks.enqueue", Some("9.99"), &err);
        assert_eq!(bad["meta"]["result_code"], 400);
        assert_eq!(bad["meta"]["result_subcode"], 110);
        assert_eq!(bad["meta"]["error_data"]["current_status"], "completed");
        assert_eq!(bad["meta"]["endpoint"]["actual_version"], API_VERSION);
        assert_eq!(bad["data"], json!({}));
        let none = success("r3", "auth.login", None, json!({"token": "t"}));
        assert_eq!(none["meta"]["endpoint"]["requested_version"], API_VERSION);
        assert!(newer("2.31", "2.9") && !newer("2.9", "2.31"));
    }

    #[test]
    fn fanout_refusals_keep_their_status_and_code() {
        let err: ClearmlError =
            crate::error::ApiError::new(crate::error::ErrorCode::RateLimited, "slow down").into();
        assert_eq!(err.code, 429);
        assert_eq!(err.data["error_code"], 40018);
    }
}
