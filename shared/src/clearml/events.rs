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
    let mut counts: BTreeMap<(String, &'static str), usize> = BTreeMap::new();
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
            *counts.entry((task.clone(), kind)).or_default() += chunk.len();
            items.push(item);
        }
    }
    svc.table.batch_write(items, Vec::new()).await?;
    for ((task, kind), count) in counts {
        let mut values = Item::new();
        values.insert(
            ":n".into(),
            aws_sdk_dynamodb::types::AttributeValue::N(count.to_string()),
        );
        svc.table
            .update(
                &keys::clearml_events_pk(&task),
                &count_sk(kind),
                "ADD event_count :n",
                None,
                values,
            )
            .await?;
    }
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

/// Sort key of the item counting a task's events of a kind.
fn count_sk(kind: &str) -> String {
    format!("COUNT#{kind}")
}

/// How many events of a kind a task has.
async fn count(svc: &Services, task: &str, kind: &str) -> Result<u64> {
    let item = svc
        .table
        .get(&keys::clearml_events_pk(task), &count_sk(kind))
        .await?;
    Ok(item
        .and_then(|i| i.get("event_count").and_then(|v| v.as_n().ok()).cloned())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}

/// The events of one stored item.
fn item_events(item: &Item) -> Vec<Map<String, Value>> {
    let mut events: Vec<Map<String, Value>> = match item
        .get("events")
        .and_then(|v| v.as_s().ok())
        .and_then(|t| serde_json::from_str(t).ok())
    {
        Some(Value::Array(events)) => events
            .into_iter()
            .filter_map(|e| match e {
                Value::Object(map) => Some(map),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    events.sort_by_key(timestamp_of);
    events
}

fn sort_key(item: &Item) -> String {
    item.get("sk")
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

/// Where a log page stopped: the item (sort key) and how many of its events (from its
/// start) come in the next page's direction; `End` when nothing is left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scroll {
    /// No page read yet.
    Start,
    /// In the middle of the log.
    At(String, usize),
    /// Past the last event.
    End,
}

impl Scroll {
    /// Reads a `scroll_id` (anything else starts over).
    pub fn parse(text: Option<&str>) -> Scroll {
        match text {
            Some("end") => Scroll::End,
            Some(text) => match text.rsplit_once('~') {
                Some((sk, n)) if sk.starts_with("LOG#") => match n.parse() {
                    Ok(n) => Scroll::At(sk.to_string(), n),
                    Err(_) => Scroll::Start,
                },
                _ => Scroll::Start,
            },
            None => Scroll::Start,
        }
    }

    /// The `scroll_id` to answer.
    pub fn text(&self) -> String {
        match self {
            Scroll::Start => String::new(),
            Scroll::At(sk, n) => format!("{sk}~{n}"),
            Scroll::End => "end".into(),
        }
    }
}

/// One page of a task's log of up to `batch` events: from the newest back
/// (`earlier`), or from the oldest on, continuing at `scroll`. Reads only the items the
/// page needs (each holds a chunk of a batch, in time order by its first event).
async fn log_page(
    svc: &Services,
    task: &str,
    batch: usize,
    earlier: bool,
    scroll: Scroll,
) -> Result<(Vec<Map<String, Value>>, Scroll)> {
    let pk = keys::clearml_events_pk(task);
    let mut page: Vec<Map<String, Value>> = Vec::new();
    let mut next = Scroll::End;
    // The item a page stopped in, then the items past it.
    let (bound, partial) = match &scroll {
        Scroll::End => return Ok((page, Scroll::End)),
        Scroll::Start => (None, None),
        Scroll::At(sk, n) => (Some(sk.clone()), Some(*n)),
    };
    // Takes an item's events into the page in the page's direction; when they do not
    // all fit, where the next page goes on in this item.
    let take = |sk: &str, mut events: Vec<Map<String, Value>>, page: &mut Vec<_>| {
        let room = batch - page.len();
        if events.len() <= room {
            if earlier {
                page.extend(events.into_iter().rev());
            } else {
                page.extend(events);
            }
            return None;
        }
        if earlier {
            // The item's first `start` events are left.
            let start = events.len() - room;
            page.extend(events.split_off(start).into_iter().rev());
            Some(Scroll::At(sk.to_string(), start))
        } else {
            // The item's last `left` events are left.
            let left = events.len() - room;
            page.extend(events.into_iter().take(room));
            Some(Scroll::At(sk.to_string(), left))
        }
    };
    if let (Some(sk), Some(n)) = (&bound, partial)
        && let Some(item) = svc.table.get(&pk, sk).await?
    {
        let events = item_events(&item);
        let events = if earlier {
            events.into_iter().take(n).collect()
        } else {
            let skip = events.len().saturating_sub(n);
            events.into_iter().skip(skip).collect()
        };
        if let Some(stop) = take(sk, events, &mut page) {
            return Ok((page, stop));
        }
    }
    let range = match (&bound, earlier) {
        (Some(sk), true) => KeyRange::Between {
            gte: Some("LOG#".into()),
            lt: Some(sk.clone()),
        },
        (Some(sk), false) => KeyRange::Between {
            gte: Some(sk.clone()),
            lt: Some("LOG$".into()),
        },
        (None, _) => KeyRange::Prefix("LOG#".into()),
    };
    let query = TableQuery {
        index: None,
        partition: pk,
        range,
        descending: earlier,
    };
    // A page filled up by the rest of the item it started in goes on with the next one.
    let mut full = page.len() >= batch;
    svc.table
        .for_each(&query, |item| {
            let sk = sort_key(&item);
            if bound.as_deref() == Some(sk.as_str()) {
                return std::ops::ControlFlow::Continue(());
            }
            if full {
                // The page ended exactly at an item's end: the next starts at this one.
                next = Scroll::At(sk, usize::MAX);
                return std::ops::ControlFlow::Break(());
            }
            if let Some(stop) = take(&sk, item_events(&item), &mut page) {
                next = stop;
                return std::ops::ControlFlow::Break(());
            }
            full = page.len() >= batch;
            std::ops::ControlFlow::Continue(())
        })
        .await?;
    Ok((page, next))
}

/// `events.get_task_log`: a page of a task's console log, by default the newest
/// (`navigate_earlier`), in `order` (`desc` by default); `{events, returned, total,
/// scroll_id}` (give `scroll_id` back for the next page; an empty page at the end).
pub async fn get_task_log(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let task = args::required(&args, "task")?;
    tasks::load(svc, ctx, &task).await?;
    let batch = args::integer(&args, "batch_size")
        .filter(|b| *b > 0)
        .map_or(DEFAULT_BATCH, |b| (b as usize).min(10_000));
    let earlier = args::flag(&args, "navigate_earlier", true);
    let ascending = args::optional(&args, "order").as_deref() == Some("asc");
    let scroll = Scroll::parse(args::optional(&args, "scroll_id").as_deref());
    let (mut page, next) = log_page(svc, &task, batch, earlier, scroll).await?;
    if let Some(from) = args::integer(&args, "from_timestamp") {
        page.retain(|e| timestamp_of(e) >= from);
    }
    // Pages going back come newest first.
    if earlier == ascending {
        page.reverse();
    }
    let total = count(svc, &task, "LOG").await?;
    Ok(json!({
        "returned": page.len(),
        "events": page,
        "total": total,
        "scroll_id": next.text(),
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
    fn scroll_ids_read_back() {
        for scroll in [
            Scroll::At("LOG#00000000000000001000#abc".into(), 7),
            Scroll::At("LOG#1#x".into(), usize::MAX),
            Scroll::End,
        ] {
            assert_eq!(Scroll::parse(Some(&scroll.text())), scroll);
        }
        assert_eq!(Scroll::parse(None), Scroll::Start);
        assert_eq!(Scroll::parse(Some("")), Scroll::Start);
        assert_eq!(Scroll::parse(Some("METRIC#1~2")), Scroll::Start);
        assert_eq!(Scroll::parse(Some("LOG#1~x")), Scroll::Start);
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
