//! Orchestrator benchmark (bench/orchestrator.sh): ALGOS algorithms of a trivial bash
//! program on one problem of RANKS training items (one per rank), so ALGOS chains of
//! RANKS learnuplets run by the workers already started; prints the wall time from the
//! algorithms' registration to the last report and the uplets per second. Then, for
//! reference, the same programs on the same files run directly (no queue, table,
//! storage or sandbox), one uplet after another: the difference per uplet is what the
//! orchestrator adds.
//!
//! Usage: orchestrator_bench [ALGOS] [RANKS]

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use fanout::Services;
use fanout::orchestrator::api::{self, NewAlgo, NewData, NewProblem, OneOrMany};
use fanout::orchestrator::store::blob_key;
use fanout::orchestrator::{Collection, Learnuplet, UpletStatus, store};
use fanout::store::blobs;
use uuid::Uuid;

const TRAIN: &str = "#!/bin/bash\nset -eu\nseen=$(cat \"$2/seen\" 2>/dev/null || echo 0)\nfor f in \"$1\"/*; do seen=$((seen + 1)); done\necho $seen > \"$2/seen\"\n";
const PREDICT: &str = "#!/bin/bash\nset -eu\nfor f in \"$2\"/*; do cat \"$1/seen\" > \"$3/$(basename \"$f\")\"; done\n";
const SCORE: &str = "#!/bin/bash\nset -eu\nitems=\"\" v=0\nfor f in \"$1\"/*; do n=$(basename \"$f\"); v=$(cat \"$2/$n\"); items=\"$items${items:+,}\\\"$n\\\": $v\"; done\necho \"{\\\"perf\\\": $v, \\\"perfs\\\": {$items}}\" > \"$3\"\n";

fn archive(files: &[(&str, &str)]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, text) in files {
        let options = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
        out.start_file(*name, options).expect("zip entry");
        out.write_all(text.as_bytes()).expect("zip write");
    }
    out.finish().expect("zip").into_inner()
}

async fn put(svc: &Services, account: Uuid, bytes: Vec<u8>) -> Uuid {
    let uuid = Uuid::new_v4();
    blobs::put(svc, &blob_key(account, uuid), bytes, "application/zip")
        .await
        .expect("upload");
    uuid
}

/// One uplet's programs run directly in `dir`, as the worker's layout has them.
fn direct_uplet(dir: &Path) {
    let run = |program: &str, args: &[&Path]| {
        let status = Command::new(dir.join(program))
            .args(args)
            .current_dir(dir)
            .status()
            .expect("spawn");
        assert!(status.success(), "{program}");
    };
    let p = |name: &str| dir.join(name);
    run("code/train", &[&p("train"), &p("code/model")]);
    for (data, pred, score) in [
        ("test", "pred_test", "score_test.json"),
        ("train", "pred_train", "score_train.json"),
    ] {
        run("code/predict", &[&p("code/model"), &p(data), &p(pred)]);
        run("workflow/score", &[&p(data), &p(pred), &p(score)]);
    }
}

fn direct(uplets: usize) -> Duration {
    let dir = std::env::temp_dir().join(format!("fanout-orch-direct-{}", Uuid::new_v4()));
    for sub in [
        "code/model",
        "workflow",
        "train",
        "test",
        "pred_train",
        "pred_test",
    ] {
        std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
    }
    use std::os::unix::fs::PermissionsExt;
    for (path, text) in [
        ("code/train", TRAIN),
        ("code/predict", PREDICT),
        ("workflow/score", SCORE),
    ] {
        std::fs::write(dir.join(path), text).expect("write");
        std::fs::set_permissions(dir.join(path), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    std::fs::write(dir.join("train/a"), "x\n").expect("write");
    std::fs::write(dir.join("test/b"), "x\n").expect("write");
    let start = Instant::now();
    for _ in 0..uplets {
        direct_uplet(&dir);
    }
    let took = start.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    took
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let algos: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(20);
    let ranks: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    let svc = Services::from_env().await?;
    let account = Uuid::new_v4();
    let workflow = put(&svc, account, archive(&[("score", SCORE)])).await;
    let test = put(&svc, account, b"x\n".to_vec()).await;
    let problem = Uuid::new_v4();
    api::post_problem(
        &svc,
        account,
        NewProblem {
            uuid: problem,
            workflow,
            test_dataset: vec![test],
            size_train_dataset: 1,
        },
    )
    .await?;
    let mut items = Vec::new();
    for _ in 0..ranks {
        items.push(put(&svc, account, b"x\n".to_vec()).await);
    }
    api::post_data(
        &svc,
        account,
        NewData {
            uuid: OneOrMany::Many(items),
            problems: OneOrMany::One(problem),
        },
    )
    .await?;
    let code = archive(&[("train", TRAIN), ("predict", PREDICT)]);
    let mut algo_ids = Vec::new();
    for _ in 0..algos {
        algo_ids.push(put(&svc, account, code.clone()).await);
    }
    let start = Instant::now();
    for (i, uuid) in algo_ids.iter().enumerate() {
        api::post_algo(
            &svc,
            account,
            NewAlgo {
                uuid: *uuid,
                name: format!("trivial-{i}"),
                problem,
            },
        )
        .await?;
    }
    let total = algos * ranks;
    loop {
        let uplets: Vec<Learnuplet> = store::all(&svc, account, Collection::Learnuplet).await?;
        let ended = uplets
            .iter()
            .filter(|u| matches!(u.status, UpletStatus::Done | UpletStatus::Failed))
            .count();
        if ended == total {
            let failed = uplets
                .iter()
                .filter(|u| u.status == UpletStatus::Failed)
                .count();
            assert_eq!(failed, 0, "uplets failed");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = start.elapsed();
    println!(
        "orchestrator: {total} learnuplets ({algos} chains x {ranks} ranks) in {:.1} s: {:.2} uplets/s",
        took.as_secs_f64(),
        total as f64 / took.as_secs_f64()
    );
    let reference = direct(total);
    println!(
        "direct (same programs, no orchestrator or sandbox, one at a time): {total} in {:.1} s: {:.2} uplets/s, {:.1} ms per uplet",
        reference.as_secs_f64(),
        total as f64 / reference.as_secs_f64(),
        reference.as_secs_f64() * 1000.0 / total as f64
    );
    Ok(())
}
