//! Additional extract (task type 5): for the faces or events of a selection that have a
//! stored image (a face's avatar, an event's sample) but lack what the task asks for —
//! a descriptor of an extractable version (`face_descriptor`), or age and gender
//! (`basic_attributes`, events) — the workers extract it from the image.
//!
//! The planner lists the matching objects that have an image and lack the target (the
//! set is frozen at creation) in parts of [`OBJECTS_PER_PART`]; a subtask reads each
//! object again, analyses its image and writes what it found only if the object has not
//! changed since it was read (so a client's write meanwhile wins, and a retried subtask
//! finds the work done and skips it). An object whose image holds no face, or that is
//! gone, is a task error naming it.
//!
//! A face or event holds one descriptor: the new version replaces the old one (the
//! version table keeps both versions known, so old and new coexist across objects while
//! the task runs). Objects without an image keep their old version; a gc task
//! (`face_descriptors`, the old version) removes those afterwards — the LUNA upgrade
//! procedure: re-extract, re-extract the stragglers, switch the default, gc.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::limits;
use super::linker::ObjectsType;
use super::{
    Merged, SubtaskContext, TaskContext, TaskKind, event_filter, face_filter, parse_content,
    to_json,
};
use crate::Services;
use crate::descriptor::{self, FACERES_VERSION};
use crate::error::ApiError;
use crate::tasks::model::TaskType;
use crate::timestamps;

/// Most objects one subtask extracts.
pub const OBJECTS_PER_PART: usize = 100;

/// The additional extract kind.
pub struct AdditionalExtract;

/// What to extract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// A descriptor of `options.descriptor_version`.
    FaceDescriptor,
    /// Age and gender (events; faces carry no attributes).
    BasicAttributes,
}

/// Options of the extraction.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Version of the descriptors to extract: 1001 (FaceRes, the default) or 1002.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptor_version: Option<u32>,
}

/// Content of an additional extract task.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdditionalExtractContent {
    /// What to extract.
    pub extraction_target: Target,
    /// Faces or events.
    pub objects_type: ObjectsType,
    /// Filters of the objects (those of `GET /1/faces` or `GET /1/events`).
    #[serde(default)]
    pub filters: Map<String, Value>,
    /// Options.
    #[serde(default)]
    pub options: Options,
}

/// Content of one subtask.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExtractPart {
    /// The objects.
    pub ids: Vec<Uuid>,
}

/// Output of one subtask, and the task result.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExtractCounts {
    /// Objects given what they lacked.
    pub extracted: u64,
    /// Objects that needed nothing any more (done by an earlier attempt, or changed by
    /// someone else since they were listed).
    pub skipped: u64,
    /// Objects that could not be (no face in the image, gone): each a task error.
    pub failed: u64,
    /// The failures of a subtask: object id, error code, reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<(Uuid, u32, String)>,
}

impl AdditionalExtractContent {
    fn version(&self) -> u32 {
        self.options.descriptor_version.unwrap_or(FACERES_VERSION)
    }

    /// Whether an object with `version` and these attributes still lacks the target.
    fn lacks(&self, version: Option<u32>, has_attributes: bool) -> bool {
        match self.extraction_target {
            Target::FaceDescriptor => version != Some(self.version()),
            Target::BasicAttributes => !has_attributes,
        }
    }
}

#[async_trait]
impl TaskKind for AdditionalExtract {
    fn name(&self) -> &'static str {
        "additional_extract"
    }

    fn task_type(&self) -> TaskType {
        TaskType::AdditionalExtract
    }

    async fn validate(
        &self,
        svc: &Services,
        account_id: Uuid,
        content: Value,
        now: DateTime<Utc>,
    ) -> Result<Value, ApiError> {
        let mut content: AdditionalExtractContent = parse_content(content)?;
        match content.objects_type {
            ObjectsType::Faces => drop(face_filter(&mut content.filters, account_id, now)?),
            ObjectsType::Events => drop(event_filter(&mut content.filters, account_id, now)?),
        }
        match content.extraction_target {
            Target::FaceDescriptor => {
                let version = content.version();
                descriptor::check_extractable(version, &svc.config)?;
                content.options.descriptor_version = Some(version);
            }
            Target::BasicAttributes => {
                if content.objects_type == ObjectsType::Faces {
                    return Err(ApiError::bad_json(
                        "extraction_target basic_attributes is for objects_type events (faces carry no attributes)",
                    ));
                }
                if content.options.descriptor_version.is_some() {
                    return Err(ApiError::bad_json(
                        "options.descriptor_version is for extraction_target face_descriptor",
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
        let content: AdditionalExtractContent = task.content()?;
        let mut filters = content.filters.clone();
        let account_id = task.task.account_id;
        let created = timestamps::parse(&task.task.create_time).unwrap_or_else(timestamps::now);
        let ids = super::selected_ids(
            task.svc,
            content.objects_type,
            &mut filters,
            account_id,
            created,
            |face| face.image.is_some() && content.lacks(face.descriptor_version, false),
            |event| {
                let e = &event.event;
                event.image.is_some()
                    && content.lacks(e.descriptor_version, e.age.is_some() && e.gender.is_some())
            },
        )
        .await?;
        limits::check_objects(ids.len())?;
        limits::check_subtasks(
            task.task.count_task_parts_all,
            limits::chunks(ids.len() as u64, OBJECTS_PER_PART),
        )?;
        ids.chunks(OBJECTS_PER_PART)
            .map(|chunk| {
                to_json(&ExtractPart {
                    ids: chunk.to_vec(),
                })
            })
            .collect()
    }

    async fn execute(&self, subtask: &SubtaskContext<'_>) -> Result<Value, ApiError> {
        #[cfg(feature = "vision")]
        {
            let content: AdditionalExtractContent = subtask.task_content()?;
            let part: ExtractPart = subtask.content()?;
            to_json(&run::part(subtask, &content, &part).await?)
        }
        #[cfg(not(feature = "vision"))]
        {
            let _ = subtask;
            Err(super::without_vision("additional_extract"))
        }
    }

    async fn merge(&self, task: &TaskContext<'_>) -> Result<Merged, ApiError> {
        let subtasks = task.subtasks(0).await?;
        let mut total = ExtractCounts::default();
        let mut errors = Vec::new();
        for record in &subtasks {
            if record.subtask.status != crate::tasks::model::SubtaskStatus::Done {
                continue;
            }
            let counts: ExtractCounts =
                crate::tasks::store::subtask_output(task.svc, record).await?;
            total.extracted += counts.extracted;
            total.skipped += counts.skipped;
            total.failed += counts.failed;
            for (id, code, detail) in counts.failures {
                let code = crate::error::ErrorCode::from_code(code)
                    .unwrap_or(crate::error::ErrorCode::ImageUnsupported);
                errors.push(crate::tasks::store::ObjectError {
                    subtask_id: Some(record.subtask.subtask_id),
                    error: ApiError::new(code, detail),
                    additional_info: id.to_string(),
                });
            }
        }
        crate::tasks::store::record_object_errors(task.svc, task.task, errors).await?;
        Merged::json(&total)
    }
}

#[cfg(feature = "vision")]
mod run {
    //! The worker's side: read each object again, analyse its image, write what it lacks.

    use super::*;
    use crate::descriptor::Descriptor;
    use crate::error::ErrorCode;
    use crate::objects::{events, faces, images};
    use crate::vision::estimate;
    use crate::vision::faces::Wanted;

    /// Extracts what the objects of one part lack.
    pub async fn part(
        subtask: &SubtaskContext<'_>,
        content: &AdditionalExtractContent,
        part: &ExtractPart,
    ) -> Result<ExtractCounts, ApiError> {
        let svc = subtask.svc;
        let account_id = subtask.task.account_id;
        let version = content.version();
        let wanted = match content.extraction_target {
            Target::FaceDescriptor => Wanted {
                descriptors: vec![estimate::extractor(version).ok_or_else(|| {
                    ApiError::internal("additional_extract", "version without a network")
                })?],
                ..Wanted::default()
            },
            Target::BasicAttributes => Wanted {
                basic_attributes: true,
                ..Wanted::default()
            },
        };
        let mut counts = ExtractCounts::default();
        for &id in &part.ids {
            subtask.check_cancelled()?;
            let fail = |counts: &mut ExtractCounts, err: ApiError| {
                counts.failed += 1;
                counts.failures.push((id, err.code.code(), err.detail));
            };
            // The object as it is now, and its image.
            let (face, event, bytes) = match content.objects_type {
                ObjectsType::Faces => {
                    let face = match faces::record(svc, account_id, id).await {
                        Ok(face) => face,
                        Err(err) if err.status() == 404 => {
                            fail(&mut counts, err);
                            continue;
                        }
                        Err(err) => return Err(err),
                    };
                    if !content.lacks(face.descriptor_version, false) {
                        counts.skipped += 1;
                        continue;
                    }
                    match images::get_face_avatar(svc, account_id, id).await {
                        Ok(image) => (Some(face), None, image.bytes),
                        Err(err) if err.status() == 404 => {
                            fail(&mut counts, err);
                            continue;
                        }
                        Err(err) => return Err(err),
                    }
                }
                ObjectsType::Events => {
                    let event = match events::record(svc, account_id, id).await {
                        Ok(event) => event,
                        Err(err) if err.status() == 404 => {
                            fail(&mut counts, err);
                            continue;
                        }
                        Err(err) => return Err(err),
                    };
                    let e = &event.event;
                    if !content.lacks(e.descriptor_version, e.age.is_some() && e.gender.is_some()) {
                        counts.skipped += 1;
                        continue;
                    }
                    match images::get_event_sample(svc, account_id, id).await {
                        Ok(image) => (None, Some(event), image.bytes),
                        Err(err) if err.status() == 404 => {
                            fail(&mut counts, err);
                            continue;
                        }
                        Err(err) => return Err(err),
                    }
                }
            };
            let analysed = match estimate::analyse(bytes, 0.5, wanted.clone(), false).await? {
                Ok(analysed) => analysed,
                Err(err) => {
                    fail(
                        &mut counts,
                        ApiError::new(ErrorCode::ImageUnsupported, err.to_string()),
                    );
                    continue;
                }
            };
            // A sample shows one face: the detector's best.
            let Some(best) = analysed.faces.first() else {
                fail(
                    &mut counts,
                    ApiError::new(
                        ErrorCode::ImageUnsupported,
                        format!("no face found in the image of {id}"),
                    ),
                );
                continue;
            };
            let descriptor = best
                .descriptors
                .first()
                .map(|(extractor, values)| Descriptor {
                    version: estimate::version_of(*extractor),
                    values: values.clone(),
                });
            let written = match (face, event) {
                (Some(face), _) => match &descriptor {
                    Some(d) => faces::set_descriptor(svc, &face, d).await?,
                    None => false,
                },
                (_, Some(event)) => {
                    let extracted = events::Extracted {
                        descriptor,
                        age: best.age.map(|a| a.round().clamp(0.0, 200.0) as u32),
                        gender: best.male.map(|m| u8::from(m >= 0.5)),
                    };
                    events::set_extracted(svc, &event, &extracted).await?
                }
                _ => false,
            };
            if written {
                counts.extracted += 1;
            } else {
                counts.skipped += 1;
            }
        }
        Ok(counts)
    }
}
