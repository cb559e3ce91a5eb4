//! Clustering (task type 2): the connected components of the graph whose edges join
//! objects with similarity ≥ `threshold`; with `use_track_info`, objects with the same
//! `track_id` are joined as well. Only objects with a descriptor of the task's version
//! take part.
//!
//! Stages: collect (blocks of the objects), then one match subtask per pair of blocks
//! (i ≤ j, a block against itself included). A tile's edges can number up to the square
//! of the block size, so the tile joins them itself and outputs only a spanning forest —
//! at most one edge per object of the tile — which has the same components. The merge
//! joins the forests with a union-find over every object and lists the components,
//! largest first.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::limits::{TileShape, VectorPlan};
use super::linker::ObjectsType;
use super::vectors::{
    self, COLLECT, MATCH, OBJECTS_PER_BLOCK_DEFAULT, ObjectSet, Tile, match_subtasks, require_done,
};
use super::{Merged, SubtaskContext, TaskContext, TaskKind, parse_content, to_json};
use crate::Services;
use crate::error::ApiError;
use crate::tasks::model::TaskType;
use crate::tasks::store as task_store;
use crate::vectors::components::{DisjointSets, components};
use crate::vectors::{decimal, kernel};

/// Similarity from which two objects are joined unless the content says otherwise.
pub const DEFAULT_THRESHOLD: f64 = 0.75;

/// The clustering kind.
pub struct Clustering;

/// Content of a clustering task.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusteringContent {
    /// Faces or events.
    pub objects_type: ObjectsType,
    /// Filters of the objects (those of the matching `GET` listing, without paging).
    pub filters: Map<String, Value>,
    /// Lowest similarity that joins two objects, in [0, 1]: kept and shown as given (an
    /// f64); the kernel compares with [`decimal::kernel_threshold`] of it.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Join objects with the same `track_id` (events) whatever their similarity.
    #[serde(default)]
    pub use_track_info: bool,
    /// Descriptor version compared (the configured default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptor_version: Option<u32>,
    /// Objects per block, 1..=10000 (a Fanout extension; default 5000).
    #[serde(default = "default_objects_per_block")]
    pub objects_per_block: usize,
}

fn default_threshold() -> f64 {
    DEFAULT_THRESHOLD
}

fn default_objects_per_block() -> usize {
    OBJECTS_PER_BLOCK_DEFAULT
}

impl ClusteringContent {
    fn objects(&self) -> ObjectSet {
        ObjectSet {
            objects_type: self.objects_type,
            filters: self.filters.clone(),
            descriptor_version: self.descriptor_version,
        }
    }

    /// The shape of its plan, for the caps: the result lists every object once.
    fn vector_plan(&self) -> VectorPlan {
        VectorPlan {
            shape: TileShape::Pairs,
            per_block: self.objects_per_block,
            entries_per_object: 1,
        }
    }
}

/// Output of one tile: a spanning forest of its edges, as indices among all objects.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Forest {
    edges: Vec<(u32, u32)>,
}

/// Result of a clustering task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ClusteringResult {
    /// Clusters as object ids, largest first (equal sizes in the order objects were
    /// listed); objects with no neighbour form clusters of one.
    pub clusters: Vec<Vec<Uuid>>,
    /// Objects clustered (those with a descriptor of the version).
    pub total_objects: u64,
    /// Clusters.
    pub total_clusters: u64,
    /// Similarity that joined objects, as given.
    pub threshold: f64,
    /// Descriptor version compared.
    pub descriptor_version: u32,
}

#[async_trait]
impl TaskKind for Clustering {
    fn name(&self) -> &'static str {
        "clustering"
    }

    fn task_type(&self) -> TaskType {
        TaskType::Clustering
    }

    async fn validate(
        &self,
        svc: &Services,
        account_id: Uuid,
        content: Value,
        now: DateTime<Utc>,
    ) -> Result<Value, ApiError> {
        let mut content: ClusteringContent = parse_content(content)?;
        super::cross_match::check_threshold(content.threshold)?;
        vectors::check_objects_per_block(content.objects_per_block)?;
        let version = vectors::descriptor_version(&svc.config, content.descriptor_version, &[])?;
        content.descriptor_version = Some(version);
        let mut objects = content.objects();
        objects.validate(account_id, now)?;
        content.filters = objects.filters;
        let objects = content.objects();
        let plan = content.vector_plan();
        vectors::check_at_creation(svc, account_id, now, &[&objects], version, plan).await?;
        to_json(&content)
    }

    async fn plan(&self, task: &TaskContext<'_>, stage: u32) -> Result<Vec<Value>, ApiError> {
        let content: ClusteringContent = task.content()?;
        match stage {
            COLLECT => {
                let version = vectors::stored_version(&task.svc.config, content.descriptor_version);
                vectors::plan_collect(task, &[&content.objects()], version, content.vector_plan())
                    .await
            }
            MATCH => {
                let sets = vectors::collected(task, 1).await?;
                vectors::plan_match(task, TileShape::Pairs, &sets)
            }
            _ => Ok(Vec::new()),
        }
    }

    async fn execute(&self, subtask: &SubtaskContext<'_>) -> Result<Value, ApiError> {
        if subtask.subtask.subtask.stage == COLLECT {
            return vectors::collect(subtask).await;
        }
        let content: ClusteringContent = subtask.task_content()?;
        let tile: Tile = subtask.content()?;
        let (a, b) = tile.load(subtask.svc, subtask.task.task_id).await?;
        subtask.check_cancelled()?;
        let (a_offset, b_offset) = (tile.a.offset, tile.b.offset);
        let threshold = decimal::kernel_threshold(content.threshold);
        let forest = vectors::off_runtime(move || {
            let same = b.is_none();
            let b = b.as_ref().unwrap_or(&a);
            // Edges stream into a union-find over the tile's objects (rows of `a`, then,
            // unless the same block, rows of `b`); only those that join two parts are kept.
            let shift = if same { 0 } else { a.len() };
            let mut sets = DisjointSets::new(a.len() + if same { 0 } else { b.len() });
            let mut forest = Vec::new();
            kernel::for_each_edge(&a, b, threshold, same, |i, j| {
                if sets.union(i as usize, shift + j as usize) {
                    forest.push((a_offset + i, b_offset + j));
                }
            });
            forest
        })
        .await?;
        to_json(&Forest { edges: forest })
    }

    async fn merge(&self, task: &TaskContext<'_>) -> Result<Merged, ApiError> {
        let content: ClusteringContent = task.content()?;
        let blocks = vectors::collected(task, 1).await?.remove(0);
        let ids: Vec<Uuid> = blocks.iter().flat_map(|c| c.ids.iter().copied()).collect();
        let mut sets = DisjointSets::new(ids.len());
        for (record, _) in match_subtasks(task).await? {
            require_done(&record, task.task.task_id)?;
            let forest: Forest = task_store::subtask_output(task.svc, &record).await?;
            for (i, j) in forest.edges {
                sets.union(i as usize, j as usize);
            }
        }
        if content.use_track_info {
            let mut first_of_track: HashMap<&str, usize> = HashMap::new();
            let tracks = blocks.iter().flat_map(|c| c.tracks.iter());
            for (index, track) in tracks.enumerate() {
                if let Some(track) = track.as_deref() {
                    let first = *first_of_track.entry(track).or_insert(index);
                    sets.union(first, index);
                }
            }
        }
        let clusters: Vec<Vec<Uuid>> = components(&mut sets)
            .into_iter()
            .map(|members| members.into_iter().map(|i| ids[i as usize]).collect())
            .collect();
        Merged::json(&ClusteringResult {
            total_objects: ids.len() as u64,
            total_clusters: clusters.len() as u64,
            clusters,
            threshold: content.threshold,
            descriptor_version: vectors::stored_version(
                &task.svc.config,
                content.descriptor_version,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Found by a new user: a clustering task echoed `"threshold": 0.800000011920929` in
    /// its content and result (the f32 it was kept as, widened to f64 on its way into
    /// JSON). The number shown is the number given.
    #[test]
    fn the_threshold_is_shown_as_given() {
        let content: ClusteringContent = parse_content(json!({
            "objects_type": "faces", "filters": {}, "threshold": 0.8
        }))
        .unwrap();
        let echoed = to_json(&content).unwrap();
        assert_eq!(echoed["threshold"], json!(0.8), "{echoed}");
        assert!(
            echoed.to_string().contains("\"threshold\":0.8,"),
            "{echoed}"
        );
        let default: ClusteringContent =
            parse_content(json!({"objects_type": "faces", "filters": {}})).unwrap();
        assert_eq!(to_json(&default).unwrap()["threshold"], json!(0.75));

        let result = ClusteringResult {
            clusters: Vec::new(),
            total_objects: 0,
            total_clusters: 0,
            threshold: content.threshold,
            descriptor_version: 59,
        };
        let bytes = Merged::json(&result)
            .unwrap()
            .into_bytes()
            .unwrap()
            .unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("\"threshold\":0.8,"), "{text}");
    }
}
