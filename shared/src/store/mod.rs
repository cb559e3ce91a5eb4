//! Persistence. Every record lives in one DynamoDB table (`FANOUT_TABLE`), keyed so that
//! each read the API makes is a `GetItem` or a `Query` on one partition — never a scan.
//!
//! Access patterns (item keys in [`keys`]):
//!
//! | pattern | operation |
//! |---|---|
//! | face / list / event by id | `GetItem pk=FACE#id, sk=FACE` (resp. `LIST#`, `EVENT#`) |
//! | faces / lists / events of an account, newest first, create-time range | `Query gsi1 gsi1pk=ACC#<account>#FACE, gsi1sk BETWEEN <gte> AND <lt>` |
//! | faces of a list | `Query pk=LIST#id, sk begins_with FACE#` |
//! | lists of a face | `Query gsi1 gsi1pk=FACELISTS#<face_id>` |
//! | several faces by id | `BatchGetItem` in chunks of 100 |
//!
//! Filters beyond the key condition are applied to the items of that one partition.

pub mod archive;
pub mod blobs;
pub mod dynamo;
pub mod keys;
pub mod lease;
pub mod multipart;
pub mod queues;
pub mod unzip;

pub use dynamo::{Item, KeyRange, Table, TableQuery};
