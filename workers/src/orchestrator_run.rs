//! An orchestrator uplet run by the worker: claimed with a short lease kept alive while
//! it runs, its archives and data fetched into a scratch directory, its programs run in
//! the [`sandbox`](crate::sandbox), its model or predictions stored, its end reported.
//!
//! The archive contract (README, ML orchestrator): an algorithm is a zip with executables
//! `train` and `predict` at its root; a model is the same files with the trained state in
//! `model/`; a workflow is a zip with an executable `score`. With the scratch directory
//! `box/` as working directory:
//!
//! - learn: `code/train <box>/train <box>/code/model`, then `code/predict <box>/code/model
//!   <box>/test <box>/pred_test` (and the same on `train`), then `workflow/score
//!   <box>/test <box>/pred_test <box>/score_test.json` (and on `train`), which writes
//!   `{"perf": x, "perfs": {"<item>": x, ...}}`; `code/` zipped is `model_end`;
//! - predict: `code/predict <box>/code/model <box>/data <box>/out`; `out/` zipped is the
//!   predictions.
//!
//! Data items are files named by their uuid. A program that fails (an exit code, a
//! signal, a limit) fails the uplet with the reason and the tail of its standard error:
//! its inputs are fixed, so running it again would fail again. A failure of the worker's
//! own (storage, the table) hands the claim back for another try, at most
//! [`ATTEMPTS_MAX`](fanout::orchestrator::api::ATTEMPTS_MAX) claims in all.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use uuid::Uuid;

use fanout::Services;
use fanout::error::{ApiError, ErrorCode};
use fanout::orchestrator::api::{self, LearnDone, PredDone};
use fanout::orchestrator::compute::{self, Claimed, Run};
use fanout::orchestrator::store::blob_key;
use fanout::orchestrator::{Learnuplet, Preduplet, UpletStatus};
use fanout::store::blobs;

use crate::sandbox::{self, Ending, Limits, Sandbox};

/// Largest archive (algorithm, model, workflow) or model written, in bytes.
pub const ARCHIVE_MAX_BYTES: u64 = 512 << 20;
/// Most entries of an archive.
pub const ARCHIVE_MAX_ENTRIES: usize = 10_000;
/// Characters of a failed program's standard error kept in the uplet's error.
const ERROR_TAIL_CHARS: usize = 1500;

/// How the worker runs uplets (each from a `FANOUT_ORCH_*` variable).
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a claim holds without renewal (`FANOUT_ORCH_LEASE_SECONDS`, default
    /// 120); renewed every third of it.
    pub lease: Duration,
    /// Directories put first on the programs' `PATH` (`FANOUT_ORCH_PATH`, `:`-separated),
    /// e.g. a Python environment with the libraries the algorithms use.
    pub path: Vec<PathBuf>,
    /// Limits of one uplet (`FANOUT_ORCH_TIME_SECONDS`, default 1200 — the seed's 20
    /// minutes to learn or predict, for all its programs together;
    /// `FANOUT_ORCH_MEMORY_MIB`, default 2048; `FANOUT_ORCH_PROCESSES`, default 64 for a
    /// root worker, 512 otherwise).
    pub limits: Limits,
    /// Where scratch directories go (`FANOUT_ORCH_WORK_DIR`, default the system's
    /// temporary directory).
    pub work_dir: PathBuf,
    /// Most bytes of stored inputs an uplet reads in all — archives and data items
    /// (`FANOUT_ORCH_INPUT_MAX_MIB`, default 256): a presigned upload can be any size,
    /// and the worker holds one input in memory at a time.
    pub input_max_bytes: u64,
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

impl Settings {
    /// The settings of the environment.
    pub fn from_env() -> Settings {
        let seconds = env_number("FANOUT_ORCH_TIME_SECONDS", 1200);
        // RLIMIT_NPROC counts every process and thread of the user: as root the programs
        // run as nobody and share 64; a worker that is not root runs them as itself, and
        // its own threads count too.
        let processes = if crate::sandbox::is_root() { 64 } else { 512 };
        let limits = Limits {
            wall: Duration::from_secs(seconds),
            cpu_seconds: seconds,
            memory_bytes: env_number("FANOUT_ORCH_MEMORY_MIB", 2048) << 20,
            processes: env_number("FANOUT_ORCH_PROCESSES", processes),
            ..Limits::default()
        };
        Settings {
            lease: Duration::from_secs(env_number("FANOUT_ORCH_LEASE_SECONDS", 120)),
            path: std::env::var("FANOUT_ORCH_PATH")
                .map(|p| std::env::split_paths(&p).collect())
                .unwrap_or_default(),
            limits,
            work_dir: std::env::var_os("FANOUT_ORCH_WORK_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir),
            input_max_bytes: env_number("FANOUT_ORCH_INPUT_MAX_MIB", 256) << 20,
        }
    }
}

/// This worker process's uuid as the orchestrator records it.
pub fn worker_id() -> Uuid {
    static ID: OnceLock<Uuid> = OnceLock::new();
    *ID.get_or_init(Uuid::new_v4)
}

/// Runs the uplet of `run` if it can be claimed; nothing when it cannot (another worker
/// has it, it ended, or the message is a duplicate).
pub async fn run(svc: &Services, run: &Run) -> Result<(), ApiError> {
    let settings = Settings::from_env();
    let worker = worker_id();
    let Some(claimed) = compute::take(svc, *run, worker, settings.lease).await? else {
        return Ok(());
    };
    let attempts = claimed.attempts();
    tracing::info!(?run, attempts, "uplet claimed");
    fanout::fault::point("orch_after_claim").await;
    let scratch = settings
        .work_dir
        .join(format!("fanout-uplet-{}-{attempts}", run.uuid));
    let outcome = tokio::select! {
        outcome = execute(svc, run, &claimed, &settings, &scratch) => Some(outcome),
        () = keep_lease(svc, *run, worker, attempts, settings.lease) => None,
    };
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    let reported = match outcome {
        None => {
            tracing::warn!(?run, attempts, "claim lost while running: work dropped");
            return Ok(());
        }
        Some(Ok(Report::Learn(report))) => {
            api::learndone_of(svc, run.account_id, run.uuid, report, Some(attempts))
                .await
                .map(drop)
        }
        Some(Ok(Report::Predict(report))) => {
            api::preddone_of(svc, run.account_id, run.uuid, report, Some(attempts))
                .await
                .map(drop)
        }
        Some(Err(err)) => {
            tracing::error!(?run, attempts, %err, "uplet not run: claim handed back");
            let why = format!("worker error: {}", err.detail);
            return compute::give_back(svc, *run, attempts, &why).await;
        }
    };
    match reported {
        Err(err) if err.code == ErrorCode::UpletConflict => {
            tracing::warn!(?run, attempts, detail = err.detail, "report refused");
            Ok(())
        }
        other => other,
    }
}

/// Renews the claim every third of `lease`; returns when the claim is lost.
async fn keep_lease(svc: &Services, run: Run, worker: Uuid, attempts: u32, lease: Duration) {
    let mut last_renewed = Instant::now();
    loop {
        tokio::time::sleep(lease / 3).await;
        match compute::renew(svc, run, worker, attempts, lease).await {
            Ok(true) => last_renewed = Instant::now(),
            Ok(false) => return,
            Err(err) => {
                tracing::warn!(?run, %err, "lease renewal failed");
                if last_renewed.elapsed() >= lease {
                    return;
                }
            }
        }
    }
}

enum Report {
    Learn(LearnDone),
    Predict(PredDone),
}

async fn execute(
    svc: &Services,
    run: &Run,
    claimed: &Claimed,
    settings: &Settings,
    scratch: &Path,
) -> Result<Report, ApiError> {
    let _ = tokio::fs::remove_dir_all(scratch).await;
    let started = Instant::now();
    match claimed {
        Claimed::Learn(uplet) => learn(svc, run.account_id, uplet, settings, scratch, started)
            .await
            .map(Report::Learn),
        Claimed::Predict(uplet) => predict(svc, run.account_id, uplet, settings, scratch, started)
            .await
            .map(Report::Predict),
    }
}

fn io(context: &str, err: impl std::fmt::Display) -> ApiError {
    ApiError::internal(context, err.to_string())
}

/// Creates the directories (and their parents).
async fn make_dirs(dirs: &[&Path]) -> Result<(), ApiError> {
    for dir in dirs {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| io("scratch directory", e))?;
    }
    Ok(())
}

/// A program of the uplet that failed: why, for the uplet's error.
struct Failure(String);

/// Runs `program` of the scratch directory with `args` within what is left of the
/// uplet's time.
async fn step(
    settings: &Settings,
    scratch: &Path,
    started: Instant,
    program: &str,
    args: &[&Path],
) -> Result<Result<String, Failure>, ApiError> {
    let left = settings.limits.wall.saturating_sub(started.elapsed());
    if left.is_zero() {
        return Ok(Err(Failure(format!(
            "{program}: the time limit of {} s ran out before it started",
            settings.limits.wall.as_secs()
        ))));
    }
    let path = scratch.join(program);
    if !path.is_file() {
        return Ok(Err(Failure(format!(
            "{program}: not in the archive (an algorithm holds train and predict, a workflow score)"
        ))));
    }
    let sandbox = Sandbox {
        dir: scratch.to_path_buf(),
        limits: Limits {
            wall: left,
            ..settings.limits.clone()
        },
        path_prefix: settings.path.clone(),
        env: Vec::new(),
    };
    let args: Vec<OsString> = args.iter().map(|a| a.as_os_str().to_owned()).collect();
    let outcome = sandbox::run(&sandbox, &path, &args)
        .await
        .map_err(|e| io("sandbox", e))?;
    tracing::info!(program, ending = ?outcome.ending, elapsed = ?outcome.elapsed, "program ran");
    if outcome.ending == Ending::Exited(0) {
        return Ok(Ok(outcome.stdout_tail));
    }
    let reason = match outcome.ending {
        Ending::TimedOut => format!(
            "over the time limit of {} s",
            settings.limits.wall.as_secs()
        ),
        _ => outcome.describe(),
    };
    let tail: String = {
        let chars: Vec<char> = outcome.stderr_tail.trim_end().chars().collect();
        chars[chars.len().saturating_sub(ERROR_TAIL_CHARS)..]
            .iter()
            .collect()
    };
    Ok(Err(Failure(format!(
        "{program}: {reason} (memory limit {} MiB); stderr: {tail}",
        settings.limits.memory_bytes >> 20
    ))))
}

/// What an uplet may still read of its inputs.
struct Budget(u64);

/// Reads the stored input `uuid` within `budget`; one that is not there, or over what
/// is left, is the uplet's failure.
async fn read_input(
    svc: &Services,
    account_id: Uuid,
    uuid: Uuid,
    what: &str,
    budget: &mut Budget,
) -> Result<Result<Vec<u8>, Failure>, ApiError> {
    let key = blob_key(account_id, uuid);
    let Some(head) = blobs::head(svc, &key).await? else {
        return Ok(Err(Failure(format!("{what} {uuid} is not in storage"))));
    };
    if head.size > budget.0 {
        return Ok(Err(Failure(format!(
            "{what} {uuid} ({} bytes) is over what the uplet may still read of its inputs ({} bytes; FANOUT_ORCH_INPUT_MAX_MIB)",
            head.size, budget.0
        ))));
    }
    let Some(bytes) = blobs::get(svc, &key).await? else {
        return Ok(Err(Failure(format!("{what} {uuid} is not in storage"))));
    };
    budget.0 = budget.0.saturating_sub(bytes.len() as u64);
    Ok(Ok(bytes))
}

/// Fetches the data items `uuids` into `dir`, one file each named by its uuid.
async fn fetch_items(
    svc: &Services,
    account_id: Uuid,
    uuids: &[Uuid],
    dir: &Path,
    budget: &mut Budget,
) -> Result<Result<(), Failure>, ApiError> {
    make_dirs(&[dir]).await?;
    for uuid in uuids {
        let bytes = match read_input(svc, account_id, *uuid, "data", budget).await? {
            Ok(bytes) => bytes,
            Err(failure) => return Ok(Err(failure)),
        };
        tokio::fs::write(dir.join(uuid.to_string()), bytes)
            .await
            .map_err(|e| io("orchestrator data", e))?;
    }
    Ok(Ok(()))
}

/// Fetches the archive `uuid` and unpacks it into `dir`; an archive that is not there,
/// too big or bad is the uplet's failure.
async fn unpack_blob(
    svc: &Services,
    account_id: Uuid,
    uuid: Uuid,
    dir: &Path,
    what: &str,
    budget: &mut Budget,
) -> Result<Result<(), Failure>, ApiError> {
    let bytes = match read_input(svc, account_id, uuid, what, budget).await? {
        Ok(bytes) => bytes,
        Err(failure) => return Ok(Err(failure)),
    };
    let dir = dir.to_path_buf();
    let unpacked = tokio::task::spawn_blocking(move || unpack(&bytes, &dir))
        .await
        .map_err(|e| io("unpack", e))?;
    Ok(unpacked.map_err(|e| Failure(format!("{what} {uuid}: {e}"))))
}

/// Unpacks a zip into `dir`: names that would leave it refused, sizes bounded, unix mode
/// bits kept (so `train` stays executable).
pub fn unpack(bytes: &[u8], dir: &Path) -> Result<(), String> {
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| format!("not a zip: {e}"))?;
    if archive.len() > ARCHIVE_MAX_ENTRIES {
        return Err(format!("more than {ARCHIVE_MAX_ENTRIES} entries"));
    }
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut total: u64 = 0;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).map_err(|e| e.to_string())?;
        let shown = String::from_utf8_lossy(entry.name_raw()).into_owned();
        let Some(name) = entry.enclosed_name() else {
            return Err(format!("entry '{shown}' leaves the archive's directory"));
        };
        let target = dir.join(name);
        if entry.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        let mut file = std::fs::File::create(&target).map_err(|e| e.to_string())?;
        let budget = ARCHIVE_MAX_BYTES - total;
        let written = std::io::copy(&mut (&mut entry).take(budget + 1), &mut file)
            .map_err(|e| format!("entry '{shown}': {e}"))?;
        if written > budget {
            return Err(format!("more than {ARCHIVE_MAX_BYTES} bytes unpacked"));
        }
        total += written;
        if let Some(mode) = entry.unix_mode() {
            use std::os::unix::fs::PermissionsExt;
            let mode = (mode & 0o777) | 0o600;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Zips the files under `dir` (names relative to it, mode bits kept); `Err` above
/// [`ARCHIVE_MAX_BYTES`].
pub fn pack(dir: &Path) -> Result<Vec<u8>, String> {
    use std::os::unix::fs::PermissionsExt;
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(at) = pending.pop() {
        for entry in std::fs::read_dir(&at).map_err(|e| e.to_string())? {
            let entry = entry.map_err(|e| e.to_string())?;
            let kind = entry.file_type().map_err(|e| e.to_string())?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let mut total: u64 = 0;
    for path in files {
        let name = path
            .strip_prefix(dir)
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .into_owned();
        let meta = std::fs::metadata(&path).map_err(|e| e.to_string())?;
        total += meta.len();
        if total > ARCHIVE_MAX_BYTES {
            return Err(format!("more than {ARCHIVE_MAX_BYTES} bytes to store"));
        }
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(meta.permissions().mode() & 0o777)
            .large_file(meta.len() >= u32::MAX as u64);
        out.start_file(name, options).map_err(|e| e.to_string())?;
        let mut file = std::fs::File::open(&path).map_err(|e| e.to_string())?;
        std::io::copy(&mut file, &mut out).map_err(|e| e.to_string())?;
    }
    let cursor = out.finish().map_err(|e| e.to_string())?;
    let bytes = cursor.into_inner();
    Ok(bytes)
}

/// Packs `dir` and stores it as blob `uuid` of the account; a model or predictions too
/// big is the uplet's failure.
async fn store_dir(
    svc: &Services,
    account_id: Uuid,
    uuid: Uuid,
    dir: &Path,
) -> Result<Result<(), Failure>, ApiError> {
    let dir = dir.to_path_buf();
    let packed = tokio::task::spawn_blocking(move || pack(&dir))
        .await
        .map_err(|e| io("pack", e))?;
    let bytes = match packed {
        Ok(bytes) => bytes,
        Err(e) => return Ok(Err(Failure(e))),
    };
    blobs::put(svc, &blob_key(account_id, uuid), bytes, "application/zip").await?;
    Ok(Ok(()))
}

/// What the workflow's `score` wrote.
#[derive(serde::Deserialize)]
struct Score {
    perf: f64,
    #[serde(default)]
    perfs: HashMap<String, f64>,
}

async fn read_score(path: &Path, items: &[Uuid]) -> Result<(f64, Vec<f64>), Failure> {
    let text = tokio::fs::read(path)
        .await
        .map_err(|e| Failure(format!("score wrote no {}: {e}", path.display())))?;
    let score: Score = serde_json::from_slice(&text).map_err(|e| {
        Failure(format!(
            "score's output is not {{\"perf\", \"perfs\"}}: {e}"
        ))
    })?;
    if !score.perf.is_finite() {
        return Err(Failure(format!(
            "score's perf {} is not finite",
            score.perf
        )));
    }
    let per_item = items
        .iter()
        .map(|uuid| {
            score
                .perfs
                .get(&uuid.to_string())
                .copied()
                .ok_or_else(|| Failure(format!("score's perfs lack item {uuid}")))
        })
        .collect::<Result<Vec<f64>, Failure>>()?;
    Ok((score.perf, per_item))
}

fn failed_learn(failure: Failure) -> LearnDone {
    LearnDone {
        status: UpletStatus::Failed,
        perf: None,
        train_perf: None,
        test_perf: None,
        error: Some(failure.0),
    }
}

/// `?` for the uplet's own failures: returns the failed report.
macro_rules! or_fail {
    ($step:expr, $fail:expr) => {
        match $step {
            Ok(value) => value,
            Err(failure) => return Ok($fail(failure)),
        }
    };
}

async fn learn(
    svc: &Services,
    account_id: Uuid,
    uplet: &Learnuplet,
    settings: &Settings,
    scratch: &Path,
    started: Instant,
) -> Result<LearnDone, ApiError> {
    let model_start = uplet
        .model_start
        .ok_or_else(|| io("learn", "claimed without a model_start"))?;
    let code = scratch.join("code");
    let model = code.join("model");
    let budget = &mut Budget(settings.input_max_bytes);
    or_fail!(
        unpack_blob(svc, account_id, model_start, &code, "model_start", budget).await?,
        failed_learn
    );
    let workflow = scratch.join("workflow");
    or_fail!(
        unpack_blob(
            svc,
            account_id,
            uplet.workflow,
            &workflow,
            "workflow",
            budget
        )
        .await?,
        failed_learn
    );
    make_dirs(&[&model]).await?;
    let (train, test) = (scratch.join("train"), scratch.join("test"));
    or_fail!(
        fetch_items(svc, account_id, &uplet.train_data, &train, budget).await?,
        failed_learn
    );
    or_fail!(
        fetch_items(svc, account_id, &uplet.test_data, &test, budget).await?,
        failed_learn
    );
    let (pred_train, pred_test) = (scratch.join("pred_train"), scratch.join("pred_test"));
    make_dirs(&[&pred_train, &pred_test]).await?;
    or_fail!(
        step(settings, scratch, started, "code/train", &[&train, &model]).await?,
        failed_learn
    );
    let (score_train, score_test) = (
        scratch.join("score_train.json"),
        scratch.join("score_test.json"),
    );
    let mut perfs = Vec::new();
    for (data, predicted, scored, items) in [
        (&test, &pred_test, &score_test, &uplet.test_data),
        (&train, &pred_train, &score_train, &uplet.train_data),
    ] {
        or_fail!(
            step(
                settings,
                scratch,
                started,
                "code/predict",
                &[&model, data, predicted]
            )
            .await?,
            failed_learn
        );
        or_fail!(
            step(
                settings,
                scratch,
                started,
                "workflow/score",
                &[data, predicted, scored]
            )
            .await?,
            failed_learn
        );
        perfs.push(or_fail!(read_score(scored, items).await, failed_learn));
    }
    or_fail!(
        store_dir(svc, account_id, uplet.model_end, &code).await?,
        failed_learn
    );
    let (test_score, train_score) = (perfs.remove(0), perfs.remove(0));
    Ok(LearnDone {
        status: UpletStatus::Done,
        perf: Some(test_score.0),
        train_perf: Some(train_score.1),
        test_perf: Some(test_score.1),
        error: None,
    })
}

fn failed_prediction(failure: Failure) -> PredDone {
    PredDone {
        status: UpletStatus::Failed,
        prediction_storage_uuid: None,
        error: Some(failure.0),
    }
}

/// The storage uuid of a preduplet's predictions: the same for every claim, so a retry
/// overwrites what a dead worker may have stored.
pub fn predictions_uuid(preduplet: Uuid) -> Uuid {
    Uuid::new_v5(&preduplet, b"predictions")
}

async fn predict(
    svc: &Services,
    account_id: Uuid,
    uplet: &Preduplet,
    settings: &Settings,
    scratch: &Path,
    started: Instant,
) -> Result<PredDone, ApiError> {
    let code = scratch.join("code");
    let model = code.join("model");
    let budget = &mut Budget(settings.input_max_bytes);
    or_fail!(
        unpack_blob(svc, account_id, uplet.model, &code, "model", budget).await?,
        failed_prediction
    );
    make_dirs(&[&model]).await?;
    let (data, out) = (scratch.join("data"), scratch.join("out"));
    or_fail!(
        fetch_items(svc, account_id, &uplet.data, &data, budget).await?,
        failed_prediction
    );
    make_dirs(&[&out]).await?;
    or_fail!(
        step(
            settings,
            scratch,
            started,
            "code/predict",
            &[&model, &data, &out]
        )
        .await?,
        failed_prediction
    );
    let stored = predictions_uuid(uplet.uuid);
    or_fail!(
        store_dir(svc, account_id, stored, &out).await?,
        failed_prediction
    );
    Ok(PredDone {
        status: UpletStatus::Done,
        prediction_storage_uuid: Some(stored),
        error: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn pack_and_unpack_keep_files_and_modes() {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("fanout-pack-{}", Uuid::new_v4()));
        let src = root.join("src");
        std::fs::create_dir_all(src.join("model/deep")).unwrap();
        std::fs::write(src.join("train"), "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(src.join("train"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::fs::write(src.join("model/deep/state"), vec![7u8; 100_000]).unwrap();
        let bytes = pack(&src).unwrap();
        let dst = root.join("dst");
        unpack(&bytes, &dst).unwrap();
        let mode = std::fs::metadata(dst.join("train"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(
            std::fs::read(dst.join("model/deep/state")).unwrap(),
            vec![7u8; 100_000]
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn unpack_refuses_names_leaving_the_directory() {
        let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        out.start_file("../evil", zip::write::SimpleFileOptions::default())
            .unwrap();
        out.write_all(b"x").unwrap();
        let bytes = out.finish().unwrap().into_inner();
        let root = std::env::temp_dir().join(format!("fanout-unpack-{}", Uuid::new_v4()));
        let err = unpack(&bytes, &root.join("dst")).unwrap_err();
        assert!(err.contains("leaves"), "{err}");
        assert!(!root.join("evil").exists());
        let _ = std::fs::remove_dir_all(&root);
        assert!(
            unpack(b"not a zip", &root)
                .unwrap_err()
                .contains("not a zip")
        );
    }
}
