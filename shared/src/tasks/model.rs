//! The three records of the task engine — task, subtask, task error — as stored and as
//! the API shows them (field names from the LUNA Tasks samples).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::store::keys;

/// `From<T> for u8` and `TryFrom<u8>` for an enum whose variants carry LUNA numbers and
/// are all listed in `T::ALL` (serde reads and writes the numbers through these), and
/// its OpenAPI schema: an integer, one of those numbers, described by `$doc`.
macro_rules! numbered {
    ($name:ident, $what:literal, $doc:literal) => {
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::Integer)
                    .enum_values(Some($name::ALL.into_iter().map(|v| v as u8)))
                    .description(Some($doc))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl From<$name> for u8 {
            fn from(value: $name) -> u8 {
                value as u8
            }
        }

        impl TryFrom<u8> for $name {
            type Error = String;
            fn try_from(value: u8) -> Result<$name, String> {
                $name::ALL
                    .into_iter()
                    .find(|v| *v as u8 == value)
                    .ok_or_else(|| format!(concat!("unknown ", $what, " {}"), value))
            }
        }
    };
}

/// Lifecycle of a task (LUNA numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum TaskStatus {
    /// Created, not planned yet.
    Pending = 0,
    /// Planned: subtasks are queued or running.
    InProgress = 1,
    /// Stopped by the client; no result.
    Cancelled = 2,
    /// Ended without a result (planning or merging failed, or every subtask failed).
    Failed = 3,
    /// Every subtask ended; the merge is running.
    CollectResults = 4,
    /// Ended with a result.
    Done = 5,
}

impl TaskStatus {
    /// Every status, in numeric order.
    pub const ALL: [TaskStatus; 6] = [
        TaskStatus::Pending,
        TaskStatus::InProgress,
        TaskStatus::Cancelled,
        TaskStatus::Failed,
        TaskStatus::CollectResults,
        TaskStatus::Done,
    ];

    /// Whether the task has ended (nothing will change it any more but delete).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskStatus::Cancelled | TaskStatus::Failed | TaskStatus::Done
        )
    }

    /// The transition table: the statuses a task may move to `self` from. Every status
    /// write checks it in its condition (`tasks::store::status_move`), so no step can move
    /// a task anywhere else, whatever it read before. `InProgress` comes from itself too:
    /// each stage's claim sets it again.
    pub fn sources(self) -> &'static [TaskStatus] {
        use TaskStatus::*;
        match self {
            Pending => &[],
            InProgress => &[Pending, InProgress],
            CollectResults => &[Pending, InProgress],
            Done => &[CollectResults],
            Failed | Cancelled => &[Pending, InProgress, CollectResults],
        }
    }
}

numbered!(
    TaskStatus,
    "task status",
    "Lifecycle of a task (LUNA numbering): 0 pending, 1 in progress, 2 cancelled, 3 failed, 4 collecting results, 5 done."
);

/// Kind of a task (LUNA numbering; a kind's module declares which one it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum TaskType {
    /// Not a known kind.
    Unknown = 0,
    /// Link faces or events to a list.
    Linker = 1,
    /// Cluster objects by descriptor similarity.
    Clustering = 2,
    /// Report on a clustering task.
    Reporter = 3,
    /// Delete events or descriptors.
    Gc = 4,
    /// Extract descriptors of another version.
    AdditionalExtract = 5,
    /// Match references against candidates.
    CrossMatch = 6,
    /// ROC curve of a matcher on labelled objects.
    Roc = 7,
    /// Export objects as CSV in a zip.
    Exporter = 8,
    /// Estimate images of an archive.
    Estimator = 9,
    /// Analyse a video file by segments (`/1/videosdk`; a Fanout type, LUNA Tasks has
    /// none: the Video Agent runs its own tasks).
    VideoAnalysis = 20,
}

impl TaskType {
    /// Every type, in numeric order.
    pub const ALL: [TaskType; 11] = [
        TaskType::Unknown,
        TaskType::Linker,
        TaskType::Clustering,
        TaskType::Reporter,
        TaskType::Gc,
        TaskType::AdditionalExtract,
        TaskType::CrossMatch,
        TaskType::Roc,
        TaskType::Exporter,
        TaskType::Estimator,
        TaskType::VideoAnalysis,
    ];
}

numbered!(
    TaskType,
    "task type",
    "Kind of a task (LUNA numbering): 0 unknown, 1 linker, 2 clustering, 3 reporter, 4 gc, 5 additional extract, 6 cross match, 7 roc, 8 exporter, 9 estimator, 20 video analysis (Fanout's: `/1/videosdk`). Always an integer, in tasks, error records and the task_type filters alike: LUNA Tasks 3.8.11's get-task sample shows \"task_type\": \"1\" (a string), but its filters and its task_type schema are integers, and Fanout keeps the one type."
);

/// Status of one subtask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum SubtaskStatus {
    /// Queued (or running: a running subtask keeps this status until it ends).
    Pending = 0,
    /// Dropped because its task was cancelled.
    Cancelled = 2,
    /// Ended with an error record.
    Failed = 3,
    /// Ended with its output in S3.
    Done = 5,
}

impl SubtaskStatus {
    /// Every status, in numeric order.
    pub const ALL: [SubtaskStatus; 4] = [
        SubtaskStatus::Pending,
        SubtaskStatus::Cancelled,
        SubtaskStatus::Failed,
        SubtaskStatus::Done,
    ];
}

numbered!(
    SubtaskStatus,
    "subtask status",
    "Status of one subtask: 0 pending (queued or running), 2 cancelled, 3 failed, 5 done."
);

/// The stored item of a task. Besides the fields the API shows it keeps the engine's
/// bookkeeping: how many stages are planned and queued, and the current stage's counters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRecord {
    pk: String,
    sk: String,
    /// Task id (≥ 1).
    pub task_id: u64,
    /// Kind.
    pub task_type: TaskType,
    /// Lifecycle status.
    pub task_status: TaskStatus,
    /// Owner.
    pub account_id: Uuid,
    /// Client's text.
    #[serde(default)]
    pub description: String,
    /// The validated content as JSON text, when small enough for the item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// S3 key of the content when it is too large for the item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_key: Option<String>,
    /// Creation time.
    pub create_time: String,
    /// Last change of status or progress.
    pub last_update_time: String,
    /// When the task ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    /// Id of the result object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_id: Option<Uuid>,
    /// Subtasks ended, over every stage.
    #[serde(default)]
    pub count_task_parts_done: u64,
    /// Moved by each recount of a stage (see `engine::work::epoch_condition`).
    #[serde(default)]
    pub count_epoch: u32,
    /// Subtasks planned, over every stage.
    #[serde(default)]
    pub count_task_parts_all: u64,
    /// Stages planned so far; the current stage is `stages_planned - 1`.
    #[serde(default)]
    pub stages_planned: u32,
    /// Stages whose subtask items were all written (see `engine::control`).
    #[serde(default)]
    pub stages_written: u32,
    /// Stages whose subtask messages were all sent.
    #[serde(default)]
    pub stages_enqueued: u32,
    /// S3 key of the current stage's plan (its subtask contents, in order), fixed by the
    /// planner that claimed the stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_plan_key: Option<String>,
    /// Subtasks of the current stage.
    #[serde(default)]
    pub stage_parts_all: u64,
    /// Subtasks of the current stage that ended (done or failed).
    #[serde(default)]
    pub stage_parts_done: u64,
    /// Subtasks of the current stage that failed.
    #[serde(default)]
    pub stage_parts_failed: u64,
    /// Id of the first subtask of the current stage.
    #[serde(default)]
    pub stage_first_subtask: u32,
    /// Last heartbeat of a worker running one of its subtasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_time: Option<String>,
    /// How long the result is kept, as asked at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_storage_policy: Option<ResultStoragePolicy>,
    /// When the result expires (end time + TTL), once there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_expire_time: Option<String>,
}

/// `result_storage_policy` of a task creation: how long its result is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultStoragePolicy {
    /// Days the result is kept after the task ends, 1 to 3650; without a policy the
    /// result is kept until the task is deleted.
    pub ttl: u32,
}

impl ResultStoragePolicy {
    /// Longest TTL accepted, in days (ten years).
    pub const TTL_MAX_DAYS: u32 = 3650;
}

impl TaskRecord {
    /// A new pending task.
    pub fn new(
        task_id: u64,
        task_type: TaskType,
        account_id: Uuid,
        description: String,
        now: &str,
    ) -> TaskRecord {
        TaskRecord {
            pk: keys::task_pk(task_id),
            sk: keys::TASK_SK.into(),
            task_id,
            task_type,
            task_status: TaskStatus::Pending,
            account_id,
            description,
            content: None,
            content_key: None,
            create_time: now.into(),
            last_update_time: now.into(),
            end_time: None,
            result_id: None,
            count_task_parts_done: 0,
            count_epoch: 0,
            count_task_parts_all: 0,
            stages_planned: 0,
            stages_written: 0,
            stages_enqueued: 0,
            stage_plan_key: None,
            stage_parts_all: 0,
            stage_parts_done: 0,
            stage_parts_failed: 0,
            stage_first_subtask: 1,
            heartbeat_time: None,
            result_storage_policy: None,
            result_expire_time: None,
        }
    }

    /// Whether the task has a result to serve: a result id, and a TTL (if any) that has
    /// not run out by `now`. The result object itself may still have been removed.
    pub fn result_kept(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        let expired = self
            .result_expire_time
            .as_deref()
            .and_then(crate::timestamps::parse)
            .is_some_and(|t| t <= now);
        self.result_id.is_some() && !expired
    }

    /// The current stage, once one is planned.
    pub fn current_stage(&self) -> Option<u32> {
        self.stages_planned.checked_sub(1)
    }

    /// The content as `GET /1/tasks` shows it: the content kept in the item (at most
    /// 1 KiB of JSON), or null for a larger one, kept in S3. A page of 100 tasks then
    /// stays far below the 6 MB of a Lambda answer and reads no S3 object;
    /// `GET /1/tasks/{task_id}` shows any content.
    pub fn listed_content(&self) -> Value {
        self.content
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .unwrap_or(Value::Null)
    }

    /// The task as the API shows it, with its content.
    pub fn view(&self, content: Value) -> Task {
        Task {
            task_id: self.task_id,
            task_type: self.task_type,
            task_status: self.task_status,
            account_id: self.account_id,
            description: self.description.clone(),
            content,
            create_time: self.create_time.clone(),
            last_update_time: self.last_update_time.clone(),
            end_time: self.end_time.clone(),
            result_id: self.result_id,
            count_task_parts_done: self.count_task_parts_done,
            count_task_parts_all: self.count_task_parts_all,
            result_storage_policy: self.result_storage_policy,
            result_expire_time: self.result_expire_time.clone(),
        }
    }
}

/// A task as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Task {
    /// Task id.
    pub task_id: u64,
    /// Kind (LUNA numbering: 1 linker, 4 gc, ...).
    pub task_type: TaskType,
    /// 0 pending, 1 in progress, 2 cancelled, 3 failed, 4 collect results, 5 done.
    pub task_status: TaskStatus,
    /// Owner.
    pub account_id: Uuid,
    /// Client's text.
    pub description: String,
    /// The validated content (with defaults filled in); in `GET /1/tasks`, null when it
    /// is over 1 KiB of JSON (read the task itself for it).
    #[schema(value_type = Option<Object>)]
    pub content: Value,
    /// Creation time.
    pub create_time: String,
    /// Last change of status or progress.
    pub last_update_time: String,
    /// When the task ended.
    pub end_time: Option<String>,
    /// Id of the result, once done.
    pub result_id: Option<Uuid>,
    /// Subtasks ended.
    pub count_task_parts_done: u64,
    /// Subtasks planned.
    pub count_task_parts_all: u64,
    /// How long the result is kept, when the task was created with a policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_storage_policy: Option<ResultStoragePolicy>,
    /// When the result expires, once the task is done with a policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_expire_time: Option<String>,
}

/// Answer to `GET /1/tasks`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskPage {
    /// The tasks of the requested page, newest first.
    pub tasks: Vec<Task>,
}

/// Answer to `POST /1/tasks/<kind>`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct TaskCreated {
    /// Id of the new task.
    pub task_id: u64,
}

/// A subtask as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Subtask {
    /// Subtask id, 1.. within its task, in planning order.
    pub subtask_id: u32,
    /// Task it belongs to.
    pub task_id: u64,
    /// Stage it belongs to (0 for single-stage kinds).
    pub stage: u32,
    /// 0 pending (queued or running), 2 cancelled, 3 failed, 5 done.
    pub status: SubtaskStatus,
    /// Deliveries of its message when it ended.
    #[serde(default)]
    pub attempts: u32,
    /// When it was planned.
    pub create_time: String,
    /// When the attempt that ended it started.
    #[serde(default)]
    pub start_time: Option<String>,
    /// When it ended.
    #[serde(default)]
    pub end_time: Option<String>,
    /// S3 key of its output, once done, when the output was too large for the subtask's
    /// item (over 16 KiB); smaller outputs are kept in the item and this stays null.
    #[serde(default)]
    pub result_key: Option<String>,
    /// Id of its stored output once done (LUNA's subtask `result_id`: a UUID derived
    /// from the task and subtask ids, the same on every read); null otherwise.
    #[serde(default)]
    pub result_id: Option<Uuid>,
}

/// The stored item of a subtask: the subtask and its content.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubtaskRecord {
    pk: String,
    sk: String,
    /// The subtask as shown.
    #[serde(flatten)]
    pub subtask: Subtask,
    /// Its content as JSON text, when small enough for the item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// S3 key of its content when too large for the item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_key: Option<String>,
    /// Its output as JSON text once done, when small enough for the item (else in S3 at
    /// `subtask.result_key`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

impl SubtaskRecord {
    /// A new pending subtask.
    pub fn new(task_id: u64, subtask_id: u32, stage: u32, now: &str) -> SubtaskRecord {
        SubtaskRecord {
            pk: keys::task_pk(task_id),
            sk: keys::subtask_sk(subtask_id),
            subtask: Subtask {
                subtask_id,
                task_id,
                stage,
                status: SubtaskStatus::Pending,
                attempts: 0,
                create_time: now.into(),
                start_time: None,
                end_time: None,
                result_key: None,
                result_id: None,
            },
            content: None,
            content_key: None,
            output: None,
        }
    }
}

/// Answer to `GET /1/tasks/{task_id}/subtasks`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SubtaskPage {
    /// The subtasks of the requested page, in id order.
    pub subtasks: Vec<Subtask>,
}

/// The stored item of a task error.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskErrorRecord {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    gsi2pk: String,
    gsi2sk: String,
    /// Owner (of the task).
    pub account_id: Uuid,
    /// Kind of the task, for the `task_type` filter.
    pub task_type: TaskType,
    /// HTTP status of the error code, for the `status_code` filter.
    pub status_code: u16,
    /// The error as shown.
    #[serde(flatten)]
    pub error: TaskError,
}

impl TaskErrorRecord {
    /// A new error record of `task`.
    pub fn new(task: &TaskRecord, status_code: u16, error: TaskError) -> TaskErrorRecord {
        TaskErrorRecord {
            pk: keys::task_pk(error.task_id),
            sk: keys::error_sk(error.error_id),
            gsi1pk: keys::account_partition(task.account_id, "ERROR"),
            gsi1sk: keys::padded_id(error.error_id),
            gsi2pk: keys::ALL_ERRORS.into(),
            gsi2sk: keys::padded_id(error.error_id),
            account_id: task.account_id,
            task_type: task.task_type,
            status_code,
            error,
        }
    }
}

/// A task error as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct TaskError {
    /// Error id.
    pub error_id: u64,
    /// Task it belongs to.
    pub task_id: u64,
    /// Subtask it belongs to (none for planning and merging errors).
    pub subtask_id: Option<u32>,
    /// LUNA error code.
    pub error_code: u32,
    /// Documentation page of the code.
    pub link: String,
    /// Short description.
    pub description: String,
    /// Description with the values of this occurrence.
    pub detail: String,
    /// What the error is about (an object id, a stage), when known.
    pub additional_info: Option<String>,
    /// When it happened.
    pub error_time: String,
}

/// Answer to the error listings.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskErrorPage {
    /// The errors of the requested page, newest first.
    pub errors: Vec<TaskError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_transition_table_never_leaves_an_end_and_reaches_every_end() {
        for to in TaskStatus::ALL {
            for from in to.sources() {
                assert!(!from.is_final(), "{from:?} -> {to:?} leaves an ended task");
            }
        }
        assert!(
            TaskStatus::Pending.sources().is_empty(),
            "nothing goes back to 0"
        );
        // Every ended status can be reached from every running one but Done, which only the
        // merge reaches.
        for end in [TaskStatus::Cancelled, TaskStatus::Failed] {
            for from in [
                TaskStatus::Pending,
                TaskStatus::InProgress,
                TaskStatus::CollectResults,
            ] {
                assert!(end.sources().contains(&from), "{from:?} -> {end:?}");
            }
        }
        assert_eq!(TaskStatus::Done.sources(), &[TaskStatus::CollectResults]);
    }

    #[test]
    fn a_result_is_kept_until_its_expiry_time() {
        let now = crate::timestamps::now();
        let mut task = TaskRecord::new(7, TaskType::Exporter, Uuid::new_v4(), String::new(), "");
        assert!(!task.result_kept(now), "no result yet");
        task.result_id = Some(Uuid::new_v4());
        assert!(task.result_kept(now), "no policy: kept");
        task.result_expire_time = Some(crate::timestamps::format(now));
        assert!(!task.result_kept(now), "expired at its expiry time");
        assert!(task.result_kept(now - chrono::Duration::seconds(1)));
    }

    #[test]
    fn statuses_and_types_keep_the_luna_numbers() {
        for status in TaskStatus::ALL {
            assert_eq!(TaskStatus::try_from(u8::from(status)), Ok(status));
        }
        assert_eq!(u8::from(TaskStatus::CollectResults), 4);
        assert_eq!(u8::from(TaskType::Gc), 4);
        assert_eq!(u8::from(TaskType::Estimator), 9);
        assert!(TaskType::try_from(10).is_err());
        assert!(SubtaskStatus::try_from(1).is_err());
        let json = serde_json::to_string(&TaskStatus::Done).unwrap();
        assert_eq!(json, "5");
    }

    /// Found by schemathesis: the document said these were strings ("Pending", ...)
    /// while the API writes their numbers.
    #[test]
    fn numbered_enums_are_documented_as_their_numbers() {
        use serde_json::json;
        use utoipa::PartialSchema;
        for (schema, numbers) in [
            (TaskStatus::schema(), json!([0, 1, 2, 3, 4, 5])),
            (
                TaskType::schema(),
                json!([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 20]),
            ),
            (SubtaskStatus::schema(), json!([0, 2, 3, 5])),
        ] {
            let schema = serde_json::to_value(schema).unwrap();
            assert_eq!(schema["type"], "integer", "{schema}");
            assert_eq!(schema["enum"], numbers, "{schema}");
        }
        let described = serde_json::to_value(TaskType::schema()).unwrap();
        assert!(
            described["description"]
                .as_str()
                .unwrap()
                .contains("Always an integer"),
            "the decision on the seed's string sample is documented: {described}"
        );
        let task = serde_json::to_value(Task::schema()).unwrap();
        let content = &task["properties"]["content"];
        assert!(
            content.to_string().contains("null"),
            "a listed task's content may be null: {content}"
        );
    }

    #[test]
    fn only_cancelled_failed_and_done_are_final() {
        let finals: Vec<_> = TaskStatus::ALL
            .into_iter()
            .filter(|s| s.is_final())
            .collect();
        assert_eq!(
            finals,
            [TaskStatus::Cancelled, TaskStatus::Failed, TaskStatus::Done]
        );
    }
}
