//! Engine benchmark driver (see BENCHMARKS.md): loads `FACES` faces into a new account
//! with the bulk loader, creates one linker task of `FACES / PER_SUBTASK` subtasks through
//! the domain API, waits for it to end and prints the wall time and subtasks/s. Workers
//! run as separate processes started by bench/engine.sh.
//!
//! `cargo run --release -p fanout-workers --example engine_bench -- 10000 10`

use std::time::{Duration, Instant};

use fanout::Services;
use fanout::kinds;
use fanout::objects::faces::{self, NewFace};
use fanout::tasks::api::{self, NewTask};
use fanout::tasks::model::TaskStatus;
use serde_json::json;
use uuid::Uuid;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let (total, per_subtask) = (
        args.first().copied().unwrap_or(10_000),
        args.get(1).copied().unwrap_or(10),
    );
    let svc = Services::from_env().await?;
    let account_id = Uuid::new_v4();
    for chunk in (0..total).collect::<Vec<_>>().chunks(1000) {
        let batch = chunk
            .iter()
            .map(|_| NewFace {
                account_id,
                descriptor: None,
                descriptor_version: None,
                external_id: None,
                user_data: None,
                event_id: None,
                avatar: None,
                lists: None,
            })
            .collect();
        faces::create_batch(&svc, batch).await?;
    }
    let kind = kinds::by_name("linker").expect("linker kind");
    let start = Instant::now();
    let created = api::create(
        &svc,
        kind,
        NewTask {
            account_id,
            description: Some("engine benchmark".into()),
            content: json!({"objects_type": "faces", "create_list": 1, "objects_per_subtask": per_subtask}),
            result_storage_policy: None,
        },
    )
    .await?;
    loop {
        let task = api::get(&svc, None, created.task_id).await?;
        if task.task_status.is_final() {
            let seconds = start.elapsed().as_secs_f64();
            assert_eq!(task.task_status, TaskStatus::Done);
            assert_eq!(task.count_task_parts_done, task.count_task_parts_all);
            println!(
                "{{\"task_id\":{},\"subtasks\":{},\"done\":{},\"seconds\":{seconds:.1},\"subtasks_per_second\":{:.1}}}",
                task.task_id,
                task.count_task_parts_all,
                task.count_task_parts_done,
                task.count_task_parts_all as f64 / seconds
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
