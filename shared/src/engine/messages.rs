//! The bodies of the engine's SQS messages (JSON).

use serde::{Deserialize, Serialize};

use crate::Services;
use crate::error::ApiError;
use crate::store::queues;

/// A task-level step, on the control queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum ControlMessage {
    /// Plan stage `stage` (and queue its subtasks).
    Plan {
        /// Task.
        task_id: u64,
        /// Stage to plan.
        stage: u32,
    },
    /// Stage `stage` may be complete: plan the next one or merge.
    Advance {
        /// Task.
        task_id: u64,
        /// Stage that ended.
        stage: u32,
    },
    /// Build the result of a task in status 4.
    Merge {
        /// Task.
        task_id: u64,
    },
}

impl ControlMessage {
    /// The task the step is about.
    pub fn task_id(&self) -> u64 {
        match self {
            ControlMessage::Plan { task_id, .. }
            | ControlMessage::Advance { task_id, .. }
            | ControlMessage::Merge { task_id } => *task_id,
        }
    }
}

/// One subtask to run, on the work queue. The content stays in the subtask's item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkMessage {
    /// Task.
    pub task_id: u64,
    /// Subtask.
    pub subtask_id: u32,
    /// Stage of the subtask.
    pub stage: u32,
}

/// Sends a control message.
pub async fn send_control(svc: &Services, message: &ControlMessage) -> Result<(), ApiError> {
    let body =
        serde_json::to_string(message).map_err(|e| ApiError::internal("control message", e))?;
    queues::send(svc, &svc.config.control_queue_url, body).await
}

/// Sends work messages, ten per call.
pub async fn send_work(svc: &Services, messages: &[WorkMessage]) -> Result<(), ApiError> {
    let bodies: Vec<String> = messages
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<_, _>>()
        .map_err(|e| ApiError::internal("work message", e))?;
    queues::send_all(svc, &svc.config.work_queue_url, &bodies).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_small_tagged_json() {
        let plan = ControlMessage::Plan {
            task_id: 7,
            stage: 0,
        };
        let text = serde_json::to_string(&plan).unwrap();
        assert_eq!(text, r#"{"step":"plan","task_id":7,"stage":0}"#);
        assert_eq!(serde_json::from_str::<ControlMessage>(&text).unwrap(), plan);
        let work = WorkMessage {
            task_id: 7,
            subtask_id: 3,
            stage: 0,
        };
        let back: WorkMessage =
            serde_json::from_str(&serde_json::to_string(&work).unwrap()).unwrap();
        assert_eq!(back, work);
    }
}
