//! What the exporter and the reporter share: the CSV columns of faces and events, the
//! subtask that writes the rows of a part of the objects (with their images), and the
//! merge that streams every part into one zip archive in S3.
//!
//! Memory stays bounded whatever the number of rows: a subtask holds the CSV of its part
//! (at most [`ROWS_PER_PART`] rows) and one S3 part of its image pack; the merge holds the
//! outputs' bookkeeping and one S3 part of the archive, never a whole CSV or archive.

use std::collections::HashMap;

use futures::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::linker::ObjectsType;
use super::{Merged, SubtaskContext, TaskContext};
use crate::error::{ApiError, ErrorCode};
use crate::objects::events::{self, EventRecord};
use crate::objects::faces::{self, FaceRecord};
use crate::objects::images::{self, StoredImage};
use crate::store::archive::{Compression, ZipUpload};
use crate::store::blobs;
use crate::store::multipart::MultipartUpload;

/// Most objects in one subtask.
pub const ROWS_PER_PART: usize = 5_000;
/// Objects read from the table per batch within a subtask (cancel is checked between).
const READ_BATCH: usize = 500;
/// Image objects read from S3 at once within a subtask.
const IMAGE_READS_IN_FLIGHT: usize = 8;
/// Face lists read at once within a subtask (one query per face).
const LIST_READS_IN_FLIGHT: usize = 16;

/// Columns of a face row, in their default order.
pub const FACE_COLUMNS: &[&str] = &[
    "face_id",
    "user_data",
    "create_time",
    "lists",
    "external_id",
    "avatar",
    "event_id",
];

/// Columns of an event row, in their default order.
pub const EVENT_COLUMNS: &[&str] = &[
    "event_id",
    "create_time",
    "end_time",
    "external_id",
    "handler_id",
    "source",
    "face_id",
    "gender",
    "age",
    "emotion",
    "user_data",
    "tags",
    "track_id",
    "stream_id",
    "city",
    "area",
    "district",
    "street",
    "house_number",
    "latitude",
    "longitude",
];

/// The columns an objects type offers.
pub fn columns_of(objects_type: ObjectsType) -> &'static [&'static str] {
    match objects_type {
        ObjectsType::Faces => FACE_COLUMNS,
        ObjectsType::Events => EVENT_COLUMNS,
    }
}

/// Name of the id column of an objects type.
pub fn id_column(objects_type: ObjectsType) -> &'static str {
    match objects_type {
        ObjectsType::Faces => "face_id",
        ObjectsType::Events => "event_id",
    }
}

/// Checks chosen columns (known, no repeats, not empty) or gives every column in the
/// default order; `excluded` columns may not be chosen and are left out of the default.
pub fn choose_columns(
    objects_type: ObjectsType,
    chosen: Option<Vec<String>>,
    excluded: &[&str],
) -> Result<Vec<String>, ApiError> {
    let offered: Vec<&str> = columns_of(objects_type)
        .iter()
        .copied()
        .filter(|c| !excluded.contains(c))
        .collect();
    let Some(chosen) = chosen else {
        return Ok(offered.iter().map(|c| c.to_string()).collect());
    };
    if chosen.is_empty() {
        return Err(ApiError::bad_json("content: 'columns' must not be empty"));
    }
    for (i, column) in chosen.iter().enumerate() {
        if !offered.contains(&column.as_str()) {
            return Err(ApiError::bad_json(format!(
                "content: unknown column '{column}'; columns of {objects_type:?} are: {}",
                offered.join(", ")
            )));
        }
        if chosen[..i].contains(column) {
            return Err(ApiError::bad_json(format!(
                "content: column '{column}' is chosen twice"
            )));
        }
    }
    Ok(chosen)
}

/// How the rows of a task look: its objects, columns and whether images go along.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Faces or events.
    pub objects_type: ObjectsType,
    /// Columns after the leading ones, in order.
    pub columns: Vec<String>,
    /// Whether each object's stored image goes into the archive under `images/`.
    pub images: bool,
    /// Reporter rows: the cluster number and the object id lead every row, and an
    /// object that no longer exists keeps a row with only those two filled.
    pub clustered: bool,
}

impl Layout {
    /// The CSV header.
    pub fn header(&self) -> Vec<String> {
        let mut header = Vec::with_capacity(self.columns.len() + 2);
        if self.clustered {
            header.push("cluster".to_string());
            header.push(id_column(self.objects_type).to_string());
        }
        header.extend(self.columns.iter().cloned());
        header
    }
}

/// Content of one subtask: the objects of this part, in row order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowsPart {
    /// Object ids, in row order.
    pub ids: Vec<Uuid>,
    /// Reporter parts: the cluster number of each id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clusters: Option<Vec<u64>>,
}

/// Splits rows into subtask contents of at most [`ROWS_PER_PART`].
pub fn parts(ids: &[Uuid], clusters: Option<&[u64]>) -> Vec<RowsPart> {
    ids.chunks(ROWS_PER_PART)
        .enumerate()
        .map(|(i, chunk)| RowsPart {
            ids: chunk.to_vec(),
            clusters: clusters
                .map(|c| c[i * ROWS_PER_PART..i * ROWS_PER_PART + chunk.len()].to_vec()),
        })
        .collect()
}

/// What a subtask left in S3.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartOutput {
    /// Its CSV rows, without header.
    pub csv_key: String,
    /// Rows written.
    pub rows: u64,
    /// Objects of the part no longer found.
    pub missing: u64,
    /// Its images one after another, when there are any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pack_key: Option<String>,
    /// Archive name and length of each image in the pack, in pack order.
    #[serde(default)]
    pub images: Vec<(String, u64)>,
}

/// One object as read for its row.
enum Object {
    Face(Box<FaceRecord>, Vec<Uuid>),
    Event(Box<EventRecord>),
}

impl Object {
    fn id(&self) -> Uuid {
        match self {
            Object::Face(face, _) => face.face_id,
            Object::Event(event) => event.event.event_id,
        }
    }

    fn image(&self) -> Option<&StoredImage> {
        match self {
            Object::Face(face, _) => face.image.as_ref(),
            Object::Event(event) => event.image.as_ref(),
        }
    }

    fn image_key(&self) -> String {
        match self {
            Object::Face(face, _) => images::face_avatar_key(face.account_id, face.face_id),
            Object::Event(event) => {
                images::event_sample_key(event.event.account_id, event.event.event_id)
            }
        }
    }

    /// The text of one column (empty when unset; lists and tags as JSON arrays).
    fn cell(&self, column: &str) -> String {
        match self {
            Object::Face(face, lists) => face_cell(face, lists, column),
            Object::Event(event) => event_cell(event, column),
        }
    }
}

fn text<T: ToString>(value: &Option<T>) -> String {
    value.as_ref().map(ToString::to_string).unwrap_or_default()
}

fn json_list<T: Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).unwrap_or_default()
}

fn face_cell(face: &FaceRecord, lists: &[Uuid], column: &str) -> String {
    match column {
        "face_id" => face.face_id.to_string(),
        "user_data" => face.user_data.clone(),
        "create_time" => face.create_time.clone(),
        "lists" => json_list(lists),
        "external_id" => text(&face.external_id),
        "avatar" => face.avatar.clone(),
        "event_id" => text(&face.event_id),
        _ => String::new(),
    }
}

fn event_cell(record: &EventRecord, column: &str) -> String {
    let event = &record.event;
    let location = event.location.as_ref();
    let place = |pick: fn(&events::Location) -> &Option<String>| {
        location.and_then(|l| pick(l).clone()).unwrap_or_default()
    };
    let geo = location.and_then(|l| l.geo_position);
    match column {
        "event_id" => event.event_id.to_string(),
        "create_time" => event.create_time.clone(),
        "end_time" => event.end_time.clone(),
        "external_id" => text(&event.external_id),
        "handler_id" => text(&event.handler_id),
        "source" => text(&event.source),
        "face_id" => text(&event.face_id),
        "gender" => text(&event.gender),
        "age" => text(&event.age),
        "emotion" => text(&event.emotion),
        "user_data" => event.user_data.clone(),
        "tags" => json_list(&event.tags),
        "track_id" => text(&event.track_id),
        "stream_id" => text(&event.stream_id),
        "city" => place(|l| &l.city),
        "area" => place(|l| &l.area),
        "district" => place(|l| &l.district),
        "street" => place(|l| &l.street),
        "house_number" => place(|l| &l.house_number),
        "latitude" => text(&geo.map(|g| g.latitude)),
        "longitude" => text(&geo.map(|g| g.longitude)),
        _ => String::new(),
    }
}

/// Reads the objects of `ids` still stored in the account (faces with their lists when
/// the `lists` column is chosen), by id.
async fn read_objects(
    subtask: &SubtaskContext<'_>,
    layout: &Layout,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Object>, ApiError> {
    let svc = subtask.svc;
    let account_id = subtask.task.account_id;
    let with_lists = layout.columns.iter().any(|c| c == "lists");
    let mut found = HashMap::with_capacity(ids.len());
    for batch in ids.chunks(READ_BATCH) {
        subtask.check_cancelled()?;
        match layout.objects_type {
            ObjectsType::Faces => {
                let records = faces::records(svc, account_id, batch).await?;
                let objects: Vec<Object> = stream::iter(records)
                    .map(|face| async move {
                        let lists = if with_lists {
                            faces::lists_of(svc, face.face_id).await?
                        } else {
                            Vec::new()
                        };
                        Ok::<_, ApiError>(Object::Face(Box::new(face), lists))
                    })
                    .buffer_unordered(LIST_READS_IN_FLIGHT)
                    .try_collect()
                    .await?;
                found.extend(objects.into_iter().map(|o| (o.id(), o)));
            }
            ObjectsType::Events => {
                for record in events::records(svc, account_id, batch).await? {
                    let object = Object::Event(Box::new(record));
                    found.insert(object.id(), object);
                }
            }
        }
    }
    Ok(found)
}

/// Runs one subtask: writes the CSV rows of its objects in order (objects gone since
/// planning are left out, or in a report keep a row with only the cluster number and the
/// id filled) and, when asked,
/// packs their images one after another into a single S3 object. Both are written at
/// keys derived from the subtask id, so a retry overwrites them.
pub async fn write_part(
    subtask: &SubtaskContext<'_>,
    layout: &Layout,
    part: &RowsPart,
) -> Result<PartOutput, ApiError> {
    let svc = subtask.svc;
    let task_id = subtask.task.task_id;
    let subtask_id = subtask.subtask.subtask.subtask_id;
    let objects = read_objects(subtask, layout, &part.ids).await?;

    let mut csv = csv::Writer::from_writer(Vec::new());
    let mut rows = 0u64;
    let mut missing = 0u64;
    for (i, id) in part.ids.iter().enumerate() {
        let object = objects.get(id);
        let mut record: Vec<String> = Vec::with_capacity(layout.columns.len() + 2);
        if layout.clustered {
            let cluster = part.clusters.as_ref().and_then(|c| c.get(i)).copied();
            record.push(text(&cluster));
            record.push(id.to_string());
        }
        match object {
            Some(object) => record.extend(layout.columns.iter().map(|c| object.cell(c))),
            None if layout.clustered => {
                missing += 1;
                record.resize(layout.columns.len() + 2, String::new());
            }
            None => {
                missing += 1;
                continue;
            }
        }
        csv.write_record(&record)
            .map_err(|e| ApiError::internal("csv row", e))?;
        rows += 1;
    }
    let bytes = csv
        .into_inner()
        .map_err(|e| ApiError::internal("csv part", e.to_string()))?;
    let csv_key = blobs::task_scratch_key(task_id, &format!("{subtask_id:010}.csv"));
    crate::fault::point("before_part_put").await;
    blobs::put(svc, &csv_key, bytes, "text/csv").await?;

    let mut output = PartOutput {
        csv_key,
        rows,
        missing,
        pack_key: None,
        images: Vec::new(),
    };
    if layout.images {
        let with_image: Vec<&Object> = part
            .ids
            .iter()
            .filter_map(|id| objects.get(id))
            .filter(|o| o.image().is_some())
            .collect();
        if !with_image.is_empty() {
            let pack_key = blobs::task_scratch_key(task_id, &format!("{subtask_id:010}.images"));
            output.images = pack_images(subtask, &pack_key, &with_image).await?;
            output.pack_key = Some(pack_key);
        }
    }
    Ok(output)
}

/// Writes the images of `objects` one after another into `pack_key` and returns each
/// one's archive name (`images/<id>.<ext>`) and length. An image removed since its object
/// was read is left out.
async fn pack_images(
    subtask: &SubtaskContext<'_>,
    pack_key: &str,
    objects: &[&Object],
) -> Result<Vec<(String, u64)>, ApiError> {
    let svc = subtask.svc;
    let mut pack = MultipartUpload::begin(svc, pack_key, "application/octet-stream").await?;
    let mut entries = Vec::with_capacity(objects.len());
    let wanted: Vec<(String, String)> = objects
        .iter()
        .map(|object| {
            let content_type = object.image().map(|i| i.content_type.as_str());
            let extension = images::extension(content_type.unwrap_or_default());
            let name = format!("images/{}.{extension}", object.id());
            (name, object.image_key())
        })
        .collect();
    let mut reads = stream::iter(wanted)
        .map(|(name, key)| async move { Ok::<_, ApiError>((name, blobs::get(svc, &key).await?)) })
        .buffered(IMAGE_READS_IN_FLIGHT);
    let written: Result<(), ApiError> = async {
        while let Some(read) = reads.next().await {
            subtask.check_cancelled()?;
            let (name, bytes) = read?;
            if let Some(bytes) = bytes {
                pack.write(&bytes).await?;
                entries.push((name, bytes.len() as u64));
            }
        }
        Ok(())
    }
    .await;
    match written {
        Ok(()) => {
            pack.finish().await?;
            Ok(entries)
        }
        Err(err) => {
            pack.abort().await;
            Err(err)
        }
    }
}

/// Builds the task result: one zip with `csv_name` (the header, then every part's rows in
/// subtask order) and then every part's images, streamed from the parts to the result
/// object. A part that failed would leave rows out, so the merge fails instead and the
/// task ends failed with the parts' errors on record.
pub async fn merge_archive(
    task: &TaskContext<'_>,
    layout: &Layout,
    csv_name: &str,
) -> Result<Merged, ApiError> {
    let outcomes = task.outcomes::<PartOutput, RowsPart>(0).await?;
    if !outcomes.failed.is_empty() {
        return Err(ApiError::new(
            ErrorCode::SubtaskAttemptsExhausted,
            format!(
                "{} of {} parts of task '{}' failed; the archive would miss their rows",
                outcomes.failed.len(),
                outcomes.failed.len() + outcomes.outputs.len(),
                task.task.task_id
            ),
        ));
    }
    let mut header = csv::Writer::from_writer(Vec::new());
    header
        .write_record(layout.header())
        .map_err(|e| ApiError::internal("csv header", e))?;
    let header = header
        .into_inner()
        .map_err(|e| ApiError::internal("csv header", e.to_string()))?;

    let key = blobs::result_key(task.task.task_id);
    let mut zip = ZipUpload::begin(task.svc, &key).await?;
    let written: Result<(), ApiError> = async {
        zip.start_file(csv_name, Compression::Deflated).await?;
        zip.write(&header).await?;
        for output in &outcomes.outputs {
            zip.copy_object(&output.csv_key).await?;
        }
        for output in &outcomes.outputs {
            if let Some(pack_key) = &output.pack_key {
                zip.copy_entries(pack_key, &output.images).await?;
            }
        }
        Ok(())
    }
    .await;
    match written {
        Ok(()) => {
            zip.finish().await?;
            Ok(Merged::Stored)
        }
        Err(err) => {
            zip.abort().await;
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chosen_columns_are_checked_and_defaults_are_every_column() {
        let all = choose_columns(ObjectsType::Faces, None, &[]).unwrap();
        assert_eq!(all, FACE_COLUMNS);
        let some = choose_columns(
            ObjectsType::Events,
            Some(vec!["age".into(), "event_id".into()]),
            &[],
        )
        .unwrap();
        assert_eq!(some, ["age", "event_id"]);
        for bad in [
            vec![],
            vec!["nope".to_string()],
            vec!["age".to_string(), "age".to_string()],
            vec!["lists".to_string()],
        ] {
            let err = choose_columns(ObjectsType::Events, Some(bad), &[]).unwrap_err();
            assert_eq!(err.code, ErrorCode::BadJson);
        }
        let reported = choose_columns(ObjectsType::Faces, None, &["face_id"]).unwrap();
        assert!(!reported.contains(&"face_id".to_string()));
        assert!(
            choose_columns(
                ObjectsType::Faces,
                Some(vec!["face_id".into()]),
                &["face_id"]
            )
            .is_err()
        );
    }

    #[test]
    fn parts_keep_row_order_and_cluster_numbers() {
        let ids: Vec<Uuid> = (0..12_001).map(|_| Uuid::new_v4()).collect();
        let clusters: Vec<u64> = (0..12_001u64).map(|i| i / 7).collect();
        let parts = parts(&ids, Some(&clusters));
        assert_eq!(
            parts.iter().map(|p| p.ids.len()).collect::<Vec<_>>(),
            [5_000, 5_000, 2_001]
        );
        let rejoined: Vec<Uuid> = parts.iter().flat_map(|p| p.ids.clone()).collect();
        assert_eq!(rejoined, ids);
        let numbers: Vec<u64> = parts
            .iter()
            .flat_map(|p| p.clusters.clone().unwrap())
            .collect();
        assert_eq!(numbers, clusters);
    }

    #[test]
    fn a_report_header_leads_with_cluster_and_id() {
        let layout = Layout {
            objects_type: ObjectsType::Events,
            columns: vec!["age".into(), "source".into()],
            images: false,
            clustered: true,
        };
        assert_eq!(layout.header(), ["cluster", "event_id", "age", "source"]);
        let plain = Layout {
            clustered: false,
            ..layout
        };
        assert_eq!(plain.header(), ["age", "source"]);
    }
}
