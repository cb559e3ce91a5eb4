//! Reading the arguments of a call: a JSON object (the body, with the query string
//! merged in), loosely typed the way the clients send it.

use serde_json::{Map, Value};

use super::error::{ClearmlError, Result};

/// The arguments of one call.
pub type Args = Map<String, Value>;

/// A required string argument (400/11 when absent or empty).
pub fn required(args: &Args, name: &str) -> Result<String> {
    optional(args, name).ok_or_else(|| ClearmlError::missing(name))
}

/// A string argument, if given (a number is taken as its text).
pub fn optional(args: &Args, name: &str) -> Option<String> {
    match args.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// A boolean argument (`true`, `"true"`, `1`), `default` when absent.
pub fn flag(args: &Args, name: &str, default: bool) -> bool {
    match args.get(name) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "true" | "1" | "yes"),
        Some(Value::Number(n)) => n.as_i64().is_some_and(|n| n != 0),
        _ => default,
    }
}

/// An integer argument.
pub fn integer(args: &Args, name: &str) -> Option<i64> {
    match args.get(name) {
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    }
}

/// A list of strings: an array, or one string (a comma-separated query value too).
pub fn strings(args: &Args, name: &str) -> Option<Vec<String>> {
    match args.get(name) {
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect(),
        ),
        Some(Value::String(s)) if !s.is_empty() => {
            Some(s.split(',').map(|p| p.trim().to_string()).collect())
        }
        _ => None,
    }
}

/// The `ids` of a `*_many` call (400/11 when absent).
pub fn ids(args: &Args) -> Result<Vec<String>> {
    strings(args, "ids")
        .filter(|ids| !ids.is_empty())
        .ok_or_else(|| ClearmlError::missing("ids"))
}
