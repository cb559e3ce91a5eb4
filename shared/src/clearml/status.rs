//! ClearML's task statuses and the changes allowed between them without `force`
//! (clearml-server `bll/task/utils.py`, seed 002).

use super::error::{ClearmlError, Result};

/// A task's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// A draft.
    Created,
    /// Waiting in a queue.
    Queued,
    /// Running.
    InProgress,
    /// Aborted.
    Stopped,
    /// Being published.
    Publishing,
    /// Published: final.
    Published,
    /// Closed.
    Closed,
    /// Failed.
    Failed,
    /// Completed.
    Completed,
    /// Unknown: not in the state machine (every non-forced change from it is refused).
    Unknown,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 10] = [
        Status::Created,
        Status::Queued,
        Status::InProgress,
        Status::Stopped,
        Status::Publishing,
        Status::Published,
        Status::Closed,
        Status::Failed,
        Status::Completed,
        Status::Unknown,
    ];

    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Queued => "queued",
            Status::InProgress => "in_progress",
            Status::Stopped => "stopped",
            Status::Publishing => "publishing",
            Status::Published => "published",
            Status::Closed => "closed",
            Status::Failed => "failed",
            Status::Completed => "completed",
            Status::Unknown => "unknown",
        }
    }

    /// The status named `name`.
    pub fn parse(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.name() == name)
    }

    /// The statuses a task in this one may move to without `force` (besides itself).
    pub fn next(self) -> &'static [Status] {
        use Status::*;
        match self {
            Created => &[Queued, InProgress],
            Queued => &[Created, InProgress, Stopped],
            InProgress => &[Stopped, Failed, Created, Completed],
            Stopped => &[
                Closed, Created, Failed, Queued, InProgress, Published, Publishing, Completed,
            ],
            Closed => &[Created, Failed, Published, Publishing, Stopped],
            Failed => &[Created, Stopped, Published, Queued],
            Publishing => &[Published],
            Published => &[],
            Completed => &[Published, InProgress, Created],
            Unknown => &[],
        }
    }
}

/// Whether a task in `from` may become `to`: always with `force`, always to the same
/// status, else as [`Status::next`] says.
pub fn allowed(from: Status, to: Status, force: bool) -> bool {
    force || from == to || from.next().contains(&to)
}

/// [`allowed`], or 400/110 naming both statuses.
pub fn check(from: Status, to: Status, force: bool) -> Result<()> {
    if allowed(from, to, force) {
        Ok(())
    } else {
        Err(ClearmlError::invalid_status_change(from.name(), to.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Status::*;

    /// The table of clearml_wire.md §3, row by row.
    #[test]
    fn the_table_of_the_state_machine() {
        let table: &[(Status, &[Status])] = &[
            (Created, &[Queued, InProgress]),
            (Queued, &[Created, InProgress, Stopped]),
            (InProgress, &[Stopped, Failed, Created, Completed]),
            (
                Stopped,
                &[
                    Closed, Created, Failed, Queued, InProgress, Published, Publishing, Completed,
                ],
            ),
            (Closed, &[Created, Failed, Published, Publishing, Stopped]),
            (Failed, &[Created, Stopped, Published, Queued]),
            (Publishing, &[Published]),
            (Published, &[]),
            (Completed, &[Published, InProgress, Created]),
        ];
        for (from, to) in table {
            for target in Status::ALL {
                let expected = to.contains(&target) || target == *from;
                assert_eq!(
                    allowed(*from, target, false),
                    expected,
                    "{from:?} -> {target:?}"
                );
                assert!(
                    allowed(*from, target, true),
                    "forced {from:?} -> {target:?}"
                );
            }
        }
    }

    #[test]
    fn notable_refusals_and_same_state_changes() {
        // completed -> queued needs a reset first; failed -> in_progress needs force.
        let err = check(Completed, Queued, false).unwrap_err();
        assert_eq!((err.code, err.subcode), (400, 110));
        assert_eq!(err.data["current_status"], "completed");
        assert_eq!(err.data["new_status"], "queued");
        assert!(check(Failed, InProgress, false).is_err());
        assert!(check(Created, Stopped, false).is_err());
        assert!(check(Published, Created, false).is_err());
        // Same-state changes (tasks.started on a running task, stop's "stopping").
        for s in Status::ALL {
            assert!(allowed(s, s, false), "{s:?}");
        }
        // Unknown goes nowhere without force.
        assert!(!allowed(Unknown, Created, false));
        assert!(allowed(Unknown, Created, true));
    }

    #[test]
    fn names_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.name()), Some(s));
        }
        assert_eq!(Status::parse("running"), None);
    }
}
