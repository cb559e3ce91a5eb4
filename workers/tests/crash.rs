//! The crash matrix: a worker is killed with SIGKILL at a named fault point of the engine
//! (`fanout::fault`), a healthy worker with a fast reconciler takes over, and the task
//! must end done with exact counts, the same result as a run without faults, and the same
//! objects under its prefix as that run (no orphan: nothing a crashed step wrote stays
//! behind).
//!
//! `make test` runs a representative set of points; `make chaos` (FANOUT_CHAOS=full) runs
//! every point against every scenario. RELIABILITY.md has the table.

mod common;

use std::time::Duration;

use serde_json::{Value, json};

use common::{
    Worker, create_task, exclusive, faces_of, objects_of, result, status_is, wait_queue_empty,
    wait_task,
};
use fanout_e2e::{Lcg, Stack, account, faces_with_descriptors, stack};

/// Every fault point the scenarios reach, in the order a task meets them.
const ALL_POINTS: &[&str] = &[
    "after_stage_claim",
    "inside_stage_write",
    "after_stage_written",
    "inside_enqueue",
    "before_part_put",
    "after_output_put",
    "after_subtask_end",
    "after_count",
    "before_advance_send",
    "after_result_put",
    "after_done",
    "inside_reconcile",
];

/// The points `make test` runs: one per kind of step (planning, a subtask's writes, the
/// last count, the merge, the end).
const QUICK_POINTS: &[&str] = &[
    "inside_stage_write",
    "after_subtask_end",
    "before_advance_send",
    "after_result_put",
    "after_done",
];

/// A task to crash: how to create it, and what of its result must not change.
#[derive(Clone, Copy)]
enum Scenario {
    /// A linker over 40 faces, 4 subtasks in one stage.
    Linker,
    /// A cross_match of 60 x 60 faces in blocks of 20: a collect stage, a match stage of
    /// 9 tiles whose outputs go to S3, and a merge.
    CrossMatch,
    /// An exporter of 30 faces: a CSV part written to S3 by a subtask, and a merge into a
    /// zip archive.
    Exporter,
    /// An estimator over three uploaded images (one per subtask, outputs over 16 KiB go
    /// to S3) creating a face per face found: a crash must not create any twice.
    Estimator,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Linker => "linker",
            Scenario::CrossMatch => "cross_match",
            Scenario::Exporter => "exporter",
            Scenario::Estimator => "estimator",
        }
    }

    /// A fresh account with the scenario's objects.
    async fn prepare(self, stack: &Stack) -> String {
        let account = account();
        match self {
            Scenario::Linker => {
                faces_of(stack, &account, 40).await;
            }
            Scenario::Exporter => {
                faces_of(stack, &account, 30).await;
            }
            Scenario::Estimator => {
                for name in ["t1.jpg", "zidane.jpg", "bus.jpg"] {
                    let key = format!("uploads/{account}/{name}");
                    let bytes = common::package_image(name);
                    fanout::store::blobs::put(&stack.services, &key, bytes, "image/jpeg")
                        .await
                        .unwrap();
                }
            }
            Scenario::CrossMatch => {
                let descriptors = Lcg(7).clustered(60, 6, 0.25);
                faces_with_descriptors(
                    &stack.services,
                    account.parse().unwrap(),
                    &descriptors,
                    "x",
                )
                .await;
            }
        }
        account
    }

    async fn create(self, stack: &Stack, account: &str) -> u64 {
        match self {
            Scenario::Linker => {
                create_task(
                    stack,
                    "linker",
                    account,
                    json!({"objects_type": "faces", "create_list": 1, "objects_per_subtask": 10}),
                )
                .await
            }
            Scenario::Exporter => {
                create_task(stack, "exporter", account, json!({"objects_type": "faces"})).await
            }
            Scenario::Estimator => {
                let keys: Vec<String> = ["t1.jpg", "zidane.jpg", "bus.jpg"]
                    .iter()
                    .map(|name| format!("uploads/{account}/{name}"))
                    .collect();
                create_task(
                    stack,
                    "estimator",
                    account,
                    json!({"source": {"source_type": "keys", "keys": keys},
                           "images_per_subtask": 1,
                           "create": {"objects_type": "faces"}}),
                )
                .await
            }
            Scenario::CrossMatch => {
                let set = json!({"objects_type": "faces", "filters": {"user_data": "x"}});
                create_task(
                    stack,
                    "cross_match",
                    account,
                    json!({"references": set, "candidates": set, "limit": 60,
                           "objects_per_block": 20}),
                )
                .await
            }
        }
    }

    /// What of the result is the same in every run (ids of lists and objects differ
    /// between accounts).
    async fn essence_of(self, stack: &Stack, account: &str, task_id: u64) -> Value {
        if let Scenario::Exporter = self {
            // A zip archive: its files, each with its header and number of rows.
            let url = format!(
                "{}/1/tasks/{task_id}/result?account_id={account}",
                stack.url
            );
            let bytes = reqwest::Client::new()
                .get(url)
                .bearer_auth(&stack.admin_token)
                .send()
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
            let mut files = Vec::new();
            for i in 0..archive.len() {
                let file = archive.by_index(i).unwrap();
                let name = file.name().unwrap().to_string();
                let mut reader = csv::Reader::from_reader(file);
                let header: Vec<String> = reader
                    .headers()
                    .unwrap()
                    .iter()
                    .map(str::to_string)
                    .collect();
                files.push(json!([name, header, reader.records().count()]));
            }
            return json!(files);
        }
        let mut essence = self.essence(&result(stack, task_id).await);
        if let Scenario::Estimator = self {
            // Every face created once: the account holds exactly the faces reported.
            essence["faces_stored"] = json!(stack.stored(account, "FACE").await);
        }
        essence
    }

    fn essence(self, result: &Value) -> Value {
        match self {
            Scenario::Exporter => unreachable!("the exporter's result is an archive"),
            Scenario::Estimator => json!({
                "images_done": result["images_done"],
                "faces_found": result["faces_found"],
                "objects_created": result["objects_created"],
            }),
            Scenario::Linker => json!([
                result["linked_objects_count"],
                result["failed_objects_count"]
            ]),
            Scenario::CrossMatch => {
                let matches = result["matches"].as_array().expect("matches");
                let per_reference: Vec<usize> = matches
                    .iter()
                    .map(|m| m["candidates"].as_array().map_or(0, Vec::len))
                    .collect();
                json!([
                    result["references_count"],
                    result["candidates_count"],
                    per_reference
                ])
            }
        }
    }
}

/// What a run leaves: the essence of its result, and the objects under its task's
/// prefix (the prefix cut off, so runs compare).
#[derive(Debug, PartialEq)]
struct Outcome {
    result: Value,
    objects: Vec<String>,
}

async fn objects(stack: &Stack, task_id: u64) -> Vec<String> {
    let prefix = fanout::store::blobs::task_prefix(task_id);
    objects_of(stack, task_id)
        .await
        .into_iter()
        .map(|key| key.trim_start_matches(&prefix).to_string())
        .collect()
}

/// Runs the scenario with a worker armed to die at `point` (`None`: no fault) and
/// compares what it leaves with `expected` (the fault-free run's), waiting a while for
/// the healthy worker's reconciler to clean up after a step that died at its end.
async fn run(
    stack: &Stack,
    scenario: Scenario,
    point: Option<&str>,
    expected: Option<&Outcome>,
) -> Outcome {
    let account = scenario.prepare(stack).await;
    let fast_reconciler = ["--reconcile-every", "1", "--stall-seconds", "3"];
    let what = format!("{} at {}", scenario.name(), point.unwrap_or("no fault"));
    let task_id;
    if let Some(point) = point {
        let spec = format!("{point}:kill");
        let mut doomed =
            Worker::start_with("work,control", &fast_reconciler, &[("FANOUT_FAULT", &spec)]);
        task_id = scenario.create(stack, &account).await;
        assert!(
            doomed.ended_within(Duration::from_secs(90)).await,
            "{what}: the fault point was never reached"
        );
    } else {
        task_id = scenario.create(stack, &account).await;
    }
    let _healthy = Worker::start_with("work,control", &fast_reconciler, &[]);
    let done = wait_task(stack, task_id, Duration::from_secs(120), status_is(5)).await;
    assert_eq!(
        done["count_task_parts_done"], done["count_task_parts_all"],
        "{what}: {done}"
    );
    let result = scenario.essence_of(stack, &account, task_id).await;
    let start = std::time::Instant::now();
    loop {
        let outcome = Outcome {
            result: result.clone(),
            objects: objects(stack, task_id).await,
        };
        let settled = match expected {
            None => true,
            Some(expected) => outcome == *expected,
        };
        if settled {
            // Nothing left for the next run or test: duplicates of this task's messages
            // are drained by the healthy worker.
            let svc = &stack.services;
            wait_queue_empty(stack, &svc.config.work_queue_url, Duration::from_secs(120)).await;
            return outcome;
        }
        match expected {
            None => unreachable!(),
            Some(expected) => assert!(
                start.elapsed() < Duration::from_secs(20),
                "{what}: {outcome:?}, expected {expected:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn points() -> &'static [&'static str] {
    if std::env::var("FANOUT_CHAOS").as_deref() == Ok("full") {
        ALL_POINTS
    } else {
        QUICK_POINTS
    }
}

/// Whether a scenario reaches a point at all (only the tiles' outputs are big enough for
/// S3; the linker writes no parts).
fn reaches(scenario: Scenario, point: &str) -> bool {
    match point {
        "after_output_put" => matches!(scenario, Scenario::CrossMatch | Scenario::Estimator),
        "before_part_put" => matches!(scenario, Scenario::CrossMatch | Scenario::Exporter),
        _ => true,
    }
}

async fn matrix(scenario: Scenario) {
    common::require_faults();
    let _engine = exclusive().await;
    let stack = stack();
    // Tasks other tests left pending (their plans never ran without workers) would
    // otherwise be planned by this matrix's workers and fill the work queue beside it.
    common::settle_tasks(stack).await;
    let expected = run(stack, scenario, None, None).await;
    for point in points().iter().filter(|p| reaches(scenario, p)) {
        run(stack, scenario, Some(point), Some(&expected)).await;
        println!(
            "crash matrix: {} killed at {point}: done, exact counts, same result and objects",
            scenario.name()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_estimator_killed_at_any_fault_point_ends_done_creating_each_face_once() {
    matrix(Scenario::Estimator).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_linker_killed_at_any_fault_point_ends_done_with_the_same_result() {
    matrix(Scenario::Linker).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cross_match_killed_at_any_fault_point_ends_done_with_the_same_result() {
    matrix(Scenario::CrossMatch).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exporter_killed_at_any_fault_point_ends_done_with_the_same_result() {
    matrix(Scenario::Exporter).await;
}
