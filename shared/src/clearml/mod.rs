//! A ClearML-compatible surface (clearml-server 2.0.0, API 2.31) that the unmodified
//! `clearml` SDK and `clearml-agent` work against: tasks with ClearML's status machine,
//! projects, queues with atomic pops, workers that expire, events (logs and scalars).
//!
//! Its own room on the same floors: records in the one table (keys in
//! [`crate::store::keys`]), every one scoped by the account of the caller's token,
//! errors in ClearML's numbering ([`error::ClearmlError`]), answers in its envelope
//! ([`envelope`]). The HTTP side (`functions`) parses the request into a JSON object
//! and calls [`dispatch::call`].

pub mod args;
pub mod dispatch;
pub mod docs;
pub mod envelope;
pub mod error;
pub mod events;
pub mod jwt;
pub mod metrics;
pub mod projects;
pub mod queues;
pub mod serve;
pub mod status;
pub mod tasks;
pub mod workers;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::auth::Caller;
use crate::timestamps;

/// Who calls, and when.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The caller (account, token, permissions).
    pub caller: Caller,
    /// The time of the request.
    pub now: DateTime<Utc>,
}

impl Ctx {
    /// A context for `caller` now.
    pub fn new(caller: Caller) -> Ctx {
        Ctx {
            caller,
            now: timestamps::now(),
        }
    }

    /// The account every record of the call belongs to.
    pub fn account(&self) -> Uuid {
        self.caller.account_id
    }

    /// The user ClearML records as the author of a change: the token's id.
    pub fn user(&self) -> String {
        self.caller.token_id.simple().to_string()
    }

    /// The request time as ClearML writes datetimes (ISO 8601, UTC).
    pub fn now_text(&self) -> String {
        iso(self.now)
    }
}

/// A time as ClearML's answers carry it: `2026-11-30T01:20:04.123000+00:00`.
pub fn iso(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
}

/// Reads a time written by [`iso`].
pub fn parse_iso(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
