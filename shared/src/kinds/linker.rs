//! Linker (task type 1): links the faces — or the events, through faces made from them —
//! selected by filters to an existing list, or to a new one (`create_list: 1`).
//!
//! The selection is frozen at creation (`create_time__lt` defaults to the creation time)
//! and split into subtasks of at most 1,000 objects. An event without a face gets one,
//! made from its descriptor and attributes (and its sample as the face's avatar), with an
//! id derived from the event's, so a repeated subtask finds the face it made.
//!
//! Objects named by the filters (`face_ids`, `event_ids`) that are not in the account, and
//! objects that vanish before their subtask runs, are not linked: the task goes on with
//! the others and ends done, and each such object is a task error of its own (22002 for a
//! face, 23001 for an event; `additional_info` is the object's id), recorded once by the
//! subtask that met it however often it runs (`tasks::store::record_object_errors`).

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::limits;
use super::{
    Merged, SubtaskContext, TaskContext, TaskKind, event_filter, face_filter, parse_content,
    to_json,
};
use crate::Services;
use crate::engine::ID_NAMESPACE;
use crate::error::ApiError;
use crate::objects::events::{self, EventFilter};
use crate::objects::faces::{self, FaceFilter};
use crate::objects::lists;
use crate::tasks::model::TaskType;
use crate::tasks::store::{ObjectError, record_object_errors};
use crate::timestamps;

/// Most objects one subtask links.
pub const OBJECTS_PER_SUBTASK_MAX: usize = 1000;

/// The linker kind.
pub struct Linker;

/// What the linker links.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectsType {
    /// Faces, selected with the filters of `GET /1/faces`.
    Faces,
    /// Events, selected with the filters of `GET /1/events`.
    Events,
}

/// Attributes of the list a linker creates.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListData {
    /// The new list's user data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
}

/// Content of a linker task.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkerContent {
    /// Faces or events.
    pub objects_type: ObjectsType,
    /// Filters of the objects (those of the matching `GET` listing, without paging).
    #[serde(default)]
    pub filters: Map<String, Value>,
    /// The list to link to; with `create_list: 1`, the list the task created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_id: Option<Uuid>,
    /// 1: create a new list for the task.
    #[serde(default)]
    pub create_list: u8,
    /// Attributes of the new list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list_data: Option<ListData>,
    /// Objects per subtask, 1..=1000 (default 1000; a Fanout extension).
    #[serde(default = "default_objects_per_subtask")]
    pub objects_per_subtask: usize,
}

fn default_objects_per_subtask() -> usize {
    OBJECTS_PER_SUBTASK_MAX
}

/// Content of one linker subtask.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkerPart {
    /// Faces or events.
    pub objects_type: ObjectsType,
    /// Target list.
    pub list_id: Uuid,
    /// The objects of this part.
    pub ids: Vec<Uuid>,
}

/// Output of one linker subtask.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LinkerOutput {
    /// Faces linked.
    pub linked: u64,
    /// Faces made from events.
    pub created_faces: u64,
    /// Objects that could not be linked, with why.
    pub failed: Vec<LinkFailure>,
}

/// An object the linker could not link.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LinkFailure {
    /// Face or event id.
    pub object_id: Uuid,
    /// Why.
    pub reason: String,
}

/// Result of a linker task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LinkerResult {
    /// The list the objects were linked to.
    pub list_id: Uuid,
    /// Faces or events.
    pub objects_type: ObjectsType,
    /// Objects linked (faces linked; for events, events whose face was linked).
    pub linked_objects_count: u64,
    /// Faces made from events without one.
    pub created_faces_count: u64,
    /// Objects not linked.
    pub failed_objects_count: u64,
    /// The objects not linked, with why.
    pub failed: Vec<LinkFailure>,
}

impl Linker {
    /// The list a `create_list: 1` task creates: its id derives from the task id.
    pub fn created_list_id(task_id: u64) -> Uuid {
        Uuid::new_v5(&ID_NAMESPACE, format!("task/{task_id}/list").as_bytes())
    }

    fn target_list(task_id: u64, content: &LinkerContent) -> Uuid {
        content
            .list_id
            .unwrap_or_else(|| Linker::created_list_id(task_id))
    }
}

/// The face made from an event that has none.
pub fn face_of_event(event_id: Uuid) -> Uuid {
    Uuid::new_v5(&ID_NAMESPACE, format!("event/{event_id}/face").as_bytes())
}

/// The ids of `named` (a filter's explicit ids) that are not in `selected`, once each.
fn unselected(named: Option<&[Uuid]>, selected: &[Uuid]) -> Vec<Uuid> {
    let selected: HashSet<&Uuid> = selected.iter().collect();
    let mut seen = HashSet::new();
    named
        .unwrap_or_default()
        .iter()
        .filter(|id| !selected.contains(id) && seen.insert(**id))
        .copied()
        .collect()
}

/// Reads a linker's filters; `create_time__lt` defaults to `now`.
fn filters(
    objects_type: ObjectsType,
    raw: &mut Map<String, Value>,
    account_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Selection, ApiError> {
    Ok(match objects_type {
        ObjectsType::Faces => Selection::Faces(face_filter(raw, account_id, now)?),
        ObjectsType::Events => Selection::Events(event_filter(raw, account_id, now)?),
    })
}

enum Selection {
    Faces(FaceFilter),
    Events(EventFilter),
}

#[async_trait]
impl TaskKind for Linker {
    fn name(&self) -> &'static str {
        "linker"
    }

    fn task_type(&self) -> TaskType {
        TaskType::Linker
    }

    async fn validate(
        &self,
        svc: &Services,
        account_id: Uuid,
        content: Value,
        now: DateTime<Utc>,
    ) -> Result<Value, ApiError> {
        let mut content: LinkerContent = parse_content(content)?;
        match (content.list_id, content.create_list) {
            (Some(_), 1) => {
                return Err(ApiError::bad_json(
                    "content: give either 'list_id' or 'create_list': 1, not both",
                ));
            }
            (None, 0) => {
                return Err(ApiError::bad_json(
                    "content: 'list_id' is required unless 'create_list' is 1",
                ));
            }
            (_, 0 | 1) => {}
            (_, _) => return Err(ApiError::bad_json("content: 'create_list' must be 0 or 1")),
        }
        if content.list_data.is_some() && content.create_list == 0 {
            return Err(ApiError::bad_json(
                "content: 'list_data' needs 'create_list': 1",
            ));
        }
        crate::objects::check_text(
            "list_data.user_data",
            content
                .list_data
                .as_ref()
                .and_then(|d| d.user_data.as_deref()),
            crate::objects::USER_DATA_MAX,
        )?;
        if !(1..=OBJECTS_PER_SUBTASK_MAX).contains(&content.objects_per_subtask) {
            return Err(ApiError::bad_json(format!(
                "content: 'objects_per_subtask' must be in 1..={OBJECTS_PER_SUBTASK_MAX}"
            )));
        }
        filters(content.objects_type, &mut content.filters, account_id, now)?;
        if let Some(list_id) = content.list_id {
            lists::record(svc, account_id, list_id).await?;
        }
        to_json(&content)
    }

    async fn plan(&self, task: &TaskContext<'_>, stage: u32) -> Result<Vec<Value>, ApiError> {
        if stage > 0 {
            return Ok(Vec::new());
        }
        let mut content: LinkerContent = task.content()?;
        let account_id = task.task.account_id;
        let list_id = Linker::target_list(task.task.task_id, &content);
        if content.create_list == 1 {
            let user_data = content.list_data.as_ref().and_then(|d| d.user_data.clone());
            lists::ensure(task.svc, account_id, list_id, user_data).await?;
        } else {
            lists::record(task.svc, account_id, list_id).await?;
        }
        let now = timestamps::parse(&task.task.create_time).unwrap_or_else(timestamps::now);
        let selection = filters(content.objects_type, &mut content.filters, account_id, now)?;
        let mut ids = Vec::new();
        // Named objects the selection did not take: the missing ones go to the subtasks
        // too, which report each as a task error (an existing one was left out by the
        // other filters and is no error).
        let mut named_missing = Vec::new();
        match selection {
            Selection::Faces(filter) => {
                faces::visit_matching(task.svc, &filter, |face| {
                    ids.push(face.face_id);
                    limits::keep_listing(ids.len())
                })
                .await?;
                let unselected = unselected(filter.face_ids.as_deref(), &ids);
                let found: HashSet<Uuid> = faces::records(task.svc, account_id, &unselected)
                    .await?
                    .into_iter()
                    .map(|face| face.face_id)
                    .collect();
                named_missing.extend(unselected.into_iter().filter(|id| !found.contains(id)));
            }
            Selection::Events(filter) => {
                events::visit_matching(task.svc, &filter, |event| {
                    ids.push(event.event.event_id);
                    limits::keep_listing(ids.len())
                })
                .await?;
                let unselected = unselected(filter.event_ids.as_deref(), &ids);
                let found: HashSet<Uuid> = events::records(task.svc, account_id, &unselected)
                    .await?
                    .into_iter()
                    .map(|event| event.event.event_id)
                    .collect();
                named_missing.extend(unselected.into_iter().filter(|id| !found.contains(id)));
            }
        }
        ids.extend(named_missing);
        limits::check_objects(ids.len())?;
        let parts = limits::chunks(ids.len() as u64, content.objects_per_subtask);
        limits::check_subtasks(task.task.count_task_parts_all, parts)?;
        ids.chunks(content.objects_per_subtask)
            .map(|chunk| {
                to_json(&LinkerPart {
                    objects_type: content.objects_type,
                    list_id,
                    ids: chunk.to_vec(),
                })
            })
            .collect()
    }

    async fn execute(&self, subtask: &SubtaskContext<'_>) -> Result<Value, ApiError> {
        let part: LinkerPart = subtask.content()?;
        let account_id = subtask.task.account_id;
        let svc = subtask.svc;
        let stop = || subtask.check_cancelled();
        let mut output = LinkerOutput::default();
        let subtask_id = subtask.subtask.subtask.subtask_id;
        let object_error = |error: ApiError, object_id: Uuid| ObjectError {
            subtask_id: Some(subtask_id),
            error,
            additional_info: object_id.to_string(),
        };
        let mut errors = Vec::new();
        match part.objects_type {
            ObjectsType::Faces => {
                let linked =
                    faces::link_existing(svc, account_id, part.list_id, &part.ids, &stop).await?;
                output.linked = linked.linked.len() as u64;
                for object_id in linked.missing {
                    output.failed.push(LinkFailure {
                        object_id,
                        reason: "face not found".into(),
                    });
                    errors.push(object_error(ApiError::face_not_found(object_id), object_id));
                }
            }
            ObjectsType::Events => {
                let found = events::records(svc, account_id, &part.ids).await?;
                let mut face_of: HashMap<Uuid, Uuid> = HashMap::new();
                for event in &found {
                    subtask.check_cancelled()?;
                    let face_id = match event.event.face_id {
                        Some(face_id) => face_id,
                        None => {
                            let face_id = face_of_event(event.event.event_id);
                            faces::ensure_from_event(svc, face_id, event).await?;
                            output.created_faces += 1;
                            face_id
                        }
                    };
                    face_of.insert(event.event.event_id, face_id);
                }
                let face_ids: Vec<Uuid> = face_of.values().copied().collect();
                let linked =
                    faces::link_existing(svc, account_id, part.list_id, &face_ids, &stop).await?;
                for &event_id in &part.ids {
                    let (reason, error) = match face_of.get(&event_id) {
                        None => ("event not found", ApiError::event_not_found(event_id)),
                        Some(face_id) if linked.missing.contains(face_id) => (
                            "face of the event not found",
                            ApiError::face_not_found(face_id),
                        ),
                        Some(_) => {
                            output.linked += 1;
                            continue;
                        }
                    };
                    output.failed.push(LinkFailure {
                        object_id: event_id,
                        reason: reason.into(),
                    });
                    errors.push(object_error(error, event_id));
                }
            }
        }
        // Recorded before the output is: a subtask done has its errors recorded, and one
        // run again records none twice.
        record_object_errors(svc, subtask.task, errors).await?;
        to_json(&output)
    }

    async fn merge(&self, task: &TaskContext<'_>) -> Result<Merged, ApiError> {
        let content: LinkerContent = task.content()?;
        let outcomes = task.outcomes::<LinkerOutput, LinkerPart>(0).await?;
        let mut result = LinkerResult {
            list_id: Linker::target_list(task.task.task_id, &content),
            objects_type: content.objects_type,
            linked_objects_count: 0,
            created_faces_count: 0,
            failed_objects_count: 0,
            failed: Vec::new(),
        };
        for output in outcomes.outputs {
            result.linked_objects_count += output.linked;
            result.created_faces_count += output.created_faces;
            result.failed.extend(output.failed);
        }
        for part in outcomes.failed {
            result
                .failed
                .extend(part.ids.into_iter().map(|object_id| LinkFailure {
                    object_id,
                    reason: "subtask failed (see the task's errors)".into(),
                }));
        }
        result.failed_objects_count = result.failed.len() as u64;
        Merged::json(&result)
    }
}
