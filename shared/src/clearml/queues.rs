//! ClearML queues: documents holding their ordered entries (`[{task, added}]`, head
//! first). Every change of the entries is a compare-and-set on the queue's revision, so
//! two agents popping one queue never get the same task. A `default` queue (system tag
//! `default`) exists for every account from its first ClearML call that needs a queue.

use std::collections::HashSet;
use std::sync::Mutex;

use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::Services;
use crate::store::keys;

use super::args::{self, Args};
use super::docs::{self, Change};
use super::error::{ClearmlError, Result};
use super::status::Status;
use super::{Ctx, tasks};

/// Listing partition kind of queues.
pub const KIND: &str = "CMQUEUE";
/// Name-marker kind of queues.
const NAME_KIND: &str = "QUEUE";
/// The default queue's name and system tag.
pub const DEFAULT: &str = "default";

/// Partition key of a queue.
pub fn pk(queue_id: &str) -> String {
    keys::clearml_queue_pk(queue_id)
}

/// The id of an account's default queue: the same for every call, so concurrent first
/// calls make one queue.
fn default_id(account_id: Uuid) -> String {
    Uuid::new_v5(&account_id, b"clearml default queue")
        .simple()
        .to_string()
}

/// Accounts whose default queue this process has seen (keyed by table).
static DEFAULTS: Mutex<Option<HashSet<(String, Uuid)>>> = Mutex::new(None);

fn known_default(svc: &Services, account_id: Uuid) -> bool {
    let guard = DEFAULTS.lock().unwrap_or_else(|p| p.into_inner());
    guard
        .as_ref()
        .is_some_and(|s| s.contains(&(svc.table.name().to_string(), account_id)))
}

fn remember_default(svc: &Services, account_id: Uuid) {
    let mut guard = DEFAULTS.lock().unwrap_or_else(|p| p.into_inner());
    guard
        .get_or_insert_with(HashSet::new)
        .insert((svc.table.name().to_string(), account_id));
}

fn new_queue(ctx: &Ctx, id: &str, name: &str, args: &Args) -> Map<String, Value> {
    let now = ctx.now_text();
    let mut body = json!({
        "id": id,
        "name": name,
        "display_name": args.get("display_name").cloned().unwrap_or(Value::Null),
        "company": ctx.account().simple().to_string(),
        "user": ctx.user(),
        "created": now,
        "tags": args.get("tags").cloned().unwrap_or_else(|| json!([])),
        "system_tags": args.get("system_tags").cloned().unwrap_or_else(|| json!([])),
        "entries": [],
        "last_update": now,
        "metadata": args.get("metadata").cloned().unwrap_or_else(|| json!({})),
    });
    body.as_object_mut().expect("an object").clone()
}

/// Makes sure the account has its default queue.
pub async fn ensure_default(svc: &Services, ctx: &Ctx) -> Result<()> {
    let account = ctx.account();
    if known_default(svc, account) {
        return Ok(());
    }
    let id = default_id(account);
    if docs::get(svc, &pk(&id), account).await?.is_none() {
        let mut args = Args::new();
        args.insert("system_tags".into(), json!([DEFAULT]));
        let body = new_queue(ctx, &id, DEFAULT, &args);
        let now = ctx.now_text();
        // A `default` name already taken by a queue the user made stays that queue's.
        let free = match docs::claim_name(svc, account, NAME_KIND, DEFAULT, &id).await? {
            Ok(()) => true,
            Err(holder) => holder == id,
        };
        if free {
            docs::create(svc, pk(&id), account, KIND, &now, &id, &body).await?;
        }
    }
    remember_default(svc, account);
    Ok(())
}

/// The id of the account's default queue (the one with the `default` system tag).
pub async fn default_queue(svc: &Services, ctx: &Ctx) -> Result<String> {
    ensure_default(svc, ctx).await?;
    let all = docs::list(svc, ctx.account(), KIND).await?;
    let defaults: Vec<String> = all
        .into_iter()
        .filter(|d| docs::has_tag(&d.body, "system_tags", DEFAULT))
        .filter_map(|d| d.body.get("id").and_then(Value::as_str).map(String::from))
        .collect();
    match defaults.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(ClearmlError::no_default_queue()),
        _ => Err(ClearmlError::new(
            400,
            708,
            "More than one queue is tagged as the default queue",
        )),
    }
}

/// A queue's entries, head first (`{task, added}`).
pub fn entries(body: &Map<String, Value>) -> Vec<Value> {
    body.get("entries")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn entry_task(entry: &Value) -> &str {
    entry
        .get("task")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// A queue of the caller's account by id (a name is refused: the SDK asks
/// `get_by_id` with a name first and must be told no), or 400/701.
pub async fn load(
    svc: &Services,
    ctx: &Ctx,
    queue_id: &str,
) -> Result<(String, Map<String, Value>)> {
    if !docs::is_id(queue_id) {
        return Err(ClearmlError::invalid_queue_id(queue_id));
    }
    ensure_default(svc, ctx).await?;
    match docs::get(svc, &pk(queue_id), ctx.account()).await? {
        Some(doc) => Ok((queue_id.to_string(), doc.body)),
        None => Err(ClearmlError::invalid_queue_id(queue_id)),
    }
}

/// The id of the queue named `name`, made when there is none (`tasks.enqueue` with
/// `queue_name`).
pub async fn by_name_or_create(svc: &Services, ctx: &Ctx, name: &str) -> Result<String> {
    ensure_default(svc, ctx).await?;
    let found = docs::list(svc, ctx.account(), KIND)
        .await?
        .into_iter()
        .find(|d| d.body.get("name").and_then(Value::as_str) == Some(name));
    if let Some(doc) = found {
        return Ok(doc.body["id"].as_str().unwrap_or_default().to_string());
    }
    let mut args = Args::new();
    args.insert("name".into(), name.into());
    let made = create(svc, ctx, args).await;
    match made {
        Ok(answer) => Ok(answer["id"].as_str().unwrap_or_default().to_string()),
        Err(err) => Err(err),
    }
}

/// `queues.create`: `{id}`; a taken name is refused.
pub async fn create(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let name = args::required(&args, "name")?;
    ensure_default(svc, ctx).await?;
    let id = docs::new_id();
    if !docs::take_name(svc, ctx.account(), NAME_KIND, &name, &id, pk).await? {
        return Err(ClearmlError::name_taken("Queue", &name));
    }
    let body = new_queue(ctx, &id, &name, &args);
    docs::create(
        svc,
        pk(&id),
        ctx.account(),
        KIND,
        &ctx.now_text(),
        &id,
        &body,
    )
    .await?;
    Ok(json!({"id": id}))
}

/// `queues.get_by_id`.
pub async fn get_by_id(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let id = args::required(&args, "queue")?;
    let (_, mut body) = load(svc, ctx, &id).await?;
    if let Some(max) = args::integer(&args, "max_task_entries") {
        let kept: Vec<Value> = entries(&body)
            .into_iter()
            .take(max.max(0) as usize)
            .collect();
        body.insert("entries".into(), Value::Array(kept));
    }
    Ok(json!({"queue": body}))
}

/// `queues.get_all` (and `get_all_ex`): by `id`, `name` (regex), tags; ordered, paged,
/// projected.
pub async fn get_all(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    ensure_default(svc, ctx).await?;
    let found = tasks::select_named(svc, ctx, &args, KIND, pk).await?;
    Ok(json!({"queues": tasks::order_page_project(found, &args)}))
}

/// `queues.get_default`: `{id, name}`.
pub async fn get_default(svc: &Services, ctx: &Ctx, _args: Args) -> Result<Value> {
    let id = default_queue(svc, ctx).await?;
    let (_, body) = load(svc, ctx, &id).await?;
    Ok(json!({"id": id, "name": body.get("name").cloned().unwrap_or(Value::Null)}))
}

/// `queues.update`: name, display name, tags, metadata.
pub async fn update(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let id = args::required(&args, "queue")?;
    load(svc, ctx, &id).await?;
    let outcome = docs::update(svc, &pk(&id), ctx.account(), |body, _| {
        let before = body.clone();
        for field in ["display_name", "tags", "system_tags", "metadata"] {
            if let Some(value) = args.get(field) {
                body.insert(field.into(), value.clone());
            }
        }
        if before == *body {
            return Ok(Change::Keep(0));
        }
        Ok(Change::Write(1))
    })
    .await?;
    let updated = outcome.map(|(u, _)| u).unwrap_or(0);
    Ok(json!({"updated": updated, "fields": {}}))
}

/// Changes a queue's entries (compare-and-set on the queue, tried again on a lost race);
/// `change` answers what the call answers, or an error that leaves the queue as it was.
async fn change_entries<T>(
    svc: &Services,
    ctx: &Ctx,
    queue_id: &str,
    change: impl FnMut(&mut Vec<Value>) -> Result<Option<T>>,
) -> Result<T>
where
    T: Clone,
{
    Ok(change_entries_of(svc, ctx, queue_id, change).await?.0)
}

/// [`change_entries`], answering also the queue's document as stored after it.
async fn change_entries_of<T>(
    svc: &Services,
    ctx: &Ctx,
    queue_id: &str,
    mut change: impl FnMut(&mut Vec<Value>) -> Result<Option<T>>,
) -> Result<(T, Map<String, Value>)>
where
    T: Clone,
{
    if !docs::is_id(queue_id) {
        return Err(ClearmlError::invalid_queue_id(queue_id));
    }
    let now = ctx.now_text();
    let mut wrote = false;
    let outcome = docs::update(svc, &pk(queue_id), ctx.account(), |body, _| {
        let mut list = entries(body);
        match change(&mut list)? {
            None => Err(ClearmlError::internal("no answer")),
            Some(answer) => {
                wrote = list != entries(body);
                if !wrote {
                    return Ok(Change::Keep(answer));
                }
                body.insert("entries".into(), Value::Array(list));
                body.insert("last_update".into(), now.clone().into());
                Ok(Change::Write(answer))
            }
        }
    })
    .await?;
    match outcome {
        Some((answer, body)) => {
            if wrote {
                super::metrics::record_queue(svc, queue_id, ctx.now, &entries(&body)).await;
            }
            Ok((answer, body))
        }
        None => Err(ClearmlError::invalid_queue_id(queue_id)),
    }
}

/// Whether the task is in the queue.
pub async fn contains(svc: &Services, ctx: &Ctx, queue_id: &str, task_id: &str) -> Result<bool> {
    let (_, body) = load(svc, ctx, queue_id).await?;
    Ok(entries(&body).iter().any(|e| entry_task(e) == task_id))
}

/// Appends the task to the queue (400/706 when it is there already). A queue Fanout's
/// workers serve is told it has work ([`super::serve::announce`]).
pub async fn push(svc: &Services, ctx: &Ctx, queue_id: &str, task_id: &str) -> Result<usize> {
    let added = ctx.now_text();
    let pushed = change_entries_of(svc, ctx, queue_id, |list| {
        if list.iter().any(|e| entry_task(e) == task_id) {
            return Err(ClearmlError::task_already_queued(queue_id, task_id));
        }
        list.push(json!({"task": task_id, "added": added}));
        Ok(Some(list.len() - 1))
    })
    .await;
    match pushed {
        Ok((position, queue)) => {
            if super::serve::is_served(&queue) {
                super::serve::announce(svc, ctx, queue_id).await?;
            }
            Ok(position)
        }
        Err(err) if err.subcode == 706 => {
            // Already queued: a call that pushed it may have failed to announce it (its
            // client then retries and lands here). One more run message costs a pop of
            // nothing at worst.
            let (_, queue) = load(svc, ctx, queue_id).await?;
            if super::serve::is_served(&queue) {
                super::serve::announce(svc, ctx, queue_id).await?;
            }
            Err(err)
        }
        Err(err) => Err(err),
    }
}

/// Takes the task out of the queue if it is there; whether it was. An unknown queue
/// is no error here.
pub async fn remove_if_present(
    svc: &Services,
    ctx: &Ctx,
    queue_id: &str,
    task_id: &str,
) -> Result<bool> {
    match change_entries(svc, ctx, queue_id, |list| {
        let before = list.len();
        list.retain(|e| entry_task(e) != task_id);
        Ok(Some(list.len() != before))
    })
    .await
    {
        Ok(removed) => Ok(removed),
        Err(err) if err.subcode == 701 => Ok(false),
        Err(err) => Err(err),
    }
}

/// Takes the task out of every queue of the account; how many held it.
pub async fn remove_everywhere(svc: &Services, ctx: &Ctx, task_id: &str) -> Result<usize> {
    let mut removed = 0;
    for doc in docs::list(svc, ctx.account(), KIND).await? {
        if entries(&doc.body).iter().any(|e| entry_task(e) == task_id) {
            let id = doc.body["id"].as_str().unwrap_or_default().to_string();
            removed += usize::from(remove_if_present(svc, ctx, &id, task_id).await?);
        }
    }
    Ok(removed)
}

/// `queues.add_task`: appends without touching the task's status.
pub async fn add_task(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let queue = args::required(&args, "queue")?;
    let task = args::required(&args, "task")?;
    tasks::load(svc, ctx, &task).await?;
    load(svc, ctx, &queue).await?;
    push(svc, ctx, &queue, &task).await?;
    Ok(json!({"added": 1}))
}

/// Puts a task taken out of a queue back to the status it had before it was enqueued.
async fn revert_task(svc: &Services, ctx: &Ctx, task_id: &str) -> Result<()> {
    let Ok(task) = tasks::load(svc, ctx, task_id).await else {
        return Ok(());
    };
    if task.get("status").and_then(Value::as_str) != Some("queued") {
        return Ok(());
    }
    let to = task
        .get("enqueue_status")
        .and_then(Value::as_str)
        .and_then(Status::parse)
        .unwrap_or(Status::Created);
    let change = tasks::StatusChange::from_args(to, &Args::new())
        .forced()
        .with(|body, _| {
            body.insert("enqueue_status".into(), Value::Null);
            if let Some(Value::Object(execution)) = body.get_mut("execution") {
                execution.remove("queue");
            }
            Ok(())
        });
    tasks::set_status(svc, ctx, task_id, change).await?;
    Ok(())
}

/// `queues.remove_task`: `{removed}`; 400/703 when the task is not there.
pub async fn remove_task(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let queue = args::required(&args, "queue")?;
    let task = args::required(&args, "task")?;
    load(svc, ctx, &queue).await?;
    let removed = change_entries(svc, ctx, &queue, |list| {
        let before = list.len();
        list.retain(|e| entry_task(e) != task);
        if list.len() == before {
            return Err(ClearmlError::task_not_queued(&queue, &task));
        }
        Ok(Some(1))
    })
    .await?;
    if args::flag(&args, "update_task_status", false) {
        revert_task(svc, ctx, &task).await?;
    }
    Ok(json!({"removed": removed}))
}

/// `queues.get_next_task`: pops the head (only if it is `task` when given), atomically.
/// A popped task that was stopped meanwhile goes back to `queued`. `{}` when empty.
pub async fn get_next_task(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let queue = args::required(&args, "queue")?;
    let wanted = args::optional(&args, "task");
    // No `load` first: the pop's own read finds a missing or foreign queue (701), and an
    // idle agent's poll costs that one read.
    let popped = change_entries(svc, ctx, &queue, |list| {
        let head_ok = match (&wanted, list.first()) {
            (_, None) => false,
            (Some(task), Some(head)) => entry_task(head) == task,
            (None, Some(_)) => true,
        };
        if !head_ok {
            return Ok(Some(None));
        }
        Ok(Some(Some(list.remove(0))))
    })
    .await?;
    let Some(entry) = popped else {
        return Ok(json!({}));
    };
    let task_id = entry_task(&entry).to_string();
    if let Ok(task) = tasks::load(svc, ctx, &task_id).await
        && task.get("status").and_then(Value::as_str) == Some("stopped")
    {
        let change = tasks::StatusChange::from_args(Status::Queued, &Args::new()).forced();
        tasks::set_status(svc, ctx, &task_id, change).await.ok();
    }
    let mut answer = json!({"entry": entry});
    if args::flag(&args, "get_task_info", false) {
        answer["task_info"] =
            json!({"company": ctx.account().simple().to_string(), "user": ctx.user()});
    }
    Ok(answer)
}

/// `queues.peek_task`: the head's task id, or null.
pub async fn peek_task(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let queue = args::required(&args, "queue")?;
    let (_, body) = load(svc, ctx, &queue).await?;
    let head = entries(&body).first().map(|e| entry_task(e).to_string());
    Ok(json!({"task": head}))
}

/// `queues.get_num_entries`.
pub async fn get_num_entries(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let queue = args::required(&args, "queue")?;
    let (_, body) = load(svc, ctx, &queue).await?;
    Ok(json!({"num": entries(&body).len()}))
}

/// The move calls: where the task goes given its index and the queue's length.
#[derive(Debug, Clone, Copy)]
pub enum Move {
    /// `count` places towards the head.
    Forward(i64),
    /// `count` places towards the tail.
    Backward(i64),
    /// To the head.
    Front,
    /// To the tail.
    Back,
}

/// The new index of an entry at `index` of `len` entries, clamped to the ends.
pub fn new_position(index: usize, len: usize, how: Move) -> usize {
    let last = len.saturating_sub(1) as i64;
    let target = match how {
        Move::Forward(n) => index as i64 - n,
        Move::Backward(n) => index as i64 + n,
        Move::Front => 0,
        Move::Back => last,
    };
    target.clamp(0, last) as usize
}

/// `queues.move_task_forward` / `_backward` / `_to_front` / `_to_back`: `{position}`.
pub async fn move_task(
    svc: &Services,
    ctx: &Ctx,
    args: Args,
    how: fn(i64) -> Move,
) -> Result<Value> {
    let queue = args::required(&args, "queue")?;
    let task = args::required(&args, "task")?;
    let count = args::integer(&args, "count").unwrap_or(1).max(1);
    load(svc, ctx, &queue).await?;
    let position = change_entries(svc, ctx, &queue, |list| {
        let Some(index) = list.iter().position(|e| entry_task(e) == task) else {
            return Err(ClearmlError::task_not_queued(&queue, &task));
        };
        let to = new_position(index, list.len(), how(count));
        let entry = list.remove(index);
        list.insert(to, entry);
        Ok(Some(to))
    })
    .await?;
    Ok(json!({"position": position}))
}

/// `queues.clear_queue`: every task out, back to its status before `enqueue`.
pub async fn clear_queue(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let queue = args::required(&args, "queue")?;
    load(svc, ctx, &queue).await?;
    let removed: Vec<String> = change_entries(svc, ctx, &queue, |list| {
        let ids = list.iter().map(|e| entry_task(e).to_string()).collect();
        list.clear();
        Ok(Some(ids))
    })
    .await?;
    for task in &removed {
        revert_task(svc, ctx, task).await?;
    }
    Ok(json!({"removed_tasks": removed}))
}

/// `queues.delete`: a queue holding tasks only with `force` (they go back to their
/// status before `enqueue`).
pub async fn delete(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let queue = args::required(&args, "queue")?;
    let force = args::flag(&args, "force", false);
    let (_, body) = load(svc, ctx, &queue).await?;
    let held: Vec<String> = entries(&body)
        .iter()
        .map(|e| entry_task(e).to_string())
        .collect();
    if !held.is_empty() && !force {
        return Err(ClearmlError::queue_not_empty(&queue));
    }
    docs::delete(svc, &pk(&queue)).await?;
    if let Some(name) = body.get("name").and_then(Value::as_str) {
        docs::release_name(svc, ctx.account(), NAME_KIND, name).await?;
    }
    for task in &held {
        revert_task(svc, ctx, task).await?;
    }
    Ok(json!({"deleted": 1}))
}

/// `queues.get_queue_metrics`: the length and average wait of each queue asked (each
/// the caller's, else 400/701) over time, or of all the account's queues together
/// ([`super::metrics::queue_metrics`]).
pub async fn get_queue_metrics(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let ids = args::strings(&args, "queue_ids").filter(|ids| !ids.is_empty());
    let mut all = Vec::new();
    match &ids {
        Some(ids) => {
            for id in ids {
                load(svc, ctx, id).await?;
            }
        }
        None => {
            for doc in docs::list(svc, ctx.account(), KIND).await? {
                all.push(doc.body["id"].as_str().unwrap_or_default().to_string());
            }
        }
    }
    super::metrics::queue_metrics(svc, ids, all, &args).await
}

/// A queue's summary as workers list it: `{id, name, num_tasks, next_task}`.
pub async fn summary(svc: &Services, ctx: &Ctx, queue_id: &str) -> Value {
    match load(svc, ctx, queue_id).await {
        Ok((_, body)) => {
            let list = entries(&body);
            let next = list.first().map(|e| json!({"id": entry_task(e)}));
            json!({"id": queue_id, "name": body.get("name"), "num_tasks": list.len(), "next_task": next})
        }
        Err(_) => json!({"id": queue_id, "name": null, "num_tasks": 0, "next_task": null}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_clamp_to_the_ends() {
        assert_eq!(new_position(3, 5, Move::Forward(1)), 2);
        assert_eq!(new_position(1, 5, Move::Forward(4)), 0);
        assert_eq!(new_position(3, 5, Move::Backward(9)), 4);
        assert_eq!(new_position(2, 5, Move::Front), 0);
        assert_eq!(new_position(2, 5, Move::Back), 4);
        assert_eq!(new_position(0, 1, Move::Backward(1)), 0);
    }

    #[test]
    fn the_default_queue_id_is_one_per_account() {
        let a = Uuid::new_v4();
        assert_eq!(default_id(a), default_id(a));
        assert_ne!(default_id(a), default_id(Uuid::new_v4()));
        assert!(docs::is_id(&default_id(a)));
    }
}
