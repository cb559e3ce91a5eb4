//! Service configuration, read once from the environment and validated at start.
//!
//! The infrastructure template exports the resource names (`FANOUT_TABLE`,
//! `FANOUT_WORK_QUEUE_URL`, `FANOUT_CONTROL_QUEUE_URL`, their dead-letter queues
//! `FANOUT_WORK_DLQ_URL` and `FANOUT_CONTROL_DLQ_URL`, `FANOUT_BUCKET`) to every function
//! and worker; locally `localstack/deploy.sh` writes the same variables to
//! `.fanout/local.env`.

use std::collections::BTreeMap;

use serde::Serialize;

/// Descriptor versions known when `FANOUT_DESCRIPTOR_VERSIONS` is not set: LUNA's 59
/// (512 values, computed by clients) and the two networks Fanout's workers extract
/// ([`crate::descriptor::EXTRACTABLE`]).
const DEFAULT_DESCRIPTOR_VERSIONS: &str = "59:512,1001:1024,1002:512";
/// The default version with the built-in table (with a configured table: its highest).
const DEFAULT_DESCRIPTOR_VERSION: u32 = 59;

/// Everything the service needs to know about its environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    /// DynamoDB table holding every record.
    pub table: String,
    /// SQS queue of subtask messages.
    pub work_queue_url: String,
    /// SQS queue of task control messages (planning, merging).
    pub control_queue_url: String,
    /// Dead-letter queue of the work queue: subtasks that exhausted their attempts.
    pub work_dlq_url: String,
    /// Dead-letter queue of the control queue: task steps that kept failing.
    pub control_dlq_url: String,
    /// S3 bucket for contents, subtask outputs and results.
    pub bucket: String,
    /// Known descriptor versions and their lengths (number of f32 values).
    pub descriptor_versions: BTreeMap<u32, usize>,
    /// Version assumed when a request gives none.
    pub default_descriptor_version: u32,
    /// Custom AWS endpoint (an emulator), when set.
    pub endpoint_url: Option<String>,
    /// Requests one token may send per minute (`FANOUT_TOKEN_REQUESTS_PER_MINUTE`,
    /// default [`DEFAULT_TOKEN_REQUESTS_PER_MINUTE`]; 0: no limit).
    pub token_requests_per_minute: u32,
    /// Seconds a running ClearML task may go without an update before the reconciler's
    /// watchdog stops it (`FANOUT_CLEARML_WATCHDOG_SECONDS`, default
    /// [`crate::clearml::tasks::WATCHDOG_SECONDS`], as clearml-server's).
    pub clearml_watchdog_seconds: u64,
}

/// Requests per minute a token may send unless configured otherwise (100 a second).
pub const DEFAULT_TOKEN_REQUESTS_PER_MINUTE: u32 = 6000;

/// The longest watchdog threshold: a year.
pub const MAX_WATCHDOG_SECONDS: u64 = 365 * 24 * 3600;

/// A missing or malformed environment variable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is absent or empty.
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    /// A variable's value cannot be parsed.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid {
        /// Variable name.
        name: &'static str,
        /// Why the value was rejected.
        reason: String,
    },
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup`, so tests need not touch the environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let required = |name: &'static str| {
            lookup(name)
                .filter(|v| !v.trim().is_empty())
                .ok_or(ConfigError::Missing(name))
        };
        let configured_versions = lookup("FANOUT_DESCRIPTOR_VERSIONS");
        let built_in_table = configured_versions.is_none();
        let versions_raw =
            configured_versions.unwrap_or_else(|| DEFAULT_DESCRIPTOR_VERSIONS.to_string());
        let descriptor_versions = parse_descriptor_versions(&versions_raw)?;
        let default_descriptor_version = match lookup("FANOUT_DEFAULT_DESCRIPTOR_VERSION") {
            Some(raw) => raw.trim().parse().map_err(|_| ConfigError::Invalid {
                name: "FANOUT_DEFAULT_DESCRIPTOR_VERSION",
                reason: format!("'{raw}' is not a version number"),
            })?,
            None if built_in_table => DEFAULT_DESCRIPTOR_VERSION,
            None => *descriptor_versions
                .keys()
                .next_back()
                .expect("parse_descriptor_versions never returns an empty table"),
        };
        if !descriptor_versions.contains_key(&default_descriptor_version) {
            return Err(ConfigError::Invalid {
                name: "FANOUT_DEFAULT_DESCRIPTOR_VERSION",
                reason: format!(
                    "version {default_descriptor_version} is not in FANOUT_DESCRIPTOR_VERSIONS"
                ),
            });
        }
        Ok(Config {
            table: required("FANOUT_TABLE")?,
            work_queue_url: required("FANOUT_WORK_QUEUE_URL")?,
            control_queue_url: required("FANOUT_CONTROL_QUEUE_URL")?,
            work_dlq_url: required("FANOUT_WORK_DLQ_URL")?,
            control_dlq_url: required("FANOUT_CONTROL_DLQ_URL")?,
            bucket: required("FANOUT_BUCKET")?,
            descriptor_versions,
            default_descriptor_version,
            endpoint_url: lookup("AWS_ENDPOINT_URL").filter(|v| !v.is_empty()),
            token_requests_per_minute: match lookup("FANOUT_TOKEN_REQUESTS_PER_MINUTE") {
                Some(raw) => raw.trim().parse().map_err(|_| ConfigError::Invalid {
                    name: "FANOUT_TOKEN_REQUESTS_PER_MINUTE",
                    reason: format!("'{raw}' is not a whole number of requests"),
                })?,
                None => DEFAULT_TOKEN_REQUESTS_PER_MINUTE,
            },
            clearml_watchdog_seconds: match lookup("FANOUT_CLEARML_WATCHDOG_SECONDS") {
                Some(raw) => raw
                    .trim()
                    .parse()
                    .ok()
                    .filter(|s| (1..=MAX_WATCHDOG_SECONDS).contains(s))
                    .ok_or_else(|| ConfigError::Invalid {
                        name: "FANOUT_CLEARML_WATCHDOG_SECONDS",
                        reason: format!(
                            "'{raw}' is not a whole number of seconds from 1 to {MAX_WATCHDOG_SECONDS}"
                        ),
                    })?,
                None => crate::clearml::tasks::WATCHDOG_SECONDS,
            },
        })
    }

    /// Length a descriptor of `version` must have, if the version is known.
    pub fn descriptor_length(&self, version: u32) -> Option<usize> {
        self.descriptor_versions.get(&version).copied()
    }
}

/// Parses `version:length[,version:length...]`.
fn parse_descriptor_versions(raw: &str) -> Result<BTreeMap<u32, usize>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: "FANOUT_DESCRIPTOR_VERSIONS",
        reason,
    };
    let mut versions = BTreeMap::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (version, length) = entry
            .split_once(':')
            .ok_or_else(|| invalid(format!("'{entry}' is not version:length")))?;
        let version: u32 = version
            .trim()
            .parse()
            .map_err(|_| invalid(format!("'{version}' is not a version number")))?;
        let length: usize = length
            .trim()
            .parse()
            .ok()
            .filter(|l| (1..=4096).contains(l))
            .ok_or_else(|| invalid(format!("'{length}' is not a length in 1..=4096")))?;
        versions.insert(version, length);
    }
    if versions.is_empty() {
        return Err(invalid("no descriptor version given".into()));
    }
    Ok(versions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const BASE: [(&str, &str); 6] = [
        ("FANOUT_TABLE", "t"),
        ("FANOUT_WORK_QUEUE_URL", "w"),
        ("FANOUT_CONTROL_QUEUE_URL", "c"),
        ("FANOUT_WORK_DLQ_URL", "wd"),
        ("FANOUT_CONTROL_DLQ_URL", "cd"),
        ("FANOUT_BUCKET", "b"),
    ];

    #[test]
    fn defaults_to_59_with_the_extractable_versions_known() {
        let config = Config::from_lookup(env(&BASE)).unwrap();
        assert_eq!(config.default_descriptor_version, 59);
        assert_eq!(config.descriptor_length(59), Some(512));
        assert_eq!(config.descriptor_length(54), None);
        // The networks the workers extract are in the built-in table.
        assert_eq!(config.descriptor_length(1001), Some(1024));
        assert_eq!(config.descriptor_length(1002), Some(512));
    }

    #[test]
    fn missing_resource_names_are_reported_by_name() {
        let err = Config::from_lookup(env(&BASE[..5])).unwrap_err();
        assert_eq!(err, ConfigError::Missing("FANOUT_BUCKET"));
    }

    #[test]
    fn descriptor_table_is_parsed_and_checked() {
        let mut pairs = BASE.to_vec();
        pairs.push(("FANOUT_DESCRIPTOR_VERSIONS", "54:512, 60:128"));
        pairs.push(("FANOUT_DEFAULT_DESCRIPTOR_VERSION", "54"));
        let config = Config::from_lookup(env(&pairs)).unwrap();
        assert_eq!(config.descriptor_length(60), Some(128));
        assert_eq!(config.default_descriptor_version, 54);

        pairs.push(("FANOUT_DEFAULT_DESCRIPTOR_VERSION", "1"));
        let mut bad = BASE.to_vec();
        bad.push(("FANOUT_DESCRIPTOR_VERSIONS", "54"));
        assert!(matches!(
            Config::from_lookup(env(&bad)),
            Err(ConfigError::Invalid { .. })
        ));
        let mut unknown_default = BASE.to_vec();
        unknown_default.push(("FANOUT_DEFAULT_DESCRIPTOR_VERSION", "7"));
        assert!(matches!(
            Config::from_lookup(env(&unknown_default)),
            Err(ConfigError::Invalid { .. })
        ));
    }

    #[test]
    fn the_clearml_watchdog_has_a_default_and_must_be_positive() {
        let config = Config::from_lookup(env(&BASE)).unwrap();
        assert_eq!(config.clearml_watchdog_seconds, 7200);
        let mut pairs = BASE.to_vec();
        pairs.push(("FANOUT_CLEARML_WATCHDOG_SECONDS", "5"));
        assert_eq!(
            Config::from_lookup(env(&pairs))
                .unwrap()
                .clearml_watchdog_seconds,
            5
        );
        for raw in ["0", "-3", "soon", "31536001"] {
            let mut bad = BASE.to_vec();
            bad.push(("FANOUT_CLEARML_WATCHDOG_SECONDS", raw));
            assert!(matches!(
                Config::from_lookup(env(&bad)),
                Err(ConfigError::Invalid {
                    name: "FANOUT_CLEARML_WATCHDOG_SECONDS",
                    ..
                })
            ));
        }
    }

    #[test]
    fn the_token_rate_has_a_default_and_must_be_a_whole_number() {
        let config = Config::from_lookup(env(&BASE)).unwrap();
        assert_eq!(
            config.token_requests_per_minute,
            DEFAULT_TOKEN_REQUESTS_PER_MINUTE
        );
        let mut pairs = BASE.to_vec();
        pairs.push(("FANOUT_TOKEN_REQUESTS_PER_MINUTE", "0"));
        assert_eq!(
            Config::from_lookup(env(&pairs))
                .unwrap()
                .token_requests_per_minute,
            0
        );
        let mut bad = BASE.to_vec();
        bad.push(("FANOUT_TOKEN_REQUESTS_PER_MINUTE", "fast"));
        assert!(matches!(
            Config::from_lookup(env(&bad)),
            Err(ConfigError::Invalid {
                name: "FANOUT_TOKEN_REQUESTS_PER_MINUTE",
                ..
            })
        ));
    }
}
