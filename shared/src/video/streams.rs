//! Streams (seed 001's `streams` and `streams logs`): a live URL or a video file
//! processed by a container worker acting as the Video Agent's agent. The stored stream
//! carries its processing state — which agent holds it, until when (a lease renewed by
//! the agent's feedback), how far it got — and every write of it is conditioned on the
//! revision it read, so a user's stop, a delete, a feedback and another agent's takeover
//! never overwrite one another. An agent whose lease ran out has gone silent: the next
//! agent to look releases the stream (logs `handler_lost`, `restart`, `pending`) and
//! takes it on from the last position its predecessor reported.
//!
//! Layout: an account's streams are one partition (`VSTREAM#<account>`, sort key the
//! stream id); streams that need an agent are also listed in
//! one partition agents read (`VSTREAMS_OPEN`); logs are one partition per account
//! (`VSTREAMLOG#<account>`, sort key log time and id); agents announce themselves in
//! `VAGENTS`.

use std::collections::HashMap;
use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::analytics::{self, Analytic, AnalyticRequest};
use crate::Services;
use crate::error::{ApiError, ErrorCode};
use crate::objects::uploads;
use crate::query::{Page, PageBuffer, Query, TimeRange};
use crate::store::dynamo::{from_item, n, s, to_item};
use crate::store::{KeyRange, TableQuery};
use crate::timestamps;

/// The partition agents read for streams that need one.
const OPEN: &str = "VSTREAMS_OPEN";
/// The partition of the agents.
const AGENTS: &str = "VAGENTS";

fn partition(account_id: Uuid) -> String {
    format!("VSTREAM#{account_id}")
}

fn log_partition(account_id: Uuid) -> String {
    format!("VSTREAMLOG#{account_id}")
}

/// Stream statuses, in the Video Manager's listing order (reference notes §6.1; the
/// numbers are that order, the seed gives the enum 0..8 without names).
pub mod status {
    /// Waiting for an agent.
    pub const PENDING: u8 = 0;
    /// An agent processes it.
    pub const IN_PROGRESS: u8 = 1;
    /// Paused by a schedule (not used: no schedules here).
    pub const PAUSED: u8 = 2;
    /// The file was processed to its end, or the live stream ended.
    pub const DONE: u8 = 3;
    /// Restarted by the service (autorestart, or its agent went silent); logs only.
    pub const RESTART: u8 = 4;
    /// The agent reported a failure.
    pub const FAILURE: u8 = 5;
    /// Stopped by the user.
    pub const STOP: u8 = 6;
    /// Its agent was lost; logs only.
    pub const HANDLER_LOST: u8 = 7;
    /// Parts with different statuses (not used: streams are not split).
    pub const UNKNOWN: u8 = 8;

    /// Whether a stream of this status needs an agent.
    pub fn is_open(status: u8) -> bool {
        status == PENDING || status == IN_PROGRESS
    }
}

/// Longest name.
pub const NAME_MAX: usize = 128;
/// Longest description.
pub const DESCRIPTION_MAX: usize = 512;

/// `data` of a stream: what to read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamData {
    /// A URL ffmpeg reads (http, https, rtsp, rtmp) or a key of the account's upload
    /// area.
    pub reference: String,
    /// `stream` (live: read as it comes) or `file` (read at its own frame rate, as if
    /// live; `videofile` is taken for it).
    #[serde(rename = "type", default = "default_type")]
    pub kind: String,
    /// Whether the source is downloaded first (accepted and ignored: ffmpeg reads it).
    #[serde(default)]
    pub downloadable: bool,
}

fn default_type() -> String {
    "stream".to_string()
}

/// `autorestart` of a stream (its field names are a Fanout choice: the seed leaves the
/// object open, reference notes §9).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Autorestart {
    /// 1: a failed stream goes back to pending after `delay`.
    #[serde(default)]
    pub restart: u8,
    /// Restarts allowed.
    #[serde(default = "default_attempts")]
    pub attempt_count: u32,
    /// Seconds before a restart.
    #[serde(default = "default_delay")]
    pub delay: u32,
    /// Restarts made so far.
    #[serde(default)]
    pub current_attempt: u32,
    /// When the last restart was made.
    #[serde(default)]
    pub last_attempt_time: Option<String>,
}

fn default_attempts() -> u32 {
    10
}

fn default_delay() -> u32 {
    60
}

impl Default for Autorestart {
    fn default() -> Autorestart {
        Autorestart {
            restart: 1,
            attempt_count: default_attempts(),
            delay: default_delay(),
            current_attempt: 0,
            last_attempt_time: None,
        }
    }
}

/// Body of `POST /1/streams`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStream {
    /// Name (default "stream").
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// What to read.
    pub data: StreamData,
    /// Where the camera is (copied into events).
    #[schema(value_type = Object)]
    pub location: Option<Value>,
    /// Additional information about the source (letters, digits, `_`, `-`).
    pub event_source_group: Option<String>,
    /// Additional information given with events.
    pub source: Option<String>,
    /// Restart policy on failure.
    pub autorestart: Option<Autorestart>,
    /// The analytics: `[{"analytic_name": ..., "parameters": {"parameters": {...},
    /// "targets": [...], "callbacks": [...]}}]` as the Video Manager writes them, or the
    /// `videosdk` form `{"name", "parameters", "targets", "callbacks"}`.
    #[schema(value_type = Vec<Object>)]
    pub analytics: Vec<Value>,
    /// Callbacks on status changes (stored and shown; not sent).
    #[schema(value_type = Object)]
    pub notification_policy: Option<Value>,
}

/// Answer of `POST /1/streams`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct StreamCreated {
    /// Its id.
    pub stream_id: Uuid,
    /// Its path.
    pub url: String,
}

/// A stream as stored and shown.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Stream {
    /// Id.
    pub stream_id: Uuid,
    /// Owner.
    pub account_id: Uuid,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// What to read.
    pub data: StreamData,
    /// Where the camera is.
    #[schema(value_type = Object)]
    pub location: Option<Value>,
    /// Source group.
    pub event_source_group: Option<String>,
    /// Source.
    pub source: Option<String>,
    /// Changes with each recreation (always 1 here: no PUT).
    pub version: u32,
    /// When it was created.
    pub create_time: String,
    /// The last failure's reason.
    pub last_error: Option<String>,
    /// Groups (none: no stream groups here).
    pub groups: Vec<String>,
    /// Status (see [`status`]).
    pub status: u8,
    /// Whether it is processed in parts (never here).
    pub splittable: bool,
    /// The analytics as given.
    #[schema(value_type = Vec<Object>)]
    pub analytics: Vec<Value>,
    /// As given.
    #[schema(value_type = Object)]
    pub notification_policy: Option<Value>,
    /// Restart policy and its state.
    pub autorestart: Autorestart,
    /// Changes with every write (the condition of the next one; not shown).
    #[serde(default)]
    #[schema(ignore)]
    pub stream_revision: u64,
    /// Processing state (agents' bookkeeping; not shown).
    #[serde(default)]
    #[schema(ignore)]
    pub processing: Processing,
}

/// Which agent holds a stream and how far it got.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Processing {
    /// Agent holding it.
    pub agent_id: Option<Uuid>,
    /// Claims so far (each agent's claim has its own number).
    pub claims: u64,
    /// When the holder's lease ends (ms since the epoch).
    pub lease_until: i64,
    /// Seconds of the source processed (where a new holder of a file resumes).
    pub position: f64,
    /// Frame where the last event sent ended: a new holder sends no event that starts
    /// before it (a file resumed a little before its predecessor's last event).
    #[serde(default)]
    pub sent_until: u64,
    /// Not to be claimed before this (ms since the epoch): an autorestart's delay.
    pub not_before: i64,
    /// The analytics, checked.
    pub analytics: Vec<Analytic>,
    /// Their callbacks.
    pub callbacks: Vec<Vec<analytics::Callback>>,
}

/// A stream log record.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StreamLog {
    /// The stream.
    pub stream_id: Uuid,
    /// The status it moved to.
    pub status: u8,
    /// Why, for failures.
    pub error: Option<String>,
    /// When.
    pub log_time: String,
    /// Seconds of the source processed by then.
    pub last_processed_frame_time: Option<f64>,
    /// Index of the analytic concerned (none: the whole stream).
    pub analytic_index: Option<u32>,
    /// The agent that wrote it or that the record is about (a Fanout field).
    pub agent_id: Option<Uuid>,
}

/// `streams` of `GET /1/streams`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StreamPage {
    /// The streams of the page, each with the targets asked for.
    #[schema(value_type = Vec<Object>)]
    pub streams: Vec<Value>,
}

/// `logs` of `GET /1/streams/logs`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StreamLogPage {
    /// The records, newest first, with the targets asked for.
    #[schema(value_type = Vec<Object>)]
    pub logs: Vec<Value>,
}

/// An agent as agent info shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentInfo {
    /// Id (one per worker process).
    pub agent_id: Uuid,
    /// Its host and process.
    pub name: String,
    /// The analytics it runs.
    pub analytics: Vec<String>,
    /// The streams it processes (of the caller's account) and how many it takes.
    pub streams: AgentStreams,
    /// Groups (none).
    pub groups: Vec<String>,
    /// `ready`, or `not_ready` when it has not polled within three refresh periods.
    pub status: String,
    /// When it last polled.
    pub last_seen: String,
}

/// The streams of an agent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct AgentStreams {
    /// Most streams it processes at once.
    pub max_count: u32,
    /// Streams it processes now (of every account).
    pub count: u32,
    /// Those of the caller's account.
    pub stream_ids: Vec<Uuid>,
}

/// `agents` of `GET /1/agents`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentPage {
    /// Agents seen within the last minute.
    pub agents: Vec<AgentInfo>,
}

/// Stored shapes: the record with its keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored<T> {
    pk: String,
    sk: String,
    #[serde(flatten)]
    doc: T,
}

fn bad(why: impl std::fmt::Display) -> ApiError {
    ApiError::bad_json(why)
}

/// The stream `stream_id` was not found in the account.
pub fn not_found(stream_id: Uuid) -> ApiError {
    ApiError::new(
        ErrorCode::StreamNotFound,
        format!("Stream '{stream_id}' not found"),
    )
}

/// Reads a stream analytic in either form: the Video Manager's
/// `{"analytic_name", "parameters": {"parameters", "targets", "callbacks"}}` or the
/// `videosdk` one.
fn analytic_request(index: usize, raw: &Value) -> Result<AnalyticRequest, ApiError> {
    let at = format!("analytics[{index}]");
    let object = raw
        .as_object()
        .ok_or_else(|| bad(format!("{at} must be an object")))?;
    let nested = object
        .get("parameters")
        .and_then(|p| p.as_object())
        .filter(|p| {
            object.contains_key("analytic_name")
                && p.keys()
                    .all(|k| ["parameters", "targets", "callbacks"].contains(&k.as_str()))
        });
    let flat = match nested {
        Some(p) => {
            let mut flat = serde_json::Map::new();
            flat.insert("name".into(), object["analytic_name"].clone());
            for (k, v) in p {
                flat.insert(k.clone(), v.clone());
            }
            for (k, v) in object {
                if !["analytic_name", "parameters"].contains(&k.as_str()) {
                    flat.insert(k.clone(), v.clone());
                }
            }
            Value::Object(flat)
        }
        None => raw.clone(),
    };
    serde_json::from_value(flat).map_err(|e| bad(format!("{at}: {e}")))
}

fn check_reference(account_id: Uuid, reference: &str) -> Result<(), ApiError> {
    if reference.starts_with("uploads/") {
        return uploads::check_key(account_id, "data.reference", reference);
    }
    let scheme_ok = ["http://", "https://", "rtsp://", "rtmp://"]
        .iter()
        .any(|p| reference.starts_with(p));
    if !scheme_ok || reference.len() > 2083 {
        return Err(bad(format!(
            "data.reference '{reference}' is neither an http(s), rtsp or rtmp URL nor a key of the account's upload area"
        )));
    }
    crate::outbound::check_literal(reference).map_err(|why| bad(format!("data.reference: {why}")))
}

/// Creates a stream (pending: the next agent with room takes it).
pub async fn create(
    svc: &Services,
    account_id: Uuid,
    new: NewStream,
) -> Result<StreamCreated, ApiError> {
    let name = new.name.unwrap_or_else(|| "stream".to_string());
    if name.chars().count() > NAME_MAX {
        return Err(bad(format!("name is longer than {NAME_MAX} characters")));
    }
    let description = new.description.unwrap_or_default();
    if description.chars().count() > DESCRIPTION_MAX {
        return Err(bad(format!(
            "description is longer than {DESCRIPTION_MAX} characters"
        )));
    }
    if let Some(group) = &new.event_source_group
        && (group.is_empty()
            || group.len() > 256
            || !group
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    {
        return Err(bad(
            "event_source_group must be 1 to 256 letters, digits, '_' or '-'",
        ));
    }
    if new.source.as_ref().is_some_and(|s| s.chars().count() > 128) {
        return Err(bad("source is longer than 128 characters"));
    }
    let mut data = new.data;
    data.kind = match data.kind.as_str() {
        "stream" => "stream".to_string(),
        "file" | "videofile" => "file".to_string(),
        other => {
            return Err(bad(format!(
                "data.type '{other}' is not 'stream' or 'file'"
            )));
        }
    };
    check_reference(account_id, &data.reference)?;
    if new.analytics.is_empty() || new.analytics.len() > 10 {
        return Err(bad("analytics must hold 1 to 10 analytics"));
    }
    let requests = new
        .analytics
        .iter()
        .enumerate()
        .map(|(i, raw)| analytic_request(i, raw))
        .collect::<Result<Vec<_>, _>>()?;
    let parsed = requests
        .iter()
        .enumerate()
        .map(|(i, r)| analytics::parse(i, r))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(i) = parsed
        .iter()
        .position(|a| !matches!(a, Analytic::PeopleCount(_)))
    {
        return Err(bad(format!(
            "analytics[{i}]: streams run people_count here; human_tracking runs on videos (/1/videosdk)"
        )));
    }
    let autorestart = match new.autorestart {
        Some(a) if a.restart > 1 => return Err(bad("autorestart.restart must be 0 or 1")),
        Some(a) if a.attempt_count > 100 || a.delay > 86_400 => {
            return Err(bad(
                "autorestart.attempt_count must be at most 100 and delay at most 86400 s",
            ));
        }
        Some(a) => Autorestart {
            current_attempt: 0,
            last_attempt_time: None,
            ..a
        },
        None => Autorestart::default(),
    };
    let stream_id = Uuid::new_v4();
    let now = timestamps::format(timestamps::now());
    let stream = Stream {
        stream_id,
        account_id,
        name,
        description,
        data,
        location: new.location,
        event_source_group: new.event_source_group,
        source: new.source,
        version: 1,
        create_time: now.clone(),
        last_error: None,
        groups: Vec::new(),
        status: status::PENDING,
        splittable: false,
        analytics: new.analytics,
        notification_policy: new.notification_policy,
        autorestart,
        stream_revision: 0,
        processing: Processing {
            callbacks: requests.iter().map(|r| r.callbacks.clone()).collect(),
            analytics: parsed,
            ..Processing::default()
        },
    };
    // The open marker first: a stream without one would wait for no agent; a marker
    // without its stream (a create that failed between the two) is dropped by the first
    // agent to read it once it is older than the grace (MARKER_GRACE_MS).
    mark_open(svc, account_id, stream_id).await?;
    svc.table.put_if_absent(stored(&stream)?).await?;
    write_log(svc, &stream, status::PENDING, None, None).await?;
    Ok(StreamCreated {
        stream_id,
        url: format!("/1/streams/{stream_id}"),
    })
}

fn stored(stream: &Stream) -> Result<crate::store::dynamo::Item, ApiError> {
    to_item(&Stored {
        pk: partition(stream.account_id),
        sk: stream.stream_id.to_string(),
        doc: stream,
    })
}

/// Lists the stream for agents (again): a marker stamped with when it was written.
pub async fn mark_open(svc: &Services, account_id: Uuid, stream_id: Uuid) -> Result<(), ApiError> {
    let item = HashMap::from([
        ("pk".to_string(), s(OPEN)),
        ("sk".to_string(), s(&format!("{account_id}#{stream_id}"))),
        ("marked_at".to_string(), n(millis(timestamps::now()))),
    ]);
    svc.table.put_when(item, None, HashMap::new()).await?;
    Ok(())
}

/// How much older than the read of a stream its marker must be for that read to drop
/// it: a marker is written before the stream it lists (create) or before the write that
/// reopens it (resume), so a reader that finds the stream missing or closed may have
/// read between the two; the grace covers that gap and the clocks' skew.
const MARKER_GRACE_MS: i64 = 30_000;

/// Drops the stream's marker: at once for a deleted stream (`read_at` `None`), else for
/// a stream found missing or closed by a read that started at `read_at` (ms), unless
/// the marker was written since, or just before, that read.
async fn unmark_open(
    svc: &Services,
    account_id: Uuid,
    stream_id: Uuid,
    read_at: Option<i64>,
) -> Result<(), ApiError> {
    let (condition, values) = match read_at {
        None => ("attribute_exists(pk)", HashMap::new()),
        Some(read_at) => (
            "attribute_exists(pk) AND (attribute_not_exists(marked_at) OR marked_at < :stale)",
            HashMap::from([(":stale".to_string(), n(read_at - MARKER_GRACE_MS))]),
        ),
    };
    svc.table
        .delete_when(
            OPEN,
            &format!("{account_id}#{stream_id}"),
            condition,
            values,
        )
        .await?;
    Ok(())
}

/// A stream of the account, if there.
pub async fn load(
    svc: &Services,
    account_id: Uuid,
    stream_id: Uuid,
) -> Result<Option<Stream>, ApiError> {
    match svc
        .table
        .get(&partition(account_id), &stream_id.to_string())
        .await?
    {
        Some(item) => Ok(Some(from_item::<Stored<Stream>>(item)?.doc)),
        None => Ok(None),
    }
}

/// Writes `stream` (its revision moved on) if it still has the revision `read`;
/// whether it did. A deleted stream is never written back.
async fn store_if(svc: &Services, stream: &mut Stream, read: u64) -> Result<bool, ApiError> {
    stream.stream_revision = read + 1;
    let written = svc
        .table
        .put_when(
            stored(stream)?,
            Some("attribute_exists(pk) AND stream_revision = :revision"),
            HashMap::from([(":revision".to_string(), n(read))]),
        )
        .await?;
    if !written {
        stream.stream_revision = read;
    }
    Ok(written)
}

/// Applies `change` to the stream until the write holds against concurrent ones;
/// `None` when the stream is gone or `change` declines (answers `false`).
async fn modify(
    svc: &Services,
    account_id: Uuid,
    stream_id: Uuid,
    mut change: impl FnMut(&mut Stream) -> bool,
) -> Result<Option<Stream>, ApiError> {
    for _ in 0..20 {
        let read_at = millis(timestamps::now());
        let Some(mut stream) = load(svc, account_id, stream_id).await? else {
            return Ok(None);
        };
        let read = stream.stream_revision;
        if !change(&mut stream) {
            return Ok(None);
        }
        if store_if(svc, &mut stream, read).await? {
            if !status::is_open(stream.status) {
                unmark_open(svc, account_id, stream_id, Some(read_at)).await?;
            }
            return Ok(Some(stream));
        }
    }
    Err(ApiError::internal(
        "stream write",
        format!("stream {stream_id} changed under 20 attempts in a row"),
    ))
}

/// Writes a log record of `stream` moving to `to`.
pub async fn write_log(
    svc: &Services,
    stream: &Stream,
    to: u8,
    error: Option<String>,
    agent_id: Option<Uuid>,
) -> Result<(), ApiError> {
    let now = timestamps::now();
    let log = StreamLog {
        stream_id: stream.stream_id,
        status: to,
        error,
        log_time: timestamps::format(now),
        last_processed_frame_time: Some(stream.processing.position),
        analytic_index: None,
        agent_id: agent_id.or(stream.processing.agent_id),
    };
    let item = to_item(&Stored {
        pk: log_partition(stream.account_id),
        sk: format!("{}#{}", log.log_time, Uuid::new_v4()),
        doc: &log,
    })?;
    svc.table.put_when(item, None, HashMap::new()).await?;
    Ok(())
}

/// The targets a stream listing may show.
pub const STREAM_TARGETS: &[&str] = &[
    "stream_id",
    "account_id",
    "name",
    "description",
    "data",
    "location",
    "source",
    "event_source_group",
    "version",
    "create_time",
    "last_error",
    "groups",
    "status",
    "splittable",
    "analytics",
    "notification_policy",
    "autorestart",
];

/// The fields of the default `targets`.
const STREAM_TARGETS_DEFAULT: &[&str] = &[
    "stream_id",
    "account_id",
    "name",
    "description",
    "data",
    "location",
    "source",
    "version",
    "create_time",
    "last_error",
    "groups",
    "status",
    "splittable",
    "analytics",
    "notification_policy",
];

/// Reads `targets` (a comma-separated list, or repeated) against `known`.
pub fn targets(query: &Query, known: &[&str], default: &[&str]) -> Result<Vec<String>, ApiError> {
    let Some(list) = query.string_list("targets")? else {
        return Ok(default.iter().map(|t| t.to_string()).collect());
    };
    for t in &list {
        if !known.contains(&t.as_str()) {
            return Err(ApiError::new(
                ErrorCode::BadQuery,
                format!("targets: '{t}' is not one of {known:?}"),
            ));
        }
    }
    Ok(list)
}

/// `stream` as shown with `targets`.
pub fn shown(stream: &Stream, targets: &[String]) -> Result<Value, ApiError> {
    let full = serde_json::to_value(stream).map_err(|e| ApiError::internal("stream", e))?;
    let mut out = serde_json::Map::new();
    for t in targets {
        out.insert(t.clone(), full.get(t).cloned().unwrap_or(Value::Null));
    }
    Ok(Value::Object(out))
}

/// Query parameters of `GET /1/streams`.
pub const LIST_PARAMS: &[&str] = &[
    "account_id",
    "stream_ids",
    "stream_id__gte",
    "stream_id__lt",
    "names",
    "reference",
    "statuses",
    "create_time__gte",
    "create_time__lt",
    "sources",
    "event_source_groups",
    "order",
    "order_column",
    "page",
    "page_size",
    "targets",
];

/// What `GET /1/streams` keeps.
#[derive(Debug, Clone, Default)]
pub struct StreamFilter {
    ids: Option<Vec<Uuid>>,
    id_gte: Option<Uuid>,
    id_lt: Option<Uuid>,
    names: Option<Vec<String>>,
    reference: Option<String>,
    statuses: Option<Vec<u8>>,
    created: TimeRange,
    sources: Option<Vec<String>>,
    groups: Option<Vec<String>>,
    ascending: bool,
    by_name: bool,
}

fn statuses(query: &Query) -> Result<Option<Vec<u8>>, ApiError> {
    let Some(list) = query.string_list("statuses")? else {
        return Ok(None);
    };
    list.iter()
        .map(|v| {
            v.parse::<u8>()
                .ok()
                .filter(|s| *s <= status::UNKNOWN)
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::BadQuery,
                        format!("statuses: '{v}' is not a stream status 0 to 8"),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

impl StreamFilter {
    /// Reads the filters of a listing's query.
    pub fn from_query(query: &Query) -> Result<StreamFilter, ApiError> {
        let order = query.single("order")?.unwrap_or("desc");
        let ascending = match order {
            "asc" => true,
            "desc" => false,
            other => {
                return Err(ApiError::new(
                    ErrorCode::BadQuery,
                    format!("order: '{other}' is not asc or desc"),
                ));
            }
        };
        let by_name = match query.single("order_column")? {
            None | Some("create_time") => false,
            Some("name") => true,
            Some(other) => {
                return Err(ApiError::new(
                    ErrorCode::BadQuery,
                    format!("order_column: '{other}' is not create_time or name"),
                ));
            }
        };
        Ok(StreamFilter {
            ids: query.uuid_list("stream_ids")?,
            id_gte: query.uuid("stream_id__gte")?,
            id_lt: query.uuid("stream_id__lt")?,
            names: query.string_list("names")?,
            reference: query.single("reference")?.map(str::to_string),
            statuses: statuses(query)?,
            created: query.time_range("create_time")?,
            sources: query.string_list("sources")?,
            groups: query.string_list("event_source_groups")?,
            ascending,
            by_name,
        })
    }

    fn keeps(&self, stream: &Stream) -> bool {
        let created = timestamps::parse(&stream.create_time);
        self.ids
            .as_ref()
            .is_none_or(|ids| ids.contains(&stream.stream_id))
            && self.id_gte.is_none_or(|g| stream.stream_id >= g)
            && self.id_lt.is_none_or(|l| stream.stream_id < l)
            && self.names.as_ref().is_none_or(|n| n.contains(&stream.name))
            && self
                .reference
                .as_ref()
                .is_none_or(|r| *r == stream.data.reference)
            && self
                .statuses
                .as_ref()
                .is_none_or(|st| st.contains(&stream.status))
            && created.is_some_and(|t| self.created.contains(t))
            && self
                .sources
                .as_ref()
                .is_none_or(|s| stream.source.as_ref().is_some_and(|x| s.contains(x)))
            && self.groups.as_ref().is_none_or(|g| {
                stream
                    .event_source_group
                    .as_ref()
                    .is_some_and(|x| g.contains(x))
            })
    }
}

/// Every stream of the account, in creation order (ids break ties).
async fn all(svc: &Services, account_id: Uuid) -> Result<Vec<Stream>, ApiError> {
    let mut out = Vec::new();
    svc.table
        .for_each_record::<Stored<Stream>>(
            &TableQuery {
                index: None,
                partition: partition(account_id),
                range: KeyRange::All,
                descending: false,
            },
            |s| {
                out.push(s.doc);
                ControlFlow::Continue(())
            },
        )
        .await?;
    out.sort_by(|a, b| {
        a.create_time
            .cmp(&b.create_time)
            .then(a.stream_id.cmp(&b.stream_id))
    });
    Ok(out)
}

/// One page of the account's streams matching `filter`, in its order.
pub async fn list(
    svc: &Services,
    account_id: Uuid,
    filter: &StreamFilter,
    page: Page,
    targets: &[String],
) -> Result<StreamPage, ApiError> {
    let mut streams: Vec<Stream> = all(svc, account_id)
        .await?
        .into_iter()
        .filter(|s| filter.keeps(s))
        .collect();
    // An id range sorts by id (the seed's warning).
    if filter.id_gte.is_some() || filter.id_lt.is_some() {
        streams.sort_by_key(|s| s.stream_id);
    } else if filter.by_name {
        streams.sort_by(|a, b| a.name.cmp(&b.name).then(a.stream_id.cmp(&b.stream_id)));
    }
    if !filter.ascending {
        streams.reverse();
    }
    let mut buffer = PageBuffer::new(page);
    for stream in streams {
        if buffer.offer(stream).is_break() {
            break;
        }
    }
    let streams = buffer
        .into_items()
        .iter()
        .map(|s| shown(s, targets))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(StreamPage { streams })
}

/// The default targets.
pub fn default_targets() -> &'static [&'static str] {
    STREAM_TARGETS_DEFAULT
}

/// One stream of the account.
pub async fn get(svc: &Services, account_id: Uuid, stream_id: Uuid) -> Result<Stream, ApiError> {
    load(svc, account_id, stream_id)
        .await?
        .ok_or_else(|| not_found(stream_id))
}

/// Deletes a stream: its agent stops at its next feedback. Logs stay.
pub async fn delete(svc: &Services, account_id: Uuid, stream_id: Uuid) -> Result<(), ApiError> {
    get(svc, account_id, stream_id).await?;
    svc.table
        .delete_when(
            &partition(account_id),
            &stream_id.to_string(),
            "attribute_exists(pk)",
            HashMap::new(),
        )
        .await?;
    unmark_open(svc, account_id, stream_id, None).await?;
    Ok(())
}

/// `stop` (a pending or running stream: status 6, its agent stops at its next feedback) or `resume` (status 0:
/// the next agent with room takes it); the number of streams changed (0 when it was in
/// that state already).
pub async fn patch(
    svc: &Services,
    account_id: Uuid,
    stream_id: Uuid,
    action: &str,
) -> Result<u32, ApiError> {
    let to = match action {
        "stop" => status::STOP,
        "resume" => status::PENDING,
        other => {
            return Err(ApiError::new(
                ErrorCode::BadQuery,
                format!("action: '{other}' is not stop or resume"),
            ));
        }
    };
    get(svc, account_id, stream_id).await?;
    if to == status::PENDING {
        // Marked first: a resumed stream is always findable by agents.
        mark_open(svc, account_id, stream_id).await?;
    }
    let changed = modify(svc, account_id, stream_id, |stream| {
        let allowed = match to {
            status::STOP => status::is_open(stream.status),
            _ => matches!(stream.status, status::STOP | status::FAILURE | status::DONE),
        };
        if !allowed {
            return false;
        }
        stream.status = to;
        if to == status::PENDING {
            stream.processing.agent_id = None;
            stream.processing.not_before = 0;
            stream.autorestart.current_attempt = 0;
            if stream.data.kind == "file" {
                stream.processing.position = 0.0;
            }
        }
        true
    })
    .await?;
    match changed {
        Some(stream) => {
            write_log(svc, &stream, to, None, None).await?;
            Ok(1)
        }
        None => {
            let read_at = millis(timestamps::now());
            if to == status::PENDING
                && load(svc, account_id, stream_id)
                    .await?
                    .is_some_and(|s| !status::is_open(s.status))
            {
                unmark_open(svc, account_id, stream_id, Some(read_at)).await?;
            }
            Ok(0)
        }
    }
}

/// Query parameters of `GET /1/streams/logs`.
pub const LOG_PARAMS: &[&str] = &[
    "account_id",
    "stream_ids",
    "statuses",
    "targets",
    "log_time__lt",
    "log_time__gte",
    "page",
    "page_size",
    "analytic_indexes",
];

/// Targets a log listing may show.
pub const LOG_TARGETS: &[&str] = &[
    "stream_id",
    "status",
    "error",
    "log_time",
    "last_processed_frame_time",
    "analytic_index",
    "agent_id",
];

/// A page of the account's stream logs, newest first.
pub async fn logs(
    svc: &Services,
    account_id: Uuid,
    query: &Query,
) -> Result<StreamLogPage, ApiError> {
    let stream_ids = query.uuid_list("stream_ids")?;
    let statuses = statuses(query)?;
    let times = query.time_range("log_time")?;
    let indexes: Option<Vec<u32>> = match query.string_list("analytic_indexes")? {
        None => None,
        Some(list) => Some(
            list.iter()
                .map(|v| {
                    v.parse().map_err(|_| {
                        ApiError::new(
                            ErrorCode::BadQuery,
                            format!("analytic_indexes: '{v}' is not an index"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    let targets = targets(query, LOG_TARGETS, LOG_TARGETS)?;
    let page = query.page()?;
    let mut buffer = PageBuffer::new(page);
    svc.table
        .for_each_record::<Stored<StreamLog>>(
            &TableQuery {
                index: None,
                partition: log_partition(account_id),
                range: KeyRange::All,
                descending: true,
            },
            |s| {
                let log = s.doc;
                let time = timestamps::parse(&log.log_time);
                let keep = stream_ids
                    .as_ref()
                    .is_none_or(|i| i.contains(&log.stream_id))
                    && statuses.as_ref().is_none_or(|st| st.contains(&log.status))
                    && time.is_some_and(|t| times.contains(t))
                    && indexes
                        .as_ref()
                        .is_none_or(|i| log.analytic_index.is_some_and(|a| i.contains(&a)));
                if keep {
                    buffer.offer(log)
                } else {
                    ControlFlow::Continue(())
                }
            },
        )
        .await?;
    let logs = buffer
        .into_items()
        .into_iter()
        .map(|log| {
            let full = serde_json::to_value(&log).map_err(|e| ApiError::internal("log", e))?;
            let mut out = serde_json::Map::new();
            for t in &targets {
                out.insert(t.clone(), full.get(t).cloned().unwrap_or(Value::Null));
            }
            Ok(Value::Object(out))
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(StreamLogPage { logs })
}

/// Deletes the account's log records older than `before`, keeping each stream's last
/// record; how many were deleted.
pub async fn delete_logs(
    svc: &Services,
    account_id: Uuid,
    before: DateTime<Utc>,
) -> Result<u64, ApiError> {
    let mut doomed = Vec::new();
    let mut seen = std::collections::HashSet::new();
    svc.table
        .for_each_record::<Stored<StreamLog>>(
            &TableQuery {
                index: None,
                partition: log_partition(account_id),
                range: KeyRange::All,
                descending: true,
            },
            |s| {
                let last_of_stream = seen.insert(s.doc.stream_id);
                let old = timestamps::parse(&s.doc.log_time).is_some_and(|t| t < before);
                if old && !last_of_stream {
                    doomed.push(s.sk);
                }
                ControlFlow::Continue(())
            },
        )
        .await?;
    let pk = log_partition(account_id);
    for sk in &doomed {
        svc.table
            .delete_when(&pk, sk, "attribute_exists(pk)", HashMap::new())
            .await?;
    }
    Ok(doomed.len() as u64)
}

// ---- the agents' side --------------------------------------------------------------

/// A stream an agent holds: what it needs to run and to prove its claim.
#[derive(Debug, Clone)]
pub struct Held {
    /// The stream as claimed.
    pub stream: Stream,
    /// The claim's number.
    pub claim: u64,
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The streams that need an agent, as (account, stream) pairs.
pub async fn open_streams(svc: &Services) -> Result<Vec<(Uuid, Uuid)>, ApiError> {
    let mut out = Vec::new();
    svc.table
        .for_each(
            &TableQuery {
                index: None,
                partition: OPEN.to_string(),
                range: KeyRange::All,
                descending: false,
            },
            |item| {
                if let Some((a, s)) = item
                    .get("sk")
                    .and_then(|v| v.as_s().ok())
                    .and_then(|sk| sk.split_once('#'))
                    && let (Ok(a), Ok(s)) = (a.parse(), s.parse())
                {
                    out.push((a, s));
                }
                ControlFlow::Continue(())
            },
        )
        .await?;
    Ok(out)
}

/// Tries to take the stream for `agent_id` with a lease of `lease_ms`: a pending one
/// (past its restart delay), or one whose holder's lease ran out (released first: logs
/// `handler_lost`, `restart`, `pending`). `None` when it is not to be taken (held, gone,
/// stopped, another agent was faster).
pub async fn claim(
    svc: &Services,
    account_id: Uuid,
    stream_id: Uuid,
    agent_id: Uuid,
    lease_ms: i64,
) -> Result<Option<Held>, ApiError> {
    let now = millis(timestamps::now());
    let Some(mut stream) = load(svc, account_id, stream_id).await? else {
        unmark_open(svc, account_id, stream_id, Some(now)).await?;
        return Ok(None);
    };
    if !status::is_open(stream.status) {
        unmark_open(svc, account_id, stream_id, Some(now)).await?;
        return Ok(None);
    }
    let p = &stream.processing;
    let lost = stream.status == status::IN_PROGRESS && p.lease_until < now;
    let waiting = stream.status == status::PENDING && p.not_before <= now;
    if !(lost || waiting) {
        return Ok(None);
    }
    let read = stream.stream_revision;
    let previous = p.agent_id;
    stream.status = status::IN_PROGRESS;
    stream.processing.agent_id = Some(agent_id);
    stream.processing.claims += 1;
    stream.processing.lease_until = now + lease_ms;
    if !store_if(svc, &mut stream, read).await? {
        return Ok(None);
    }
    if lost {
        for to in [status::HANDLER_LOST, status::RESTART, status::PENDING] {
            write_log(svc, &stream, to, None, previous).await?;
        }
    }
    write_log(svc, &stream, status::IN_PROGRESS, None, Some(agent_id)).await?;
    let claim = stream.processing.claims;
    Ok(Some(Held { stream, claim }))
}

/// Whether the holder keeps going after its feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feedback {
    /// The lease is renewed.
    Go,
    /// The stream was stopped, deleted or taken: stop processing it.
    Stop,
}

fn holds(stream: &Stream, held: &Held) -> bool {
    stream.status == status::IN_PROGRESS
        && stream.processing.claims == held.claim
        && stream.processing.agent_id == held.stream.processing.agent_id
}

/// The holder's periodic feedback: renews its lease and records its position and the
/// end of the last event it sent.
pub async fn feedback(
    svc: &Services,
    held: &Held,
    position: f64,
    sent_until: u64,
    lease_ms: i64,
) -> Result<Feedback, ApiError> {
    let s = &held.stream;
    let renewed = modify(svc, s.account_id, s.stream_id, |stream| {
        if !holds(stream, held) {
            return false;
        }
        stream.processing.position = position;
        stream.processing.sent_until = stream.processing.sent_until.max(sent_until);
        stream.processing.lease_until = millis(timestamps::now()) + lease_ms;
        true
    })
    .await?;
    Ok(if renewed.is_some() {
        Feedback::Go
    } else {
        Feedback::Stop
    })
}

/// The holder's end: `None` when the source ended (done), else the failure's reason
/// (failure, or pending again after the autorestart's delay when it allows one more).
pub async fn finish(
    svc: &Services,
    held: &Held,
    position: f64,
    failure: Option<String>,
) -> Result<(), ApiError> {
    let s = &held.stream;
    let mut restarted = false;
    let ended = modify(svc, s.account_id, s.stream_id, |stream| {
        if !holds(stream, held) {
            return false;
        }
        stream.processing.position = position;
        stream.processing.agent_id = None;
        restarted = false;
        match &failure {
            None => stream.status = status::DONE,
            Some(reason) => {
                stream.last_error = Some(reason.clone());
                let a = &mut stream.autorestart;
                if a.restart == 1 && a.current_attempt < a.attempt_count {
                    a.current_attempt += 1;
                    a.last_attempt_time = Some(timestamps::format(timestamps::now()));
                    stream.processing.not_before =
                        millis(timestamps::now()) + i64::from(a.delay) * 1000;
                    stream.status = status::PENDING;
                    restarted = true;
                } else {
                    stream.status = status::FAILURE;
                }
            }
        }
        true
    })
    .await?;
    let Some(stream) = ended else {
        return Ok(());
    };
    let agent = held.stream.processing.agent_id;
    match failure {
        None => write_log(svc, &stream, status::DONE, None, agent).await,
        Some(reason) => {
            write_log(svc, &stream, status::FAILURE, Some(reason), agent).await?;
            if restarted {
                write_log(svc, &stream, status::RESTART, None, agent).await?;
                write_log(svc, &stream, status::PENDING, None, agent).await?;
            }
            Ok(())
        }
    }
}

/// An agent's announcement, refreshed at each poll.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentRecord {
    /// Id.
    pub agent_id: Uuid,
    /// Host and process.
    pub name: String,
    /// Most streams at once.
    pub max_streams: u32,
    /// Streams held now: (account, stream).
    pub streams: Vec<(Uuid, Uuid)>,
    /// When it polled (ms since the epoch).
    pub last_seen: i64,
}

/// How long an agent's poll period is (the `refresh_period` the Video Manager gives).
pub const REFRESH_MS: i64 = 2_000;

/// How long an agent's record outlives its last poll.
pub const AGENT_RECORD_TTL_SECONDS: i64 = 3600;

/// Records an agent's poll.
pub async fn announce(svc: &Services, record: &AgentRecord) -> Result<(), ApiError> {
    let mut item = to_item(&Stored {
        pk: AGENTS.to_string(),
        sk: record.agent_id.to_string(),
        doc: record,
    })?;
    // Every worker process is a new agent: the records of ended ones go with the
    // table's TTL (readers show only agents seen in the last minute anyway).
    let expires_at = record.last_seen / 1000 + AGENT_RECORD_TTL_SECONDS;
    item.insert("expires_at".to_string(), n(expires_at));
    svc.table.put_when(item, None, HashMap::new()).await?;
    Ok(())
}

/// Agents seen in the last minute, as `account_id` sees them.
pub async fn agents(svc: &Services, account_id: Uuid) -> Result<AgentPage, ApiError> {
    let now = millis(timestamps::now());
    let mut agents = Vec::new();
    svc.table
        .for_each_record::<Stored<AgentRecord>>(
            &TableQuery {
                index: None,
                partition: AGENTS.to_string(),
                range: KeyRange::All,
                descending: false,
            },
            |s| {
                let r = s.doc;
                if now - r.last_seen < 60_000 {
                    agents.push(AgentInfo {
                        agent_id: r.agent_id,
                        name: r.name.clone(),
                        // What streams run (human_tracking runs on videos only).
                        analytics: vec!["people_count".to_string()],
                        streams: AgentStreams {
                            max_count: r.max_streams,
                            count: r.streams.len() as u32,
                            stream_ids: r
                                .streams
                                .iter()
                                .filter(|(a, _)| *a == account_id)
                                .map(|(_, s)| *s)
                                .collect(),
                        },
                        groups: Vec::new(),
                        status: if now - r.last_seen <= 3 * REFRESH_MS {
                            "ready".to_string()
                        } else {
                            "not_ready".to_string()
                        },
                        last_seen: DateTime::<Utc>::from_timestamp_millis(r.last_seen)
                            .map(timestamps::format)
                            .unwrap_or_default(),
                    });
                }
                ControlFlow::Continue(())
            },
        )
        .await?;
    Ok(AgentPage { agents })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_analytic_forms_are_read() {
        let vm = analytic_request(
            0,
            &json!({"analytic_name": "people_count",
                    "parameters": {"parameters": {"probe_count": 2}, "targets": ["coordinates"],
                                   "callbacks": [{"type": "http", "url": "http://x/y"}]}}),
        )
        .unwrap();
        assert_eq!(vm.name, "people_count");
        assert_eq!(vm.targets, vec!["coordinates".to_string()]);
        assert_eq!(vm.parameters, json!({"probe_count": 2}));
        assert_eq!(vm.callbacks.len(), 1);
        let flat = analytic_request(
            0,
            &json!({"name": "people_count", "parameters": {"probe_count": 2}}),
        )
        .unwrap();
        assert_eq!(flat.parameters, json!({"probe_count": 2}));
        assert!(analytic_request(0, &json!(3)).is_err());
    }

    #[test]
    fn references_are_urls_or_own_uploads() {
        let a = Uuid::new_v4();
        assert!(check_reference(a, "rtsp://cam/1").is_ok());
        assert!(check_reference(a, &format!("uploads/{a}/v.mp4")).is_ok());
        assert!(check_reference(a, &format!("uploads/{}/v.mp4", Uuid::new_v4())).is_err());
        assert!(check_reference(a, "file:///etc/passwd").is_err());
        assert!(check_reference(a, "http://169.254.169.254/x").is_err());
    }
}
