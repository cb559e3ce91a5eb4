//! Export run (see BENCHMARKS.md): loads `EVENTS` events with varied attributes into a
//! new account through the domain API (batches of 1,000, as `POST /1/events` takes them),
//! creates one exporter task of every event with every column, waits for it, then reads
//! the archive back from S3 with a real zip reader and a real CSV reader and checks the
//! header and that every loaded event is a row exactly once. Prints one JSON line: load
//! time, task wall time split into planning / subtasks / merge, subtasks, archive size.
//! Workers run as separate processes (bench/export.sh starts them and reads their peak
//! memory).
//!
//! `cargo run --release -p fanout-workers --example export_run -- 200000`

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use fanout::Services;
use fanout::kinds::{self, rows};
use fanout::objects::events::{self, Location, NewEvent, NewEvents};
use fanout::query::{PAGE_SIZE_MAX, Page};
use fanout::store::blobs;
use fanout::tasks::api::{self, NewTask};
use fanout::tasks::model::TaskStatus;
use fanout::timestamps;
use serde_json::json;
use uuid::Uuid;

/// Events saved per call, the most `POST /1/events` takes.
const BATCH: usize = 1000;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("a number of events"))
        .unwrap_or(200_000);
    let svc = Services::from_env().await?;
    let account_id = Uuid::new_v4();

    let load_start = Instant::now();
    let mut loaded = HashSet::with_capacity(n);
    let mut made = 0;
    while made < n {
        let size = (n - made).min(BATCH);
        let batch: Vec<NewEvent> = (made..made + size).map(event).collect();
        let created = events::create(
            &svc,
            NewEvents {
                account_id,
                events: batch,
            },
        )
        .await?;
        loaded.extend(created.events.into_iter().map(|e| e.event_id));
        made += size;
    }
    let load_seconds = load_start.elapsed().as_secs_f64();

    let kind = kinds::by_name("exporter").expect("exporter kind");
    let start = Instant::now();
    let created = api::create(
        &svc,
        kind,
        NewTask {
            account_id,
            description: Some("export run".into()),
            content: json!({"objects_type": "events"}),
            result_storage_policy: None,
        },
    )
    .await?;
    let task = loop {
        let task = api::get(&svc, None, created.task_id).await?;
        if task.task_status.is_final() {
            break task;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(task.task_status, TaskStatus::Done, "{task:?}");
    // Stage times from the records: planning until the first subtask was stored, subtasks
    // until the last one ended, the merge until the task ended.
    // An export of up to 500,000 rows has at most 100 parts: one page.
    let page = Page {
        page: 1,
        page_size: PAGE_SIZE_MAX,
    };
    let subtasks = api::subtasks(&svc, None, task.task_id, page)
        .await?
        .subtasks;
    let time = |t: &str| timestamps::parse(t).expect("a stored time");
    let created_at = time(&task.create_time);
    let planned = subtasks.iter().map(|s| time(&s.create_time)).min();
    let ended = subtasks
        .iter()
        .filter_map(|s| s.end_time.as_deref().map(time))
        .max();
    let finished = time(
        task.end_time
            .as_deref()
            .expect("a done task has an end time"),
    );
    let span = |from: DateTime<Utc>, to: DateTime<Utc>| (to - from).num_milliseconds() as f64 / 1e3;
    let planning = span(created_at, planned.unwrap_or(finished));
    let running = span(planned.unwrap_or(finished), ended.unwrap_or(finished));
    let merging = span(ended.unwrap_or(finished), finished);

    // Read the archive back from S3 into a temporary file, then check every row.
    let mut file = tempfile()?;
    let mut body = svc
        .aws
        .s3
        .get_object()
        .bucket(&svc.config.bucket)
        .key(blobs::result_key(task.task_id))
        .send()
        .await?
        .body;
    let mut archive_bytes = 0u64;
    while let Some(chunk) = body.try_next().await? {
        archive_bytes += chunk.len() as u64;
        file.write_all(&chunk)?;
    }
    file.seek(SeekFrom::Start(0))?;
    let mut archive = zip::ZipArchive::new(file)?;
    assert_eq!(archive.len(), 1, "one CSV, no images");
    let mut csv_text = archive.by_name("events.csv")?;
    let csv_bytes = csv_text.size();
    let mut reader = csv::Reader::from_reader(&mut csv_text as &mut dyn Read);
    let header: Vec<String> = reader.headers()?.iter().map(str::to_string).collect();
    assert_eq!(header, rows::EVENT_COLUMNS);
    let mut rows_seen = 0usize;
    for record in reader.records() {
        let id: Uuid = record?[0].parse()?;
        assert!(
            loaded.remove(&id),
            "event {id} exported twice or not loaded"
        );
        rows_seen += 1;
    }
    assert!(loaded.is_empty(), "{} events missing", loaded.len());
    println!(
        "{{\"events\":{n},\"load_seconds\":{load_seconds:.1},\"task_id\":{},\"subtasks\":{},\"task_seconds\":{:.1},\"planning_seconds\":{:.1},\"subtasks_seconds\":{:.1},\"merge_seconds\":{:.1},\"rows\":{rows_seen},\"csv_bytes\":{csv_bytes},\"archive_bytes\":{archive_bytes}}}",
        task.task_id, task.count_task_parts_all, seconds, planning, running, merging,
    );
    Ok(())
}

/// Event `i` of the run: every exported column has a value.
fn event(i: usize) -> NewEvent {
    NewEvent {
        source: Some(format!("camera-{}", i % 16)),
        handler_id: Some(Uuid::from_u128(0xfeed_0000 + (i % 4) as u128)),
        external_id: Some(format!("ext-{i}")),
        user_data: Some(format!("event {i}")),
        tags: Some(vec!["export".into(), format!("shift-{}", i % 3)]),
        track_id: Some(format!("track-{}", i / 10)),
        stream_id: Some(Uuid::from_u128(0xabcd_0000 + (i % 8) as u128)),
        gender: Some((i % 2) as u8),
        age: Some(18 + (i % 60) as u32),
        emotion: Some("neutral".into()),
        location: Some(Location {
            city: Some("Springfield".into()),
            street: Some(format!("Street {}", i % 100)),
            ..Location::default()
        }),
        ..NewEvent::default()
    }
}

/// An anonymous temporary file (removed when closed).
fn tempfile() -> std::io::Result<std::fs::File> {
    let path = std::env::temp_dir().join(format!("fanout-export-{}.zip", Uuid::new_v4()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}
