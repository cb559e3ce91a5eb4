//! Tasks as the API sees them: creation, the read and control routes, task errors.
//!
//! Access patterns (keys in [`crate::store::keys`]); none scans the table:
//!
//! | pattern | operation |
//! |---|---|
//! | next task / error id | `UpdateItem pk=COUNTER sk=TASK` (`ADD value 1`, returns the new value) |
//! | task by id | `GetItem pk=TASK#<id> sk=TASK` |
//! | tasks of an account, newest first | `Query gsi1 gsi1pk=ACC#<account>#TASK`, descending |
//! | every task, newest first | `Query gsi2 gsi2pk=TASKS`, descending |
//! | tasks by ids | `BatchGetItem` |
//! | subtasks of a task | `Query pk=TASK#<id> begins_with(sk, SUB#)` |
//! | errors of a task | `Query pk=TASK#<id> begins_with(sk, ERR#)` |
//! | errors of an account | `Query gsi1 gsi1pk=ACC#<account>#ERROR`, descending |
//! | every error | `Query gsi2 gsi2pk=ERRORS`, descending |
//! | error by id | `Query gsi2 gsi2pk=ERRORS AND gsi2sk=<id>` |
//! | tasks that have not ended (reconciler) | `Query pk=ACTIVE` |
//! | delete a task | `Query pk=TASK#<id>` then `BatchWriteItem` deletes |
//!
//! Other filters are applied to the items of the one partition read.

pub mod api;
pub mod model;
pub mod store;
