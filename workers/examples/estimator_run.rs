//! Estimator run (see BENCHMARKS.md, "Estimator"): a zip of `IMAGES` copies of the
//! package images (crops, rotations, mirrors, brightness: workers/tests/common/augment.rs)
//! uploaded into a new account's upload area, one estimator task over it (descriptor and
//! age/gender per face, subtasks of `PER` images) created through the domain API; waits
//! for it and prints one JSON line: images, zip size, wall time from creation to done,
//! images/s, faces found. Workers run as separate processes (bench/estimator.sh).
//!
//! `cargo run --release -p fanout-workers --example estimator_run -- 1000 50`

#[path = "../tests/common/augment.rs"]
mod augment;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fanout::Services;
use fanout::kinds;
use fanout::objects::uploads;
use fanout::store::blobs;
use fanout::tasks::api::{self, NewTask};
use fanout::tasks::model::TaskStatus;
use fanout::tasks::store as task_store;
use serde_json::{Value, json};
use uuid::Uuid;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let images = args.first().copied().unwrap_or(1000);
    let per = args.get(1).copied().unwrap_or(50);
    let models = std::env::var_os("FANOUT_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".fanout/models"));
    let svc = Services::from_env().await?;
    let account_id = Uuid::new_v4();
    let archive = augment::zip(&models.join("images"), images);
    let zip_bytes = archive.len();
    let key = format!("{}bench.zip", uploads::area_prefix(account_id));
    blobs::put(&svc, &key, archive, "application/zip").await?;
    let kind = kinds::by_name("estimator").expect("estimator kind");
    let start = Instant::now();
    let created = api::create(
        &svc,
        kind,
        NewTask {
            account_id,
            description: Some("estimator benchmark".into()),
            content: json!({
                "source": {"source_type": "zip", "key": key},
                "estimations": {"face_descriptor": true, "basic_attributes": true},
                "images_per_subtask": per
            }),
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
    let record = task_store::load(&svc, created.task_id)
        .await?
        .expect("task stored");
    let result: Value = serde_json::from_slice(
        &blobs::get(&svc, &blobs::result_key(record.task_id))
            .await?
            .expect("result stored"),
    )?;
    let result = &result["result"];
    assert_eq!(result["images_done"], images, "{}", result["images_failed"]);
    println!(
        "{}",
        json!({
            "images": images,
            "images_per_subtask": per,
            "zip_bytes": zip_bytes,
            "subtasks": record.count_task_parts_all,
            "seconds": (seconds * 100.0).round() / 100.0,
            "images_per_second": ((images as f64 / seconds) * 10.0).round() / 10.0,
            "faces_found": result["faces_found"],
        })
    );
    Ok(())
}
