//! The ML orchestrator end to end on the local stack: a user's token, the `/orchestrator/`
//! routes, uploads by presigned PUT, worker processes running uplets in their sandbox.
//! Algorithms are small bash programs — a chain advancing rank by rank from the best
//! model, data appending a rank, predictions stored and fetched; a worker SIGKILLed
//! mid-learn replaced through the lease; time, memory and network limits failing one
//! uplet while the others go on — and the README's example: scikit-learn's digits with
//! two Python algorithms (examples/orchestrator/digits).

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use common::{Worker, exclusive, settle_work_queue};
use fanout_e2e::{Stack, User, stack};

/// A zip of `(name, text)` files, all executable.
fn archive(files: &[(&str, &str)]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, text) in files {
        let options = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
        out.start_file(*name, options).unwrap();
        out.write_all(text.as_bytes()).unwrap();
    }
    out.finish().unwrap().into_inner()
}

/// The workflow: every prediction file holds a number; an item's perf is its number and
/// the perf their mean (so a model's perf is what its `predict` writes).
const SCORE: &str = r#"#!/bin/bash
set -euo pipefail
data=$1 pred=$2 out=$3
sum=0 n=0 items=""
for f in "$data"/*; do
  name=$(basename "$f")
  v=$(cat "$pred/$name")
  sum=$((sum + v)); n=$((n + 1))
  items="$items${items:+,}\"$name\": $v"
done
echo "{\"perf\": $((sum / n)), \"perfs\": {$items}}" > "$out"
"#;

/// An algorithm whose model counts the lines of training data it has seen (its perf),
/// after running `before` in `train`.
fn counting(before: &str) -> Vec<u8> {
    let train = format!(
        r#"#!/bin/bash
set -euo pipefail
{before}
seen=$(cat "$2/seen" 2>/dev/null || echo 0)
for f in "$1"/*; do seen=$((seen + $(wc -l < "$f"))); done
echo "$seen" > "$2/seen"
"#
    );
    let predict = r#"#!/bin/bash
set -euo pipefail
for f in "$2"/*; do cat "$1/seen" > "$3/$(basename "$f")"; done
"#;
    archive(&[("train", &train), ("predict", predict)])
}

struct Client<'a> {
    stack: &'a Stack,
    user: User,
}

impl Client<'_> {
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> fanout_e2e::Answer {
        self.stack
            .call_as(Some(&self.user.token), method, path, body)
            .await
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let answer = self.call(Method::POST, path, Some(&body)).await;
        assert_eq!(answer.status, 201, "{path}: {}", answer.text);
        answer.json
    }

    async fn get(&self, path: &str) -> Value {
        let answer = self.call(Method::GET, path, None).await;
        assert_eq!(answer.status, 200, "{path}: {}", answer.text);
        answer.json
    }

    /// Uploads `bytes` through a presigned PUT; the blob's uuid.
    async fn upload(&self, bytes: Vec<u8>) -> Uuid {
        let made = self.post("/orchestrator/storage", json!({})).await;
        let put = reqwest::Client::new()
            .put(made["url"].as_str().unwrap())
            .header("content-type", made["content_type"].as_str().unwrap())
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert!(put.status().is_success(), "{}", put.status());
        made["uuid"].as_str().unwrap().parse().unwrap()
    }

    /// Downloads a blob through its presigned GET.
    async fn download(&self, uuid: &str) -> Vec<u8> {
        let shown = self.get(&format!("/orchestrator/storage/{uuid}")).await;
        let got = reqwest::get(shown["url"].as_str().unwrap()).await.unwrap();
        assert!(got.status().is_success());
        got.bytes().await.unwrap().to_vec()
    }

    /// A problem with `train` items of `lines` lines each, one test item, chains of
    /// `size` items per rank; its uuid.
    async fn problem(&self, train: &[usize], size: u32) -> (Uuid, Vec<Uuid>) {
        let workflow = self.upload(archive(&[("score", SCORE)])).await;
        let test = self.upload(b"t\n".to_vec()).await;
        let problem = Uuid::new_v4();
        self.post(
            "/orchestrator/problem",
            json!({"uuid": problem, "workflow": workflow, "test_dataset": [test],
                   "size_train_dataset": size}),
        )
        .await;
        let data = self.data(problem, train).await;
        self.post(
            "/orchestrator/data",
            json!({"uuid": test, "problems": problem}),
        )
        .await;
        (problem, data)
    }

    /// Uploads and registers training items of `lines` lines each.
    async fn data(&self, problem: Uuid, lines: &[usize]) -> Vec<Uuid> {
        let mut ids = Vec::new();
        for n in lines {
            ids.push(self.upload("x\n".repeat(*n).into_bytes()).await);
        }
        self.post(
            "/orchestrator/data",
            json!({"uuid": ids, "problems": [problem]}),
        )
        .await;
        ids
    }

    async fn algo(&self, problem: Uuid, name: &str, bytes: Vec<u8>) -> Uuid {
        let uuid = self.upload(bytes).await;
        self.post(
            "/orchestrator/algo",
            json!({"uuid": uuid, "name": name, "problem": problem}),
        )
        .await;
        uuid
    }

    /// Asks a prediction on `item` and waits for it: the preduplet, and the
    /// predictions stored for the item.
    async fn predict(&self, problem: Uuid, item: Uuid) -> (Value, String) {
        let asked = self
            .post(
                "/orchestrator/prediction",
                json!({"data": [item], "problem": problem}),
            )
            .await;
        let pred = asked["preduplet"].as_str().unwrap().to_string();
        let start = Instant::now();
        let done = loop {
            let doc = self.get(&format!("/orchestrator/preduplet/{pred}")).await;
            if doc["status"] == "done" {
                break doc;
            }
            assert_ne!(doc["status"], "failed", "{doc}");
            assert!(start.elapsed() < Duration::from_secs(60), "{doc}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
        let zipped = self
            .download(done["prediction_storage_uuid"].as_str().unwrap())
            .await;
        let mut predictions = zip::ZipArchive::new(std::io::Cursor::new(zipped)).unwrap();
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut predictions.by_name(&item.to_string()).unwrap(),
            &mut text,
        )
        .unwrap();
        (done, text)
    }

    /// The learnuplets of `algo` by rank.
    async fn chain(&self, algo: Uuid) -> Vec<Value> {
        let mut uplets = self
            .get(&format!("/orchestrator/learnuplet?algo={algo}"))
            .await["learnuplets"]
            .as_array()
            .unwrap()
            .clone();
        uplets.sort_by_key(|u| u["rank"].as_u64());
        uplets
    }

    /// Waits until every learnuplet of `algo` has ended.
    async fn ended(&self, algo: Uuid, limit: Duration) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let chain = self.chain(algo).await;
            if chain
                .iter()
                .all(|u| u["status"] == "done" || u["status"] == "failed")
            {
                return chain;
            }
            assert!(
                start.elapsed() < limit,
                "chain not ended in {limit:?}: {chain:#?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

fn floats(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

async fn client(stack: &Stack) -> Client<'_> {
    Client {
        stack,
        user: stack.user().await,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn chains_advance_from_the_best_model_and_predictions_are_stored() {
    let _engine = exclusive().await;
    let stack = stack();
    settle_work_queue(stack).await;
    let c = client(stack).await;
    // Items of 1, 2, 3 and 4 lines, two per rank.
    let (problem, items) = c.problem(&[1, 2, 3, 4], 2).await;
    let lines_of = |uplet: &Value| -> f64 {
        uplet["train_data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| {
                let at = items.iter().position(|i| i.to_string() == *id).unwrap();
                (at + 1) as f64
            })
            .sum()
    };
    let counting_algo = c.algo(problem, "counting", counting("")).await;
    let chain = c.chain(counting_algo).await;
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[0]["model_start"], counting_algo.to_string());
    assert!(
        chain[1]["model_start"].is_null(),
        "only the head is runnable"
    );

    let _worker = Worker::start_with("work", &[], &[("FANOUT_ORCH_LEASE_SECONDS", "6")]);
    let chain = c.ended(counting_algo, Duration::from_secs(60)).await;
    // Rank 0 saw its items' lines, rank 1 started from rank 0's model and saw the rest:
    // ten lines in all.
    assert_eq!(chain[0]["status"], "done", "{chain:#?}");
    assert_eq!(chain[0]["perf"].as_f64(), Some(lines_of(&chain[0])));
    assert_eq!(chain[1]["model_start"], chain[0]["model_end"]);
    assert_eq!(chain[1]["perf"].as_f64(), Some(10.0));
    assert_eq!(floats(&chain[1]["test_perf"]), [10.0]);
    assert_eq!(floats(&chain[1]["train_perf"]), [10.0, 10.0]);
    assert_eq!(chain[1]["attempts"], 1);

    // New data appends a rank starting from the best model so far.
    c.data(problem, &[5]).await;
    let chain = c.ended(counting_algo, Duration::from_secs(60)).await;
    assert_eq!(chain.len(), 3);
    assert_eq!(chain[2]["model_start"], chain[1]["model_end"]);
    assert_eq!(chain[2]["perf"].as_f64(), Some(15.0));

    // A prediction from the best model: stored, fetchable.
    let item = c.upload(b"p\n".to_vec()).await;
    let (done, text) = c.predict(problem, item).await;
    assert_eq!(done["model"], chain[2]["model_end"]);
    assert_eq!(text.trim(), "15");

    // The model itself is a zip of the algorithm's files and its state.
    let model = c.download(chain[2]["model_end"].as_str().unwrap()).await;
    let mut model = zip::ZipArchive::new(std::io::Cursor::new(model)).unwrap();
    let mut seen = String::new();
    std::io::Read::read_to_string(&mut model.by_name("model/seen").unwrap(), &mut seen).unwrap();
    assert_eq!(seen.trim(), "15");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_learn_is_replaced_and_the_chain_completes() {
    let _engine = exclusive().await;
    let stack = stack();
    settle_work_queue(stack).await;
    let c = client(stack).await;
    let (problem, _) = c.problem(&[1, 1], 1).await;
    // Training takes 4 s: long enough to be killed in.
    let algo = c.algo(problem, "slow", counting("sleep 4")).await;
    // Renewed every 2 s: a loaded machine does not let a live claim lapse.
    let lease = [("FANOUT_ORCH_LEASE_SECONDS", "6")];
    let first = Worker::start_with("work", &[], &lease);
    let start = Instant::now();
    loop {
        let chain = c.chain(algo).await;
        if chain[0]["status"] == "pending" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{chain:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    first.kill();
    // Another worker, with the reconciler: the dead claim runs out and is handed over.
    let _second = Worker::start_with("work", &["--reconcile-every", "2"], &lease);
    let chain = c.ended(algo, Duration::from_secs(90)).await;
    assert_eq!(chain[0]["status"], "done", "{chain:#?}");
    assert_eq!(chain[0]["attempts"], 2, "{chain:#?}");
    assert_eq!(chain[1]["status"], "done", "{chain:#?}");
    assert_eq!(chain[1]["perf"].as_f64(), Some(2.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_fail_one_uplet_while_the_others_go_on() {
    let _engine = exclusive().await;
    let stack = stack();
    settle_work_queue(stack).await;
    let c = client(stack).await;
    let (problem, _) = c.problem(&[1, 1], 1).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();

    let good = c.algo(problem, "good", counting("")).await;
    let sleeper = c.algo(problem, "sleeper", counting("sleep 30")).await;
    let hog = c
        .algo(
            problem,
            "hog",
            counting("python3 -c 'b = bytearray(1 << 30); print(len(b))'"),
        )
        .await;
    let network = c
        .algo(
            problem,
            "network",
            counting(&format!(
                "exec 3<>/dev/tcp/127.0.0.1/{port}; echo hello >&3"
            )),
        )
        .await;
    // An archive over what an uplet may read (a presigned upload can be any size).
    let mut noise = String::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while noise.len() < 4 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.push_str(&format!("{x:016x}"));
    }
    let heavy = archive(&[
        ("train", "#!/bin/bash\nexit 0\n"),
        ("predict", "#!/bin/bash\nexit 0\n"),
        ("noise", &noise),
    ]);
    assert!(heavy.len() > 1 << 20, "{}", heavy.len());
    let heavy = c.algo(problem, "heavy", heavy).await;
    let _worker = Worker::start_with(
        "work",
        &[],
        &[
            ("FANOUT_ORCH_TIME_SECONDS", "3"),
            ("FANOUT_ORCH_MEMORY_MIB", "256"),
            ("FANOUT_ORCH_INPUT_MAX_MIB", "1"),
        ],
    );
    let good = c.ended(good, Duration::from_secs(60)).await;
    assert!(good.iter().all(|u| u["status"] == "done"), "{good:#?}");
    assert_eq!(good[1]["perf"].as_f64(), Some(2.0));
    for (algo, says) in [
        (sleeper, "over the time limit of 3 s"),
        (hog, "MemoryError"),
        (network, "/dev/tcp"),
    ] {
        let chain = c.ended(algo, Duration::from_secs(60)).await;
        // Its first rank fails with the reason; the next starts from the algorithm
        // itself (no better model) and fails the same way: the chain still ends.
        assert_eq!(chain[0]["status"], "failed", "{chain:#?}");
        let error = chain[0]["error"].as_str().unwrap();
        assert!(error.starts_with("code/train: "), "{error}");
        assert!(error.contains(says), "{says}: {error}");
        assert_eq!(
            chain[0]["attempts"], 1,
            "a program's failure is not retried"
        );
        assert_eq!(chain[1]["model_start"], algo.to_string(), "{chain:#?}");
        assert_eq!(chain[1]["status"], "failed", "{chain:#?}");
    }
    let chain = c.ended(heavy, Duration::from_secs(60)).await;
    assert_eq!(chain[0]["status"], "failed", "{chain:#?}");
    let error = chain[0]["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("model_start {heavy} ("))
            && error.contains("FANOUT_ORCH_INPUT_MAX_MIB"),
        "{error}"
    );
    // Nothing reached the listener.
    assert!(
        listener.accept().is_err(),
        "the sandbox reached the network"
    );
}

/// The labels `y` of a digits data item (an npz: a zip holding `y.npy`, int64).
fn labels_of(npz: &[u8]) -> Vec<i64> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(npz)).unwrap();
    let mut npy = Vec::new();
    std::io::Read::read_to_end(&mut zip.by_name("y.npy").unwrap(), &mut npy).unwrap();
    assert_eq!(&npy[..6], b"\x93NUMPY");
    let (major, at) = (npy[6], 8);
    let (header_len, at) = if major == 1 {
        (u16::from_le_bytes([npy[at], npy[at + 1]]) as usize, at + 2)
    } else {
        (
            u32::from_le_bytes(npy[at..at + 4].try_into().unwrap()) as usize,
            at + 4,
        )
    };
    let header = String::from_utf8_lossy(&npy[at..at + header_len]).to_string();
    assert!(header.contains("'<i8'"), "{header}");
    npy[at + header_len..]
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_digits_example_learns_rank_by_rank_and_predicts() {
    let _engine = exclusive().await;
    let stack = stack();
    settle_work_queue(stack).await;
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::env::temp_dir().join(format!("fanout-digits-{}", Uuid::new_v4()));
    let packed = std::process::Command::new("bash")
        .arg(root.join("examples/orchestrator/digits/pack.sh"))
        .arg(&out)
        .status()
        .unwrap();
    assert!(packed.success());
    let venv = std::process::Command::new("bash")
        .arg(root.join("examples/orchestrator/venv.sh"))
        .output()
        .unwrap();
    assert!(venv.status.success());
    let bin = String::from_utf8(venv.stdout).unwrap().trim().to_string();
    let read = |name: &str| std::fs::read(out.join(name)).unwrap();

    let c = client(stack).await;
    let workflow = c.upload(read("workflow.zip")).await;
    let mut tests = Vec::new();
    for i in 0..2 {
        tests.push(c.upload(read(&format!("data/test_{i}.npz"))).await);
    }
    let mut train = Vec::new();
    for i in 0..6 {
        train.push(c.upload(read(&format!("data/train_{i}.npz"))).await);
    }
    let problem = Uuid::new_v4();
    c.post(
        "/orchestrator/problem",
        json!({"uuid": problem, "workflow": workflow, "test_dataset": tests,
               "size_train_dataset": 2}),
    )
    .await;
    c.post(
        "/orchestrator/data",
        json!({"uuid": [tests[0], tests[1], train[0], train[1], train[2], train[3]],
               "problems": problem}),
    )
    .await;
    let logreg = c
        .algo(problem, "logistic regression", read("logreg.zip"))
        .await;
    let forest = c.algo(problem, "random forest", read("forest.zip")).await;
    let path = [("FANOUT_ORCH_PATH", bin.as_str())];
    let _workers = [
        Worker::start_with("work", &[], &path),
        Worker::start_with("work", &[], &path),
    ];
    for algo in [logreg, forest] {
        assert_eq!(c.ended(algo, Duration::from_secs(180)).await.len(), 2);
    }
    // The last two training items append a rank to each chain.
    c.post(
        "/orchestrator/data",
        json!({"uuid": [train[4], train[5]], "problems": [problem]}),
    )
    .await;
    let mut best_overall: Option<Value> = None;
    for algo in [logreg, forest] {
        let chain = c.ended(algo, Duration::from_secs(180)).await;
        assert_eq!(chain.len(), 3);
        for (rank, uplet) in chain.iter().enumerate() {
            assert_eq!(uplet["status"], "done", "{uplet:#}");
            assert_eq!(floats(&uplet["test_perf"]).len(), 2);
            assert_eq!(floats(&uplet["train_perf"]).len(), 2);
            // Each rank starts from the best model of its chain so far.
            let best_before = chain[..rank]
                .iter()
                .max_by(|a, b| a["perf"].as_f64().partial_cmp(&b["perf"].as_f64()).unwrap());
            let expected = best_before
                .map(|b| b["model_end"].clone())
                .unwrap_or(json!(algo.to_string()));
            assert_eq!(uplet["model_start"], expected, "rank {rank}");
        }
        let last = chain[2]["perf"].as_f64().unwrap();
        let first = chain[0]["perf"].as_f64().unwrap();
        assert!(last >= first, "more data, no worse: {first} then {last}");
        println!(
            "{algo}: perfs {:?}",
            chain
                .iter()
                .map(|u| u["perf"].as_f64().unwrap())
                .collect::<Vec<_>>()
        );
        for uplet in chain {
            if best_overall
                .as_ref()
                .is_none_or(|b| uplet["perf"].as_f64() > b["perf"].as_f64())
            {
                best_overall = Some(uplet);
            }
        }
    }
    let best = best_overall.unwrap();
    assert!(best["perf"].as_f64().unwrap() > 0.9, "{best:#}");

    // A prediction on the first test item from the best model: its labels score exactly
    // the best model's accuracy on that item.
    let (done, text) = c.predict(problem, tests[0]).await;
    assert_eq!(done["model"], best["model_end"]);
    let predicted: Vec<i64> = text.lines().map(|l| l.trim().parse().unwrap()).collect();
    let truth = labels_of(&read("data/test_0.npz"));
    assert_eq!(predicted.len(), truth.len());
    let right = predicted.iter().zip(&truth).filter(|(p, t)| p == t).count();
    let accuracy = right as f64 / truth.len() as f64;
    let item = best["test_data"]
        .as_array()
        .unwrap()
        .iter()
        .position(|t| *t == tests[0].to_string())
        .unwrap();
    let recorded = floats(&best["test_perf"])[item];
    assert!(
        (accuracy - recorded).abs() < 1e-9,
        "{accuracy} vs {recorded}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// A worker killed at each of the orchestrator's fault points — just after its claim,
/// and between storing a rank's report and passing its model on — is replaced: the chain
/// completes, each rank's data counted once.
#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_at_each_orchestrator_fault_point_leaves_the_chain_whole() {
    common::require_faults();
    let _engine = exclusive().await;
    let stack = stack();
    let lease = ("FANOUT_ORCH_LEASE_SECONDS", "6");
    for (point, first_attempts) in [("orch_after_claim", 2), ("orch_after_learn_report", 1)] {
        settle_work_queue(stack).await;
        let c = client(stack).await;
        let (problem, _) = c.problem(&[1, 2], 1).await;
        let fault = format!("{point}:kill");
        let mut doomed = Worker::start_with("work", &[], &[lease, ("FANOUT_FAULT", &fault)]);
        let algo = c.algo(problem, "counting", counting("")).await;
        assert!(
            doomed.ended_within(Duration::from_secs(30)).await,
            "{point} not reached"
        );
        let _rescuer = Worker::start_with("work", &["--reconcile-every", "2"], &[lease]);
        let chain = c.ended(algo, Duration::from_secs(90)).await;
        assert!(
            chain.iter().all(|u| u["status"] == "done"),
            "{point}: {chain:#?}"
        );
        assert_eq!(chain[0]["attempts"], first_attempts, "{point}: {chain:#?}");
        assert_eq!(chain[1]["attempts"], 1, "{point}");
        assert_eq!(chain[1]["model_start"], chain[0]["model_end"], "{point}");
        assert_eq!(chain[1]["perf"].as_f64(), Some(3.0), "{point}: {chain:#?}");
    }
}
