//! Reporter (task type 3): a CSV report of a done clustering task of the same account,
//! in a zip archive. The first two columns are always the cluster number (the cluster's
//! index in the clustering result, from 0) and the object id; the chosen columns of the
//! object follow. An object deleted since the clustering keeps its row with only the
//! first two columns filled.
//!
//! The planner reads the clustering result and splits its rows into parts; subtasks and
//! merge are the exporter's (see [`super::rows`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::clustering::ClusteringResult;
use super::limits;
use super::linker::ObjectsType;
use super::rows::{self, Layout, RowsPart};
use super::{Merged, SubtaskContext, TaskContext, TaskKind, parse_content, to_json};
use crate::Services;
use crate::error::{ApiError, ErrorCode};
use crate::store::blobs;
use crate::tasks::model::{TaskRecord, TaskStatus, TaskType};
use crate::tasks::store as task_store;
use crate::timestamps;

/// The reporter kind.
pub struct Reporter;

/// Content of a reporter task.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReporterContent {
    /// The clustering task reported on.
    pub task_id: u64,
    /// Columns after the cluster number and the object id, in order; every column of
    /// the clustered objects when absent.
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// Put each object's stored image (face avatar, event sample) under `images/`.
    #[serde(default)]
    pub images: bool,
    /// Faces or events: the clustering task's, filled in at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects_type: Option<ObjectsType>,
}

impl ReporterContent {
    fn layout(&self) -> Result<Layout, ApiError> {
        let objects_type = self
            .objects_type
            .ok_or_else(|| ApiError::internal("reporter content", "objects_type not filled in"))?;
        let id = rows::id_column(objects_type);
        Ok(Layout {
            objects_type,
            columns: rows::choose_columns(objects_type, self.columns.clone(), &[id])?,
            images: self.images,
            clustered: true,
        })
    }
}

/// The clustering task of a report, if it can be reported on: it belongs to the account,
/// is a clustering task, is done (28015) and its result is still stored (28016).
async fn reportable(
    svc: &Services,
    account_id: Uuid,
    task_id: u64,
) -> Result<TaskRecord, ApiError> {
    let task = match task_store::load(svc, task_id).await? {
        Some(task) if task.account_id == account_id => task,
        _ => return Err(ApiError::task_not_found(task_id)),
    };
    if task.task_type != TaskType::Clustering {
        return Err(ApiError::bad_json(format!(
            "content: task '{task_id}' is not a clustering task; only clustering tasks are reported on"
        )));
    }
    if task.task_status != TaskStatus::Done {
        return Err(ApiError::new(
            ErrorCode::ReportStatusUnsupported,
            format!(
                "Tasks with status '{}' does not support a build report",
                u8::from(task.task_status)
            ),
        ));
    }
    let stored = task.result_kept(timestamps::now())
        && blobs::head(svc, &blobs::result_key(task_id))
            .await?
            .is_some();
    if !stored {
        return Err(ApiError::new(
            ErrorCode::ReportWithoutResult,
            "Clusterization task without result does not support a build report",
        ));
    }
    Ok(task)
}

/// A stored clustering result: LUNA's envelope `{"result": ..., "errors": [...]}`, or
/// the bare result a merge stored before results had the envelope.
#[derive(Deserialize)]
#[serde(untagged)]
enum StoredClustering {
    Envelope { result: ClusteringResult },
    Bare(ClusteringResult),
}

/// The clustering result in a stored result object.
fn clustering_result(bytes: &[u8]) -> Result<ClusteringResult, ApiError> {
    match serde_json::from_slice(bytes) {
        Ok(StoredClustering::Envelope { result } | StoredClustering::Bare(result)) => Ok(result),
        Err(e) => Err(ApiError::internal("clustering result", e)),
    }
}

#[async_trait]
impl TaskKind for Reporter {
    fn name(&self) -> &'static str {
        "reporter"
    }

    fn task_type(&self) -> TaskType {
        TaskType::Reporter
    }

    async fn validate(
        &self,
        svc: &Services,
        account_id: Uuid,
        content: Value,
        _now: DateTime<Utc>,
    ) -> Result<Value, ApiError> {
        let mut content: ReporterContent = parse_content(content)?;
        let clustering = reportable(svc, account_id, content.task_id).await?;
        let clustered = task_store::content(svc, &clustering).await?;
        let objects_type: ObjectsType = serde_json::from_value(clustered["objects_type"].clone())
            .map_err(|e| ApiError::internal("clustering content", e))?;
        content.objects_type = Some(objects_type);
        content.columns = Some(content.layout()?.columns);
        to_json(&content)
    }

    async fn plan(&self, task: &TaskContext<'_>, stage: u32) -> Result<Vec<Value>, ApiError> {
        if stage > 0 {
            return Ok(Vec::new());
        }
        let content: ReporterContent = task.content()?;
        let svc = task.svc;
        reportable(svc, task.task.account_id, content.task_id).await?;
        let bytes = blobs::get(svc, &blobs::result_key(content.task_id))
            .await?
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::ReportWithoutResult,
                    "Clusterization task without result does not support a build report",
                )
            })?;
        let result = clustering_result(&bytes)?;
        drop(bytes);
        let objects = result.total_objects;
        limits::check_subtasks(
            task.task.count_task_parts_all,
            limits::chunks(objects, rows::ROWS_PER_PART),
        )?;
        let mut ids = Vec::with_capacity(result.total_objects as usize);
        let mut clusters = Vec::with_capacity(result.total_objects as usize);
        for (number, cluster) in result.clusters.iter().enumerate() {
            ids.extend_from_slice(cluster);
            clusters.extend(std::iter::repeat_n(number as u64, cluster.len()));
        }
        rows::parts(&ids, Some(&clusters))
            .iter()
            .map(to_json)
            .collect()
    }

    async fn execute(&self, subtask: &SubtaskContext<'_>) -> Result<Value, ApiError> {
        let content: ReporterContent = subtask.task_content()?;
        let part: RowsPart = subtask.content()?;
        to_json(&rows::write_part(subtask, &content.layout()?, &part).await?)
    }

    async fn merge(&self, task: &TaskContext<'_>) -> Result<Merged, ApiError> {
        let content: ReporterContent = task.content()?;
        rows::merge_archive(task, &content.layout()?, "report.csv").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The reporter reads the clustering result out of the envelope the engine stores
    /// (and still reads a result stored bare, before the envelope).
    #[test]
    fn the_clustering_result_is_read_from_the_envelope() {
        let id = Uuid::new_v4();
        let result = json!({"clusters": [[id]], "total_objects": 1, "total_clusters": 1,
                            "threshold": 0.75, "descriptor_version": 59});
        let envelope = json!({"result": result, "errors": [{"error_id": 1}]});
        for stored in [envelope, result] {
            let read = clustering_result(&serde_json::to_vec(&stored).unwrap()).unwrap();
            assert_eq!(read.clusters, vec![vec![id]], "{stored}");
            assert_eq!(read.total_objects, 1);
        }
        assert!(clustering_result(b"{\"result\": 3}").is_err());
    }
}
