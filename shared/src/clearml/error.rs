//! ClearML's errors: an HTTP code, a subcode and a message, with structured data
//! (`apiserver/apierrors/errors.conf` numbering). The HTTP status of the answer is the
//! code, as the clients expect.

use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// One ClearML error.
#[derive(Debug, Clone, PartialEq)]
pub struct ClearmlError {
    /// `meta.result_code`, and the HTTP status.
    pub code: u16,
    /// `meta.result_subcode`.
    pub subcode: u32,
    /// `meta.result_msg`.
    pub msg: String,
    /// `meta.error_data`.
    pub data: Map<String, Value>,
}

/// A ClearML call's result.
pub type Result<T> = std::result::Result<T, ClearmlError>;

impl ClearmlError {
    /// An error without data.
    pub fn new(code: u16, subcode: u32, msg: impl Into<String>) -> ClearmlError {
        ClearmlError {
            code,
            subcode,
            msg: msg.into(),
            data: Map::new(),
        }
    }

    /// The same error with `data` (an object) as its `error_data`.
    pub fn with_data(mut self, data: Value) -> ClearmlError {
        if let Value::Object(map) = data {
            self.data = map;
        }
        self
    }

    /// 400/11: a required field is missing.
    pub fn missing(field: &str) -> ClearmlError {
        ClearmlError::new(400, 11, format!("Missing required fields: {field}"))
            .with_data(json!({"missing": [field]}))
    }

    /// 400/12: the request does not validate.
    pub fn validation(msg: impl Into<String>) -> ClearmlError {
        ClearmlError::new(400, 12, format!("Validation error: {}", msg.into()))
    }

    /// 400/101: no such task (or another account's).
    pub fn invalid_task_id(id: &str) -> ClearmlError {
        ClearmlError::new(400, 101, format!("Invalid task id: id={id}"))
            .with_data(json!({"id": id}))
    }

    /// 400/110: a status change the state machine does not allow.
    pub fn invalid_status_change(current: &str, new: &str) -> ClearmlError {
        ClearmlError::new(
            400,
            110,
            format!("Invalid task status: Invalid status change (current_status={current}, new_status={new})"),
        )
        .with_data(json!({"current_status": current, "new_status": new}))
    }

    /// 400/110 with an expected status (edit of a task that is not `created`).
    pub fn invalid_status(msg: impl Into<String>, status: &str, expected: &str) -> ClearmlError {
        ClearmlError::new(400, 110, format!("Invalid task status: {}", msg.into()))
            .with_data(json!({"status": status, "expected": expected}))
    }

    /// 400/121: the task's status changed between the read and the write.
    pub fn failed_changing_status(id: &str, current: &str, new: &str) -> ClearmlError {
        ClearmlError::new(
            400,
            121,
            "Failed to change task status. Please retry (probably someone changed it before you)",
        )
        .with_data(json!({"task_id": id, "current_status": current, "new_status": new}))
    }

    /// 400/123: delete of a task that is neither `created` nor archived, without force.
    pub fn cannot_delete(id: &str, status: &str) -> ClearmlError {
        ClearmlError::new(
            400,
            123,
            format!(
                "Task cannot be deleted: due to status, use force=True (id={id}, status={status})"
            ),
        )
    }

    /// 400/201: no such project.
    pub fn invalid_project_id(id: &str) -> ClearmlError {
        ClearmlError::new(400, 201, format!("Invalid project id: id={id}"))
            .with_data(json!({"id": id}))
    }

    /// 400/12: a project or queue name the account uses already.
    pub fn name_taken(kind: &str, name: &str) -> ClearmlError {
        ClearmlError::validation(format!(
            "{kind} with the same name already exists: name={name}"
        ))
        .with_data(json!({"name": name}))
    }

    /// 400/701: no such queue.
    pub fn invalid_queue_id(id: &str) -> ClearmlError {
        ClearmlError::new(400, 701, format!("Invalid queue id: queue={id}"))
            .with_data(json!({"queue": id}))
    }

    /// 400/702: delete of a queue that holds tasks, without force.
    pub fn queue_not_empty(id: &str) -> ClearmlError {
        ClearmlError::new(400, 702, format!("Queue is not empty: queue={id}"))
    }

    /// 400/703: the task is not in the queue.
    pub fn task_not_queued(queue: &str, task: &str) -> ClearmlError {
        ClearmlError::new(
            400,
            703,
            format!("Invalid queue id or task not in queue: queue={queue}, task={task}"),
        )
        .with_data(json!({"queue": queue, "task": task}))
    }

    /// 400/706: the task is in the queue already.
    pub fn task_already_queued(queue: &str, task: &str) -> ClearmlError {
        ClearmlError::new(
            400,
            706,
            format!("Task already queued: queue={queue}, task={task}"),
        )
        .with_data(json!({"queue": queue, "task": task}))
    }

    /// 400/707: no default queue.
    pub fn no_default_queue() -> ClearmlError {
        ClearmlError::new(400, 707, "No queue was tagged as the default queue")
    }

    /// 400/1001: a worker id ClearML would not take.
    pub fn invalid_worker_id(id: &str) -> ClearmlError {
        ClearmlError::new(400, 1001, format!("Invalid worker id: worker={id}"))
    }

    /// 404/0: an endpoint the service does not have.
    pub fn unknown_endpoint(name: &str) -> ClearmlError {
        ClearmlError::new(
            404,
            0,
            format!("Unable to find endpoint for name {name} and version"),
        )
        .with_data(json!({"endpoint": name}))
    }

    /// 404 of an endpoint that answers "not found" for a record (workers'
    /// runtime properties).
    pub fn not_found(msg: impl Into<String>) -> ClearmlError {
        ClearmlError::new(404, 0, msg)
    }

    /// 405/0: a method other than GET, POST or PUT.
    pub fn method_not_allowed(method: &str) -> ClearmlError {
        ClearmlError::new(
            405,
            0,
            format!("Method {method} is not allowed: send GET, POST or PUT"),
        )
    }

    /// 500/0: an internal failure.
    pub fn internal(msg: impl Into<String>) -> ClearmlError {
        ClearmlError::new(500, 0, msg)
    }
}

impl From<ApiError> for ClearmlError {
    /// A Fanout error in ClearML's form: its HTTP status is the code, its description
    /// and detail the message, and Fanout's own error code travels in `error_data` (the
    /// refusals of authentication, permission, rate and size; internal failures).
    fn from(err: ApiError) -> ClearmlError {
        let status = err.status();
        let msg = if status >= 500 {
            err.code.desc().to_string()
        } else {
            format!("{}: {}", err.code.desc(), err.detail)
        };
        ClearmlError::new(status, 0, msg).with_data(json!({"error_code": err.code.code()}))
    }
}

impl std::fmt::Display for ClearmlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} {}", self.code, self.subcode, self.msg)
    }
}
