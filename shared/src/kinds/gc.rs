//! Garbage collection (task type 4): deletes the events matching filters, or removes the
//! face descriptors of one `descriptor_version`, in parts of at most 1,000 objects.
//! Everything stays inside the task's account. The set is frozen at creation
//! (`create_time__lt` defaults to the creation time for events).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::limits;
use super::{Merged, SubtaskContext, TaskContext, TaskKind, event_filter, parse_content, to_json};
use crate::Services;
use crate::error::ApiError;
use crate::objects::events;
use crate::objects::faces::{self, FaceFilter};
use crate::tasks::model::TaskType;
use crate::timestamps;

/// Most objects one subtask removes.
pub const OBJECTS_PER_PART: usize = 1000;
/// Descriptor removals in flight at once within a subtask.
const REMOVALS_IN_FLIGHT: usize = 16;

/// The gc kind.
pub struct Gc;

/// What a gc task removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GcTarget {
    /// Events matching `filters`.
    Events,
    /// Descriptors of `descriptor_version` from the account's faces (the faces stay).
    FaceDescriptors,
}

/// Content of a gc task.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcContent {
    /// What to remove.
    pub target: GcTarget,
    /// Filters of the events (those of `GET /1/events`), for `events`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Map<String, Value>>,
    /// Version of the descriptors to remove, for `face_descriptors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptor_version: Option<u32>,
}

/// Content of one gc subtask.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GcPart {
    /// What to remove.
    pub target: GcTarget,
    /// Events or faces of this part.
    pub ids: Vec<Uuid>,
    /// Version of the descriptors, for `face_descriptors`.
    #[serde(default)]
    pub descriptor_version: Option<u32>,
}

/// Output of one gc subtask.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GcOutput {
    /// Objects removed.
    pub removed: u64,
    /// Objects already gone (or no longer matching) when the part ran.
    pub skipped: u64,
}

/// Result of a gc task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GcResult {
    /// What was removed.
    pub target: GcTarget,
    /// Events deleted, or descriptors removed.
    pub removed_count: u64,
    /// Objects of the frozen set already gone when their part ran.
    pub skipped_count: u64,
    /// Objects of parts that failed (see the task's errors).
    pub failed_count: u64,
}

#[async_trait]
impl TaskKind for Gc {
    fn name(&self) -> &'static str {
        "gc"
    }

    fn task_type(&self) -> TaskType {
        TaskType::Gc
    }

    async fn validate(
        &self,
        _svc: &Services,
        account_id: Uuid,
        content: Value,
        now: DateTime<Utc>,
    ) -> Result<Value, ApiError> {
        let mut content: GcContent = parse_content(content)?;
        match content.target {
            GcTarget::Events => {
                if content.descriptor_version.is_some() {
                    return Err(ApiError::bad_json(
                        "content: 'descriptor_version' is for target 'face_descriptors'",
                    ));
                }
                let filters = content.filters.get_or_insert_with(Map::new);
                event_filter(filters, account_id, now)?;
            }
            GcTarget::FaceDescriptors => {
                if content.filters.is_some() {
                    return Err(ApiError::bad_json(
                        "content: 'filters' are for target 'events'",
                    ));
                }
                if content.descriptor_version.is_none() {
                    return Err(ApiError::bad_json(
                        "content: 'descriptor_version' is required for target 'face_descriptors'",
                    ));
                }
            }
        }
        to_json(&content)
    }

    async fn plan(&self, task: &TaskContext<'_>, stage: u32) -> Result<Vec<Value>, ApiError> {
        if stage > 0 {
            return Ok(Vec::new());
        }
        let mut content: GcContent = task.content()?;
        let account_id = task.task.account_id;
        let mut ids = Vec::new();
        match content.target {
            GcTarget::Events => {
                let now = timestamps::parse(&task.task.create_time).unwrap_or_else(timestamps::now);
                let filter = event_filter(
                    content.filters.get_or_insert_with(Map::new),
                    account_id,
                    now,
                )?;
                events::visit_matching(task.svc, &filter, |event| {
                    ids.push(event.event.event_id);
                    limits::keep_listing(ids.len())
                })
                .await?;
            }
            GcTarget::FaceDescriptors => {
                let version = content.descriptor_version;
                let filter = FaceFilter {
                    account_id,
                    list_id: None,
                    face_ids: None,
                    external_ids: None,
                    user_data: None,
                    create_time: Default::default(),
                };
                faces::visit_matching(task.svc, &filter, |face| {
                    if face.descriptor_version == version {
                        ids.push(face.face_id);
                    }
                    limits::keep_listing(ids.len())
                })
                .await?;
            }
        }
        limits::check_objects(ids.len())?;
        let parts = limits::chunks(ids.len() as u64, OBJECTS_PER_PART);
        limits::check_subtasks(task.task.count_task_parts_all, parts)?;
        ids.chunks(OBJECTS_PER_PART)
            .map(|chunk| {
                to_json(&GcPart {
                    target: content.target,
                    ids: chunk.to_vec(),
                    descriptor_version: content.descriptor_version,
                })
            })
            .collect()
    }

    async fn execute(&self, subtask: &SubtaskContext<'_>) -> Result<Value, ApiError> {
        let part: GcPart = subtask.content()?;
        let svc = subtask.svc;
        let account_id = subtask.task.account_id;
        subtask.check_cancelled()?;
        let output = match part.target {
            GcTarget::Events => {
                let present = events::records(svc, account_id, &part.ids).await?;
                events::delete_records(svc, &present).await?;
                GcOutput {
                    removed: present.len() as u64,
                    skipped: (part.ids.len() - present.len()) as u64,
                }
            }
            GcTarget::FaceDescriptors => {
                let version = part.descriptor_version.ok_or_else(|| {
                    ApiError::internal("gc part", "face_descriptors part without a version")
                })?;
                let removed: Vec<bool> = stream::iter(part.ids.iter().copied())
                    .map(|face_id| async move {
                        subtask.check_cancelled()?;
                        faces::remove_descriptor(svc, account_id, face_id, version).await
                    })
                    .buffer_unordered(REMOVALS_IN_FLIGHT)
                    .try_collect()
                    .await?;
                let count = removed.iter().filter(|r| **r).count() as u64;
                GcOutput {
                    removed: count,
                    skipped: removed.len() as u64 - count,
                }
            }
        };
        to_json(&output)
    }

    async fn merge(&self, task: &TaskContext<'_>) -> Result<Merged, ApiError> {
        let content: GcContent = task.content()?;
        let outcomes = task.outcomes::<GcOutput, GcPart>(0).await?;
        let mut result = GcResult {
            target: content.target,
            removed_count: 0,
            skipped_count: 0,
            failed_count: 0,
        };
        for output in outcomes.outputs {
            result.removed_count += output.removed;
            result.skipped_count += output.skipped;
        }
        result.failed_count = outcomes.failed.iter().map(|p| p.ids.len() as u64).sum();
        Merged::json(&result)
    }
}
