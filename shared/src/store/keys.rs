//! Key layout of the single table: partition and sort keys of each item kind.

use uuid::Uuid;

/// Sort key of an object's own item.
pub const FACE_SK: &str = "FACE";
/// Sort key of a list's own item.
pub const LIST_SK: &str = "LIST";
/// Sort key of an event's own item.
pub const EVENT_SK: &str = "EVENT";
/// Name of the secondary index (account listings, lists of a face).
pub const GSI1: &str = "gsi1";

/// Partition key of a face.
pub fn face_pk(face_id: Uuid) -> String {
    format!("FACE#{face_id}")
}

/// Partition key of a list (its item and its memberships).
pub fn list_pk(list_id: Uuid) -> String {
    format!("LIST#{list_id}")
}

/// Sort key of a face's membership in a list.
pub fn membership_sk(face_id: Uuid) -> String {
    format!("FACE#{face_id}")
}

/// Partition key of an event.
pub fn event_pk(event_id: Uuid) -> String {
    format!("EVENT#{event_id}")
}

/// Index partition of one kind of object of one account.
pub fn account_partition(account_id: Uuid, kind: &str) -> String {
    format!("ACC#{account_id}#{kind}")
}

/// Index partition of the memberships of one face.
pub fn face_lists_partition(face_id: Uuid) -> String {
    format!("FACELISTS#{face_id}")
}

/// Index sort key ordering objects by creation time, then id.
pub fn time_sort_key(create_time: &str, id: Uuid) -> String {
    format!("{create_time}#{id}")
}
