//! Caps on the fan-out of one task, in one place.
//!
//! A task's content is small, but what it asks for is not: `objects_per_block: 1` over
//! ten thousand objects is 10^8 tiles, and `limit: 1000` over blocks of 10,000 objects is
//! ten million neighbours in one subtask. Each kind checks its content against these caps
//! at creation, so a request over one is a 400 (40007) and nothing is stored; what only
//! planning can count (the objects a filter selects) is checked again by the planner
//! before it builds the plan, and a plan over a cap fails the task with the same code.
//! The caps also keep subtask ids (u32, 1..) and block offsets far from overflowing.

use crate::error::{ApiError, ErrorCode};

/// Most subtasks of one task, over every stage (collect blocks, tiles, parts). The plan
/// of a stage is one S3 object and its subtasks one item and one message each.
pub const SUBTASKS_PER_TASK_MAX: u64 = 100_000;

/// Most objects one task selects, per set: the planner holds their ids (16 bytes each).
pub const OBJECTS_PER_SET_MAX: usize = 10_000_000;

/// Most match tiles (pairs of blocks) of one vector task: the merge reads every tile.
pub const TILES_PER_TASK_MAX: u64 = 10_000;

/// Most entries of a result held by its merge: (reference, candidate) pairs of a cross
/// match or a ROC task (objects × `limit`), clustered objects. At about 70 bytes of JSON
/// each, 350 MB.
pub const RESULT_ENTRIES_MAX: u64 = 5_000_000;

/// Most neighbours one match subtask keeps (`objects_per_block` × `limit`), which bounds
/// its memory beside its two blocks: at about 100 bytes each with their JSON output,
/// 100 MB.
pub const TILE_ENTRIES_MAX: u64 = 1_000_000;

/// Objects of each set a vector task's creation counts (from the descriptor index) to
/// check its tiles; a larger set is checked again by its planner.
pub const OBJECTS_COUNTED_AT_CREATION_MAX: usize = 100_000;

/// The error of a task over a cap: what, how many, the cap, and what to change.
pub fn exceeded(what: &str, value: u64, cap: u64, hint: &str) -> ApiError {
    ApiError::new(
        ErrorCode::TaskLimitExceeded,
        format!("the task would have {value} {what}; at most {cap} are allowed: {hint}"),
    )
}

/// Checks the subtasks of a task: `planned` already, `more` about to be.
pub fn check_subtasks(planned: u64, more: u64) -> Result<(), ApiError> {
    let total = planned.saturating_add(more);
    if total > SUBTASKS_PER_TASK_MAX {
        return Err(exceeded(
            "subtasks",
            total,
            SUBTASKS_PER_TASK_MAX,
            "give larger parts or blocks, or narrow the filters",
        ));
    }
    Ok(())
}

/// Whether a planner listing ids goes on after its `listed`-th: it stops one past
/// [`OBJECTS_PER_SET_MAX`], so that [`check_objects`] fails before any part is built.
pub fn keep_listing(listed: usize) -> std::ops::ControlFlow<()> {
    if listed > OBJECTS_PER_SET_MAX {
        std::ops::ControlFlow::Break(())
    } else {
        std::ops::ControlFlow::Continue(())
    }
}

/// Checks the objects a planner listed for one set (it stops listing one past the cap).
pub fn check_objects(listed: usize) -> Result<(), ApiError> {
    if listed > OBJECTS_PER_SET_MAX {
        return Err(ApiError::new(
            ErrorCode::TaskLimitExceeded,
            format!(
                "the task selects more than {OBJECTS_PER_SET_MAX} objects in one set; at most \
                 {OBJECTS_PER_SET_MAX} are allowed: narrow the filters"
            ),
        ));
    }
    Ok(())
}

/// Checks the entries a merge holds.
pub fn check_result_entries(entries: u64, hint: &str) -> Result<(), ApiError> {
    if entries > RESULT_ENTRIES_MAX {
        return Err(exceeded(
            "result entries",
            entries,
            RESULT_ENTRIES_MAX,
            hint,
        ));
    }
    Ok(())
}

/// Checks the neighbours one match subtask keeps: `per_block` rows × `limit`.
pub fn check_tile_entries(per_block: usize, limit: usize) -> Result<(), ApiError> {
    let entries = (per_block as u64).saturating_mul(limit as u64);
    if entries > TILE_ENTRIES_MAX {
        return Err(exceeded(
            &format!(
                "neighbours in one match subtask (objects_per_block {per_block} × limit {limit})"
            ),
            entries,
            TILE_ENTRIES_MAX,
            &format!(
                "lower objects_per_block to {} or less, or lower limit",
                TILE_ENTRIES_MAX / limit.max(1) as u64
            ),
        ));
    }
    Ok(())
}

/// `objects_per_block` unless the content gives one: `default`, or smaller when `limit`
/// is large, so that a tile's neighbours stay within [`TILE_ENTRIES_MAX`].
pub fn default_objects_per_block(default: usize, limit: usize) -> usize {
    default.min((TILE_ENTRIES_MAX / limit.max(1) as u64) as usize)
}

/// Chunks of at most `size` that `count` items make.
pub fn chunks(count: u64, size: usize) -> u64 {
    count.div_ceil(size.max(1) as u64)
}

/// How a vector task pairs its blocks into match tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileShape {
    /// Every block of set 0 against every block of set 1 (cross match).
    Cross,
    /// Every block of the one set against every block of it, itself included (ROC).
    Square,
    /// Every pair of blocks i ≤ j of the one set (clustering).
    Pairs,
}

impl TileShape {
    /// Tiles over sets of `blocks` blocks each.
    pub fn tiles(self, blocks: &[u64]) -> u64 {
        let first = blocks.first().copied().unwrap_or(0);
        match self {
            TileShape::Cross => first.saturating_mul(blocks.get(1).copied().unwrap_or(0)),
            TileShape::Square => first.saturating_mul(first),
            TileShape::Pairs => first.saturating_mul(first.saturating_add(1)) / 2,
        }
    }
}

/// What a vector kind's plan is made of, for checking it against the caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VectorPlan {
    /// How blocks pair into tiles.
    pub shape: TileShape,
    /// Objects per block.
    pub per_block: usize,
    /// Result entries per object of set 0: `limit` for the top-k kinds, 1 for clustering.
    pub entries_per_object: u64,
}

impl VectorPlan {
    /// Checks the plan over sets of `objects` each (in set order) beside `planned`
    /// subtasks: its tiles, its subtasks (a collect subtask per block, one per tile) and
    /// its result entries.
    pub fn check(&self, objects: &[u64], planned: u64) -> Result<(), ApiError> {
        let blocks: Vec<u64> = objects.iter().map(|&n| chunks(n, self.per_block)).collect();
        check_tiles(self.shape, &blocks)?;
        let tiles = self.shape.tiles(&blocks);
        check_subtasks(planned, blocks.iter().sum::<u64>().saturating_add(tiles))?;
        let first = objects.first().copied().unwrap_or(0);
        check_result_entries(
            first.saturating_mul(self.entries_per_object),
            "narrow the filters or lower limit",
        )
    }
}

/// Checks the tiles of sets of `blocks` blocks each.
pub fn check_tiles(shape: TileShape, blocks: &[u64]) -> Result<(), ApiError> {
    let tiles = shape.tiles(blocks);
    if tiles > TILES_PER_TASK_MAX {
        let sides = blocks
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" and ");
        return Err(exceeded(
            &format!("match tiles ({sides} blocks)"),
            tiles,
            TILES_PER_TASK_MAX,
            "raise objects_per_block or narrow the filters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_follow_the_shape_of_the_task() {
        assert_eq!(TileShape::Cross.tiles(&[3, 4]), 12);
        assert_eq!(TileShape::Square.tiles(&[3]), 9);
        assert_eq!(TileShape::Pairs.tiles(&[3]), 6);
        assert_eq!(TileShape::Cross.tiles(&[]), 0);
    }

    fn plan(shape: TileShape, per_block: usize) -> VectorPlan {
        VectorPlan {
            shape,
            per_block,
            entries_per_object: 1,
        }
    }

    /// Creation skips counting when the largest counts pass (`vectors::check_at_creation`):
    /// sound only if a plan that passes for some counts passes for any smaller ones.
    #[test]
    fn fewer_objects_never_break_a_plan_that_more_objects_pass() {
        let counts = [
            0u64, 1, 999, 1_000, 4_999, 5_001, 99_999, 100_000, 5_000_001,
        ];
        for shape in [TileShape::Cross, TileShape::Square, TileShape::Pairs] {
            for per_block in [1, 7, 1_000, 5_000] {
                for entries_per_object in [1, 10, 1_000] {
                    let plan = VectorPlan {
                        shape,
                        per_block,
                        entries_per_object,
                    };
                    for &a in &counts {
                        for &b in &counts {
                            for &(c, d) in &[(a, b), (a.min(b), b), (a, a.min(b))] {
                                if plan.check(&[a, b], 0).is_ok() {
                                    assert!(
                                        plan.check(&[c, d], 0).is_ok(),
                                        "{c},{d} under {a},{b}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_plan_over_the_tile_cap_names_its_tiles_and_the_cap() {
        let err = plan(TileShape::Cross, 1).check(&[101, 101], 0).unwrap_err();
        assert_eq!(err.code, ErrorCode::TaskLimitExceeded);
        assert!(err.detail.contains("10201 match tiles"), "{}", err.detail);
        assert!(err.detail.contains("at most 10000"), "{}", err.detail);
        assert!(plan(TileShape::Pairs, 1).check(&[101], 0).is_ok());
        assert!(plan(TileShape::Square, 5_000).check(&[100_000], 0).is_ok());
        assert!(plan(TileShape::Square, 1).check(&[100_000], 0).is_err());
    }

    #[test]
    fn result_entries_count_the_first_set_times_the_limit() {
        let top_k = VectorPlan {
            entries_per_object: 1_000,
            ..plan(TileShape::Cross, 1_000)
        };
        assert!(top_k.check(&[5_000, 1_000], 0).is_ok());
        let err = top_k.check(&[5_001, 1], 0).unwrap_err();
        assert!(
            err.detail.contains("5001000 result entries"),
            "{}",
            err.detail
        );
        assert!(check_objects(OBJECTS_PER_SET_MAX).is_ok());
        assert!(check_objects(OBJECTS_PER_SET_MAX + 1).is_err());
    }

    #[test]
    fn subtasks_count_over_every_stage() {
        assert!(check_subtasks(99_000, 1_000).is_ok());
        let err = check_subtasks(99_000, 1_001).unwrap_err();
        assert!(err.detail.contains("100001 subtasks"), "{}", err.detail);
        assert!(check_subtasks(u64::MAX, 1).is_err());
        // 5,002 blocks and 10,000 tiles fit, unless 90,000 subtasks were planned before.
        assert!(plan(TileShape::Cross, 1).check(&[5_000, 2], 0).is_ok());
        assert!(
            plan(TileShape::Cross, 1)
                .check(&[5_000, 2], 90_000)
                .is_err()
        );
    }

    #[test]
    fn tile_entries_bound_blocks_and_limit() {
        assert!(check_tile_entries(10_000, 100).is_ok());
        let err = check_tile_entries(10_000, 1_000).unwrap_err();
        assert!(err.detail.contains("10000000"), "{}", err.detail);
        assert!(err.detail.contains("to 1000 or less"), "{}", err.detail);
        assert_eq!(default_objects_per_block(5_000, 10), 5_000);
        assert_eq!(default_objects_per_block(5_000, 1_000), 1_000);
    }
}
