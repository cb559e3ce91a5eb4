//! Time series of queues and workers, as seed 004 defines them: a queue's length and
//! the average wait of its entries (`queues.get_queue_metrics`), and the machine
//! statistics and activity of workers (`workers.get_stats`,
//! `workers.get_activity_report`, `workers.get_metric_keys`).
//!
//! Points are items in the one table, kept [`RETENTION_DAYS`] (the table's TTL): a queue
//! gets one at every change of its entries (push, pop, removal, reordering, clear), a
//! worker's account one at every status report. Reads bucket the points of a range by
//! `interval` seconds, aligned on the epoch; buckets without points are left out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::Services;
use crate::store::dynamo::{n, s};
use crate::store::{Item, KeyRange, TableQuery, keys};

use super::args::{self, Args};
use super::error::{ClearmlError, Result};

/// Days a point is kept.
pub const RETENTION_DAYS: i64 = 30;
/// Seconds before `from_date` the queue metrics look back for the state a series starts
/// from (clearml-server's `metrics_before_from_date`).
const BEFORE_FROM: i64 = 3600;
/// The shortest interval of the activity report (clearml-server's
/// `min_chart_interval_sec`).
const MIN_ACTIVITY_INTERVAL: i64 = 40;
/// Most buckets one read may ask for.
const MAX_BUCKETS: i64 = 10_000;

/// The machine statistics a worker reports, by category (`workers.get_metric_keys`).
pub const METRIC_KEYS: &[(&str, &[&str])] = &[
    ("cpu", &["cpu_usage", "cpu_temperature"]),
    ("memory", &["memory_used", "memory_free"]),
    (
        "gpu",
        &[
            "gpu_usage",
            "gpu_temperature",
            "gpu_fraction",
            "gpu_memory_free",
            "gpu_memory_used",
        ],
    ),
    ("network", &["network_tx", "network_rx"]),
    (
        "disk",
        &[
            "disk_free_home",
            "disk_free_temp",
            "disk_read",
            "disk_write",
        ],
    ),
];

/// A range of a read: seconds from the epoch, and the bucket width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    from: i64,
    to: i64,
    interval: i64,
}

impl Range {
    /// `from_date`, `to_date` and `interval` of the request (seconds; fractions are
    /// cut), at least `min_interval`.
    fn parse(args: &Args, min_interval: i64) -> Result<Range> {
        let number = |name: &str| -> Result<i64> {
            match args.get(name) {
                Some(Value::Number(v)) => v
                    .as_f64()
                    .filter(|v| v.is_finite() && v.abs() < 1e12)
                    .map(|v| v as i64)
                    .ok_or_else(|| ClearmlError::validation(format!("{name} is out of range"))),
                Some(_) => Err(ClearmlError::validation(format!("{name} must be a number"))),
                None => Err(ClearmlError::validation(format!("{name} is required"))),
            }
        };
        let (from, to, interval) = (
            number("from_date")?,
            number("to_date")?,
            number("interval")?,
        );
        if interval < 1 {
            return Err(ClearmlError::validation(
                "interval must be at least 1 second",
            ));
        }
        if to < from {
            return Err(ClearmlError::validation(
                "to_date must not be before from_date",
            ));
        }
        let interval = interval.max(min_interval);
        if (to - from) / interval > MAX_BUCKETS {
            return Err(ClearmlError::validation(format!(
                "at most {MAX_BUCKETS} intervals between from_date and to_date"
            )));
        }
        Ok(Range { from, to, interval })
    }

    /// The start of the bucket of `seconds`.
    fn bucket(&self, seconds: i64) -> i64 {
        seconds - seconds.rem_euclid(self.interval)
    }
}

/// A sort key of a point: its time (ms, zero-padded) and `suffix`.
fn point_sk(ms: i64, suffix: &str) -> String {
    format!("{:020}#{suffix}", ms.max(0))
}

/// The points of `partition` from `from` to `to` (seconds, both included), in time order.
async fn points(svc: &Services, partition: String, from: i64, to: i64) -> Result<Vec<Item>> {
    let query = TableQuery {
        index: None,
        partition,
        range: KeyRange::Between {
            gte: Some(point_sk(from * 1000, "")),
            lt: Some(point_sk((to + 1) * 1000, "")),
        },
        descending: false,
    };
    let mut out = Vec::new();
    svc.table
        .for_each(&query, |item| {
            out.push(item.clone());
            ControlFlow::Continue(())
        })
        .await?;
    Ok(out)
}

fn number_of(item: &Item, name: &str) -> Option<f64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn millis_of(item: &Item) -> Option<i64> {
    item.get("sk")?.as_s().ok()?.split('#').next()?.parse().ok()
}

fn expires(now: DateTime<Utc>) -> String {
    (now.timestamp() + RETENTION_DAYS * 24 * 3600).to_string()
}

// --- queues ------------------------------------------------------------------------

/// Records a queue's state after a change of its entries at `now`: its length and the
/// average wait of its entries (seconds since each was added). A failure is logged, not
/// answered: the change itself is done.
pub async fn record_queue(svc: &Services, queue_id: &str, now: DateTime<Utc>, entries: &[Value]) {
    let waits: Vec<f64> = entries
        .iter()
        .filter_map(|e| e.get("added").and_then(Value::as_str))
        .filter_map(super::parse_iso)
        .map(|added| (now - added).num_milliseconds().max(0) as f64 / 1000.0)
        .collect();
    let wait = if waits.is_empty() {
        0.0
    } else {
        waits.iter().sum::<f64>() / waits.len() as f64
    };
    let item = Item::from([
        (
            "pk".to_string(),
            s(&keys::clearml_queue_metrics_pk(queue_id)),
        ),
        (
            "sk".to_string(),
            s(&point_sk(
                now.timestamp_millis(),
                &Uuid::new_v4().simple().to_string()[..8],
            )),
        ),
        ("length".to_string(), n(entries.len())),
        ("wait".to_string(), n(format!("{wait:.3}"))),
        ("expires_at".to_string(), n(expires(now))),
    ]);
    if let Err(err) = svc.table.put_when(item, None, Item::new()).await {
        tracing::error!(queue_id, %err, "queue metrics point not recorded");
    }
}

/// One queue's series: per bucket, the point with the longest wait (a tie: the longer
/// queue), as `(bucket, wait, length)`.
fn queue_series(range: &Range, items: &[Item]) -> Vec<(i64, f64, u64)> {
    let mut buckets: BTreeMap<i64, (f64, u64)> = BTreeMap::new();
    for item in items {
        let (Some(ms), Some(wait), Some(length)) = (
            millis_of(item),
            number_of(item, "wait"),
            number_of(item, "length"),
        ) else {
            continue;
        };
        let point = (wait, length as u64);
        let slot = buckets
            .entry(range.bucket(ms.div_euclid(1000)))
            .or_insert(point);
        if (point.0, point.1) > (slot.0, slot.1) {
            *slot = point;
        }
    }
    buckets.into_iter().map(|(d, (w, l))| (d, w, l)).collect()
}

/// The series of every queue summed into one: at each date of any queue, the lengths
/// of every queue as last seen added up, and the waits averaged weighted by length.
fn total_series(series: &[Vec<(i64, f64, u64)>]) -> Vec<(i64, f64, u64)> {
    let dates: BTreeSet<i64> = series.iter().flatten().map(|(d, _, _)| *d).collect();
    let mut out = Vec::new();
    for date in dates {
        let (mut length, mut weighted) = (0u64, 0.0f64);
        for one in series {
            if let Some((_, wait, len)) = one.iter().rev().find(|(d, _, _)| *d <= date) {
                length += len;
                weighted += wait * *len as f64;
            }
        }
        let wait = if length == 0 {
            0.0
        } else {
            weighted / length as f64
        };
        out.push((date, wait, length));
    }
    out
}

fn series_json(queue: &str, series: &[(i64, f64, u64)]) -> Value {
    json!({
        "queue": queue,
        "dates": series.iter().map(|(d, _, _)| *d).collect::<Vec<_>>(),
        "avg_waiting_times": series.iter().map(|(_, w, _)| *w).collect::<Vec<_>>(),
        "queue_lengths": series.iter().map(|(_, _, l)| *l).collect::<Vec<_>>(),
    })
}

/// `queues.get_queue_metrics {from_date, to_date, interval, queue_ids?}` for checked
/// queue ids: a series per queue asked, or without `queue_ids` one series `total` over
/// `all` the account's queues. Points from an hour before `from_date` count,
/// so a series starts from the queue's state then.
pub async fn queue_metrics(
    svc: &Services,
    queue_ids: Option<Vec<String>>,
    all: Vec<String>,
    args: &Args,
) -> Result<Value> {
    let range = Range::parse(args, 1)?;
    let asked = queue_ids.clone().unwrap_or(all);
    let mut series = Vec::new();
    for id in &asked {
        let items = points(
            svc,
            keys::clearml_queue_metrics_pk(id),
            range.from - BEFORE_FROM,
            range.to,
        )
        .await?;
        series.push(queue_series(&range, &items));
    }
    let queues: Vec<Value> = match queue_ids {
        Some(ids) => ids
            .iter()
            .zip(&series)
            .map(|(id, one)| series_json(id, one))
            .collect(),
        None => vec![series_json("total", &total_series(&series))],
    };
    Ok(json!({"queues": queues}))
}

// --- workers -----------------------------------------------------------------------

/// Records a worker's status report at `now`: whether it runs a task, and its machine
/// statistics (the keys of [`METRIC_KEYS`]; a number or a list of numbers each).
pub async fn record_worker(
    svc: &Services,
    account_id: Uuid,
    worker: &str,
    now: DateTime<Utc>,
    active: bool,
    machine_stats: Option<&Map<String, Value>>,
) -> Result<()> {
    let known: BTreeSet<&str> = METRIC_KEYS
        .iter()
        .flat_map(|(_, k)| k.iter().copied())
        .collect();
    let stats: Map<String, Value> = machine_stats
        .into_iter()
        .flatten()
        .filter(|(k, v)| known.contains(k.as_str()) && (v.is_number() || v.is_array()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let item = Item::from([
        (
            "pk".to_string(),
            s(&keys::clearml_worker_stats_pk(account_id)),
        ),
        (
            "sk".to_string(),
            s(&point_sk(now.timestamp_millis(), worker)),
        ),
        ("worker".to_string(), s(worker)),
        (
            "active".to_string(),
            aws_sdk_dynamodb::types::AttributeValue::Bool(active),
        ),
        ("stats".to_string(), s(&Value::Object(stats).to_string())),
        ("expires_at".to_string(), n(expires(now))),
    ]);
    svc.table.put_when(item, None, Item::new()).await?;
    Ok(())
}

/// A stored worker report.
struct Report {
    seconds: i64,
    worker: String,
    active: bool,
    stats: Map<String, Value>,
}

async fn reports(svc: &Services, account_id: Uuid, range: &Range) -> Result<Vec<Report>> {
    let items = points(
        svc,
        keys::clearml_worker_stats_pk(account_id),
        range.from,
        range.to,
    )
    .await?;
    Ok(items
        .iter()
        .filter_map(|item| {
            Some(Report {
                seconds: millis_of(item)?.div_euclid(1000),
                worker: item.get("worker")?.as_s().ok()?.clone(),
                active: item
                    .get("active")
                    .and_then(|v| v.as_bool().ok())
                    .copied()
                    .unwrap_or(false),
                stats: match item.get("stats").and_then(|v| v.as_s().ok()) {
                    Some(text) => match serde_json::from_str(text) {
                        Ok(Value::Object(map)) => map,
                        _ => Map::new(),
                    },
                    None => Map::new(),
                },
            })
        })
        .collect())
}

/// `workers.get_activity_report {from_date, to_date, interval}`: per bucket, how many
/// distinct workers reported (`total`) and how many of them ran a task (`active`). The
/// interval is at least 40 s; the last bucket, if it ends after `to_date`, is left out
/// (it is not complete).
pub async fn get_activity_report(svc: &Services, account_id: Uuid, args: &Args) -> Result<Value> {
    let range = Range::parse(args, MIN_ACTIVITY_INTERVAL)?;
    let mut total: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    let mut active: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    for report in reports(svc, account_id, &range).await? {
        let bucket = range.bucket(report.seconds);
        if bucket + range.interval > range.to + 1 {
            continue;
        }
        total
            .entry(bucket)
            .or_default()
            .insert(report.worker.clone());
        if report.active {
            active.entry(bucket).or_default().insert(report.worker);
        }
    }
    let series = |map: BTreeMap<i64, BTreeSet<String>>| {
        json!({
            "dates": map.keys().collect::<Vec<_>>(),
            "counts": map.values().map(BTreeSet::len).collect::<Vec<_>>(),
        })
    };
    Ok(json!({"total": series(total), "active": series(active)}))
}

/// `workers.get_metric_keys`: the statistics workers report, by category.
pub fn get_metric_keys() -> Value {
    let categories: Vec<Value> = METRIC_KEYS
        .iter()
        .map(|(name, keys)| json!({"name": name, "metric_keys": keys}))
        .collect();
    json!({"categories": categories})
}

/// The aggregations of [`get_stats`].
const AGGREGATIONS: &[&str] = &["avg", "min", "max"];

fn aggregate(how: &str, values: &[f64]) -> f64 {
    match how {
        "min" => values.iter().copied().fold(f64::INFINITY, f64::min),
        "max" => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        _ => values.iter().sum::<f64>() / values.len() as f64,
    }
}

/// The value(s) of `key` in one report: a number, or a list of numbers (one per core or
/// card) — averaged, or one per variant (its index) when split.
fn values_of(stats: &Map<String, Value>, key: &str, split: bool) -> Vec<(String, f64)> {
    match stats.get(key) {
        Some(Value::Number(v)) => v.as_f64().map(|v| (String::new(), v)).into_iter().collect(),
        Some(Value::Array(list)) => {
            let numbers: Vec<f64> = list.iter().filter_map(Value::as_f64).collect();
            if numbers.is_empty() {
                Vec::new()
            } else if split {
                numbers
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (i.to_string(), *v))
                    .collect()
            } else {
                vec![(
                    String::new(),
                    numbers.iter().sum::<f64>() / numbers.len() as f64,
                )]
            }
        }
        _ => Vec::new(),
    }
}

/// `workers.get_stats {worker_ids?, from_date, to_date, interval, items: [{key,
/// category}], split_by_variant?}`: for each worker that reported in the range (or each
/// asked), each key asked, a series per aggregation asked (`avg`, `min`, `max` of the
/// values in each bucket); with `split_by_variant`, list-valued statistics (one value
/// per core or card) come one series per index.
pub async fn get_stats(svc: &Services, account_id: Uuid, args: &Args) -> Result<Value> {
    let range = Range::parse(args, 1)?;
    let split = args::flag(args, "split_by_variant", false);
    let known: BTreeSet<&str> = METRIC_KEYS
        .iter()
        .flat_map(|(_, k)| k.iter().copied())
        .collect();
    // The keys asked, in order, each with its aggregations.
    let mut items: Vec<(String, Vec<String>)> = Vec::new();
    for item in args
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = item.get("key").and_then(Value::as_str).unwrap_or_default();
        let how = item
            .get("category")
            .and_then(Value::as_str)
            .unwrap_or("avg");
        if !known.contains(key) {
            return Err(ClearmlError::validation(format!(
                "unknown metric key '{key}'"
            )));
        }
        if !AGGREGATIONS.contains(&how) {
            return Err(ClearmlError::validation(format!(
                "unknown aggregation '{how}' (avg, min, max)"
            )));
        }
        match items.iter_mut().find(|(k, _)| k == key) {
            Some((_, hows)) if !hows.iter().any(|h| h == how) => hows.push(how.into()),
            Some(_) => {}
            None => items.push((key.into(), vec![how.into()])),
        }
    }
    if items.is_empty() {
        return Err(ClearmlError::validation(
            "items: at least one {key, category}",
        ));
    }
    let wanted = args::strings(args, "worker_ids");
    // worker -> key -> variant -> bucket -> values
    type Buckets = BTreeMap<i64, Vec<f64>>;
    let mut by_worker: BTreeMap<String, HashMap<String, BTreeMap<String, Buckets>>> =
        BTreeMap::new();
    for report in reports(svc, account_id, &range).await? {
        if wanted.as_ref().is_some_and(|w| !w.contains(&report.worker)) {
            continue;
        }
        let keys = by_worker.entry(report.worker.clone()).or_default();
        for (key, _) in &items {
            for (variant, value) in values_of(&report.stats, key, split) {
                keys.entry(key.clone())
                    .or_default()
                    .entry(variant)
                    .or_default()
                    .entry(range.bucket(report.seconds))
                    .or_default()
                    .push(value);
            }
        }
    }
    let workers: Vec<Value> = by_worker
        .into_iter()
        .map(|(worker, keys)| {
            let mut metrics = Vec::new();
            for (key, hows) in &items {
                let Some(variants) = keys.get(key) else {
                    continue;
                };
                for (variant, buckets) in variants {
                    let stats: Vec<Value> = hows
                        .iter()
                        .map(|how| {
                            json!({
                                "aggregation": how,
                                "dates": buckets.keys().collect::<Vec<_>>(),
                                "values": buckets
                                    .values()
                                    .map(|v| aggregate(how, v))
                                    .collect::<Vec<_>>(),
                            })
                        })
                        .collect();
                    let mut metric = json!({"metric": key, "stats": stats});
                    if split {
                        metric["variant"] = variant.clone().into();
                    }
                    metrics.push(metric);
                }
            }
            json!({"worker": worker, "metrics": metrics})
        })
        .collect();
    Ok(json!({"workers": workers}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(value: Value) -> Args {
        value.as_object().unwrap().clone()
    }

    fn point(seconds: i64, wait: f64, length: u64) -> Item {
        Item::from([
            ("sk".to_string(), s(&point_sk(seconds * 1000, "x"))),
            ("wait".to_string(), n(wait)),
            ("length".to_string(), n(length)),
        ])
    }

    #[test]
    fn ranges_are_checked_and_buckets_align_on_the_epoch() {
        let range = Range::parse(
            &args(json!({"from_date": 1000, "to_date": 2000.7, "interval": 60})),
            1,
        )
        .unwrap();
        assert_eq!(
            range,
            Range {
                from: 1000,
                to: 2000,
                interval: 60
            }
        );
        assert_eq!(range.bucket(1000), 960);
        assert_eq!(range.bucket(1019), 960);
        assert_eq!(range.bucket(1020), 1020);
        let floored = Range::parse(
            &args(json!({"from_date": 0, "to_date": 100, "interval": 5})),
            40,
        )
        .unwrap();
        assert_eq!(floored.interval, 40);
        for bad in [
            json!({"from_date": 0, "to_date": 100}),
            json!({"from_date": 0, "to_date": 100, "interval": 0}),
            json!({"from_date": 100, "to_date": 0, "interval": 1}),
            json!({"from_date": "x", "to_date": 0, "interval": 1}),
            json!({"from_date": 0, "to_date": 100000, "interval": 1}),
        ] {
            assert!(Range::parse(&args(bad.clone()), 1).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bucket_keeps_its_longest_wait_then_its_longest_queue() {
        let range = Range {
            from: 0,
            to: 300,
            interval: 100,
        };
        let items = [
            point(10, 1.0, 5),
            point(20, 3.0, 1),
            point(30, 3.0, 2),
            point(150, 0.0, 0),
        ];
        assert_eq!(
            queue_series(&range, &items),
            vec![(0, 3.0, 2), (100, 0.0, 0)]
        );
    }

    #[test]
    fn the_total_carries_each_queue_forward_and_weights_waits_by_length() {
        let a = vec![(0, 10.0, 1), (200, 0.0, 0)];
        let b = vec![(100, 4.0, 3)];
        assert_eq!(
            total_series(&[a, b]),
            vec![(0, 10.0, 1), (100, (10.0 + 12.0) / 4.0, 4), (200, 4.0, 3)]
        );
    }

    #[test]
    fn list_statistics_average_or_split_by_index() {
        let stats = args(json!({"cpu_usage": [10.0, 30.0], "memory_used": 512}));
        assert_eq!(
            values_of(&stats, "cpu_usage", false),
            vec![(String::new(), 20.0)]
        );
        assert_eq!(
            values_of(&stats, "cpu_usage", true),
            vec![("0".to_string(), 10.0), ("1".to_string(), 30.0)]
        );
        assert_eq!(
            values_of(&stats, "memory_used", true),
            vec![(String::new(), 512.0)]
        );
        assert!(values_of(&stats, "gpu_usage", false).is_empty());
        assert_eq!(aggregate("min", &[3.0, 1.0, 2.0]), 1.0);
        assert_eq!(aggregate("max", &[3.0, 1.0, 2.0]), 3.0);
        assert_eq!(aggregate("avg", &[3.0, 1.0, 2.0]), 2.0);
    }
}
