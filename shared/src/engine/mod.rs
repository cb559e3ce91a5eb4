//! The task engine: one lifecycle for every kind.
//!
//! ```text
//! POST /1/tasks/<kind>  validate, store task (0 pending) + active marker + listing
//!                       entries in one transaction, send Plan{0}
//! control queue         Plan{s}:    kind.plan(s) -> plan in S3, claimed on the task (status
//!                                   1, counters) by one conditional write; subtask items
//!                                   written only if absent; one work message per subtask
//! work queue            subtask:    kind.execute -> output in the subtask item (S3 when
//!                                   over 16 KiB); then two writes: the subtask ended (only
//!                                   if still pending), and its count on the task (only in
//!                                   the same stage and count epoch); whoever counts the
//!                                   last sends Advance
//! control queue         Advance{s}: Plan{s+1}, or when the kind has no stage s+1: status 4,
//!                                   kind.merge -> result in S3, status 5 (only from 4)
//! reconciler            (one pass at a time, by lease) recounts and drives on tasks whose
//!                       last step was lost, turns dead-lettered messages into error
//!                       records, expires results, sweeps the prefixes of deleted tasks
//! ```
//!
//! A crash between the two writes of a subtask's end leaves it ended but uncounted: the
//! reconciler recounts the stage from the subtask items and moves the count epoch, so a
//! late count of a subtask the recount included is refused. Status changes all go through
//! `tasks::store::status_move` and its transition table (`TaskStatus::sources`).
//!
//! Every step is idempotent: a control message handled twice finds its work done, a
//! subtask message delivered twice finds its subtask no longer pending, and status
//! changes are conditional writes, so at most one of several racing workers wins each.

pub mod control;
pub mod messages;
pub mod reconcile;
pub mod work;

use uuid::Uuid;

use crate::error::{ApiError, ErrorCode};

/// Namespace of the ids Fanout derives from other ids (result ids, created lists).
pub const ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1e_2d4a_8c3b_4e5f_9a0b_1c2d_3e4f_5a6b);

/// Whether an error may go away by itself (a dependency failing), so the step is
/// worth another attempt; any other error is about the data and fails the step for good.
pub fn is_transient(err: &ApiError) -> bool {
    matches!(
        err.code,
        ErrorCode::Internal | ErrorCode::DependencyUnavailable
    )
}

/// The result id of a task: derived from the task id, so a repeated merge names the
/// same result.
pub fn result_id(task_id: u64) -> Uuid {
    Uuid::new_v5(&ID_NAMESPACE, format!("task/{task_id}/result").as_bytes())
}

/// The result id of a subtask's stored output: derived from the task and subtask ids, so
/// every listing names the same output (and never a task's result).
pub fn subtask_result_id(task_id: u64, subtask_id: u32) -> Uuid {
    Uuid::new_v5(
        &ID_NAMESPACE,
        format!("task/{task_id}/subtask/{subtask_id}/result").as_bytes(),
    )
}
