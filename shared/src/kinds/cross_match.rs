//! Cross match (task type 6): every reference against every candidate, by descriptor.
//!
//! Stages: collect (blocks of references, set 0, and of candidates, set 1), then one match
//! subtask per (reference block × candidate block) tile, whose output is each reference's
//! best `limit` candidates in that block with similarity ≥ `threshold`. The merge walks
//! the reference blocks in order and, for each, merges the lists of its tiles — the full
//! similarity matrix never exists, and the merge holds one reference block's lists at a
//! time. Similarity is the cosine of the two descriptors clamped to [0, 1]; candidates are
//! sorted by similarity, equal ones by candidate id. An object in both sets is matched
//! with itself like any other candidate.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::limits::{self, TileShape, VectorPlan};
use super::vectors::{self, COLLECT, MATCH, OBJECTS_PER_BLOCK_DEFAULT, ObjectSet, match_subtasks};
use super::{Merged, SubtaskContext, TaskContext, TaskKind, parse_content, to_json};
use crate::Services;
use crate::error::ApiError;
use crate::tasks::model::TaskType;
use crate::vectors::decimal;

/// Candidates per reference unless the content says otherwise.
pub const DEFAULT_LIMIT: usize = 10;

/// Most candidates per reference.
pub const LIMIT_MAX: usize = 1000;

/// Lowest similarity reported unless the content says otherwise: every candidate within
/// the limit.
pub const DEFAULT_THRESHOLD: f64 = 0.0;

/// The cross-match kind.
pub struct CrossMatch;

/// Content of a cross-match task.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrossMatchContent {
    /// The objects matched.
    pub references: ObjectSet,
    /// The objects they are matched against.
    pub candidates: ObjectSet,
    /// Candidates per reference, 1..=1000.
    #[serde(default = "default_limit")]
    pub limit: usize,
    /// Lowest similarity reported, in [0, 1]: kept and shown as given (an f64); the kernel
    /// compares with [`decimal::kernel_threshold`] of it.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Descriptor version compared (the configured default when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptor_version: Option<u32>,
    /// Objects per block, 1..=10000 (a Fanout extension; default 5000, or less when
    /// `limit` is large: see [`limits::default_objects_per_block`]).
    #[serde(default = "default_objects_per_block")]
    pub objects_per_block: usize,
}

impl CrossMatchContent {
    /// The shape of its plan, for the caps.
    fn vector_plan(&self) -> VectorPlan {
        VectorPlan {
            shape: TileShape::Cross,
            per_block: self.objects_per_block,
            entries_per_object: self.limit as u64,
        }
    }
}

fn default_limit() -> usize {
    DEFAULT_LIMIT
}

fn default_threshold() -> f64 {
    DEFAULT_THRESHOLD
}

fn default_objects_per_block() -> usize {
    OBJECTS_PER_BLOCK_DEFAULT
}

/// One candidate as the result shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MatchedCandidate {
    /// Face or event id.
    pub candidate_id: Uuid,
    /// Cosine similarity clamped to [0, 1], as the kernel computed it: written out by
    /// `serde_json`'s writer, which shows an f32 as its shortest text (`0.99999976`). Never
    /// put it through `serde_json::to_value`, which widens it (`0.9999997615814209`).
    pub similarity: f32,
}

/// One reference's matches.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReferenceMatches {
    /// Face or event id.
    pub reference_id: Uuid,
    /// Best first, at most `limit`, each ≥ `threshold`.
    pub candidates: Vec<MatchedCandidate>,
}

/// Head of the result; `matches` follows it (written out block by block).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CrossMatchSummary {
    /// References with a descriptor of the version.
    pub references_count: u64,
    /// Candidates with a descriptor of the version.
    pub candidates_count: u64,
    /// Descriptor version compared.
    pub descriptor_version: u32,
    /// Candidates per reference.
    pub limit: usize,
    /// Lowest similarity reported, as given.
    pub threshold: f64,
}

/// Result of a cross-match task.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CrossMatchResult {
    /// Counts and parameters.
    #[serde(flatten)]
    pub summary: CrossMatchSummary,
    /// One entry per reference, in the order the references were listed.
    pub matches: Vec<ReferenceMatches>,
}

#[async_trait]
impl TaskKind for CrossMatch {
    fn name(&self) -> &'static str {
        "cross_match"
    }

    fn task_type(&self) -> TaskType {
        TaskType::CrossMatch
    }

    async fn validate(
        &self,
        svc: &Services,
        account_id: Uuid,
        content: Value,
        now: DateTime<Utc>,
    ) -> Result<Value, ApiError> {
        let block_given = content.get("objects_per_block").is_some();
        let mut content: CrossMatchContent = parse_content(content)?;
        check_limit(content.limit)?;
        check_threshold(content.threshold)?;
        if !block_given {
            content.objects_per_block =
                limits::default_objects_per_block(content.objects_per_block, content.limit);
        }
        vectors::check_objects_per_block(content.objects_per_block)?;
        limits::check_tile_entries(content.objects_per_block, content.limit)?;
        let version = vectors::descriptor_version(
            &svc.config,
            content.descriptor_version,
            &[&content.references, &content.candidates],
        )?;
        content.descriptor_version = Some(version);
        content.references.validate(account_id, now)?;
        content.candidates.validate(account_id, now)?;
        vectors::check_at_creation(
            svc,
            account_id,
            now,
            &[&content.references, &content.candidates],
            version,
            content.vector_plan(),
        )
        .await?;
        to_json(&content)
    }

    async fn plan(&self, task: &TaskContext<'_>, stage: u32) -> Result<Vec<Value>, ApiError> {
        let content: CrossMatchContent = task.content()?;
        match stage {
            COLLECT => {
                vectors::plan_collect(
                    task,
                    &[&content.references, &content.candidates],
                    vectors::stored_version(&task.svc.config, content.descriptor_version),
                    content.vector_plan(),
                )
                .await
            }
            MATCH => {
                let sets = vectors::collected(task, 2).await?;
                vectors::plan_match(task, TileShape::Cross, &sets)
            }
            _ => Ok(Vec::new()),
        }
    }

    async fn execute(&self, subtask: &SubtaskContext<'_>) -> Result<Value, ApiError> {
        if subtask.subtask.subtask.stage == COLLECT {
            return vectors::collect(subtask).await;
        }
        let content: CrossMatchContent = subtask.task_content()?;
        let threshold = decimal::kernel_threshold(content.threshold);
        vectors::top_k_tile(subtask, content.limit, threshold, false).await
    }

    async fn merge(&self, task: &TaskContext<'_>) -> Result<Merged, ApiError> {
        let content: CrossMatchContent = task.content()?;
        let sets = vectors::collected(task, 2).await?;
        let count = |set: usize| sets[set].iter().map(|c| u64::from(c.block.count)).sum();
        let summary = CrossMatchSummary {
            references_count: count(0),
            candidates_count: count(1),
            descriptor_version: vectors::stored_version(
                &task.svc.config,
                content.descriptor_version,
            ),
            limit: content.limit,
            threshold: content.threshold,
        };
        let tiles = match_subtasks(task).await?;
        // The summary's fields, then "matches" written one reference block at a time.
        let mut out = serde_json::to_vec(&summary).map_err(|e| ApiError::internal("result", e))?;
        out.pop();
        out.extend_from_slice(b",\"matches\":[");
        let mut first = true;
        for references in &sets[0] {
            let best = vectors::best_of_tiles(task, &tiles, references, content.limit).await?;
            for (reference_id, row) in references.ids.iter().zip(best) {
                if !first {
                    out.push(b',');
                }
                first = false;
                let entry = ReferenceMatches {
                    reference_id: *reference_id,
                    candidates: row
                        .into_iter()
                        .map(|n| MatchedCandidate {
                            candidate_id: n.id,
                            similarity: n.similarity,
                        })
                        .collect(),
                };
                serde_json::to_writer(&mut out, &entry)
                    .map_err(|e| ApiError::internal("result", e))?;
            }
        }
        out.extend_from_slice(b"]}");
        Ok(Merged::Encoded(out))
    }
}

/// Checks a candidates-per-reference limit.
pub fn check_limit(limit: usize) -> Result<(), ApiError> {
    if (1..=LIMIT_MAX).contains(&limit) {
        Ok(())
    } else {
        Err(ApiError::bad_json(format!(
            "content: 'limit' must be in 1..={LIMIT_MAX}"
        )))
    }
}

/// Checks a similarity threshold.
pub fn check_threshold(threshold: f64) -> Result<(), ApiError> {
    if (0.0..=1.0).contains(&threshold) {
        Ok(())
    } else {
        Err(ApiError::bad_json("content: 'threshold' must be in [0, 1]"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set() -> Value {
        json!({"objects_type": "faces", "filters": {}})
    }

    /// The threshold is shown as given (it was kept as an f32 and echoed as
    /// `0.800000011920929`), and similarities as the shortest text of their f32
    /// (`0.99999976`, never the widened `0.9999997615814209`).
    #[test]
    fn thresholds_and_similarities_are_shown_without_widening_noise() {
        let content: CrossMatchContent = parse_content(json!({
            "references": set(), "candidates": set(), "threshold": 0.8
        }))
        .unwrap();
        let echoed = to_json(&content).unwrap();
        assert_eq!(echoed["threshold"], json!(0.8), "{echoed}");

        let summary = CrossMatchSummary {
            references_count: 1,
            candidates_count: 1,
            descriptor_version: 59,
            limit: 1,
            threshold: content.threshold,
        };
        let text = String::from_utf8(serde_json::to_vec(&summary).unwrap()).unwrap();
        assert!(text.contains("\"threshold\":0.8}"), "{text}");

        let entry = ReferenceMatches {
            reference_id: Uuid::nil(),
            candidates: vec![MatchedCandidate {
                candidate_id: Uuid::nil(),
                similarity: 0.999_999_76,
            }],
        };
        let mut written = Vec::new();
        serde_json::to_writer(&mut written, &entry).unwrap();
        let text = String::from_utf8(written).unwrap();
        assert!(text.contains("\"similarity\":0.99999976}"), "{text}");
    }
}
