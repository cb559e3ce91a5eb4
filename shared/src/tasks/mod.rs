//! Tasks as the API sees them: creation, the read and control routes, task errors.
//!
//! Access patterns (keys in [`crate::store::keys`]); none scans the table:
//!
//! | pattern | operation |
//! |---|---|
//! | next task / error id | `UpdateItem pk=COUNTER sk=TASK` (`ADD value 1`, returns the new value) |
//! | task by id | `GetItem pk=TASK#<id> sk=TASK` |
//! | tasks of an account, newest first | `Query pk=TASKLIST#<account>` descending, a page of 100 entries at a time, then `BatchGetItem` of their tasks |
//! | every task, newest first | `Query pk=TASKLIST#ALL` the same way |
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
//!
//! The task item carries no index keys: a running task's item is written for every subtask
//! counted and every heartbeat, and an index projecting it would be written (and billed)
//! each time, all tasks in one index partition. Its listing entries are small items
//! written once with the task (in the creation transaction) and deleted with it.

pub mod api;
pub mod model;
pub mod store;
