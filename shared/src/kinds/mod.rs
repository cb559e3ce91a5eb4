//! Task kinds: each module implements [`TaskKind`] — validate, plan, execute, merge — and
//! [`REGISTRY`] lists them. The engine and the API find a kind here by its path segment or
//! its [`TaskType`] and never look at which kind it is.

pub mod additional_extract;
pub mod clustering;
pub mod cross_match;
pub mod estimator;
pub mod exporter;
pub mod gc;
pub mod limits;
pub mod linker;
pub mod reporter;
pub mod roc;
pub mod rows;
pub mod vectors;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use crate::Services;
use crate::error::{ApiError, ErrorCode};
use crate::objects::events::{self, EventFilter};
use crate::objects::faces::{self, FaceFilter};
use crate::query::Query;
use crate::tasks::model::{SubtaskRecord, SubtaskStatus, TaskError, TaskRecord, TaskType};
use crate::tasks::store as task_store;

/// Subtask outputs read from S3 at once while merging.
const OUTPUT_READS_IN_FLIGHT: usize = 16;

/// What a task kind does at each step of its life.
#[async_trait]
pub trait TaskKind: Send + Sync {
    /// Path segment of its creation route: `POST /1/tasks/<name>`.
    fn name(&self) -> &'static str;

    /// Its LUNA task type.
    fn task_type(&self) -> TaskType;

    /// Checks a creation request's content and returns it with every default filled in
    /// (times frozen at `now`). Bad content is a 4xx error and nothing is created.
    async fn validate(
        &self,
        svc: &Services,
        account_id: Uuid,
        content: Value,
        now: DateTime<Utc>,
    ) -> Result<Value, ApiError>;

    /// The subtask contents of stage `stage` (0, 1, ...); none means the task has no
    /// such stage and goes on to the merge. Later stages may read earlier outputs.
    /// Must give the same answer when asked again (a retried plan overwrites).
    async fn plan(&self, task: &TaskContext<'_>, stage: u32) -> Result<Vec<Value>, ApiError>;

    /// Runs one subtask and returns its output (stored in S3 by the engine). Errors with
    /// code 1 or 28000 are retried; any other error fails the subtask for good.
    async fn execute(&self, subtask: &SubtaskContext<'_>) -> Result<Value, ApiError>;

    /// Builds the task result from the outputs of its stages.
    async fn merge(&self, task: &TaskContext<'_>) -> Result<Merged, ApiError>;
}

/// A task result as its kind builds it.
#[derive(Debug)]
pub enum Merged {
    /// A JSON value.
    Json(Value),
    /// JSON already written out, for results too large to hold as a [`Value`] (a
    /// `Value` takes several times the memory of its text).
    Encoded(Vec<u8>),
    /// The kind wrote the result object itself, at [`crate::store::blobs::result_key`] with its content
    /// type (archives streamed to S3 part by part).
    Stored,
}

impl Merged {
    /// The result as a JSON value of a kind's result type.
    pub fn json<T: Serialize>(value: &T) -> Result<Merged, ApiError> {
        to_json(value).map(Merged::Json)
    }

    /// The JSON bytes to store as the task's result; none when the kind stored it.
    pub fn into_bytes(self) -> Result<Option<Vec<u8>>, ApiError> {
        match self {
            Merged::Json(value) => serde_json::to_vec(&value)
                .map(Some)
                .map_err(|e| ApiError::internal("result", e)),
            Merged::Encoded(bytes) => Ok(Some(bytes)),
            Merged::Stored => Ok(None),
        }
    }

    /// The bytes the engine stores as the task's JSON result: LUNA's envelope
    /// `{"result": <what the kind built>, "errors": [<the task's errors>]}`, `errors` as
    /// the error listing shows them (newest first); none when the kind stored an archive
    /// itself. Encoded results are wrapped as they are, never parsed again: the envelope's
    /// head goes in front of their bytes in place and its tail after them. The same
    /// result and errors always give the same bytes (a retried merge writes the same
    /// object).
    pub fn into_envelope(self, errors: &[TaskError]) -> Result<Option<Vec<u8>>, ApiError> {
        let errors = serde_json::to_vec(errors).map_err(|e| ApiError::internal("result", e))?;
        let tail = ERRORS.len() + errors.len() + 1;
        let mut body = match self {
            Merged::Json(value) => {
                let mut body = HEAD.to_vec();
                serde_json::to_writer(&mut body, &value)
                    .map_err(|e| ApiError::internal("result", e))?;
                body
            }
            Merged::Encoded(mut bytes) => {
                bytes.reserve_exact(HEAD.len() + tail);
                bytes.splice(0..0, HEAD.iter().copied());
                bytes
            }
            Merged::Stored => return Ok(None),
        };
        body.reserve_exact(tail);
        body.extend_from_slice(ERRORS);
        body.extend_from_slice(&errors);
        body.push(b'}');
        Ok(Some(body))
    }
}

/// How a result envelope begins: `{"result":`, then the kind's result.
const HEAD: &[u8] = b"{\"result\":";
/// What follows the kind's result: `,"errors":`, the task's errors, `}`.
const ERRORS: &[u8] = b",\"errors\":";

/// A JSON result too large to hold, written to S3 as it is built, in the same envelope
/// the engine gives a [`Merged::Json`] result (the kind then returns [`Merged::Stored`]):
/// [`ResultStream::write`] the kind's result JSON piece by piece, then
/// [`ResultStream::finish`] adds the task's errors as they are now. Written at the
/// result's key, so a retried merge overwrites it with the same bytes.
pub struct ResultStream<'a> {
    upload: crate::store::multipart::MultipartUpload<'a>,
    task_id: u64,
}

impl<'a> ResultStream<'a> {
    /// Starts the result of `task`.
    pub async fn begin(svc: &'a Services, task: &TaskRecord) -> Result<Self, ApiError> {
        let key = crate::store::blobs::result_key(task.task_id);
        let mut upload =
            crate::store::multipart::MultipartUpload::begin(svc, &key, "application/json").await?;
        upload.write(HEAD).await?;
        Ok(ResultStream {
            upload,
            task_id: task.task_id,
        })
    }

    /// Appends JSON text of the kind's result.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), ApiError> {
        self.upload.write(bytes).await
    }

    /// Appends a value's JSON.
    pub async fn write_json<T: Serialize>(&mut self, value: &T) -> Result<(), ApiError> {
        let bytes = serde_json::to_vec(value).map_err(|e| ApiError::internal("result", e))?;
        self.upload.write(&bytes).await
    }

    /// Closes the envelope with the task's errors and completes the object.
    pub async fn finish(mut self, svc: &Services) -> Result<Merged, ApiError> {
        let errors = crate::tasks::api::task_errors(svc, self.task_id).await?;
        let errors = serde_json::to_vec(&errors).map_err(|e| ApiError::internal("result", e))?;
        self.upload.write(ERRORS).await?;
        self.upload.write(&errors).await?;
        self.upload.write(b"}").await?;
        self.upload.finish().await?;
        Ok(Merged::Stored)
    }
}

/// Every kind the service runs.
pub static REGISTRY: &[&dyn TaskKind] = &[
    &linker::Linker,
    &gc::Gc,
    &clustering::Clustering,
    &cross_match::CrossMatch,
    &roc::Roc,
    &exporter::Exporter,
    &reporter::Reporter,
    &estimator::Estimator,
    &additional_extract::AdditionalExtract,
];

/// Kinds the engine runs whose tasks another surface's routes create (not
/// `POST /1/tasks/<name>`): the video analysis of `/1/videosdk`.
pub static OTHER_SURFACES: &[&dyn TaskKind] = &[&crate::video::task::VideoAnalysis];

/// The kind created through `POST /1/tasks/<name>`.
pub fn by_name(name: &str) -> Option<&'static dyn TaskKind> {
    REGISTRY.iter().copied().find(|k| k.name() == name)
}

/// The kind of a stored task.
pub fn by_type(task_type: TaskType) -> Option<&'static dyn TaskKind> {
    REGISTRY
        .iter()
        .chain(OTHER_SURFACES)
        .copied()
        .find(|k| k.task_type() == task_type)
}

/// A task as its kind sees it while planning and merging.
pub struct TaskContext<'a> {
    /// Clients and configuration.
    pub svc: &'a Services,
    /// The stored task.
    pub task: &'a TaskRecord,
    /// Its validated content.
    pub content: &'a Value,
}

impl TaskContext<'_> {
    /// The content as the kind's own type.
    pub fn content<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_value(self.content.clone())
            .map_err(|e| ApiError::internal("stored task content", e))
    }

    /// Every subtask of `stage`, in id order.
    pub async fn subtasks(&self, stage: u32) -> Result<Vec<SubtaskRecord>, ApiError> {
        let mut all = task_store::subtask_records(self.svc, self.task.task_id).await?;
        all.retain(|s| s.subtask.stage == stage);
        Ok(all)
    }

    /// The outputs of `records` (done subtasks), in their order, read a few at a time.
    pub async fn outputs<O: DeserializeOwned>(
        &self,
        records: Vec<SubtaskRecord>,
    ) -> Result<Vec<O>, ApiError> {
        let svc = self.svc;
        stream::iter(records)
            .map(move |record| async move { task_store::subtask_output(svc, &record).await })
            .buffered(OUTPUT_READS_IN_FLIGHT)
            .try_collect()
            .await
    }

    /// The outputs of the done subtasks of `stage` and the contents of the failed ones.
    pub async fn outcomes<O: DeserializeOwned, C: DeserializeOwned>(
        &self,
        stage: u32,
    ) -> Result<StageOutcomes<O, C>, ApiError> {
        let subtasks = self.subtasks(stage).await?;
        let svc = self.svc;
        let done: Vec<SubtaskRecord> = subtasks
            .iter()
            .filter(|s| s.subtask.status == SubtaskStatus::Done)
            .cloned()
            .collect();
        let outputs = self.outputs(done).await?;
        let mut failed = Vec::new();
        for s in subtasks
            .iter()
            .filter(|s| s.subtask.status == SubtaskStatus::Failed)
        {
            failed.push(task_store::subtask_content(svc, s).await?);
        }
        Ok(StageOutcomes { outputs, failed })
    }
}

/// What the subtasks of one stage left behind.
pub struct StageOutcomes<O, C> {
    /// Outputs of the done subtasks, in subtask order.
    pub outputs: Vec<O>,
    /// Contents of the failed subtasks, in subtask order.
    pub failed: Vec<C>,
}

/// A subtask as its kind sees it while executing.
pub struct SubtaskContext<'a> {
    /// Clients and configuration.
    pub svc: &'a Services,
    /// The stored task.
    pub task: &'a TaskRecord,
    /// The task's validated content.
    pub task_content: &'a Value,
    /// The subtask.
    pub subtask: &'a SubtaskRecord,
    /// The subtask's content, as planned.
    pub content: &'a Value,
    /// Raised when the task is cancelled while the subtask runs.
    pub cancel: &'a CancelFlag,
}

impl SubtaskContext<'_> {
    /// The task's content as the kind's own type.
    pub fn task_content<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_value(self.task_content.clone())
            .map_err(|e| ApiError::internal("stored task content", e))
    }

    /// The subtask content as the kind's own type.
    pub fn content<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_value(self.content.clone())
            .map_err(|e| ApiError::internal("stored subtask content", e))
    }

    /// Stops the subtask (with 28025) once its task is cancelled; kinds call it between
    /// units of work.
    pub fn check_cancelled(&self) -> Result<(), ApiError> {
        if self.cancel.is_raised() {
            Err(ApiError::new(
                ErrorCode::TaskCancelled,
                format!("Task '{}' has been cancelled", self.task.task_id),
            ))
        } else {
            Ok(())
        }
    }
}

/// Shared flag a worker raises when it sees the task of a running subtask cancelled.
#[derive(Debug, Clone, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    /// Raises the flag.
    pub fn raise(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the flag is raised.
    pub fn is_raised(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The error of a vision kind's subtask in a binary built without the vision module
/// (only the workers carry it; an API function never runs subtasks).
pub fn without_vision(kind: &str) -> ApiError {
    ApiError::internal(
        kind,
        "this binary is built without the vision module (workers run it)",
    )
}

/// The ids of the faces or events a task selects (its `filters`, the creation time
/// frozen at `created`) that `keep` accepts, newest first, within the listing limit.
pub async fn selected_ids(
    svc: &Services,
    objects_type: linker::ObjectsType,
    filters: &mut serde_json::Map<String, Value>,
    account_id: Uuid,
    created: DateTime<Utc>,
    mut keep_face: impl FnMut(&faces::FaceRecord) -> bool,
    mut keep_event: impl FnMut(&events::EventRecord) -> bool,
) -> Result<Vec<Uuid>, ApiError> {
    let mut ids = Vec::new();
    match objects_type {
        linker::ObjectsType::Faces => {
            let filter = face_filter(filters, account_id, created)?;
            faces::visit_matching(svc, &filter, |face| {
                if keep_face(&face) {
                    ids.push(face.face_id);
                }
                limits::keep_listing(ids.len())
            })
            .await?;
        }
        linker::ObjectsType::Events => {
            let filter = event_filter(filters, account_id, created)?;
            events::visit_matching(svc, &filter, |event| {
                if keep_event(&event) {
                    ids.push(event.event.event_id);
                }
                limits::keep_listing(ids.len())
            })
            .await?;
        }
    }
    Ok(ids)
}

/// Parses a JSON content object into a kind's content type, answering 12027 with the
/// reason (unknown fields, wrong types, missing fields).
pub fn parse_content<T: DeserializeOwned>(content: Value) -> Result<T, ApiError> {
    if !content.is_object() {
        return Err(ApiError::bad_json("'content' must be an object"));
    }
    serde_json::from_value(content).map_err(|e| ApiError::bad_json(format!("content: {e}")))
}

/// Serializes a kind's value into JSON.
pub fn to_json<T: Serialize>(value: &T) -> Result<Value, ApiError> {
    serde_json::to_value(value).map_err(|e| ApiError::internal("serialize content", e))
}

/// The faces a task selects: its `filters` read by the parser of `GET /1/faces`, with
/// `create_time__lt` defaulting to `now` (written back, so the stored content shows the
/// frozen bound).
pub fn face_filter(
    raw: &mut serde_json::Map<String, Value>,
    account_id: Uuid,
    now: DateTime<Utc>,
) -> Result<FaceFilter, ApiError> {
    freeze(raw, now);
    let query = filters_as_query(raw, account_id, faces::COUNT_PARAMS)?;
    FaceFilter::from_query(&query).map_err(as_content_error)
}

/// The events a task selects: its `filters` read by the parser of `GET /1/events`, with
/// `create_time__lt` defaulting to `now`.
pub fn event_filter(
    raw: &mut serde_json::Map<String, Value>,
    account_id: Uuid,
    now: DateTime<Utc>,
) -> Result<EventFilter, ApiError> {
    freeze(raw, now);
    let known: Vec<&str> = events::LIST_PARAMS
        .iter()
        .copied()
        .filter(|p| *p != "page" && *p != "page_size")
        .collect();
    let query = filters_as_query(raw, account_id, &known)?;
    EventFilter::from_query(&query).map_err(as_content_error)
}

fn freeze(raw: &mut serde_json::Map<String, Value>, now: DateTime<Utc>) {
    raw.entry("create_time__lt")
        .or_insert_with(|| Value::String(crate::timestamps::format(now)));
}

/// Turns a JSON filter object into query parameters, so that a task's filters are read
/// and checked by exactly the code that reads the same filters of `GET /1/<objects>`.
/// Arrays become comma-separated lists; `account_id` must be absent or the task's own.
pub fn filters_as_query(
    filters: &serde_json::Map<String, Value>,
    account_id: Uuid,
    known: &[&str],
) -> Result<Query, ApiError> {
    let mut pairs = vec![("account_id".to_string(), account_id.to_string())];
    for (name, value) in filters {
        if name == "account_id" {
            if value.as_str() != Some(account_id.to_string().as_str()) {
                return Err(ApiError::bad_json(
                    "filters: 'account_id' must be the task's account_id",
                ));
            }
            continue;
        }
        if name == "page" || name == "page_size" || !known.contains(&name.as_str()) {
            return Err(ApiError::bad_json(format!(
                "filters: unknown filter '{name}'"
            )));
        }
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(ApiError::bad_json(format!(
                        "filters: '{name}' must not be empty"
                    )));
                }
                items
                    .iter()
                    .map(|item| match item {
                        Value::String(s) => Ok(s.clone()),
                        Value::Number(n) => Ok(n.to_string()),
                        _ => Err(ApiError::bad_json(format!(
                            "filters: '{name}' items must be strings or numbers"
                        ))),
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .join(",")
            }
            _ => {
                return Err(ApiError::bad_json(format!(
                    "filters: '{name}' has a value of the wrong type"
                )));
            }
        };
        pairs.push((name.clone(), text));
    }
    Ok(Query::new(pairs))
}

/// Re-labels a query-parameter error of a content filter as a body error (12027).
pub fn as_content_error(err: ApiError) -> ApiError {
    if err.code.status() == 400 {
        ApiError::bad_json(format!("filters: {}", err.detail))
    } else {
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn registry_names_and_types_are_unique() {
        for (i, a) in REGISTRY.iter().enumerate() {
            for b in &REGISTRY[i + 1..] {
                assert_ne!(a.name(), b.name());
                assert_ne!(a.task_type(), b.task_type());
            }
            assert!(std::ptr::addr_eq(
                by_name(a.name()).unwrap(),
                by_type(a.task_type()).unwrap()
            ));
        }
        assert!(by_name("nope").is_none());
    }

    fn error(error_id: u64) -> TaskError {
        TaskError {
            error_id,
            task_id: 7,
            subtask_id: Some(2),
            error_code: 22002,
            link: "https://example.invalid/22002".into(),
            description: "Face not found".into(),
            detail: format!("Face '{error_id}' not found"),
            additional_info: Some("a face".into()),
            error_time: "2024-01-01T00:00:00.000000+00:00".into(),
        }
    }

    /// LUNA's result sample is `{"result": ..., "errors": [...]}`: the kind's result and
    /// the task's errors, whichever way the kind built its JSON; an archive stays a file.
    #[test]
    fn json_results_are_stored_in_the_envelope_with_the_errors() {
        let errors = [error(9), error(4)];
        let built = json!({"removed_count": 3, "list": [1, 2], "text": "é\"}"});
        let as_value = Merged::Json(built.clone()).into_envelope(&errors).unwrap();
        let as_text = Merged::Encoded(serde_json::to_vec(&built).unwrap())
            .into_envelope(&errors)
            .unwrap();
        for body in [as_value, as_text] {
            let body = body.expect("a JSON result is stored by the engine");
            let text = String::from_utf8(body.clone()).unwrap();
            assert!(text.starts_with("{\"result\":{"), "{text}");
            let envelope: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(envelope.as_object().unwrap().len(), 2, "{envelope}");
            assert_eq!(envelope["result"], built);
            assert_eq!(envelope["errors"], serde_json::to_value(&errors).unwrap());
        }
        let none = Merged::Json(json!([])).into_envelope(&[]).unwrap().unwrap();
        assert_eq!(none, b"{\"result\":[],\"errors\":[]}");
        assert_eq!(Merged::Stored.into_envelope(&errors).unwrap(), None);
    }

    /// A merge retried after a crash writes the same object: same result, same errors,
    /// same bytes.
    #[test]
    fn the_envelope_is_the_same_for_the_same_result_and_errors() {
        let errors = [error(5)];
        let built = json!({"b": 1, "a": [true, null]});
        let once = Merged::Json(built.clone()).into_envelope(&errors).unwrap();
        let again = Merged::Json(built).into_envelope(&errors).unwrap();
        assert_eq!(once, again);
    }

    #[test]
    fn filters_become_the_listing_query() {
        let account = Uuid::new_v4();
        let filters =
            json!({"face_ids": ["a", "b"], "user_data": "x", "account_id": account.to_string()});
        let query = filters_as_query(
            filters.as_object().unwrap(),
            account,
            &["face_ids", "user_data"],
        )
        .unwrap();
        assert_eq!(query.single("face_ids").unwrap(), Some("a,b"));
        assert_eq!(query.account_id().unwrap(), account);

        let other = json!({"account_id": Uuid::new_v4().to_string()});
        assert!(filters_as_query(other.as_object().unwrap(), account, &[]).is_err());
        let unknown = json!({"page": 2});
        let err = filters_as_query(unknown.as_object().unwrap(), account, &["page"]).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadJson);
    }
}
