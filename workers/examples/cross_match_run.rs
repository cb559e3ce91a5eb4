//! Distributed cross-match run (see BENCHMARKS.md): loads `REFS` reference faces and
//! `CANDS` candidate faces with random clustered 512-float descriptors into a new account
//! with the bulk loader (references first; each set is selected by its `user_data` and
//! its side of the creation time between the two loads, so the planner lists each set
//! through the descriptor index's time range), creates one cross_match task through the
//! domain API, waits for it
//! and prints the wall time, the subtask counts, each stage's planning and subtask times,
//! the merge time and a spot check of the result against
//! brute force for a few references. Workers run as separate processes
//! (bench/cross_match.sh starts them).
//!
//! `cargo run --release -p fanout-workers --example cross_match_run -- 100000 100000 5000`

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fanout::Services;
use fanout::kinds;
use fanout::store::blobs;
use fanout::tasks::api::{self, NewTask};
use fanout::tasks::model::TaskStatus;
use fanout::tasks::store as task_store;
use fanout::timestamps;
use fanout_e2e::{Lcg, cosine, faces_with_descriptors};
use serde_json::{Value, json};
use uuid::Uuid;

/// Distinct identities the descriptors are drawn around.
const CENTRES: usize = 1000;

/// References whose result is checked against brute force.
const SPOT_CHECKS: usize = 20;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let refs = args.first().copied().unwrap_or(100_000);
    let cands = args.get(1).copied().unwrap_or(100_000);
    let per_block = args.get(2).copied().unwrap_or(5_000);
    let svc = Services::from_env().await?;
    let account_id = Uuid::new_v4();
    let mut random = Lcg(7);
    let centres: Vec<Vec<f32>> = (0..CENTRES)
        .map(|_| (0..512).map(|_| random.next_value()).collect())
        .collect();
    let load_start = Instant::now();
    let mut reference_sample = Vec::new();
    let mut candidates_all: Vec<(Uuid, Vec<f32>)> = Vec::new();
    let mut boundary = String::new();
    for (tag, n) in [("reference", refs), ("candidate", cands)] {
        if tag == "candidate" {
            boundary = timestamps::format(timestamps::now());
        }
        let mut made = 0;
        while made < n {
            let size = (n - made).min(1000);
            let descriptors: Vec<Vec<f32>> = (0..size)
                .map(|i| {
                    let centre = &centres[(made + i) % CENTRES];
                    centre
                        .iter()
                        .map(|c| c + 0.3 * random.next_value())
                        .collect()
                })
                .collect();
            let ids = faces_with_descriptors(&svc, account_id, &descriptors, tag).await;
            for (id, d) in ids.into_iter().zip(descriptors) {
                if tag == "candidate" {
                    candidates_all.push((id, d));
                } else if reference_sample.len() < SPOT_CHECKS {
                    reference_sample.push((id, d));
                }
            }
            made += size;
        }
    }
    let load_seconds = load_start.elapsed().as_secs_f64();
    let kind = kinds::by_name("cross_match").expect("cross_match kind");
    let limit = 10;
    let start = Instant::now();
    let created = api::create(
        &svc,
        kind,
        NewTask {
            account_id,
            description: Some("distributed cross match".into()),
            content: json!({
                "references": {"objects_type": "faces",
                    "filters": {"user_data": "reference", "create_time__lt": boundary}},
                "candidates": {"objects_type": "faces",
                    "filters": {"user_data": "candidate", "create_time__gte": boundary}},
                "limit": limit, "objects_per_block": per_block
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
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let seconds = start.elapsed().as_secs_f64();
    assert_eq!(task.task_status, TaskStatus::Done, "{task:?}");
    let result: Value = serde_json::from_slice(
        &blobs::get(&svc, &blobs::result_key(task.task_id))
            .await?
            .expect("result stored"),
    )?;
    let matches = result["result"]["matches"].as_array().expect("matches");
    assert_eq!(matches.len(), refs);
    // Spot check against brute force in f64 over every candidate. The kernel ranks by f32
    // similarity, so candidates whose true similarities differ by less than f32 rounding
    // may swap; a list is right when each of its candidates is truly within TIE of the
    // brute-force similarity at its rank. `exact` counts lists equal id for id.
    const TIE: f64 = 1e-6;
    let truth: HashMap<Uuid, &Vec<f32>> = candidates_all.iter().map(|(id, d)| (*id, d)).collect();
    let (mut checked, mut exact) = (0, 0);
    for (reference, descriptor) in &reference_sample {
        let entry = matches
            .iter()
            .find(|m| m["reference_id"] == reference.to_string())
            .expect("reference in result");
        let mut expected: Vec<(f64, Uuid)> = candidates_all
            .iter()
            .map(|(id, d)| (cosine(descriptor, d), *id))
            .collect();
        expected.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        expected.truncate(limit);
        let got: Vec<Uuid> = entry["candidates"]
            .as_array()
            .expect("candidates")
            .iter()
            .map(|c| {
                c["candidate_id"]
                    .as_str()
                    .expect("id")
                    .parse()
                    .expect("uuid")
            })
            .collect();
        assert_eq!(got.len(), expected.len(), "reference {reference}");
        for (rank, (id, want)) in got.iter().zip(&expected).enumerate() {
            let similarity = cosine(descriptor, truth[id]);
            assert!(
                (similarity - want.0).abs() <= TIE,
                "reference {reference} rank {rank}: {id} at {similarity}, brute force {} at {}",
                want.1,
                want.0
            );
        }
        exact += usize::from(got == expected.iter().map(|e| e.1).collect::<Vec<_>>());
        checked += 1;
    }
    // Stage times from the records: each stage's planning (from the end of the one
    // before, or the creation, to its first subtask item), its subtasks (to the last end),
    // and the merge (to the task's end).
    let records = task_store::subtask_records(&svc, task.task_id).await?;
    let time = |t: &str| timestamps::parse(t).expect("a stored time");
    let mut stages = Vec::new();
    let mut previous = time(&task.create_time);
    for stage in 0..=records.iter().map(|r| r.subtask.stage).max().unwrap_or(0) {
        let of_stage = records.iter().filter(|r| r.subtask.stage == stage);
        let planned = of_stage.clone().map(|r| time(&r.subtask.create_time)).min();
        let ended = of_stage
            .filter_map(|r| r.subtask.end_time.as_deref().map(time))
            .max();
        let (Some(planned), Some(ended)) = (planned, ended) else {
            continue;
        };
        let seconds = |from: chrono::DateTime<chrono::Utc>, to: chrono::DateTime<chrono::Utc>| {
            (to - from).num_milliseconds() as f64 / 1e3
        };
        stages.push(format!(
            "{{\"stage\":{stage},\"planning_seconds\":{:.1},\"subtasks_seconds\":{:.1}}}",
            seconds(previous, planned),
            seconds(planned, ended)
        ));
        previous = ended;
    }
    let finished = time(
        task.end_time
            .as_deref()
            .expect("a done task has an end time"),
    );
    let merge_seconds = (finished - previous).num_milliseconds() as f64 / 1e3;
    println!(
        "{{\"references\":{refs},\"candidates\":{cands},\"objects_per_block\":{per_block},\"load_seconds\":{load_seconds:.1},\"task_id\":{},\"subtasks\":{},\"done\":{},\"task_seconds\":{seconds:.1},\"stages\":[{}],\"merge_seconds\":{merge_seconds:.1},\"spot_checked\":{checked},\"spot_exact\":{exact}}}",
        task.task_id,
        task.count_task_parts_all,
        task.count_task_parts_done,
        stages.join(","),
    );
    Ok(())
}
