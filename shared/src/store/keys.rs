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

/// Name of the third index: objects that carry a descriptor, keys only. The vector kinds
/// list the ids of a set through it without reading the descriptors (a page of the account
/// index holds ~400 faces with 512-float descriptors; a page of this one ~6,000 ids).
pub const GSI3: &str = "gsi3";

/// Index partition of the objects of one kind and account with a descriptor of `version`.
pub fn descriptor_partition(account_id: Uuid, kind: &str, version: u32) -> String {
    format!("ACC#{account_id}#{kind}#DESC#{version}")
}

/// The descriptor-index keys of an object: its partition and the same time-ordered sort key
/// as its account listing, or none when it has no descriptor (the index is sparse).
pub fn descriptor_index(
    account_id: Uuid,
    kind: &str,
    version: Option<u32>,
    time_sort_key: &str,
) -> (Option<String>, Option<String>) {
    match version {
        Some(v) => (
            Some(descriptor_partition(account_id, kind, v)),
            Some(time_sort_key.to_string()),
        ),
        None => (None, None),
    }
}

/// Name of the second index (every task, every task error).
pub const GSI2: &str = "gsi2";
/// Sort key of a task's own item.
pub const TASK_SK: &str = "TASK";
/// Index partition of every task error, by id.
pub const ALL_ERRORS: &str = "ERRORS";
/// Partition of the markers of tasks that have not ended (read by the reconciler).
pub const ACTIVE_TASKS: &str = "ACTIVE";
/// Partition of the id counters.
pub const COUNTERS: &str = "COUNTER";
/// Partition of the expiry markers of task results with a TTL (read by the reconciler).
pub const RESULT_EXPIRY: &str = "EXPIRY";

/// Partition of the sweep markers of deleted tasks: their S3 prefix is deleted once more
/// when the marker is due (read by the reconciler by time, like the expiry markers).
pub const SWEEPS: &str = "SWEEP";

/// Partition of the leases (one item per lease, see `store::lease`).
pub const LEASES: &str = "LEASE";
/// The lease a reconciler pass holds while it runs.
pub const RECONCILER_LEASE: &str = "RECONCILER";

/// Partition of the listing entries of the tasks of one account (`Some`) or of every
/// account (`None`), sorted by padded task id. An entry is a small item written with its
/// task and never changed: the task item itself carries no index keys, so the writes of
/// a running task (each subtask's count, every heartbeat) touch no index and no shared
/// partition.
pub fn task_listing(account_id: Option<Uuid>) -> String {
    match account_id {
        Some(account_id) => format!("TASKLIST#{account_id}"),
        None => "TASKLIST#ALL".to_string(),
    }
}

/// A task or error id, zero-padded so that string order is number order.
pub fn padded_id(id: u64) -> String {
    format!("{id:020}")
}

/// Partition key of a task: its item, its subtasks and its errors.
pub fn task_pk(task_id: u64) -> String {
    format!("TASK#{}", padded_id(task_id))
}

/// Sort key of a subtask in its task's partition.
pub fn subtask_sk(subtask_id: u32) -> String {
    format!("SUB#{subtask_id:010}")
}

/// Sort key of a task error in its task's partition.
pub fn error_sk(error_id: u64) -> String {
    format!("ERR#{}", padded_id(error_id))
}

/// Sort key of the mark of one recorded object error in its task's partition (see
/// `tasks::store::record_object_errors`): `mark` is derived from what the error is about,
/// so a repeated write of the same error finds the mark and records nothing.
pub fn error_mark_sk(mark: Uuid) -> String {
    format!("ERRMARK#{mark}")
}

/// Sort key of a task's marker in the active-task partition.
pub fn active_sk(task_id: u64) -> String {
    format!("TASK#{}", padded_id(task_id))
}

/// Sort key of a result's expiry marker: the expiry time first, so that the markers due
/// by a time are one key range.
pub fn expiry_sk(expire_time: &str, task_id: u64) -> String {
    format!("{expire_time}#{}", padded_id(task_id))
}

/// Partition of an account's `Idempotency-Key` of `POST /1/events`: one item remembering
/// the request the key was first used with.
pub fn idempotency_pk(account_id: Uuid, key: &str) -> String {
    format!("IDEMPOTENCY#{account_id}#{key}")
}

/// Sort key of the record of an idempotency key of `POST /1/events`.
pub const IDEMPOTENCY_EVENTS_SK: &str = "EVENTS";

/// Sort key of a face's own record of its membership in a list, in the face's partition:
/// the lists of a face read with a consistent query there, which the index cannot give.
pub fn face_membership_sk(list_id: Uuid) -> String {
    format!("LIST#{list_id}")
}

/// Sort-key prefix of a face's membership records in its partition.
pub const FACE_MEMBERSHIP_PREFIX: &str = "LIST#";

/// Sort key of an account's item.
pub const ACCOUNT_SK: &str = "ACCOUNT";

/// Index partition listing every account.
pub const ACCOUNTS_LISTING: &str = "ACCOUNTS";

/// Partition key of an account.
pub fn account_pk(account_id: Uuid) -> String {
    format!("ACCOUNT#{account_id}")
}

/// Sort key of a token's item.
pub const TOKEN_SK: &str = "TOKEN";

/// Partition key of a token (its secret's hash, owner and permissions).
pub fn token_pk(token_id: Uuid) -> String {
    format!("TOKEN#{token_id}")
}

/// Partition key of a token's request counters (one item per minute window).
pub fn rate_pk(token_id: Uuid) -> String {
    format!("RATE#{token_id}")
}

/// Partition key of the signing key of the JWTs the ClearML surface issues.
pub const CLEARML_KEY_PK: &str = "CLEARML#KEY";
/// Sort key of the JWT signing key.
pub const CLEARML_KEY_SK: &str = "JWT";

/// Sort key of a ClearML record's own item (task, project, queue).
pub const CLEARML_DOC_SK: &str = "DOC";

/// Partition of the watchdog's markers: one per running ClearML task of any account
/// (sort key: the task's partition key).
pub const CLEARML_RUNNING: &str = "CMRUNNING";

/// Partition of the sweep's markers: one per ClearML queue Fanout's workers serve, of
/// any account (sort key: the queue's partition key).
pub const CLEARML_SERVED: &str = "CMSERVED";

/// Partition key of a ClearML task (`id`: 32 hex characters).
pub fn clearml_task_pk(task_id: &str) -> String {
    format!("CMTASK#{task_id}")
}

/// Partition key of a ClearML project.
pub fn clearml_project_pk(project_id: &str) -> String {
    format!("CMPROJECT#{project_id}")
}

/// Partition key of a ClearML queue (its entries are in its item).
pub fn clearml_queue_pk(queue_id: &str) -> String {
    format!("CMQUEUE#{queue_id}")
}

/// Partition key of the marker that holds a name of an account's projects or queues
/// (`kind`: `PROJECT`, `QUEUE`), so that two records never take one name.
pub fn clearml_name_pk(account_id: Uuid, kind: &str, name: &str) -> String {
    format!("CMNAME#{account_id}#{kind}#{name}")
}

/// Sort key of a name marker.
pub const CLEARML_NAME_SK: &str = "NAME";

/// Partition of an account's ClearML workers (sort key: the worker id).
pub fn clearml_workers_pk(account_id: Uuid) -> String {
    format!("CMWORKERS#{account_id}")
}

/// Partition of a ClearML queue's metrics points (sort key: time and a suffix).
pub fn clearml_queue_metrics_pk(queue_id: &str) -> String {
    format!("CMQMETRICS#{queue_id}")
}

/// Partition of the status reports of an account's ClearML workers (sort key: time and
/// the worker id).
pub fn clearml_worker_stats_pk(account_id: Uuid) -> String {
    format!("CMWSTATS#{account_id}")
}

/// Partition of a ClearML task's events (logs, scalars): one item per stored batch.
pub fn clearml_events_pk(task_id: &str) -> String {
    format!("CMEVENTS#{task_id}")
}

/// Sort key of a batch of events of one kind (`LOG`, `METRIC`): its first timestamp
/// (ms, zero-padded) and a unique suffix, so a partition reads in time order.
pub fn clearml_events_sk(kind: &str, timestamp_ms: i64, suffix: &str) -> String {
    format!("{kind}#{:020}#{suffix}", timestamp_ms.max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_ids_sort_like_numbers() {
        assert!(padded_id(9) < padded_id(10));
        assert!(subtask_sk(99) < subtask_sk(100));
        assert!(task_pk(u64::MAX).len() == task_pk(1).len());
    }
}
