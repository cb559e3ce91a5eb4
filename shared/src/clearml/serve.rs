//! ClearML queues served by Fanout's own container workers, so a ClearML task runs on the
//! serverless stack with no `clearml-agent` anywhere.
//!
//! A queue with the system tag [`SERVED`] is served: every task pushed into it
//! (`tasks.enqueue`, `queues.add_task`) sends one [`RunMessage`] on the engine's work
//! queue. A worker that receives it acts as an agent for one task: it pops the queue's
//! head ([`claim`]: the same atomic pop as `queues.get_next_task`, so a duplicate
//! delivery or a message whose task was taken by an agent pops nothing or another task,
//! and no task runs twice), marks it started, runs its inline script, sends its output
//! as log events, pings it, watches for an abort, and ends it `completed`, `failed` or
//! `stopped` ([`finish`]). The process side lives in the workers crate; this module is
//! the ClearML side of each step, through the same functions the API calls run.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::Services;
use crate::auth::{AccountType, Caller, Permissions};
use crate::store::queues as sqs;

use super::args::Args;
use super::error::{ClearmlError, Result};
use super::{Ctx, docs, events, queues, tasks, workers};
use crate::store::keys;

/// The system tag of a queue Fanout's workers serve.
pub const SERVED: &str = "fanout";

/// What a served queue's push sends on the work queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunMessage {
    /// The queue to take one task from.
    pub clearml_run: Run,
}

/// One task to take from a served queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    /// The queue's account.
    pub account_id: Uuid,
    /// The queue.
    pub queue_id: String,
}

/// Whether a queue's document says Fanout's workers serve it.
pub fn is_served(queue: &Map<String, Value>) -> bool {
    docs::has_tag(queue, "system_tags", SERVED)
}

/// Seconds an entry may wait in a served queue before the sweep announces it again.
pub const SWEEP_AFTER_SECONDS: i64 = 300;
/// Most run messages the sweep sends for one queue in one pass.
const SWEEP_PER_QUEUE: usize = 100;

/// The reconciler's sweep of served queues, of every account: each entry that has
/// waited longer than `after` at `now` is announced once more (its first run message
/// may have been lost with a function killed between the push and the announcement;
/// a message too many pops nothing, or the next task sooner). Markers of queues gone or
/// no longer served go. Answers how many run messages it sent.
pub async fn sweep(
    svc: &Services,
    now: chrono::DateTime<chrono::Utc>,
    after: chrono::Duration,
) -> Result<usize> {
    let waited_since = now - after;
    let mut sent = 0;
    for (queue_pk, account, rev) in docs::markers(svc, keys::CLEARML_SERVED).await? {
        let doc = docs::get(svc, &queue_pk, account).await?;
        let Some(doc) = doc.filter(|d| is_served(&d.body)) else {
            docs::forget_marker(svc, keys::CLEARML_SERVED, &queue_pk, &rev).await?;
            continue;
        };
        let Some(queue_id) = doc.body.get("id").and_then(Value::as_str) else {
            continue;
        };
        let waiting = queues::entries(&doc.body)
            .iter()
            .filter_map(|e| e.get("added").and_then(Value::as_str))
            .filter_map(super::parse_iso)
            .filter(|added| *added < waited_since)
            .count()
            .min(SWEEP_PER_QUEUE);
        let ctx = worker_ctx(account);
        for _ in 0..waiting {
            announce(svc, &ctx, queue_id).await?;
            sent += 1;
        }
        if waiting > 0 {
            tracing::warn!(queue_id, %account, waiting, "served queue's waiting tasks announced again");
        }
    }
    Ok(sent)
}

/// Tells the workers that the served queue `queue_id` has one more task.
pub async fn announce(svc: &Services, ctx: &Ctx, queue_id: &str) -> Result<()> {
    let message = RunMessage {
        clearml_run: Run {
            account_id: ctx.account(),
            queue_id: queue_id.to_string(),
        },
    };
    let body =
        serde_json::to_string(&message).map_err(|e| ClearmlError::internal(e.to_string()))?;
    sqs::send(svc, &svc.config.work_queue_url, body).await?;
    Ok(())
}

/// The context a worker acts in for `account_id`: a caller of that account that may do
/// anything on the ClearML surface, whose changes are recorded as the worker's own user
/// (an id derived from the account, the same on every worker).
pub fn worker_ctx(account_id: Uuid) -> Ctx {
    Ctx::new(Caller {
        account_id,
        account_type: AccountType::User,
        token_id: Uuid::new_v5(&account_id, b"fanout clearml worker"),
        permissions: Permissions::all(),
        expiration_time: None,
    })
}

/// A task a worker took from a served queue.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The task's id.
    pub task_id: String,
    /// What runs it: a shell (`script.binary` naming one) or Python.
    pub shell: bool,
    /// The inline script (`script.diff`); `None` when the task has none (e.g. code in a
    /// repository), which a served queue does not run.
    pub script: Option<String>,
}

fn args(value: Value) -> Args {
    match value {
        Value::Object(map) => map,
        _ => Args::new(),
    }
}

/// Pops the head of the served queue and marks it started by `worker`; `None` when the
/// queue is empty (another worker or an agent took its tasks).
pub async fn claim(svc: &Services, run: &Run, worker: &str) -> Result<Option<Claimed>> {
    let ctx = worker_ctx(run.account_id);
    let popped = queues::get_next_task(svc, &ctx, args(json!({"queue": run.queue_id}))).await?;
    let Some(task_id) = popped
        .pointer("/entry/task")
        .and_then(Value::as_str)
        .map(String::from)
    else {
        return Ok(None);
    };
    tasks::started(
        svc,
        &ctx,
        args(
            json!({"task": task_id, "force": true, "status_message": "pulled by a Fanout worker"}),
        ),
    )
    .await?;
    report(svc, run.account_id, worker, Some(&task_id), &run.queue_id).await?;
    let task = tasks::load(svc, &ctx, &task_id).await?;
    let script = tasks::at_path(&task, "script.diff")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .map(String::from);
    let shell = tasks::at_path(&task, "script.binary")
        .and_then(Value::as_str)
        .is_some_and(|b| b.ends_with("sh"));
    Ok(Some(Claimed {
        task_id,
        shell,
        script,
    }))
}

/// A worker's status report on the task it runs (its `last_worker`, and the task's
/// heartbeat).
pub async fn report(
    svc: &Services,
    account_id: Uuid,
    worker: &str,
    task_id: Option<&str>,
    queue_id: &str,
) -> Result<()> {
    let ctx = worker_ctx(account_id);
    let mut body =
        json!({"worker": worker, "timestamp": ctx.now.timestamp_millis(), "queue": queue_id});
    if let Some(task) = task_id {
        body["task"] = task.into();
    }
    workers::status_report(svc, &ctx, args(body)).await?;
    Ok(())
}

/// Stores lines of the task's output as log events (`level` info, or error for stderr).
pub async fn log(
    svc: &Services,
    account_id: Uuid,
    task_id: &str,
    worker: &str,
    lines: &[(bool, String)],
) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let ctx = worker_ctx(account_id);
    let now = ctx.now.timestamp_millis();
    let requests: Vec<Value> = lines
        .iter()
        .map(|(error, line)| {
            json!({
                "type": "log", "task": task_id, "timestamp": now, "worker": worker,
                "level": if *error { "error" } else { "info" }, "msg": line,
            })
        })
        .collect();
    events::add_batch(svc, &ctx, args(json!({"requests": requests}))).await?;
    Ok(())
}

/// What a running task's document says the worker should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Go on running it.
    Run,
    /// Stop it and report it `stopped` (`tasks.stop` wrote `stopping`).
    Abort,
    /// Stop it and report nothing: its status was changed (or it was deleted) by
    /// someone else.
    Drop,
}

/// Reads the task's status as the agent does while it runs one.
pub async fn next(svc: &Services, account_id: Uuid, task_id: &str) -> Result<Next> {
    let ctx = worker_ctx(account_id);
    let task = match tasks::load(svc, &ctx, task_id).await {
        Ok(task) => task,
        Err(err) if err.code == 400 => return Ok(Next::Drop),
        Err(err) => return Err(err),
    };
    let status = task
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let message = task
        .get("status_message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Ok(match status {
        "in_progress" if message.contains("stopping") => Next::Abort,
        "in_progress" => Next::Run,
        _ => Next::Drop,
    })
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The process exited with 0.
    Completed,
    /// It exited with another code, was killed, ran out of time, or could not start.
    Failed(String),
    /// It was aborted through `tasks.stop`.
    Stopped,
}

/// Ends the task as the agent does, by `worker`; the worker's report then names no task.
pub async fn finish(
    svc: &Services,
    run: &Run,
    worker: &str,
    task_id: &str,
    ending: &Ending,
) -> Result<()> {
    let ctx = worker_ctx(run.account_id);
    let by = format!("Changed by Fanout worker {worker}");
    let call = |reason: &str| {
        args(json!({"task": task_id, "force": true, "status_reason": reason, "status_message": by}))
    };
    match ending {
        Ending::Completed => tasks::completed(svc, &ctx, call("worker execution done")).await,
        Ending::Failed(why) => tasks::failed(svc, &ctx, call(why)).await,
        Ending::Stopped => tasks::stopped(svc, &ctx, call("task was stopped by tasks.stop")).await,
    }?;
    report(svc, run.account_id, worker, None, &run.queue_id).await
}

/// Pings the running task (its `last_update`, which the watchdog reads).
pub async fn ping(svc: &Services, account_id: Uuid, task_id: &str) -> Result<()> {
    let ctx = worker_ctx(account_id);
    tasks::ping(svc, &ctx, args(json!({"task": task_id}))).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_messages_never_read_as_anything_else() {
        let message = RunMessage {
            clearml_run: Run {
                account_id: Uuid::nil(),
                queue_id: "ab".repeat(16),
            },
        };
        let text = serde_json::to_string(&message).unwrap();
        assert_eq!(serde_json::from_str::<RunMessage>(&text).unwrap(), message);
        // A subtask's message is not a run, and a run is not a subtask's message.
        let work = r#"{"task_id":1,"subtask_id":2,"stage":0}"#;
        assert!(serde_json::from_str::<RunMessage>(work).is_err());
        assert!(serde_json::from_str::<crate::engine::messages::WorkMessage>(&text).is_err());
    }

    #[test]
    fn served_queues_carry_the_system_tag() {
        let queue = |tags: Value| args(json!({"system_tags": tags}));
        assert!(is_served(&queue(json!(["fanout"]))));
        assert!(!is_served(&queue(json!(["default"]))));
        assert!(!is_served(&args(json!({}))));
    }
}
