//! ClearML tasks: documents with ClearML's fields, changed by the status calls under the
//! state machine of [`super::status`], each change a compare-and-set on the task's
//! revision (400/121 when another change of the status came first).

use std::cmp::Ordering;

use serde_json::{Map, Value, json};

use crate::Services;
use crate::store::keys;

use super::args::{self, Args};
use super::docs::{self, Change};
use super::error::{ClearmlError, Result};
use super::status::{self, Status};
use super::{Ctx, events, projects, queues};

/// Listing partition kind of tasks.
pub const KIND: &str = "CMTASK";
/// Seconds after its last update a running task counts as without a worker (`stop`
/// stops it at once then).
pub const WORKER_TIMEOUT_SECONDS: i64 = 600;
/// The system tag of tasks run from a developer's machine.
pub const DEVELOPMENT: &str = "development";
/// The system tag of archived tasks.
pub const ARCHIVED: &str = "archived";
/// Hidden tasks are listed only with `search_hidden`.
pub const HIDDEN: &str = "hidden";

/// Fields `tasks.create` and `tasks.edit` take as they are given.
const EDITABLE: &[&str] = &[
    "name",
    "type",
    "comment",
    "tags",
    "system_tags",
    "parent",
    "project",
    "script",
    "execution",
    "hyperparams",
    "configuration",
    "container",
    "models",
    "runtime",
    "output",
    "input",
];

/// Fields `tasks.update` takes (any status).
const UPDATABLE: &[&str] = &[
    "name",
    "comment",
    "tags",
    "system_tags",
    "project",
    "created",
];

/// Partition key of a task.
pub fn pk(task_id: &str) -> String {
    keys::clearml_task_pk(task_id)
}

fn status_of(body: &Map<String, Value>) -> Status {
    body.get("status")
        .and_then(Value::as_str)
        .and_then(Status::parse)
        .unwrap_or(Status::Unknown)
}

/// A task of the caller's account, or 400/101.
pub async fn load(svc: &Services, ctx: &Ctx, task_id: &str) -> Result<Map<String, Value>> {
    match docs::get(svc, &pk(task_id), ctx.account()).await? {
        Some(doc) => Ok(doc.body),
        None => Err(ClearmlError::invalid_task_id(task_id)),
    }
}

/// The top-level fields of `after` that differ from `before`.
fn changed(before: &Map<String, Value>, after: &Map<String, Value>) -> Value {
    let mut out = Map::new();
    for (key, value) in after {
        if before.get(key) != Some(value) {
            out.insert(key.clone(), value.clone());
        }
    }
    Value::Object(out)
}

/// `tasks.create`: a new task in `created`.
pub async fn create(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let name = args::required(&args, "name")?;
    if let Some(project) = args::optional(&args, "project") {
        projects::load(svc, ctx, &project).await?;
    }
    let id = docs::new_id();
    let now = ctx.now_text();
    let mut body = json!({
        "id": id,
        "name": name,
        "type": "training",
        "status": "created",
        "status_reason": "",
        "status_message": "",
        "status_changed": now,
        "comment": "",
        "created": now,
        "started": null,
        "completed": null,
        "published": null,
        "last_update": now,
        "last_change": now,
        "last_changed_by": ctx.user(),
        "project": null,
        "user": ctx.user(),
        "company": ctx.account().simple().to_string(),
        "parent": null,
        "tags": [],
        "system_tags": [],
        "script": {},
        "execution": {},
        "hyperparams": {},
        "configuration": {},
        "container": {},
        "runtime": {},
        "models": {"input": [], "output": []},
        "output": {},
        "last_iteration": 0,
        "last_worker": "",
        "last_worker_report": null,
        "enqueue_status": null,
        "active_duration": null,
    });
    let map = body.as_object_mut().expect("an object");
    for field in EDITABLE {
        if let Some(value) = args.get(*field).filter(|v| !v.is_null()) {
            map.insert(field.to_string(), value.clone());
        }
    }
    map.insert("name".into(), Value::String(name));
    if !docs::create(svc, pk(&id), ctx.account(), KIND, &now, &id, map).await? {
        return Err(ClearmlError::internal("a new task id is taken"));
    }
    Ok(json!({"id": id}))
}

/// `tasks.clone`: a new `created` task from `task`: its script, execution (without the
/// queue), parameters, configuration, container, input models and tags (without
/// `development` and `archived`), `parent` the source; `new_task_*` fields override.
pub async fn clone(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let source_id = args::required(&args, "task")?;
    let source = load(svc, ctx, &source_id).await?;
    let mut new = Args::new();
    let copied = [
        "name",
        "type",
        "comment",
        "tags",
        "system_tags",
        "project",
        "script",
        "execution",
        "hyperparams",
        "configuration",
        "container",
    ];
    for field in copied {
        if let Some(value) = source.get(field) {
            new.insert(field.into(), value.clone());
        }
    }
    if let Some(Value::Object(execution)) = new.get_mut("execution") {
        execution.remove("queue");
    }
    let tags: Vec<String> = docs::strings(&source, "system_tags")
        .into_iter()
        .filter(|t| t != DEVELOPMENT && t != ARCHIVED)
        .collect();
    new.insert("system_tags".into(), json!(tags));
    let inputs = at_path(&source, "models.input")
        .cloned()
        .unwrap_or(json!([]));
    new.insert("models".into(), json!({"input": inputs, "output": []}));
    let parent = source
        .get("parent")
        .filter(|p| p.as_str().is_some_and(|p| !p.is_empty()))
        .cloned()
        .unwrap_or_else(|| Value::String(source_id.clone()));
    new.insert("parent".into(), parent);
    for (key, value) in &args {
        if let Some(field) = key.strip_prefix("new_task_")
            && EDITABLE.contains(&field)
            && !value.is_null()
        {
            new.insert(field.into(), value.clone());
        }
    }
    create(svc, ctx, new).await
}

/// `tasks.get_by_id`.
pub async fn get_by_id(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let id = args::required(&args, "task")?;
    let task = load(svc, ctx, &id).await?;
    Ok(json!({"task": task}))
}

/// The value at a dotted path of a document.
pub fn at_path<'a>(doc: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let mut parts = path.split('.');
    let mut value = doc.get(parts.next()?)?;
    for part in parts {
        value = value.as_object()?.get(part)?;
    }
    Some(value)
}

/// The document with only `fields` (dotted paths), and its `id`.
pub fn project_fields(doc: &Map<String, Value>, fields: &[String]) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(id) = doc.get("id") {
        out.insert("id".into(), id.clone());
    }
    for path in fields {
        let Some(value) = at_path(doc, path) else {
            continue;
        };
        let parts: Vec<&str> = path.split('.').collect();
        let mut node = &mut out;
        for part in &parts[..parts.len() - 1] {
            let entry = node
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            node = entry.as_object_mut().expect("an object");
        }
        node.insert(parts[parts.len() - 1].to_string(), value.clone());
    }
    out
}

fn compare_values(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None | Some(Value::Null), None | Some(Value::Null)) => Ordering::Equal,
        (None | Some(Value::Null), _) => Ordering::Less,
        (_, None | Some(Value::Null)) => Ordering::Greater,
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&y.as_f64().unwrap_or(0.0))
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
    }
}

/// Sorts documents by `order_by` (`["-last_update", "name"]`), then keeps the page
/// (`page` from 0, `page_size`) and the `only_fields` of each.
pub fn order_page_project(mut found: Vec<Map<String, Value>>, args: &Args) -> Vec<Value> {
    if let Some(order) = args::strings(args, "order_by") {
        found.sort_by(|a, b| {
            for key in &order {
                let (desc, field) = match key.strip_prefix('-') {
                    Some(field) => (true, field),
                    None => (false, key.as_str()),
                };
                let ord = compare_values(at_path(a, field), at_path(b, field));
                let ord = if desc { ord.reverse() } else { ord };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
    }
    let page_size = args::integer(args, "page_size").filter(|s| *s > 0);
    let page = args::integer(args, "page").unwrap_or(0).max(0);
    let found: Vec<Map<String, Value>> = match page_size {
        Some(size) => found
            .into_iter()
            .skip((page * size) as usize)
            .take(size as usize)
            .collect(),
        None => found,
    };
    let only = args::strings(args, "only_fields").filter(|f| !f.is_empty());
    found
        .into_iter()
        .map(|doc| match &only {
            Some(fields) => Value::Object(project_fields(&doc, fields)),
            None => Value::Object(doc),
        })
        .collect()
}

/// The documents of `kind` a `get_all` selects before its own filters: those named by
/// `id` (ids of `pk`), else the account's all; then by `name` (regex), `tags` and
/// `system_tags`. Shared by projects and queues.
pub async fn select_named(
    svc: &Services,
    ctx: &Ctx,
    args: &Args,
    kind: &str,
    pk: fn(&str) -> String,
) -> Result<Vec<Map<String, Value>>> {
    let ids = args::strings(args, "id").filter(|ids| !ids.is_empty());
    let name = name_filter(args)?;
    let tag_filter = args::strings(args, "tags");
    let system_filter = args::strings(args, "system_tags");
    let docs = match &ids {
        Some(ids) => docs::get_by_ids(svc, ctx.account(), ids, pk).await?,
        None => docs::list(svc, ctx.account(), kind).await?,
    };
    Ok(docs
        .into_iter()
        .map(|d| d.body)
        .filter(|d| {
            name.as_ref().is_none_or(|re| {
                re.is_match(d.get("name").and_then(Value::as_str).unwrap_or_default())
            })
        })
        .filter(|d| tag_filter.as_ref().is_none_or(|w| tags_match(d, "tags", w)))
        .filter(|d| {
            system_filter
                .as_ref()
                .is_none_or(|w| tags_match(d, "system_tags", w))
        })
        .collect())
}

/// A case-sensitive, unanchored regex search of a `name`, as ClearML filters names
/// (the clients escape `-`, ` ` and `#`, which Rust's regex accepts).
pub fn name_filter(args: &Args) -> Result<Option<regex::Regex>> {
    match args::optional(args, "name") {
        None => Ok(None),
        Some(pattern) => regex::Regex::new(&pattern)
            .map(Some)
            .map_err(|e| ClearmlError::validation(format!("name is not a regex: {e}"))),
    }
}

/// Whether `doc` carries the tags a filter asks for: each listed tag must be there, and
/// each `-tag` must not (`__$not`, `__$all` and `__$or` markers are skipped).
pub fn tags_match(doc: &Map<String, Value>, field: &str, wanted: &[String]) -> bool {
    let have = docs::strings(doc, field);
    let mut any_positive = false;
    let mut positive_hit = false;
    for tag in wanted.iter().filter(|t| !t.starts_with("__$")) {
        match tag.strip_prefix('-') {
            Some(excluded) => {
                if have.iter().any(|h| h == excluded) {
                    return false;
                }
            }
            None => {
                any_positive = true;
                positive_hit |= have.iter().any(|h| h == tag);
            }
        }
    }
    !any_positive || positive_hit
}

/// Whether `doc`'s `field` is one of `allowed` (`None`: no filter).
fn one_of(doc: &Map<String, Value>, field: &str, allowed: &Option<Vec<String>>) -> bool {
    match allowed {
        None => true,
        Some(list) if list.is_empty() => true,
        Some(list) => {
            let value = doc.get(field).and_then(Value::as_str).unwrap_or_default();
            list.iter().any(|a| a == value)
        }
    }
}

/// `tasks.get_all` (and `get_all_ex`): by `id` (read directly, hidden or not), or the
/// account's tasks filtered by `name` (regex), `status`, `project`, `type`, `user`,
/// `parent`, `tags`, `system_tags`; ordered, paged and projected.
pub async fn get_all(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let ids = args::strings(&args, "id").filter(|ids| !ids.is_empty());
    let name = name_filter(&args)?;
    let statuses = args::strings(&args, "status");
    let projects = args::strings(&args, "project");
    let types = args::strings(&args, "type");
    let users = args::strings(&args, "user");
    let parents = args::strings(&args, "parent");
    let tags = args::strings(&args, "tags");
    let system_tags = args::strings(&args, "system_tags");
    let search_hidden = args::flag(&args, "search_hidden", false);
    let docs = match &ids {
        Some(ids) => {
            let mut found = docs::get_by_ids(svc, ctx.account(), ids, pk).await?;
            // In the order asked.
            found.sort_by_key(|d| {
                let id = d.body.get("id").and_then(Value::as_str).unwrap_or_default();
                ids.iter().position(|i| i == id)
            });
            found
        }
        None => docs::list(svc, ctx.account(), KIND).await?,
    };
    let found: Vec<Map<String, Value>> = docs
        .into_iter()
        .map(|d| d.body)
        .filter(|t| {
            name.as_ref().is_none_or(|re| {
                re.is_match(t.get("name").and_then(Value::as_str).unwrap_or_default())
            })
        })
        .filter(|t| one_of(t, "status", &statuses))
        .filter(|t| one_of(t, "project", &projects))
        .filter(|t| one_of(t, "type", &types))
        .filter(|t| one_of(t, "user", &users))
        .filter(|t| one_of(t, "parent", &parents))
        .filter(|t| tags.as_ref().is_none_or(|w| tags_match(t, "tags", w)))
        .filter(|t| {
            system_tags
                .as_ref()
                .is_none_or(|w| tags_match(t, "system_tags", w))
        })
        .filter(|t| ids.is_some() || search_hidden || !docs::has_tag(t, "system_tags", HIDDEN))
        .collect();
    Ok(json!({"tasks": order_page_project(found, &args)}))
}

/// More changes a status change writes, given the status the task had.
pub type Extra<'a> = Box<dyn FnMut(&mut Map<String, Value>, Status) -> Result<()> + Send + 'a>;

/// What a status change writes besides the status fields.
pub struct StatusChange<'a> {
    /// The status to move to.
    pub to: Status,
    /// Skip the state machine.
    pub force: bool,
    /// `status_reason`.
    pub reason: String,
    /// `status_message`.
    pub message: String,
    /// More changes to the document, given the status it had.
    pub extra: Extra<'a>,
}

impl<'a> StatusChange<'a> {
    /// A change to `to` with the request's `force`, `status_reason`, `status_message`.
    pub fn from_args(to: Status, args: &Args) -> StatusChange<'a> {
        StatusChange {
            to,
            force: args::flag(args, "force", false),
            reason: args::optional(args, "status_reason").unwrap_or_default(),
            message: args::optional(args, "status_message").unwrap_or_default(),
            extra: Box::new(|_, _| Ok(())),
        }
    }

    /// The same change, forced.
    pub fn forced(mut self) -> Self {
        self.force = true;
        self
    }

    /// The same change with more writes.
    pub fn with(
        mut self,
        extra: impl FnMut(&mut Map<String, Value>, Status) -> Result<()> + Send + 'a,
    ) -> Self {
        self.extra = Box::new(extra);
        self
    }
}

/// Changes a task's status: checked from the status read, written only if the status
/// is still that one when the write lands (another change of the status in between:
/// 400/121; a change of other fields only: tried again). Answers `{updated, fields}`
/// and the task as written.
pub async fn set_status(
    svc: &Services,
    ctx: &Ctx,
    task_id: &str,
    mut change: StatusChange<'_>,
) -> Result<(Value, Map<String, Value>)> {
    let mut expected: Option<Status> = None;
    let now = ctx.now_text();
    let user = ctx.user();
    let outcome = docs::update(svc, &pk(task_id), ctx.account(), |body, _| {
        let current = status_of(body);
        if let Some(expected) = expected
            && expected != current
        {
            return Err(ClearmlError::failed_changing_status(
                task_id,
                current.name(),
                change.to.name(),
            ));
        }
        expected = Some(current);
        status::check(current, change.to, change.force)?;
        Ok(Change::Write(apply_status(body, &mut change, &now, &user)?))
    })
    .await?;
    match outcome {
        Some((fields, body)) => Ok((json!({"updated": 1, "fields": fields}), body)),
        None => Err(ClearmlError::invalid_task_id(task_id)),
    }
}

/// Writes `change` into a task's document by `user` at `now`; answers the fields it
/// changed.
fn apply_status(
    body: &mut Map<String, Value>,
    change: &mut StatusChange<'_>,
    now: &str,
    user: &str,
) -> Result<Value> {
    let current = status_of(body);
    let before = body.clone();
    body.insert("status".into(), change.to.name().into());
    body.insert("status_reason".into(), change.reason.clone().into());
    body.insert("status_message".into(), change.message.clone().into());
    body.insert("status_changed".into(), now.into());
    body.insert("last_update".into(), now.into());
    body.insert("last_change".into(), now.into());
    body.insert("last_changed_by".into(), user.into());
    (change.extra)(body, current)?;
    Ok(changed(&before, body))
}

/// Whether the document at `pk` is a running task, which the watchdog watches (its
/// marker is written and removed with the document: `docs::put_next`).
pub fn watched(pk: &str, body: &Map<String, Value>) -> bool {
    pk.starts_with(&keys::clearml_task_pk("")) && status_of(body) == Status::InProgress
}

/// Who the watchdog's changes are by, as ClearML's server names itself.
const WATCHDOG_USER: &str = "__apiserver__";
/// The reason and message of a task the watchdog stopped.
const NON_RESPONSIVE: &str = "Forced stop (non-responsive)";
/// Default seconds without a ping, status report or other update after which the
/// watchdog stops a running task (clearml-server's `threshold_sec`).
pub const WATCHDOG_SECONDS: u64 = 7200;

/// The non-responsive task watchdog, run by the reconciler: every task of any account
/// still `in_progress` whose `last_update` (status changes, `tasks.ping`, a worker's
/// status report naming it, events) is older than `threshold` at `now` becomes
/// `stopped`, by a compare-and-set that gives way to any update landing first. Markers
/// left by tasks deleted while running go. Answers how many tasks it stopped.
pub async fn watchdog(
    svc: &Services,
    now: chrono::DateTime<chrono::Utc>,
    threshold: chrono::Duration,
) -> Result<usize> {
    let markers = docs::markers(svc, keys::CLEARML_RUNNING).await?;
    let stale_before = now - threshold;
    let now_text = super::iso(now);
    let mut stopped = 0;
    for (task_pk, account, rev) in markers {
        let running = docs::get(svc, &task_pk, account)
            .await?
            .is_some_and(|doc| watched(&task_pk, &doc.body));
        if !running {
            // Deleted while running: its marker has nothing left to watch.
            docs::forget_marker(svc, keys::CLEARML_RUNNING, &task_pk, &rev).await?;
            continue;
        }
        let outcome = docs::update(svc, &task_pk, account, |body, _| {
            let silent = body
                .get("last_update")
                .and_then(Value::as_str)
                .and_then(super::parse_iso)
                .is_none_or(|t| t < stale_before);
            if status_of(body) != Status::InProgress || !silent {
                return Ok(Change::Keep(false));
            }
            let mut change = StatusChange {
                to: Status::Stopped,
                force: true,
                reason: NON_RESPONSIVE.into(),
                message: NON_RESPONSIVE.into(),
                extra: Box::new(|_, _| Ok(())),
            };
            apply_status(body, &mut change, &now_text, WATCHDOG_USER)?;
            Ok(Change::Write(true))
        })
        .await?;
        if let Some((true, _)) = outcome {
            stopped += 1;
            tracing::warn!(
                task = task_pk.as_str(),
                %account,
                "ClearML task stopped by the watchdog: no update within the threshold"
            );
        }
    }
    Ok(stopped)
}

/// Changes fields of a task that are not its status (any status), tried again on
/// concurrent writes. Answers `{updated, fields}`.
pub async fn change_fields(
    svc: &Services,
    ctx: &Ctx,
    task_id: &str,
    mut change: impl FnMut(&mut Map<String, Value>) -> Result<()>,
) -> Result<Value> {
    let now = ctx.now_text();
    let outcome = docs::update(svc, &pk(task_id), ctx.account(), |body, _| {
        let before = body.clone();
        change(body)?;
        if before == *body {
            return Ok(Change::Keep(Value::Object(Map::new())));
        }
        body.insert("last_update".into(), now.clone().into());
        Ok(Change::Write(changed(&before, body)))
    })
    .await?;
    match outcome {
        Some((fields, _)) => {
            let updated = i32::from(fields.as_object().is_some_and(|f| !f.is_empty()));
            Ok(json!({"updated": updated, "fields": fields}))
        }
        None => Err(ClearmlError::invalid_task_id(task_id)),
    }
}

/// `tasks.edit`: replaces the fields given; only a `created` task unless `force`.
pub async fn edit(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let id = args::required(&args, "task")?;
    let force = args::flag(&args, "force", false);
    if let Some(project) = args::optional(&args, "project") {
        projects::load(svc, ctx, &project).await?;
    }
    let user = ctx.user();
    let now = ctx.now_text();
    change_fields(svc, ctx, &id, |body| {
        let status = status_of(body);
        if !force && status != Status::Created {
            return Err(ClearmlError::invalid_status(
                "Task status must be created to edit it (use force=True)",
                status.name(),
                "created",
            ));
        }
        for field in EDITABLE {
            if let Some(value) = args.get(*field) {
                body.insert(field.to_string(), value.clone());
            }
        }
        body.insert("last_change".into(), now.clone().into());
        body.insert("last_changed_by".into(), user.clone().into());
        Ok(())
    })
    .await
}

/// `tasks.update`: name, comment, tags, project of a task in any status.
pub async fn update(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let id = args::required(&args, "task")?;
    change_fields(svc, ctx, &id, |body| {
        for field in UPDATABLE {
            if let Some(value) = args.get(*field) {
                body.insert(field.to_string(), value.clone());
            }
        }
        Ok(())
    })
    .await
}

/// `tasks.ping`: the task is alive (refreshes `last_update`).
pub async fn ping(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let id = args::required(&args, "task")?;
    let now = ctx.now_text();
    change_fields(svc, ctx, &id, |body| {
        body.insert("last_update".into(), now.clone().into());
        Ok(())
    })
    .await?;
    Ok(json!({}))
}

/// `tasks.enqueue`: to `queued` in a queue (by `queue` id, `queue_name`, else the
/// default queue), out of any other.
pub async fn enqueue(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let id = args::required(&args, "task")?;
    let queue_id = match (
        args::optional(&args, "queue"),
        args::optional(&args, "queue_name"),
    ) {
        (Some(_), Some(_)) => {
            return Err(ClearmlError::validation(
                "give either queue or queue_name, not both",
            ));
        }
        (Some(queue), None) => queues::load(svc, ctx, &queue).await?.0,
        (None, Some(name)) => queues::by_name_or_create(svc, ctx, &name).await?,
        (None, None) => queues::default_queue(svc, ctx).await?,
    };
    let task = load(svc, ctx, &id).await?;
    if queues::contains(svc, ctx, &queue_id, &id).await? {
        return Err(ClearmlError::task_already_queued(&queue_id, &id));
    }
    let previous_queue = at_path(&task, "execution.queue")
        .and_then(Value::as_str)
        .map(String::from);
    let queue_for_task = queue_id.clone();
    let change = StatusChange::from_args(Status::Queued, &args).with(move |body, current| {
        if current != Status::Queued {
            body.insert("enqueue_status".into(), current.name().into());
        }
        let tags: Vec<Value> = docs::strings(body, "system_tags")
            .into_iter()
            .filter(|t| t != DEVELOPMENT)
            .map(Value::String)
            .collect();
        body.insert("system_tags".into(), Value::Array(tags));
        let execution = body
            .entry("execution")
            .or_insert_with(|| Value::Object(Map::new()));
        if !execution.is_object() {
            *execution = Value::Object(Map::new());
        }
        execution
            .as_object_mut()
            .expect("an object")
            .insert("queue".into(), queue_for_task.clone().into());
        Ok(())
    });
    let (mut answer, _) = set_status(svc, ctx, &id, change).await?;
    if let Err(err) = queues::push(svc, ctx, &queue_id, &id).await {
        // A concurrent enqueue into the same queue came first: the task is queued there,
        // as this call wanted; it answers 706 and leaves the other's work alone.
        if err.subcode == 706 {
            return Err(err);
        }
        // Back to the status it had, as the server does when the push fails.
        let before = status_of(&task);
        let mut revert = StatusChange::from_args(before, &args).forced();
        revert.reason = "failed enqueueing".into();
        set_status(svc, ctx, &id, revert).await.ok();
        return Err(err);
    }
    if let Some(previous) = previous_queue.filter(|q| *q != queue_id) {
        queues::remove_if_present(svc, ctx, &previous, &id).await?;
    }
    let map = answer.as_object_mut().expect("an object");
    map.insert("queued".into(), 1.into());
    if args::flag(&args, "verify_watched_queue", false) {
        let watched = super::workers::queue_watched(svc, ctx, &queue_id).await?;
        map.insert("queue_watched".into(), watched.into());
    }
    Ok(answer)
}

/// `tasks.dequeue`: out of its queue; a queued or running task goes back to
/// `new_status`, else the status it had before `enqueue`, else `created` (forced).
pub async fn dequeue(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let id = args::required(&args, "task")?;
    let task = load(svc, ctx, &id).await?;
    if let Some(queue) = at_path(&task, "execution.queue").and_then(Value::as_str) {
        queues::remove_if_present(svc, ctx, queue, &id).await?;
    }
    if args::flag(&args, "remove_from_all_queues", false) {
        queues::remove_everywhere(svc, ctx, &id).await?;
    }
    let current = status_of(&task);
    if !matches!(current, Status::Queued | Status::InProgress) {
        return Ok(json!({"dequeued": 1, "updated": 0, "fields": {}}));
    }
    let to = args::optional(&args, "new_status")
        .map(|s| {
            Status::parse(&s).ok_or_else(|| ClearmlError::validation(format!("unknown status {s}")))
        })
        .transpose()?
        .or_else(|| {
            task.get("enqueue_status")
                .and_then(Value::as_str)
                .and_then(Status::parse)
        })
        .unwrap_or(Status::Created);
    let change = StatusChange::from_args(to, &args).forced().with(|body, _| {
        body.insert("enqueue_status".into(), Value::Null);
        Ok(())
    });
    let (mut answer, _) = set_status(svc, ctx, &id, change).await?;
    answer
        .as_object_mut()
        .expect("an object")
        .insert("dequeued".into(), 1.into());
    Ok(answer)
}

/// `tasks.started`: to `in_progress`; `started` is set once.
pub async fn started(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let id = args::required(&args, "task")?;
    let now = ctx.now_text();
    let mut first = false;
    let change = StatusChange::from_args(Status::InProgress, &args).with(|body, _| {
        if body.get("started").is_none_or(Value::is_null) {
            body.insert("started".into(), now.clone().into());
            first = true;
        }
        Ok(())
    });
    let (mut answer, _) = set_status(svc, ctx, &id, change).await?;
    answer
        .as_object_mut()
        .expect("an object")
        .insert("started".into(), i32::from(first).into());
    Ok(answer)
}

/// Whether a task has a worker that reported on it within the timeout.
fn run_by_worker(task: &Map<String, Value>, ctx: &Ctx) -> bool {
    let worker = task
        .get("last_worker")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let recent = task
        .get("last_update")
        .and_then(Value::as_str)
        .and_then(super::parse_iso)
        .is_some_and(|t| (ctx.now - t).num_seconds() < WORKER_TIMEOUT_SECONDS);
    !worker.is_empty() && recent
}

/// `tasks.stop`: `stopped` at once when queued (it leaves its queue), a development
/// task, or not run by a worker; otherwise the status stays and `status_message`
/// becomes `stopping`, which the agent running it acts on.
pub async fn stop(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let id = args::required(&args, "task")?;
    let task = load(svc, ctx, &id).await?;
    let current = status_of(&task);
    let immediate = current == Status::Queued
        || docs::has_tag(&task, "system_tags", DEVELOPMENT)
        || !run_by_worker(&task, ctx);
    if immediate {
        if current == Status::Queued
            && let Some(queue) = at_path(&task, "execution.queue").and_then(Value::as_str)
        {
            queues::remove_if_present(svc, ctx, queue, &id).await?;
        }
        let mut change = StatusChange::from_args(Status::Stopped, &args);
        change.message = format!("Stopped by {}", ctx.user());
        let now = ctx.now_text();
        let change = change.with(move |body, _| {
            body.insert("completed".into(), now.clone().into());
            Ok(())
        });
        Ok(set_status(svc, ctx, &id, change).await?.0)
    } else {
        let mut change = StatusChange::from_args(current, &args);
        change.message = "stopping".into();
        Ok(set_status(svc, ctx, &id, change).await?.0)
    }
}

/// `tasks.stopped`: to `stopped` (the agent, after it ended the process).
pub async fn stopped(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    ended(svc, ctx, args, Status::Stopped).await
}

/// `tasks.failed`.
pub async fn failed(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    ended(svc, ctx, args, Status::Failed).await
}

/// `tasks.completed` (then published with `publish`).
pub async fn completed(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let publish_after = args::flag(&args, "publish", false);
    let mut answer = ended(svc, ctx, args.clone(), Status::Completed).await?;
    if publish_after {
        let published = publish(svc, ctx, args).await.is_ok();
        answer
            .as_object_mut()
            .expect("an object")
            .insert("published".into(), i32::from(published).into());
    }
    Ok(answer)
}

async fn ended(svc: &Services, ctx: &Ctx, args: Args, to: Status) -> Result<Value> {
    let id = args::required(&args, "task")?;
    let now = ctx.now_text();
    let change = StatusChange::from_args(to, &args).with(move |body, _| {
        if to != Status::Failed {
            body.insert("completed".into(), now.clone().into());
        }
        Ok(())
    });
    Ok(set_status(svc, ctx, &id, change).await?.0)
}

/// `tasks.close`: to `closed` (only from `stopped` without force).
pub async fn close(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let id = args::required(&args, "task")?;
    Ok(set_status(
        svc,
        ctx,
        &id,
        StatusChange::from_args(Status::Closed, &args),
    )
    .await?
    .0)
}

/// `tasks.publish`: to `published`.
pub async fn publish(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let id = args::required(&args, "task")?;
    let now = ctx.now_text();
    let change = StatusChange::from_args(Status::Published, &args).with(move |body, _| {
        body.insert("published".into(), now.clone().into());
        Ok(())
    });
    Ok(set_status(svc, ctx, &id, change).await?.0)
}

/// `tasks.reset`: back to `created` (forced; a published task only with `force`): out
/// of every queue, runtime and times cleared, its events deleted.
pub async fn reset(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let id = args::required(&args, "task")?;
    let force = args::flag(&args, "force", false);
    let clear_all = args::flag(&args, "clear_all", false);
    let task = load(svc, ctx, &id).await?;
    let current = status_of(&task);
    if current == Status::Published && !force {
        return Err(ClearmlError::invalid_status_change(
            current.name(),
            "created",
        ));
    }
    let dequeued = queues::remove_everywhere(svc, ctx, &id).await?;
    let mut change = StatusChange::from_args(Status::Created, &args).forced();
    change.reason = "reset".into();
    change.message = "reset".into();
    let change = change.with(move |body, _| {
        for field in [
            "started",
            "completed",
            "published",
            "active_duration",
            "enqueue_status",
            "last_worker_report",
        ] {
            body.insert(field.into(), Value::Null);
        }
        body.insert("last_worker".into(), "".into());
        body.insert("last_iteration".into(), 0.into());
        body.insert("runtime".into(), json!({}));
        body.remove("last_metrics");
        if let Some(Value::Object(models)) = body.get_mut("models") {
            models.insert("output".into(), json!([]));
        }
        if let Some(Value::Object(output)) = body.get_mut("output") {
            output.remove("result");
            output.remove("error");
        }
        if clear_all {
            body.insert("execution".into(), json!({}));
            body.insert("script".into(), json!({}));
        } else if let Some(Value::Object(execution)) = body.get_mut("execution") {
            execution.remove("queue");
        }
        Ok(())
    });
    let (mut answer, _) = set_status(svc, ctx, &id, change).await?;
    let deleted = events::delete_all(svc, &id).await?;
    let map = answer.as_object_mut().expect("an object");
    map.insert("dequeued".into(), json!({"removed": dequeued}));
    map.insert("events".into(), json!({"deleted": deleted}));
    map.insert("deleted_models".into(), 0.into());
    Ok(answer)
}

/// `tasks.archive`: the `archived` system tag; a queued task leaves its queue (back to
/// the status before), a running one becomes `stopped`.
pub async fn archive(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    set_archived(svc, ctx, args, true).await
}

/// `tasks.unarchive`.
pub async fn unarchive(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    set_archived(svc, ctx, args, false).await
}

async fn set_archived(svc: &Services, ctx: &Ctx, args: Args, on: bool) -> Result<Value> {
    let id = args::required(&args, "task")?;
    let task = load(svc, ctx, &id).await?;
    if on {
        match status_of(&task) {
            Status::Queued => {
                let mut a = args.clone();
                a.insert("task".into(), id.clone().into());
                dequeue(svc, ctx, a).await?;
            }
            Status::InProgress => {
                set_status(
                    svc,
                    ctx,
                    &id,
                    StatusChange::from_args(Status::Stopped, &args).forced(),
                )
                .await?;
            }
            _ => {}
        }
        queues::remove_everywhere(svc, ctx, &id).await?;
    }
    let answer = change_fields(svc, ctx, &id, |body| {
        let mut tags: Vec<String> = docs::strings(body, "system_tags")
            .into_iter()
            .filter(|t| t != ARCHIVED)
            .collect();
        if on {
            tags.push(ARCHIVED.into());
        }
        body.insert("system_tags".into(), json!(tags));
        Ok(())
    })
    .await?;
    let key = if on { "archived" } else { "unarchived" };
    Ok(json!({key: answer["updated"]}))
}

/// `tasks.delete`: only a `created` or archived task unless `force`; it leaves every
/// queue and its events go with it.
pub async fn delete(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let id = args::required(&args, "task")?;
    let force = args::flag(&args, "force", false);
    let task = load(svc, ctx, &id).await?;
    let current = status_of(&task);
    if !force && current != Status::Created && !docs::has_tag(&task, "system_tags", ARCHIVED) {
        return Err(ClearmlError::cannot_delete(&id, current.name()));
    }
    queues::remove_everywhere(svc, ctx, &id).await?;
    let events = events::delete_all(svc, &id).await?;
    docs::delete(svc, &pk(&id)).await?;
    Ok(
        json!({"deleted": true, "updated_children": 0, "updated_models": 0, "events": {"deleted": events}, "urls": {}}),
    )
}

/// `tasks.get_hyper_params`: `{params: [{task, hyperparams: [...]}]}`.
pub async fn get_hyper_params(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let ids = args::strings(&args, "tasks").unwrap_or_default();
    let mut params = Vec::new();
    for id in ids {
        let task = load(svc, ctx, &id).await?;
        let mut list = Vec::new();
        if let Some(Value::Object(sections)) = task.get("hyperparams") {
            for section in sections.values() {
                if let Value::Object(items) = section {
                    list.extend(items.values().cloned());
                }
            }
        }
        params.push(json!({"task": id, "hyperparams": list}));
    }
    Ok(json!({"params": params}))
}

/// `tasks.edit_hyper_params`: adds or replaces hyperparameters (`replace_hyperparams`:
/// `none`, `section` or `all`); only a `created` task unless `force`.
pub async fn edit_hyper_params(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let id = args::required(&args, "task")?;
    let force = args::flag(&args, "force", false);
    let replace = args::optional(&args, "replace_hyperparams").unwrap_or_else(|| "none".into());
    let items = args
        .get("hyperparams")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let answer = change_fields(svc, ctx, &id, |body| {
        let status = status_of(body);
        if !force && status != Status::Created {
            return Err(ClearmlError::invalid_status(
                "Task status must be created to edit it (use force=True)",
                status.name(),
                "created",
            ));
        }
        let params = body.entry("hyperparams").or_insert_with(|| json!({}));
        if replace == "all" || !params.is_object() {
            *params = json!({});
        }
        let params = params.as_object_mut().expect("an object");
        if replace == "section" {
            for item in &items {
                if let Some(section) = item.get("section").and_then(Value::as_str) {
                    params.insert(section.to_string(), json!({}));
                }
            }
        }
        for item in &items {
            let section = item
                .get("section")
                .and_then(Value::as_str)
                .unwrap_or("General");
            let Some(name) = item.get("name").and_then(Value::as_str) else {
                continue;
            };
            let entry = params
                .entry(section.to_string())
                .or_insert_with(|| json!({}));
            if let Value::Object(entry) = entry {
                entry.insert(name.to_string(), item.clone());
            }
        }
        Ok(())
    })
    .await?;
    Ok(json!({"updated": answer["updated"]}))
}

/// Runs a single-task call over the `ids` of its `*_many` form: `{succeeded: [{id,
/// ...}], failed: [{id, error: {codes, msg, data}}]}`.
pub async fn many<'a, F, Fut>(args: Args, single: F) -> Result<Value>
where
    F: Fn(Args) -> Fut,
    Fut: std::future::Future<Output = Result<Value>> + 'a,
{
    let ids = args::ids(&args)?;
    let mut succeeded = Vec::new();
    let mut failed = Vec::new();
    for id in ids {
        let mut one = args.clone();
        one.remove("ids");
        one.insert("task".into(), id.clone().into());
        match single(one).await {
            Ok(Value::Object(mut answer)) => {
                answer.insert("id".into(), id.into());
                succeeded.push(Value::Object(answer));
            }
            Ok(_) => succeeded.push(json!({"id": id})),
            Err(err) => failed.push(json!({
                "id": id,
                "error": {"codes": [err.code, err.subcode], "msg": err.msg, "data": err.data},
            })),
        }
    }
    Ok(json!({"succeeded": succeeded, "failed": failed}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn only_fields_keep_dotted_paths_and_the_id() {
        let task = doc(
            json!({"id": "a", "status": "queued", "runtime": {"x": 1, "_abort_poll_freq": 5},
                              "execution": {"queue": "q"}}),
        );
        let fields = [
            "status".to_string(),
            "runtime._abort_poll_freq".into(),
            "runtime.missing".into(),
        ];
        assert_eq!(
            Value::Object(project_fields(&task, &fields)),
            json!({"id": "a", "status": "queued", "runtime": {"_abort_poll_freq": 5}})
        );
    }

    #[test]
    fn order_page_and_project() {
        let tasks: Vec<_> = (0..5)
            .map(|i| doc(json!({"id": format!("t{i}"), "n": i, "name": format!("x{}", 4 - i)})))
            .collect();
        let args =
            doc(json!({"order_by": ["-n"], "page": 1, "page_size": 2, "only_fields": ["n"]}));
        assert_eq!(
            order_page_project(tasks.clone(), &args),
            vec![json!({"id": "t2", "n": 2}), json!({"id": "t1", "n": 1})]
        );
        let args = doc(json!({"order_by": "name", "only_fields": ["id"]}));
        assert_eq!(order_page_project(tasks, &args)[0], json!({"id": "t4"}));
    }

    #[test]
    fn tag_filters_include_and_exclude() {
        let task = doc(json!({"system_tags": ["development", "x"]}));
        assert!(tags_match(&task, "system_tags", &["x".into()]));
        assert!(!tags_match(&task, "system_tags", &["-development".into()]));
        assert!(tags_match(&task, "system_tags", &["-archived".into()]));
        assert!(!tags_match(&task, "system_tags", &["y".into()]));
        assert!(tags_match(&task, "system_tags", &[]));
    }

    #[test]
    fn names_are_unanchored_regexes_with_the_clients_escapes() {
        let args = doc(json!({"name": "^fanout\\-demo$"}));
        let re = name_filter(&args).unwrap().unwrap();
        assert!(re.is_match("fanout-demo") && !re.is_match("fanout-demo2"));
        let re = name_filter(&doc(json!({"name": "default"})))
            .unwrap()
            .unwrap();
        assert!(re.is_match("my default queue"));
        assert!(re.is_match("default") && !re.is_match("Default"));
        assert_eq!(
            name_filter(&doc(json!({"name": "("}))).unwrap_err().subcode,
            12
        );
    }

    #[test]
    fn changed_fields_are_the_differences() {
        let before = doc(json!({"a": 1, "b": 2}));
        let after = doc(json!({"a": 1, "b": 3, "c": 4}));
        assert_eq!(changed(&before, &after), json!({"b": 3, "c": 4}));
    }
}
