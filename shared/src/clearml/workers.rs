//! ClearML workers: one item per worker in its account's partition, written by
//! `register` and `status_report`, gone from every answer `timeout` seconds (600 by
//! default) after its last one (the item also carries `expires_at` for the table's TTL).

use serde_json::{Map, Value, json};

use crate::Services;
use crate::store::dynamo::s;
use crate::store::{Item, KeyRange, TableQuery, keys};

use super::args::{self, Args};
use super::error::{ClearmlError, Result};
use super::{Ctx, queues, tasks};

/// Seconds a worker stays listed after its last register or report.
pub const DEFAULT_TIMEOUT: i64 = 600;

fn worker_id(args: &Args) -> Result<String> {
    let id = args::required(args, "worker")?;
    if id.len() > 512 {
        return Err(ClearmlError::invalid_worker_id(&id));
    }
    Ok(id)
}

async fn read(svc: &Services, ctx: &Ctx, id: &str) -> Result<Option<Map<String, Value>>> {
    let Some(item) = svc
        .table
        .get(&keys::clearml_workers_pk(ctx.account()), id)
        .await?
    else {
        return Ok(None);
    };
    Ok(parse(&item, ctx))
}

/// A stored worker's document, unless it has expired: `register_timeout` seconds after
/// its last activity (to the microsecond; the item's `expires_at`, in whole seconds, is
/// for the table's TTL).
fn parse(item: &Item, ctx: &Ctx) -> Option<Map<String, Value>> {
    let doc = item.get("doc").and_then(|v| v.as_s().ok())?;
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(doc) else {
        return None;
    };
    let timeout = map
        .get("register_timeout")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_TIMEOUT);
    let last = map
        .get("last_activity_time")
        .and_then(Value::as_str)
        .and_then(super::parse_iso)?;
    (ctx.now < last + chrono::Duration::seconds(timeout)).then_some(map)
}

async fn write(svc: &Services, ctx: &Ctx, id: &str, doc: &Map<String, Value>) -> Result<()> {
    let timeout = doc
        .get("register_timeout")
        .and_then(Value::as_i64)
        .unwrap_or(DEFAULT_TIMEOUT);
    let mut item = Item::new();
    item.insert("pk".into(), s(&keys::clearml_workers_pk(ctx.account())));
    item.insert("sk".into(), s(id));
    item.insert(
        "doc".into(),
        s(&serde_json::to_string(doc).map_err(|e| ClearmlError::internal(e.to_string()))?),
    );
    item.insert(
        "expires_at".into(),
        aws_sdk_dynamodb::types::AttributeValue::N((ctx.now.timestamp() + timeout).to_string()),
    );
    svc.table.put_when(item, None, Item::new()).await?;
    Ok(())
}

fn new_worker(ctx: &Ctx, id: &str, timeout: i64) -> Map<String, Value> {
    let now = ctx.now_text();
    let ip = id.split(':').next().unwrap_or_default();
    json!({
        "id": id,
        "key": format!("worker_{}_{}", ctx.account().simple(), id),
        "user": {"id": ctx.user(), "name": ctx.user()},
        "company": {"id": ctx.account().simple().to_string(), "name": ctx.account().simple().to_string()},
        "ip": ip,
        "register_time": now,
        "register_timeout": timeout,
        "last_activity_time": now,
        "last_report_time": null,
        "tags": [],
        "system_tags": [],
        "queues": [],
        "queue": null,
        "task": null,
        "project": null,
    })
    .as_object()
    .expect("an object")
    .clone()
}

async fn check_queues(svc: &Services, ctx: &Ctx, queues: &[String]) -> Result<()> {
    for queue in queues {
        queues::load(svc, ctx, queue).await?;
    }
    Ok(())
}

/// `workers.register`: `{}`; the queues must exist.
pub async fn register(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let id = worker_id(&args)?;
    let timeout = args::integer(&args, "timeout").unwrap_or(DEFAULT_TIMEOUT);
    if timeout <= 0 {
        return Err(ClearmlError::new(
            400,
            1002,
            "Worker registration failed: timeout must be positive",
        ));
    }
    let listened = args::strings(&args, "queues").unwrap_or_default();
    check_queues(svc, ctx, &listened).await?;
    let mut doc = match read(svc, ctx, &id).await? {
        Some(doc) => doc,
        None => new_worker(ctx, &id, timeout),
    };
    doc.insert("register_timeout".into(), timeout.into());
    doc.insert("last_activity_time".into(), ctx.now_text().into());
    doc.insert("queues".into(), json!(listened));
    for field in ["tags", "system_tags"] {
        if let Some(value) = args.get(field).filter(|v| v.is_array()) {
            doc.insert(field.into(), value.clone());
        }
    }
    write(svc, ctx, &id, &doc).await?;
    Ok(json!({}))
}

/// `workers.unregister`: `{}`, known or not.
pub async fn unregister(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let id = worker_id(&args)?;
    svc.table
        .batch_write(
            Vec::new(),
            vec![(keys::clearml_workers_pk(ctx.account()), id)],
        )
        .await?;
    Ok(json!({}))
}

/// `workers.status_report`: registers an unknown worker, notes its activity, task and
/// queues, and stamps the task's `last_worker`, `last_worker_report` and `last_update`
/// (what `tasks.stop` reads to know a worker runs it).
pub async fn status_report(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let id = worker_id(&args)?;
    let task = args::optional(&args, "task");
    if let Some(task) = &task {
        let now = ctx.now_text();
        let worker = id.clone();
        tasks::change_fields(svc, ctx, task, |body| {
            body.insert("last_worker".into(), worker.clone().into());
            body.insert("last_worker_report".into(), now.clone().into());
            body.insert("last_update".into(), now.clone().into());
            Ok(())
        })
        .await?;
    }
    let mut doc = match read(svc, ctx, &id).await? {
        Some(doc) => doc,
        None => new_worker(ctx, &id, DEFAULT_TIMEOUT),
    };
    let now = ctx.now_text();
    doc.insert("last_activity_time".into(), now.clone().into());
    doc.insert("last_report_time".into(), now.into());
    doc.insert(
        "task".into(),
        task.map_or(Value::Null, |t| json!({"id": t})),
    );
    doc.insert(
        "queue".into(),
        args::optional(&args, "queue").map_or(Value::Null, Value::String),
    );
    if let Some(listened) = args::strings(&args, "queues") {
        doc.insert("queues".into(), json!(listened));
    }
    if let Some(tags) = args.get("tags").filter(|v| v.is_array()) {
        doc.insert("tags".into(), tags.clone());
    }
    write(svc, ctx, &id, &doc).await?;
    super::metrics::record_worker(
        svc,
        ctx.account(),
        &id,
        ctx.now,
        doc.get("task").is_some_and(|t| !t.is_null()),
        args.get("machine_stats").and_then(Value::as_object),
    )
    .await?;
    Ok(json!({}))
}

/// `workers.get_stats`: the machine statistics of the account's workers over time.
pub async fn get_stats(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    super::metrics::get_stats(svc, ctx.account(), &args).await
}

/// `workers.get_activity_report`: how many of the account's workers reported, and how
/// many ran a task, over time.
pub async fn get_activity_report(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    super::metrics::get_activity_report(svc, ctx.account(), &args).await
}

/// The account's live workers.
async fn live(svc: &Services, ctx: &Ctx) -> Result<Vec<Map<String, Value>>> {
    let query = TableQuery {
        index: None,
        partition: keys::clearml_workers_pk(ctx.account()),
        range: KeyRange::All,
        descending: false,
    };
    let mut out = Vec::new();
    svc.table
        .for_each(&query, |item| {
            if let Some(doc) = parse(&item, ctx) {
                out.push(doc);
            }
            std::ops::ControlFlow::Continue(())
        })
        .await?;
    Ok(out)
}

/// Whether a live worker listens to the queue.
pub async fn queue_watched(svc: &Services, ctx: &Ctx, queue_id: &str) -> Result<bool> {
    Ok(live(svc, ctx).await?.iter().any(|w| {
        w.get("queues")
            .and_then(Value::as_array)
            .is_some_and(|q| q.iter().any(|q| q.as_str() == Some(queue_id)))
    }))
}

/// `workers.get_all`: live workers seen within `last_seen` seconds (3600; 0 or less: no
/// such filter, as `clearml-agent list` asks), with their
/// task (`{id, name, running_time, last_iteration}`) and queues (`{id, name,
/// num_tasks, next_task}`).
pub async fn get_all(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let last_seen = args::integer(&args, "last_seen").unwrap_or(3600);
    let pattern = args::optional(&args, "worker_pattern")
        .map(|p| regex::Regex::new(&p))
        .transpose()
        .map_err(|e| ClearmlError::validation(e.to_string()))?;
    let mut out = Vec::new();
    for mut worker in live(svc, ctx).await? {
        let seen = worker
            .get("last_activity_time")
            .and_then(Value::as_str)
            .and_then(super::parse_iso)
            .is_some_and(|t| last_seen <= 0 || (ctx.now - t).num_seconds() <= last_seen);
        let id = worker.get("id").and_then(Value::as_str).unwrap_or_default();
        if !seen || pattern.as_ref().is_some_and(|p| !p.is_match(id)) {
            continue;
        }
        if let Some(task_id) = worker
            .get("task")
            .and_then(|t| t.get("id"))
            .and_then(Value::as_str)
            .map(String::from)
        {
            let task = match tasks::load(svc, ctx, &task_id).await {
                Ok(task) => {
                    let running_ms = task
                        .get("started")
                        .and_then(Value::as_str)
                        .and_then(super::parse_iso)
                        .map(|t| (ctx.now - t).num_milliseconds())
                        .unwrap_or(0);
                    json!({"id": task_id, "name": task.get("name"), "running_time": running_ms,
                           "last_iteration": task.get("last_iteration")})
                }
                Err(_) => json!({"id": task_id}),
            };
            worker.insert("task".into(), task);
        }
        if let Some(queue) = worker
            .get("queue")
            .and_then(Value::as_str)
            .map(String::from)
        {
            worker.insert("queue".into(), queues::summary(svc, ctx, &queue).await);
        }
        let listened: Vec<String> = worker
            .get("queues")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|q| q.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let mut summaries = Vec::new();
        for queue in listened {
            summaries.push(queues::summary(svc, ctx, &queue).await);
        }
        worker.insert("queues".into(), Value::Array(summaries));
        out.push(Value::Object(worker));
    }
    Ok(json!({"workers": out}))
}

/// `workers.get_count`.
pub async fn get_count(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let all = get_all(svc, ctx, args).await?;
    Ok(json!({"count": all["workers"].as_array().map_or(0, Vec::len)}))
}

/// `workers.get_runtime_properties`: none are kept; 404 as the clients tolerate.
pub async fn get_runtime_properties(_svc: &Services, _ctx: &Ctx, args: Args) -> Result<Value> {
    let id = args::optional(&args, "worker").unwrap_or_default();
    Err(ClearmlError::not_found(format!(
        "No runtime properties for worker {id}"
    )))
}
