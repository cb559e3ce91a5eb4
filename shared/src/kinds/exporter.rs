//! Exporter (task type 8): one CSV row per face or event matching filters, in a zip
//! archive with their stored images on request.
//!
//! The planner lists the matching ids (newest first, like `GET /1/faces` and
//! `GET /1/events`) and splits them into parts; each subtask writes the rows of its part
//! to S3; the merge streams the parts into the archive (see [`super::rows`]). The set is
//! frozen at creation: `create_time__lt` defaults to the creation time.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::limits;
use super::linker::ObjectsType;
use super::rows::{self, Layout, RowsPart};
use super::{
    Merged, SubtaskContext, TaskContext, TaskKind, event_filter, face_filter, parse_content,
    to_json,
};
use crate::Services;
use crate::error::ApiError;
use crate::tasks::model::TaskType;
use crate::timestamps;

/// The exporter kind.
pub struct Exporter;

/// Content of an exporter task.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExporterContent {
    /// Faces or events.
    pub objects_type: ObjectsType,
    /// Filters of the objects (those of `GET /1/faces` or `GET /1/events`, without paging).
    #[serde(default)]
    pub filters: Map<String, Value>,
    /// Columns of the CSV, in order; every column of the objects type when absent.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Put each object's stored image (face avatar, event sample) under `images/`.
    #[serde(default)]
    pub images: bool,
}

impl ExporterContent {
    fn layout(&self) -> Result<Layout, ApiError> {
        Ok(Layout {
            objects_type: self.objects_type,
            columns: rows::choose_columns(self.objects_type, self.columns.clone(), &[])?,
            images: self.images,
            clustered: false,
        })
    }

    /// Name of the CSV file in the archive.
    fn csv_name(&self) -> &'static str {
        match self.objects_type {
            ObjectsType::Faces => "faces.csv",
            ObjectsType::Events => "events.csv",
        }
    }
}

#[async_trait]
impl TaskKind for Exporter {
    fn name(&self) -> &'static str {
        "exporter"
    }

    fn task_type(&self) -> TaskType {
        TaskType::Exporter
    }

    async fn validate(
        &self,
        _svc: &Services,
        account_id: Uuid,
        content: Value,
        now: DateTime<Utc>,
    ) -> Result<Value, ApiError> {
        let mut content: ExporterContent = parse_content(content)?;
        match content.objects_type {
            ObjectsType::Faces => drop(face_filter(&mut content.filters, account_id, now)?),
            ObjectsType::Events => drop(event_filter(&mut content.filters, account_id, now)?),
        }
        content.columns = Some(content.layout()?.columns);
        to_json(&content)
    }

    async fn plan(&self, task: &TaskContext<'_>, stage: u32) -> Result<Vec<Value>, ApiError> {
        if stage > 0 {
            return Ok(Vec::new());
        }
        let mut content: ExporterContent = task.content()?;
        let account_id = task.task.account_id;
        let created = timestamps::parse(&task.task.create_time).unwrap_or_else(timestamps::now);
        let ids = super::selected_ids(
            task.svc,
            content.objects_type,
            &mut content.filters,
            account_id,
            created,
            |_| true,
            |_| true,
        )
        .await?;
        limits::check_objects(ids.len())?;
        let parts = limits::chunks(ids.len() as u64, rows::ROWS_PER_PART);
        limits::check_subtasks(task.task.count_task_parts_all, parts)?;
        rows::parts(&ids, None).iter().map(to_json).collect()
    }

    async fn execute(&self, subtask: &SubtaskContext<'_>) -> Result<Value, ApiError> {
        let content: ExporterContent = subtask.task_content()?;
        let part: RowsPart = subtask.content()?;
        to_json(&rows::write_part(subtask, &content.layout()?, &part).await?)
    }

    async fn merge(&self, task: &TaskContext<'_>) -> Result<Merged, ApiError> {
        let content: ExporterContent = task.content()?;
        rows::merge_archive(task, &content.layout()?, content.csv_name()).await
    }
}
