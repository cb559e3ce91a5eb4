//! Estimator (task type 9): detects the faces of a set of images and estimates what the
//! task asks for — landmarks always; descriptors of an extractable version, age and
//! gender, emotions, mask, head pose, quality on request — and can create a face or an
//! event from each face found, its aligned sample kept as the object's image.
//!
//! Sources: a zip archive uploaded into the account's upload area (read entry by entry
//! with range requests, never whole), keys of images in that area, or the stored images
//! of faces or events matching filters (frozen at creation like every selection).
//! The planner lists the images and cuts them into subtasks of `images_per_subtask`; a
//! worker reads, decodes and analyses one image at a time (memory: one image, its
//! decoded pixels and the networks), and its output lists each image's faces. An image
//! that cannot be read is a task error naming it (`additional_info`), not a failed task.
//! The merge writes the per-image results in input order.
//!
//! Objects are created under ids derived from the task, the image and the face, so a
//! retried subtask finds what it made and creates nothing twice.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::limits;
use super::linker::ObjectsType;
use super::{
    Merged, ResultStream, SubtaskContext, TaskContext, TaskKind, event_filter, face_filter,
    parse_content, to_json,
};
use crate::Services;
use crate::descriptor::{self, FACERES_VERSION};
use crate::error::{ApiError, ErrorCode};
use crate::objects::{lists, uploads};
use crate::store::blobs;
use crate::store::unzip::{self, Entry};
use crate::tasks::model::{SubtaskStatus, TaskType};
use crate::tasks::store::{self as task_store, ObjectError};
use crate::timestamps;

/// Images per subtask unless the task says otherwise.
pub const IMAGES_PER_SUBTASK: u32 = 50;
/// Most images per subtask a task may ask for.
pub const IMAGES_PER_SUBTASK_MAX: u32 = 500;
/// Most images one task estimates.
pub const IMAGES_MAX: usize = 100_000;
/// Most keys a `keys` source lists.
pub const KEYS_MAX: usize = 10_000;
/// Largest image read (its file; the decoder also caps pixels).
pub const IMAGE_BYTES_MAX: u64 = 16 << 20;
/// The detector's score threshold unless the task says otherwise.
pub const MIN_SCORE: f32 = 0.5;
/// Namespace of the ids of the objects a task creates.
const CREATED_NAMESPACE: Uuid = Uuid::from_u128(0x5e3a_41f0_9c1d_4d7b_8a66_0f7e_2c44_9b01);

/// The estimator kind.
pub struct Estimator;

/// Where the images come from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "source_type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    /// A zip archive in the account's upload area; its files whose names start with
    /// `prefix` and end with `postfix` (directories and `__MACOSX/` skipped).
    Zip {
        /// Its key (`uploads/<account_id>/...`, as `POST /1/uploads` gave it).
        key: String,
        /// Only entries whose path starts with this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
        /// Only entries whose path ends with this (e.g. `.jpg`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        postfix: Option<String>,
    },
    /// Images in the account's upload area.
    Keys {
        /// Their keys, 1 to 10,000.
        keys: Vec<String>,
    },
    /// The avatars of the faces matching filters (those of `GET /1/faces`).
    Faces {
        /// Filters of the faces.
        #[serde(default)]
        filters: Map<String, Value>,
    },
    /// The samples of the events matching filters (those of `GET /1/events`).
    Events {
        /// Filters of the events.
        #[serde(default)]
        filters: Map<String, Value>,
    },
}

/// What to estimate for each face (its box, score and five landmarks always come).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Estimations {
    /// A descriptor of `descriptor_version`.
    #[serde(default)]
    pub face_descriptor: bool,
    /// 1001 (FaceRes, the default) or 1002 (FaceNet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptor_version: Option<u32>,
    /// Age and gender.
    #[serde(default)]
    pub basic_attributes: bool,
    /// The seven emotions.
    #[serde(default)]
    pub emotions: bool,
    /// Mask or not.
    #[serde(default)]
    pub mask: bool,
    /// Yaw, pitch, roll.
    #[serde(default)]
    pub head_pose: bool,
    /// Quality score.
    #[serde(default)]
    pub quality: bool,
}

/// Objects to create from the faces found.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Create {
    /// A face or an event per face found.
    pub objects_type: ObjectsType,
    /// Lists to put created faces in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lists: Vec<Uuid>,
    /// `user_data` of the created objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    /// `source` of created events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// Content of an estimator task.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EstimatorContent {
    /// The images.
    pub source: Source,
    /// What to estimate.
    #[serde(default)]
    pub estimations: Estimations,
    /// Faces scoring below this are not reported (0 to 1; default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_score: Option<f32>,
    /// Objects to create from the faces found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<Create>,
    /// Images per subtask (1 to 500; default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images_per_subtask: Option<u32>,
}

/// One image of a task.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Item {
    /// An entry of the zip source.
    Entry(Entry),
    /// An object in the upload area.
    Key(String),
    /// A face's avatar.
    FaceId(Uuid),
    /// An event's sample.
    EventId(Uuid),
}

impl Item {
    /// How results and errors name the image.
    pub fn name(&self) -> String {
        match self {
            Item::Entry(entry) => entry.name.clone(),
            Item::Key(key) => key.clone(),
            Item::FaceId(id) => format!("faces/{id}"),
            Item::EventId(id) => format!("events/{id}"),
        }
    }
}

/// Content of one estimator subtask.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EstimatorPart {
    /// Position of the first image in the task's input.
    pub first: u64,
    /// The images.
    pub items: Vec<Item>,
}

/// A box in image pixels.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BoxOut {
    /// Left.
    pub x: f32,
    /// Top.
    pub y: f32,
    /// Width.
    pub width: f32,
    /// Height.
    pub height: f32,
}

/// Emotions of a face.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EmotionsOut {
    /// The most probable one.
    pub predominant_emotion: String,
    /// Probability of each.
    pub estimations: Map<String, Value>,
}

/// Mask estimation of a face.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MaskOut {
    /// `mask` or `no_mask`.
    pub predominant_mask: String,
    /// Probability of a mask.
    pub mask: f32,
}

/// A descriptor in a result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DescriptorOut {
    /// Its version.
    pub descriptor_version: u32,
    /// Base64 of its little-endian f32 values.
    pub descriptor: String,
}

/// Head pose of a face, degrees.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PoseOut {
    /// Left-right turn.
    pub yaw: f32,
    /// Up-down nod.
    pub pitch: f32,
    /// In-plane tilt.
    pub roll: f32,
}

/// One face found in an image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FaceOut {
    /// Its box.
    pub rect: BoxOut,
    /// Detector score.
    pub score: f32,
    /// Left eye, right eye, nose tip, left and right mouth corners: `[x, y]` each.
    pub landmarks5: Vec<[f32; 2]>,
    /// Age in years.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age: Option<f32>,
    /// 0 female, 1 male.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender: Option<u8>,
    /// Probability of male.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gender_score: Option<f32>,
    /// Emotions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emotions: Option<EmotionsOut>,
    /// Mask.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<MaskOut>,
    /// Head pose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_pose: Option<PoseOut>,
    /// Quality in `[0, 1]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<f32>,
    /// Descriptor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptor: Option<DescriptorOut>,
    /// The face created from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face_id: Option<Uuid>,
    /// The event created from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Uuid>,
}

/// The result of one image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageOut {
    /// The image (zip path, key, or `faces/<id>` / `events/<id>`).
    pub filename: String,
    /// Its position in the task's input.
    pub index: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The faces found, best first.
    pub faces: Vec<FaceOut>,
}

/// An image that could not be estimated.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ImageFailure {
    /// The image.
    pub filename: String,
    /// Its position in the task's input.
    pub index: u64,
    /// LUNA error code.
    pub error_code: u32,
    /// Why.
    pub detail: String,
}

/// Output of one subtask.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PartOutput {
    /// Images estimated.
    pub images: Vec<ImageOut>,
    /// Images that could not be.
    pub failures: Vec<ImageFailure>,
}

/// The counts of the task result (which also holds `images`: per image, in input order).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EstimatorCounts {
    /// Images in the input.
    pub images_total: u64,
    /// Images estimated.
    pub images_done: u64,
    /// Images that could not be read (each a task error naming it).
    pub images_failed: u64,
    /// Faces found in all.
    pub faces_found: u64,
    /// Faces or events created.
    pub objects_created: u64,
}

impl EstimatorContent {
    fn per_subtask(&self) -> usize {
        self.images_per_subtask.unwrap_or(IMAGES_PER_SUBTASK) as usize
    }

    /// The descriptor version asked for, if any.
    pub fn descriptor_version(&self) -> Option<u32> {
        self.estimations.face_descriptor.then(|| {
            self.estimations
                .descriptor_version
                .unwrap_or(FACERES_VERSION)
        })
    }
}

#[async_trait]
impl TaskKind for Estimator {
    fn name(&self) -> &'static str {
        "estimator"
    }

    fn task_type(&self) -> TaskType {
        TaskType::Estimator
    }

    async fn validate(
        &self,
        svc: &Services,
        account_id: Uuid,
        content: Value,
        now: DateTime<Utc>,
    ) -> Result<Value, ApiError> {
        let mut content: EstimatorContent = parse_content(content)?;
        match &mut content.source {
            Source::Zip { key, .. } => {
                uploads::check_key(account_id, "source.key", key)?;
                if blobs::head(svc, key).await?.is_none() {
                    return Err(ApiError::bad_json(format!(
                        "source.key: nothing is uploaded at '{key}'"
                    )));
                }
            }
            Source::Keys { keys } => {
                if keys.is_empty() || keys.len() > KEYS_MAX {
                    return Err(ApiError::bad_json(format!(
                        "source.keys must hold 1 to {KEYS_MAX} keys"
                    )));
                }
                for key in keys.iter() {
                    uploads::check_key(account_id, "source.keys", key)?;
                }
            }
            Source::Faces { filters } => drop(face_filter(filters, account_id, now)?),
            Source::Events { filters } => drop(event_filter(filters, account_id, now)?),
        }
        if let Some(n) = content.images_per_subtask
            && !(1..=IMAGES_PER_SUBTASK_MAX).contains(&n)
        {
            return Err(ApiError::bad_json(format!(
                "images_per_subtask must be 1 to {IMAGES_PER_SUBTASK_MAX}"
            )));
        }
        if let Some(score) = content.min_score
            && !(0.0..=1.0).contains(&score)
        {
            return Err(ApiError::bad_json("min_score must be between 0 and 1"));
        }
        if content.estimations.descriptor_version.is_some() && !content.estimations.face_descriptor
        {
            return Err(ApiError::bad_json(
                "estimations.descriptor_version is for face_descriptor: true",
            ));
        }
        if let Some(create) = &content.create {
            // A created object carries what matching needs.
            content.estimations.face_descriptor = true;
            if create.objects_type == ObjectsType::Events {
                content.estimations.basic_attributes = true;
                content.estimations.emotions = true;
                if !create.lists.is_empty() {
                    return Err(ApiError::bad_json("create.lists is for objects_type faces"));
                }
            } else if create.source.is_some() {
                return Err(ApiError::bad_json(
                    "create.source is for objects_type events",
                ));
            }
            crate::objects::check_text(
                "create.user_data",
                create.user_data.as_deref(),
                crate::objects::USER_DATA_MAX,
            )?;
            lists::require_all(svc, account_id, &create.lists).await?;
        }
        if let Some(version) = content.descriptor_version() {
            descriptor::check_extractable(version, &svc.config)?;
            content.estimations.descriptor_version = Some(version);
        }
        to_json(&content)
    }

    async fn plan(&self, task: &TaskContext<'_>, stage: u32) -> Result<Vec<Value>, ApiError> {
        if stage > 0 {
            return Ok(Vec::new());
        }
        let mut content: EstimatorContent = task.content()?;
        let items = list_items(task, &mut content).await?;
        let per = content.per_subtask();
        limits::check_subtasks(
            task.task.count_task_parts_all,
            limits::chunks(items.len() as u64, per),
        )?;
        items
            .chunks(per)
            .enumerate()
            .map(|(i, chunk)| {
                to_json(&EstimatorPart {
                    first: (i * per) as u64,
                    items: chunk.to_vec(),
                })
            })
            .collect()
    }

    async fn execute(&self, subtask: &SubtaskContext<'_>) -> Result<Value, ApiError> {
        #[cfg(feature = "vision")]
        {
            let content: EstimatorContent = subtask.task_content()?;
            let part: EstimatorPart = subtask.content()?;
            to_json(&run::part(subtask, &content, &part).await?)
        }
        #[cfg(not(feature = "vision"))]
        {
            let _ = subtask;
            Err(super::without_vision("estimator"))
        }
    }

    async fn merge(&self, task: &TaskContext<'_>) -> Result<Merged, ApiError> {
        // The images' results go to S3 part by part (a part's output at a time in
        // memory); the counts follow them.
        let subtasks = task.subtasks(0).await?;
        let mut counts = EstimatorCounts::default();
        let mut errors = Vec::new();
        let mut stream = ResultStream::begin(task.svc, task.task).await?;
        stream.write(b"{\"images\":[").await?;
        for record in &subtasks {
            let part: EstimatorPart = task_store::subtask_content(task.svc, record).await?;
            counts.images_total += part.items.len() as u64;
            if record.subtask.status != SubtaskStatus::Done {
                continue;
            }
            let output: PartOutput = task_store::subtask_output(task.svc, record).await?;
            for failure in output.failures {
                counts.images_failed += 1;
                errors.push(ObjectError {
                    subtask_id: Some(record.subtask.subtask_id),
                    error: image_error(failure.error_code, &failure.detail),
                    additional_info: failure.filename,
                });
            }
            for image in &output.images {
                if counts.images_done > 0 {
                    stream.write(b",").await?;
                }
                counts.images_done += 1;
                counts.faces_found += image.faces.len() as u64;
                counts.objects_created += image
                    .faces
                    .iter()
                    .filter(|f| f.face_id.is_some() || f.event_id.is_some())
                    .count() as u64;
                stream.write_json(image).await?;
            }
        }
        stream.write(b"],").await?;
        let counts = serde_json::to_vec(&counts).map_err(|e| ApiError::internal("result", e))?;
        // The counts' object without its opening brace continues the result's object.
        stream.write(&counts[1..]).await?;
        task_store::record_object_errors(task.svc, task.task, errors).await?;
        stream.finish(task.svc).await
    }
}

/// The error of an image that could not be estimated.
fn image_error(code: u32, detail: &str) -> ApiError {
    let code = ErrorCode::from_code(code).unwrap_or(ErrorCode::ImageUnsupported);
    ApiError::new(code, detail.to_string())
}

/// Every image of the task's source, in input order.
async fn list_items(
    task: &TaskContext<'_>,
    content: &mut EstimatorContent,
) -> Result<Vec<Item>, ApiError> {
    let account_id = task.task.account_id;
    let created = timestamps::parse(&task.task.create_time).unwrap_or_else(timestamps::now);
    let mut items = Vec::new();
    match &mut content.source {
        Source::Zip {
            key,
            prefix,
            postfix,
        } => {
            let entries = unzip::entries(task.svc, key).await?.ok_or_else(|| {
                ApiError::bad_json(format!("source.key: nothing is uploaded at '{key}'"))
            })?;
            let entries =
                entries.map_err(|e| ApiError::bad_json(format!("source.key '{key}': {e}")))?;
            for entry in entries {
                let wanted = !entry.is_directory()
                    && !entry.name.starts_with("__MACOSX/")
                    && prefix
                        .as_ref()
                        .is_none_or(|p| entry.name.starts_with(p.as_str()))
                    && postfix
                        .as_ref()
                        .is_none_or(|p| entry.name.ends_with(p.as_str()));
                if wanted {
                    items.push(Item::Entry(entry));
                }
                if items.len() > IMAGES_MAX {
                    break;
                }
            }
        }
        Source::Keys { keys } => items.extend(keys.iter().cloned().map(Item::Key)),
        Source::Faces { filters } => {
            let ids = super::selected_ids(
                task.svc,
                ObjectsType::Faces,
                filters,
                account_id,
                created,
                |face| face.image.is_some(),
                |_| false,
            )
            .await?;
            items.extend(ids.into_iter().map(Item::FaceId));
        }
        Source::Events { filters } => {
            let ids = super::selected_ids(
                task.svc,
                ObjectsType::Events,
                filters,
                account_id,
                created,
                |_| false,
                |event| event.image.is_some(),
            )
            .await?;
            items.extend(ids.into_iter().map(Item::EventId));
        }
    }
    if items.len() > IMAGES_MAX {
        return Err(ApiError::bad_json(format!(
            "the source holds more than {IMAGES_MAX} images"
        )));
    }
    Ok(items)
}

/// The id of the object a task creates from face `face` of image `index`.
pub fn created_id(task_id: u64, index: u64, face: usize) -> Uuid {
    Uuid::new_v5(
        &CREATED_NAMESPACE,
        format!("{task_id}/{index}/{face}").as_bytes(),
    )
}

#[cfg(feature = "vision")]
mod run {
    //! The worker's side: read, analyse, create.

    use super::*;
    use crate::objects::events::{NewEvent, NewEvents};
    use crate::objects::faces::{self, NewFace};
    use crate::objects::{events, images};
    use crate::vision::estimate::{self, Analysed};
    use crate::vision::faces::{EMOTIONS, Face, Wanted};

    /// Estimates the images of one part.
    pub async fn part(
        subtask: &SubtaskContext<'_>,
        content: &EstimatorContent,
        part: &EstimatorPart,
    ) -> Result<PartOutput, ApiError> {
        let account_id = subtask.task.account_id;
        let wanted = wanted(content)?;
        let mut output = PartOutput::default();
        for (offset, item) in part.items.iter().enumerate() {
            subtask.check_cancelled()?;
            let index = part.first + offset as u64;
            let failure = |code: u32, detail: String| ImageFailure {
                filename: item.name(),
                index,
                error_code: code,
                detail,
            };
            let bytes = match read(subtask.svc, account_id, content, item).await? {
                Ok(bytes) => bytes,
                Err((code, detail)) => {
                    output.failures.push(failure(code, detail));
                    continue;
                }
            };
            let samples = content.create.is_some();
            let analysed = match estimate::analyse(
                bytes,
                content.min_score.unwrap_or(MIN_SCORE),
                wanted.clone(),
                samples,
            )
            .await?
            {
                Ok(analysed) => analysed,
                Err(err) => {
                    output.failures.push(failure(40005, err.to_string()));
                    continue;
                }
            };
            let mut image = ImageOut {
                filename: item.name(),
                index,
                width: analysed.width,
                height: analysed.height,
                faces: analysed.faces.iter().map(face_out).collect(),
            };
            if let Some(create) = &content.create {
                create_objects(subtask, create, index, &analysed, &mut image).await?;
            }
            output.images.push(image);
        }
        Ok(output)
    }

    fn wanted(content: &EstimatorContent) -> Result<Wanted, ApiError> {
        let e = &content.estimations;
        let descriptors = match content.descriptor_version() {
            Some(version) => vec![estimate::extractor(version).ok_or_else(|| {
                ApiError::internal("estimator", format!("version {version} has no network"))
            })?],
            None => Vec::new(),
        };
        Ok(Wanted {
            descriptors,
            basic_attributes: e.basic_attributes,
            emotions: e.emotions,
            mask: e.mask,
            head_pose: e.head_pose,
            quality: e.quality,
        })
    }

    /// The image's bytes, or the error code and reason it cannot be read.
    async fn read(
        svc: &Services,
        account_id: Uuid,
        content: &EstimatorContent,
        item: &Item,
    ) -> Result<Result<Vec<u8>, (u32, String)>, ApiError> {
        let too_large = |size: u64| {
            Err((
                40004,
                format!("image of {size} bytes is over the limit of {IMAGE_BYTES_MAX}"),
            ))
        };
        match item {
            Item::Entry(entry) => {
                let Source::Zip { key, .. } = &content.source else {
                    return Err(ApiError::internal(
                        "estimator",
                        "zip entry of another source",
                    ));
                };
                Ok(
                    match unzip::read_entry(svc, key, entry, IMAGE_BYTES_MAX).await? {
                        Ok(Some(bytes)) => Ok(bytes),
                        Ok(None) => Err((40006, format!("archive '{key}' is gone"))),
                        Err(unzip::UnzipError::TooLarge(_)) => too_large(entry.size),
                        Err(err) => Err((40005, err.to_string())),
                    },
                )
            }
            Item::Key(key) => match blobs::head(svc, key).await? {
                None => Ok(Err((40006, format!("nothing is uploaded at '{key}'")))),
                Some(head) if head.size > IMAGE_BYTES_MAX => Ok(too_large(head.size)),
                Some(_) => Ok(blobs::get(svc, key)
                    .await?
                    .ok_or((40006, format!("nothing is uploaded at '{key}'")))),
            },
            Item::FaceId(id) => {
                gone_is_failure(images::get_face_avatar(svc, account_id, *id).await)
            }
            Item::EventId(id) => {
                gone_is_failure(images::get_event_sample(svc, account_id, *id).await)
            }
        }
    }

    /// A stored image read back; the object or its image gone since planning is the
    /// image's failure, anything else the service's.
    fn gone_is_failure(
        read: Result<images::Image, ApiError>,
    ) -> Result<Result<Vec<u8>, (u32, String)>, ApiError> {
        match read {
            Ok(image) => Ok(Ok(image.bytes)),
            Err(err) if err.status() == 404 => Ok(Err((err.code.code(), err.detail))),
            Err(err) => Err(err),
        }
    }

    fn face_out(face: &Face) -> FaceOut {
        let r = &face.detection.rect;
        FaceOut {
            rect: BoxOut {
                x: r.x,
                y: r.y,
                width: r.width,
                height: r.height,
            },
            score: face.detection.score,
            landmarks5: face.five.iter().map(|p| [p.x, p.y]).collect(),
            age: face.age,
            gender: face.male.map(|m| u8::from(m >= 0.5)),
            gender_score: face.male,
            emotions: face.emotions.map(|p| {
                let best = (0..7).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap_or(6);
                EmotionsOut {
                    predominant_emotion: EMOTIONS[best].to_string(),
                    estimations: EMOTIONS
                        .iter()
                        .zip(p)
                        .map(|(name, v)| (name.to_string(), Value::from(f64::from(v))))
                        .collect(),
                }
            }),
            mask: face.mask.map(|m| MaskOut {
                predominant_mask: if m >= 0.5 { "mask" } else { "no_mask" }.to_string(),
                mask: m,
            }),
            head_pose: face.head_pose.map(|p| PoseOut {
                yaw: p.yaw,
                pitch: p.pitch,
                roll: p.roll,
            }),
            quality: face.quality,
            descriptor: face
                .descriptors
                .first()
                .map(|(extractor, values)| DescriptorOut {
                    descriptor_version: estimate::version_of(*extractor),
                    descriptor: descriptor::to_base64(values),
                }),
            face_id: None,
            event_id: None,
        }
    }

    /// Creates a face or an event per face found, under ids derived from the task and
    /// the image, with the face's sample as its image.
    async fn create_objects(
        subtask: &SubtaskContext<'_>,
        create: &Create,
        index: u64,
        analysed: &Analysed,
        image: &mut ImageOut,
    ) -> Result<(), ApiError> {
        let svc = subtask.svc;
        let account_id = subtask.task.account_id;
        let task_id = subtask.task.task_id;
        for (i, out) in image.faces.iter_mut().enumerate() {
            let descriptor = out.descriptor.as_ref().ok_or_else(|| {
                ApiError::internal("estimator", "objects are created with a descriptor")
            })?;
            let id = created_id(task_id, index, i);
            let sample = analysed.samples[i].clone();
            match create.objects_type {
                ObjectsType::Faces => {
                    faces::create_with_id(
                        svc,
                        id,
                        NewFace {
                            account_id,
                            descriptor: Some(Value::String(descriptor.descriptor.clone())),
                            descriptor_version: Some(descriptor.descriptor_version),
                            external_id: None,
                            user_data: create.user_data.clone(),
                            event_id: None,
                            avatar: None,
                            lists: Some(create.lists.clone()),
                        },
                    )
                    .await?;
                    images::put_face_avatar(svc, account_id, id, sample, Some("image/jpeg"))
                        .await?;
                    out.face_id = Some(id);
                }
                ObjectsType::Events => {
                    let new = NewEvent {
                        source: create.source.clone(),
                        user_data: create.user_data.clone(),
                        gender: out.gender,
                        age: out.age.map(|a| a.round().clamp(0.0, 200.0) as u32),
                        emotion: out.emotions.as_ref().map(|e| e.predominant_emotion.clone()),
                        descriptor: Some(Value::String(descriptor.descriptor.clone())),
                        descriptor_version: Some(descriptor.descriptor_version),
                        ..NewEvent::default()
                    };
                    let key = format!("estimator-{task_id}-{id}");
                    let made = events::create_keyed(
                        svc,
                        NewEvents {
                            account_id,
                            events: vec![new],
                        },
                        Some(&key),
                    )
                    .await?;
                    let event_id = made.events[0].event_id;
                    images::put_event_sample(svc, account_id, event_id, sample, Some("image/jpeg"))
                        .await?;
                    out.event_id = Some(event_id);
                }
            }
        }
        Ok(())
    }
}
