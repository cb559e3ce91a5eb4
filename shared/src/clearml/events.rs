//! ClearML task events (console logs, scalars, plots): stored as they come, one item per
//! kind and chunk of a batch (at most [`CHUNK_BYTES`] of JSON, so a batch of any size
//! fits DynamoDB's item limit), in the task's own partition sorted by time, and read
//! back a page at a time.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::Services;
use crate::store::dynamo::s;
use crate::store::{Item, KeyRange, TableQuery, keys};

use super::args::{self, Args};
use super::docs;
use super::error::{ClearmlError, Result};
use super::{Ctx, iso, tasks};

/// Most bytes of events JSON in one item (DynamoDB takes 400 KB).
pub const CHUNK_BYTES: usize = 300 * 1024;
/// Events `get_task_log` answers when no `batch_size` is given.
const DEFAULT_BATCH: usize = 500;

/// The stored kind of an event type: console logs apart from the rest.
fn kind_of(event: &Map<String, Value>) -> &'static str {
    match event.get("type").and_then(Value::as_str) {
        Some("log") => "LOG",
        _ => "METRIC",
    }
}

fn timestamp_of(event: &Map<String, Value>) -> i64 {
    match event.get("timestamp") {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .unwrap_or(0),
        _ => 0,
    }
}

/// Splits events into chunks of at most [`CHUNK_BYTES`] of JSON each.
pub fn chunks(events: &[Value]) -> Vec<Vec<Value>> {
    let mut out: Vec<Vec<Value>> = Vec::new();
    let mut current = Vec::new();
    let mut size = 0;
    for event in events {
        let len = event.to_string().len() + 1;
        if !current.is_empty() && size + len > CHUNK_BYTES {
            out.push(std::mem::take(&mut current));
            size = 0;
        }
        size += len;
        current.push(event.clone());
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// `events.add_batch`: the events of `requests` (the json-lines of the body). Each must
/// name a task of the caller's account; `{added, errors, errors_info}`.
pub async fn add_batch(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let requests = match args.get("requests") {
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    };
    let now_ms = ctx.now.timestamp_millis();
    let mut by_task: BTreeMap<(String, &'static str), Vec<Value>> = BTreeMap::new();
    let mut errors: Vec<String> = Vec::new();
    let mut last_iteration: BTreeMap<String, i64> = BTreeMap::new();
    for request in requests {
        let Value::Object(mut event) = request else {
            errors.push("an event is not an object".into());
            continue;
        };
        event.remove("method");
        let Some(task) = event.get("task").and_then(Value::as_str).map(String::from) else {
            errors.push("an event names no task".into());
            continue;
        };
        if !event.contains_key("timestamp") {
            event.insert("timestamp".into(), now_ms.into());
        }
        let at = chrono::DateTime::from_timestamp_millis(timestamp_of(&event)).unwrap_or(ctx.now);
        event.insert("@timestamp".into(), iso(at).into());
        if let Some(iter) = event.get("iter").and_then(Value::as_i64) {
            let best = last_iteration.entry(task.clone()).or_insert(iter);
            *best = (*best).max(iter);
        }
        by_task
            .entry((task, kind_of(&event)))
            .or_default()
            .push(Value::Object(event));
    }
    let mut added = 0usize;
    let mut items = Vec::new();
    let mut checked: BTreeMap<String, bool> = BTreeMap::new();
    for ((task, kind), events) in by_task {
        let known = match checked.get(&task) {
            Some(known) => *known,
            None => {
                let known = docs::is_id(&task)
                    && docs::get(svc, &tasks::pk(&task), ctx.account())
                        .await?
                        .is_some();
                checked.insert(task.clone(), known);
                known
            }
        };
        if !known {
            errors.push(format!("invalid task id {task}"));
            continue;
        }
        for chunk in chunks(&events) {
            let first = chunk
                .first()
                .and_then(Value::as_object)
                .map(timestamp_of)
                .unwrap_or(now_ms);
            let mut item = Item::new();
            item.insert("pk".into(), s(&keys::clearml_events_pk(&task)));
            item.insert(
                "sk".into(),
                s(&keys::clearml_events_sk(kind, first, &docs::new_id())),
            );
            item.insert("account_id".into(), s(&ctx.account().to_string()));
            item.insert(
                "events".into(),
                s(&serde_json::to_string(&chunk)
                    .map_err(|e| ClearmlError::internal(e.to_string()))?),
            );
            added += chunk.len();
            items.push(item);
        }
    }
    svc.table.batch_write(items, Vec::new()).await?;
    for (task, iter) in last_iteration {
        if checked.get(&task) == Some(&true) {
            tasks::change_fields(svc, ctx, &task, |body| {
                let old = body
                    .get("last_iteration")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                if iter > old {
                    body.insert("last_iteration".into(), iter.into());
                }
                Ok(())
            })
            .await?;
        }
    }
    let errors_info: Map<String, Value> = errors
        .iter()
        .enumerate()
        .map(|(i, e)| (i.to_string(), Value::String(e.clone())))
        .collect();
    Ok(json!({"added": added, "errors": errors.len(), "errors_info": errors_info}))
}

/// Every stored event of a kind (`LOG`, `METRIC`) of a task, oldest first.
async fn read_all(svc: &Services, task: &str, kind: &str) -> Result<Vec<Map<String, Value>>> {
    let query = TableQuery {
        index: None,
        partition: keys::clearml_events_pk(task),
        range: KeyRange::Prefix(format!("{kind}#")),
        descending: false,
    };
    let mut out = Vec::new();
    svc.table
        .for_each(&query, |item| {
            if let Some(Value::Array(events)) = item
                .get("events")
                .and_then(|v| v.as_s().ok())
                .and_then(|t| serde_json::from_str(t).ok())
            {
                out.extend(events.into_iter().filter_map(|e| match e {
                    Value::Object(map) => Some(map),
                    _ => None,
                }));
            }
            std::ops::ControlFlow::Continue(())
        })
        .await?;
    // Items sort by their first event; events of overlapping batches sort here.
    out.sort_by_key(timestamp_of);
    Ok(out)
}

/// The window of `total` events a log page covers: `navigate_earlier` pages go from the
/// newest back (the scroll position is the end of the page), others from the oldest on.
pub fn log_window(
    total: usize,
    batch: usize,
    navigate_earlier: bool,
    scroll: Option<usize>,
) -> (usize, usize) {
    if navigate_earlier {
        let end = scroll.unwrap_or(total).min(total);
        (end.saturating_sub(batch), end)
    } else {
        let start = scroll.unwrap_or(0).min(total);
        (start, (start + batch).min(total))
    }
}

/// `events.get_task_log`: a page of a task's console log; `{events, returned, total,
/// scroll_id}` (give `scroll_id` back for the next page).
pub async fn get_task_log(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let task = args::required(&args, "task")?;
    tasks::load(svc, ctx, &task).await?;
    let batch = args::integer(&args, "batch_size")
        .filter(|b| *b > 0)
        .map_or(DEFAULT_BATCH, |b| b as usize);
    let navigate_earlier = args::flag(&args, "navigate_earlier", true);
    let ascending = args::optional(&args, "order").as_deref() == Some("asc");
    let mut all = read_all(svc, &task, "LOG").await?;
    if let Some(from) = args::integer(&args, "from_timestamp") {
        all.retain(|e| timestamp_of(e) >= from);
    }
    let scroll = args::optional(&args, "scroll_id").and_then(|s| s.parse::<usize>().ok());
    let (start, end) = log_window(all.len(), batch, navigate_earlier, scroll);
    let mut page: Vec<Value> = all[start..end].iter().cloned().map(Value::Object).collect();
    if !ascending {
        page.reverse();
    }
    let next = if navigate_earlier { start } else { end };
    Ok(json!({
        "events": page,
        "returned": end - start,
        "total": all.len(),
        "scroll_id": next.to_string(),
    }))
}

/// `events.get_task_events`: a page of a task's events of any kind, oldest first
/// (`event_type` filters), `{events, returned, total, scroll_id}`.
pub async fn get_task_events(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let task = args::required(&args, "task")?;
    tasks::load(svc, ctx, &task).await?;
    let wanted = args::optional(&args, "event_type");
    let mut all = read_all(svc, &task, "METRIC").await?;
    all.extend(read_all(svc, &task, "LOG").await?);
    all.sort_by_key(timestamp_of);
    if let Some(wanted) = wanted {
        all.retain(|e| e.get("type").and_then(Value::as_str) == Some(wanted.as_str()));
    }
    let batch = args::integer(&args, "batch_size")
        .filter(|b| *b > 0)
        .map_or(DEFAULT_BATCH, |b| b as usize);
    let start = args::optional(&args, "scroll_id")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(0)
        .min(all.len());
    let end = (start + batch).min(all.len());
    let page: Vec<Value> = all[start..end].iter().cloned().map(Value::Object).collect();
    Ok(
        json!({"events": page, "returned": end - start, "total": all.len(), "scroll_id": end.to_string()}),
    )
}

/// Deletes every event of a task; how many stored items went.
pub async fn delete_all(svc: &Services, task: &str) -> Result<usize> {
    let query = TableQuery {
        index: None,
        partition: keys::clearml_events_pk(task),
        range: KeyRange::All,
        descending: false,
    };
    let mut doomed = Vec::new();
    svc.table
        .for_each(&query, |item| {
            if let (Some(pk), Some(sk)) = (
                item.get("pk").and_then(|v| v.as_s().ok()),
                item.get("sk").and_then(|v| v.as_s().ok()),
            ) {
                doomed.push((pk.clone(), sk.clone()));
            }
            std::ops::ControlFlow::Continue(())
        })
        .await?;
    let count = doomed.len();
    svc.table.batch_write(Vec::new(), doomed).await?;
    Ok(count)
}

/// `events.delete_for_task`: `{deleted}`.
pub async fn delete_for_task(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let task = args::required(&args, "task")?;
    tasks::load(svc, ctx, &task).await?;
    Ok(json!({"deleted": delete_all(svc, &task).await?}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_pages_from_the_newest_back_or_the_oldest_on() {
        assert_eq!(log_window(10, 3, true, None), (7, 10));
        assert_eq!(log_window(10, 3, true, Some(7)), (4, 7));
        assert_eq!(log_window(10, 3, true, Some(2)), (0, 2));
        assert_eq!(log_window(10, 3, false, None), (0, 3));
        assert_eq!(log_window(10, 3, false, Some(9)), (9, 10));
        assert_eq!(log_window(0, 3, true, None), (0, 0));
    }

    #[test]
    fn chunks_stay_under_the_item_limit() {
        let big = "x".repeat(100 * 1024);
        let events: Vec<Value> = (0..7).map(|i| json!({"i": i, "msg": big})).collect();
        let parts = chunks(&events);
        assert!(parts.len() >= 3, "{}", parts.len());
        assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), 7);
        for part in &parts {
            assert!(serde_json::to_string(part).unwrap().len() <= CHUNK_BYTES + 1024);
        }
        assert!(chunks(&[]).is_empty());
    }
}
