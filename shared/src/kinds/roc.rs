//! ROC (task type 7): how well similarity separates objects of the same identity from
//! others, on objects labelled by a `markup`.
//!
//! Every markup object is matched against every other (never itself); each reference
//! keeps its top `limit` candidates — its *match group*. A (reference, candidate) pair is
//! positive when both carry the same label. TPR is accepted positive pairs over *all*
//! expected positive pairs, FPR accepted negative pairs over *all* expected negative pairs
//! (ordered pairs among the markup objects with a descriptor). Pairs outside a group's top
//! `limit` are never accepted, at any threshold: exactly as if their similarity were below
//! every threshold, so the curve ends with a straight segment to (1, 1) and the AUC is the
//! one scikit-learn computes when those pairs are given a score below all others. The
//! top-N hit probability is, for N = 1..=limit, the share of references with at least one
//! expected positive whose first positive candidate is at rank ≤ N with similarity ≥
//! `threshold_hit_top`.
//!
//! Stages: collect (blocks of the markup objects), match (every pair of blocks, top-k per
//! row), merge (groups, one reference block at a time, then the statistics).

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::limits::{self, TileShape, VectorPlan};
use super::linker::ObjectsType;
use super::vectors::{self, COLLECT, MATCH, OBJECTS_PER_BLOCK_DEFAULT, match_subtasks};
use super::{Merged, SubtaskContext, TaskContext, TaskKind, parse_content, to_json};
use crate::Services;
use crate::error::ApiError;
use crate::tasks::model::TaskType;
use crate::vectors::decimal;
use crate::vectors::roc::{self as stats, RocPoint, ScoredPair};

/// Match-group size unless the content says otherwise (LUNA's default).
pub const DEFAULT_LIMIT: usize = 5;

/// Most markup objects in one task.
pub const MARKUP_MAX: usize = 100_000;

/// Most points of the curve in a result: a curve has one point per distinct similarity,
/// millions for a large markup; these are spread evenly along it.
pub const CURVE_POINTS_MAX: usize = 1000;

/// Key FPRs reported unless the content says otherwise.
pub const DEFAULT_KEY_FPRS: [f64; 4] = [0.0001, 0.001, 0.01, 0.1];

/// The ROC kind.
pub struct Roc;

/// One labelled object of the markup.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkupItem {
    /// Face or event id.
    pub object_id: Uuid,
    /// Identity label: objects with equal labels are the same person.
    pub label: String,
}

/// Content of a ROC task.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RocContent {
    /// Faces or events.
    pub objects_type: ObjectsType,
    /// The labelled objects (at least two).
    pub markup: Vec<MarkupItem>,
    /// Match-group size, 1..=1000.
    #[serde(default = "default_limit")]
    pub limit: usize,
    /// Lowest similarity counted as a hit in the top-N hit probability, in [0, 1]: kept
    /// and shown as given (an f64); compared as [`decimal::kernel_threshold`] of it.
    #[serde(default)]
    pub threshold_hit_top: f64,
    /// FPRs at which ROC points are reported, each in [0, 1].
    #[serde(default = "default_key_fprs", rename = "key_FPRs")]
    pub key_fprs: Vec<f64>,
    /// Descriptor version compared (the configured default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptor_version: Option<u32>,
    /// Objects per block, 1..=10000 (a Fanout extension; default 5000, or less when
    /// `limit` is large: see [`limits::default_objects_per_block`]).
    #[serde(default = "default_objects_per_block")]
    pub objects_per_block: usize,
}

impl RocContent {
    /// The shape of its plan, for the caps: every markup object keeps `limit` pairs.
    fn vector_plan(&self) -> VectorPlan {
        VectorPlan {
            shape: TileShape::Square,
            per_block: self.objects_per_block,
            entries_per_object: self.limit as u64,
        }
    }
}

fn default_limit() -> usize {
    DEFAULT_LIMIT
}

fn default_key_fprs() -> Vec<f64> {
    DEFAULT_KEY_FPRS.to_vec()
}

fn default_objects_per_block() -> usize {
    OBJECTS_PER_BLOCK_DEFAULT
}

/// Result of a ROC task.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RocResult {
    /// Markup objects with a descriptor of the version.
    pub objects_count: u64,
    /// Expected positive (same label) ordered pairs.
    pub positive_pairs_count: u64,
    /// Expected negative ordered pairs.
    pub negative_pairs_count: u64,
    /// Match-group size.
    pub limit: usize,
    /// Area under the curve.
    pub auc: f64,
    /// Where FPR = 1 - TPR.
    pub eer: RocPoint,
    /// The curve at each key FPR.
    pub key_points: Vec<RocPoint>,
    /// Probability of the first positive at rank ≤ N, for N = 1..=limit.
    pub top_n_hit_probability: Vec<f64>,
    /// The curve, by descending threshold (at most 1000 points, evenly spread).
    pub roc_curve: Vec<RocPoint>,
}

#[async_trait]
impl TaskKind for Roc {
    fn name(&self) -> &'static str {
        "roc"
    }

    fn task_type(&self) -> TaskType {
        TaskType::Roc
    }

    async fn validate(
        &self,
        svc: &Services,
        _account_id: Uuid,
        content: Value,
        _now: DateTime<Utc>,
    ) -> Result<Value, ApiError> {
        let block_given = content.get("objects_per_block").is_some();
        let mut content: RocContent = parse_content(content)?;
        super::cross_match::check_limit(content.limit)?;
        super::cross_match::check_threshold(content.threshold_hit_top)
            .map_err(|_| ApiError::bad_json("content: 'threshold_hit_top' must be in [0, 1]"))?;
        if !block_given {
            content.objects_per_block =
                limits::default_objects_per_block(content.objects_per_block, content.limit);
        }
        vectors::check_objects_per_block(content.objects_per_block)?;
        if content.markup.len() < 2 || content.markup.len() > MARKUP_MAX {
            return Err(ApiError::bad_json(format!(
                "content: 'markup' must hold 2..={MARKUP_MAX} labelled objects"
            )));
        }
        limits::check_tile_entries(content.objects_per_block, content.limit)?;
        content
            .vector_plan()
            .check(&[content.markup.len() as u64], 0)?;
        if let Some(item) = content.markup.iter().find(|m| m.label.trim().is_empty()) {
            return Err(ApiError::bad_json(format!(
                "content: markup object {} has an empty label",
                item.object_id
            )));
        }
        let mut sizes: HashMap<&str, u64> = HashMap::new();
        for item in &content.markup {
            *sizes.entry(item.label.as_str()).or_default() += 1;
        }
        if sizes.len() < 2 || sizes.values().all(|&k| k < 2) {
            return Err(ApiError::bad_json(
                "content: 'markup' needs two labels at least and a label given twice: \
                 otherwise there are no positive or no negative pairs",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(item) = content.markup.iter().find(|m| !seen.insert(m.object_id)) {
            return Err(ApiError::bad_json(format!(
                "content: markup object {} is given twice",
                item.object_id
            )));
        }
        if content.key_fprs.iter().any(|f| !(0.0..=1.0).contains(f)) {
            return Err(ApiError::bad_json("content: 'key_FPRs' must be in [0, 1]"));
        }
        content.descriptor_version = Some(vectors::descriptor_version(
            &svc.config,
            content.descriptor_version,
            &[],
        )?);
        to_json(&content)
    }

    async fn plan(&self, task: &TaskContext<'_>, stage: u32) -> Result<Vec<Value>, ApiError> {
        let content: RocContent = task.content()?;
        match stage {
            COLLECT => {
                let objects = [content.markup.len() as u64];
                content
                    .vector_plan()
                    .check(&objects, task.task.count_task_parts_all)?;
                let ids: Vec<Uuid> = content.markup.iter().map(|m| m.object_id).collect();
                vectors::collect_parts(
                    0,
                    content.objects_type,
                    None,
                    &ids,
                    vectors::stored_version(&task.svc.config, content.descriptor_version),
                    content.objects_per_block,
                )
            }
            MATCH => {
                let sets = vectors::collected(task, 1).await?;
                vectors::plan_match(task, TileShape::Square, &sets)
            }
            _ => Ok(Vec::new()),
        }
    }

    async fn execute(&self, subtask: &SubtaskContext<'_>) -> Result<Value, ApiError> {
        if subtask.subtask.subtask.stage == COLLECT {
            return vectors::collect(subtask).await;
        }
        let content: RocContent = subtask.task_content()?;
        vectors::top_k_tile(subtask, content.limit, 0.0, true).await
    }

    async fn merge(&self, task: &TaskContext<'_>) -> Result<Merged, ApiError> {
        let content: RocContent = task.content()?;
        let blocks = vectors::collected(task, 1).await?.remove(0);
        let labels: HashMap<Uuid, &str> = content
            .markup
            .iter()
            .map(|m| (m.object_id, m.label.as_str()))
            .collect();
        let present: Vec<Uuid> = blocks.iter().flat_map(|c| c.ids.iter().copied()).collect();
        let mut per_label: HashMap<&str, u64> = HashMap::new();
        for id in &present {
            *per_label.entry(labels[id]).or_default() += 1;
        }
        let n = present.len() as u64;
        let positives: u64 = per_label.values().map(|k| k * k.saturating_sub(1)).sum();
        let negatives = n * n.saturating_sub(1) - positives;
        if positives == 0 || negatives == 0 {
            return Err(ApiError::bad_json(format!(
                "the markup objects with a descriptor of the version form {positives} positive \
                 and {negatives} negative pairs; both must be present"
            )));
        }
        let tiles = match_subtasks(task).await?;
        let mut pairs = Vec::new();
        let mut groups = Vec::new();
        for references in &blocks {
            let best = vectors::best_of_tiles(task, &tiles, references, content.limit).await?;
            for (reference, row) in references.ids.iter().zip(best) {
                let label = labels[reference];
                let group: Vec<(f32, bool)> = row
                    .iter()
                    .map(|n| (n.similarity, labels.get(&n.id) == Some(&label)))
                    .collect();
                pairs.extend(group.iter().map(|&(similarity, positive)| ScoredPair {
                    similarity,
                    positive,
                }));
                if per_label[label] > 1 {
                    groups.push(group);
                }
            }
        }
        let curve = stats::roc(&mut pairs, positives, negatives, &content.key_fprs);
        let roc_curve = curve.thinned(CURVE_POINTS_MAX);
        let result = RocResult {
            objects_count: n,
            positive_pairs_count: positives,
            negative_pairs_count: negatives,
            limit: content.limit,
            auc: curve.auc,
            eer: curve.eer,
            key_points: curve.key_points,
            top_n_hit_probability: stats::hit_top(
                &groups,
                content.limit,
                decimal::kernel_threshold(content.threshold_hit_top),
            ),
            roc_curve,
        };
        serde_json::to_vec(&result)
            .map(Merged::Encoded)
            .map_err(|e| ApiError::internal("result", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `threshold_hit_top` is shown as given, not as the f32 it was kept as
    /// (`0.800000011920929`).
    #[test]
    fn the_hit_threshold_is_shown_as_given() {
        let content: RocContent = parse_content(json!({
            "objects_type": "faces",
            "markup": [],
            "threshold_hit_top": 0.8
        }))
        .unwrap();
        let echoed = to_json(&content).unwrap();
        assert_eq!(echoed["threshold_hit_top"], json!(0.8), "{echoed}");
    }
}
