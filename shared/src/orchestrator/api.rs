//! The orchestrator's operations (seed 003), each within one account: registering
//! problems, algorithms and data (which makes learnuplet chains), requesting predictions,
//! the compute side's claim and reports, and reading the collections.
//!
//! Answers follow the seed (`{"new_problem": …}`, `{"new_algo": …, "new_learnuplets":
//! n}`, …); errors are the shared registry's: 12027 for a bad body, 40022 for a document
//! or blob that is not there, 40023 for a uuid already taken, 40024 for an uplet not in
//! the state the call needs (a second claim, a report of an unclaimed uplet).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::store::{self, blob_key};
use super::{Algo, Collection, Data, Learnuplet, Preduplet, Problem, UpletStatus, chains, compute};
use crate::Services;
use crate::error::{ApiError, ErrorCode};
use crate::store::blobs;
use crate::timestamps;

/// How long a claim holds before the uplet may be handed out again (the seed's compute
/// default: 20 minutes to learn or predict, and a margin).
pub const LEASE: Duration = Duration::from_secs(25 * 60);
/// Claims an uplet gets: a claim whose lease runs out is handed out again until then,
/// after which the uplet fails for good (its chain goes on without it).
pub const ATTEMPTS_MAX: u32 = 3;
/// Most training data items per learnuplet.
pub const SIZE_TRAIN_DATASET_MAX: u32 = 10_000;

/// One uuid or a list of them, as `POST /data` takes them.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One uuid.
    One(Uuid),
    /// Several.
    Many(Vec<Uuid>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<Uuid> {
        match self {
            OneOrMany::One(id) => vec![id],
            OneOrMany::Many(ids) => ids,
        }
    }
}

/// Body of `POST /orchestrator/problem`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProblem {
    /// Its uuid.
    pub uuid: Uuid,
    /// Storage uuid of its workflow (uploaded first).
    pub workflow: Uuid,
    /// Data uuids kept for testing.
    pub test_dataset: Vec<Uuid>,
    /// Training data per learnuplet (1 to 10,000).
    pub size_train_dataset: u32,
}

/// Body of `POST /orchestrator/algo`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAlgo {
    /// Its uuid (its archive uploaded first under it).
    pub uuid: Uuid,
    /// Its name.
    pub name: String,
    /// The problem it solves.
    pub problem: Uuid,
}

/// Body of `POST /orchestrator/data`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewData {
    /// A data uuid or a list (each uploaded first under it).
    pub uuid: OneOrMany,
    /// A problem uuid or a list.
    pub problems: OneOrMany,
}

/// Body of `POST /orchestrator/prediction`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPrediction {
    /// Data to predict on (uploaded first).
    pub data: Vec<Uuid>,
    /// The problem.
    pub problem: Uuid,
}

/// Body of `POST /orchestrator/worker/{uplet_type}/{uuid}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Claim {
    /// The worker's uuid.
    pub worker: Uuid,
}

/// Body of `POST /orchestrator/learndone/{uuid}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LearnDone {
    /// `done` or `failed`.
    pub status: UpletStatus,
    /// Performance on the test data (with `done`).
    pub perf: Option<f64>,
    /// Per training data item.
    pub train_perf: Option<Vec<f64>>,
    /// Per test data item.
    pub test_perf: Option<Vec<f64>>,
    /// Why it failed (with `failed`).
    pub error: Option<String>,
}

/// Body of `POST /orchestrator/preddone/{uuid}`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredDone {
    /// `done` or `failed`.
    pub status: UpletStatus,
    /// Storage uuid of the predictions (with `done`).
    pub prediction_storage_uuid: Option<Uuid>,
    /// Why it failed (with `failed`).
    #[serde(default)]
    pub error: Option<String>,
}

fn not_found(what: &str, uuid: Uuid) -> ApiError {
    ApiError::new(
        ErrorCode::DocumentNotFound,
        format!("{what} '{uuid}' not found"),
    )
}

fn now() -> String {
    timestamps::format(timestamps::now())
}

async fn require_blob(
    svc: &Services,
    account_id: Uuid,
    what: &str,
    uuid: Uuid,
) -> Result<(), ApiError> {
    if blobs::head(svc, &blob_key(account_id, uuid))
        .await?
        .is_none()
    {
        return Err(ApiError::new(
            ErrorCode::DocumentNotFound,
            format!("{what} '{uuid}' is not in storage (upload it first)"),
        ));
    }
    Ok(())
}

async fn require<T: serde::de::DeserializeOwned>(
    svc: &Services,
    account_id: Uuid,
    collection: Collection,
    uuid: Uuid,
) -> Result<T, ApiError> {
    store::get(svc, account_id, collection, uuid)
        .await?
        .ok_or_else(|| not_found(collection.name(), uuid))
}

fn taken(collection: Collection, uuid: Uuid) -> ApiError {
    ApiError::new(
        ErrorCode::DocumentExists,
        format!("{} '{uuid}' exists already", collection.name()),
    )
}

async fn insert_new<T: Serialize>(
    svc: &Services,
    account_id: Uuid,
    collection: Collection,
    uuid: Uuid,
    doc: &T,
) -> Result<(), ApiError> {
    if store::insert(svc, account_id, collection, uuid, doc).await? {
        Ok(())
    } else {
        Err(taken(collection, uuid))
    }
}

/// `POST /problem`.
pub async fn post_problem(
    svc: &Services,
    account_id: Uuid,
    new: NewProblem,
) -> Result<Value, ApiError> {
    if !(1..=SIZE_TRAIN_DATASET_MAX).contains(&new.size_train_dataset) {
        return Err(ApiError::bad_json(format!(
            "size_train_dataset must be 1 to {SIZE_TRAIN_DATASET_MAX}"
        )));
    }
    require_blob(svc, account_id, "workflow", new.workflow).await?;
    let problem = Problem {
        uuid: new.uuid,
        workflow: new.workflow,
        test_dataset: new.test_dataset,
        size_train_dataset: new.size_train_dataset,
        timestamp_upload: now(),
    };
    insert_new(svc, account_id, Collection::Problem, problem.uuid, &problem).await?;
    Ok(json!({"new_problem": problem}))
}

/// The training data of a problem: its data minus its test data, in registration order.
async fn training_data(
    svc: &Services,
    account_id: Uuid,
    problem: &Problem,
) -> Result<Vec<Uuid>, ApiError> {
    let mut data: Vec<Data> = store::all(svc, account_id, Collection::Data).await?;
    data.retain(|d| d.problems.contains(&problem.uuid) && !problem.test_dataset.contains(&d.uuid));
    data.sort_by(|a, b| {
        a.timestamp_upload
            .cmp(&b.timestamp_upload)
            .then(a.uuid.cmp(&b.uuid))
    });
    Ok(data.into_iter().map(|d| d.uuid).collect())
}

async fn insert_chain(
    svc: &Services,
    account_id: Uuid,
    chain: &[Learnuplet],
) -> Result<(), ApiError> {
    for uplet in chain {
        insert_new(svc, account_id, Collection::Learnuplet, uplet.uuid, uplet).await?;
    }
    Ok(())
}

/// Appends to `algo`'s chain the items of `train` none of its learnuplets has yet, cut
/// by the problem's `size_train_dataset`, after its last rank. The first new rank gets the
/// best model of the chain so far (the algorithm at rank 0), unless the rank before it
/// has not ended: that rank's end passes the model on. Uplet uuids derive from the
/// algorithm and the rank, so a rank is never made twice, and a call repeated after a
/// crash makes only what is missing (a chain is stored rank by rank, so what a crash
/// leaves is a prefix). Answers the learnuplets made.
async fn extend_chain(
    svc: &Services,
    account_id: Uuid,
    problem: &Problem,
    algo: Uuid,
    train: &[Uuid],
) -> Result<Vec<Learnuplet>, ApiError> {
    let uplets: Vec<Learnuplet> = store::all(svc, account_id, Collection::Learnuplet).await?;
    let mine: Vec<&Learnuplet> = uplets.iter().filter(|u| u.algo == algo).collect();
    let chained: std::collections::HashSet<Uuid> = mine
        .iter()
        .flat_map(|u| u.train_data.iter().copied())
        .collect();
    let fresh: Vec<Uuid> = train
        .iter()
        .copied()
        .filter(|u| !chained.contains(u))
        .collect();
    if fresh.is_empty() {
        return Ok(Vec::new());
    }
    let start = chains::next_rank(&uplets, algo);
    let before_open = mine.iter().any(|u| {
        u.rank + 1 == start && matches!(u.status, UpletStatus::Todo | UpletStatus::Pending)
    });
    let model_start = (!before_open).then(|| {
        chains::best(mine.iter().copied())
            .map(|b| b.model_end)
            .unwrap_or(algo)
    });
    let chain = chains::new_chain(
        problem.uuid,
        problem.workflow,
        algo,
        &fresh,
        &problem.test_dataset,
        problem.size_train_dataset as usize,
        start,
        model_start,
        &now(),
    );
    insert_chain(svc, account_id, &chain).await?;
    compute::announce_runnable(svc, account_id, &chain).await?;
    Ok(chain)
}

/// `POST /algo`: registers the algorithm and makes its chain over the problem's
/// training data. Repeating the same registration (after a crash, say) completes the
/// chain; another algorithm under a taken uuid is 40023.
pub async fn post_algo(svc: &Services, account_id: Uuid, new: NewAlgo) -> Result<Value, ApiError> {
    let problem: Problem = require(svc, account_id, Collection::Problem, new.problem).await?;
    require_blob(svc, account_id, "algo", new.uuid).await?;
    crate::objects::check_text("name", Some(&new.name), 128)?;
    let mut algo = Algo {
        uuid: new.uuid,
        name: new.name,
        problem: new.problem,
        timestamp_upload: now(),
    };
    if !store::insert(svc, account_id, Collection::Algo, algo.uuid, &algo).await? {
        let stored: Algo = require(svc, account_id, Collection::Algo, algo.uuid).await?;
        if (&stored.name, stored.problem) != (&algo.name, algo.problem) {
            return Err(taken(Collection::Algo, algo.uuid));
        }
        algo = stored;
    }
    let train = training_data(svc, account_id, &problem).await?;
    let chain = extend_chain(svc, account_id, &problem, algo.uuid, &train).await?;
    Ok(json!({"new_algo": algo, "new_learnuplets": chain.len()}))
}

/// `POST /data`: registers the data and appends, for every algorithm of each problem, a
/// chain over the new training data after its last rank. Repeating the same
/// registration completes what a crash left undone; data already registered for other
/// problems is 40023.
pub async fn post_data(svc: &Services, account_id: Uuid, new: NewData) -> Result<Value, ApiError> {
    let uuids = new.uuid.into_vec();
    let mut problem_ids = new.problems.into_vec();
    if uuids.is_empty() || problem_ids.is_empty() {
        return Err(ApiError::bad_json(
            "uuid and problems must name at least one each",
        ));
    }
    problem_ids.sort();
    problem_ids.dedup();
    let mut problems = Vec::new();
    for id in &problem_ids {
        problems.push(require::<Problem>(svc, account_id, Collection::Problem, *id).await?);
    }
    for uuid in &uuids {
        require_blob(svc, account_id, "data", *uuid).await?;
    }
    let stamp = now();
    let mut made = Vec::new();
    for uuid in &uuids {
        let mut data = Data {
            uuid: *uuid,
            problems: problem_ids.clone(),
            timestamp_upload: stamp.clone(),
        };
        if !store::insert(svc, account_id, Collection::Data, data.uuid, &data).await? {
            let mut stored: Data = require(svc, account_id, Collection::Data, data.uuid).await?;
            stored.problems.sort();
            if stored.problems != problem_ids {
                return Err(taken(Collection::Data, data.uuid));
            }
            data = stored;
        }
        made.push(data);
    }
    let algos: Vec<Algo> = store::all(svc, account_id, Collection::Algo).await?;
    let mut new_learnuplets = 0;
    for problem in &problems {
        let train: Vec<Uuid> = uuids
            .iter()
            .copied()
            .filter(|u| !problem.test_dataset.contains(u))
            .collect();
        for algo in algos.iter().filter(|a| a.problem == problem.uuid) {
            new_learnuplets += extend_chain(svc, account_id, problem, algo.uuid, &train)
                .await?
                .len();
        }
    }
    Ok(json!({"new_datas": made, "new_learnuplets": new_learnuplets}))
}

/// `POST /prediction`: a preduplet on `data` from the problem's best model.
pub async fn post_prediction(
    svc: &Services,
    account_id: Uuid,
    new: NewPrediction,
) -> Result<Value, ApiError> {
    let problem: Problem = require(svc, account_id, Collection::Problem, new.problem).await?;
    if new.data.is_empty() {
        return Err(ApiError::bad_json("data must name at least one data uuid"));
    }
    for uuid in &new.data {
        require_blob(svc, account_id, "data", *uuid).await?;
    }
    let uplets: Vec<Learnuplet> = store::all(svc, account_id, Collection::Learnuplet).await?;
    let best =
        chains::best(uplets.iter().filter(|u| u.problem == problem.uuid)).ok_or_else(|| {
            ApiError::bad_json(format!(
                "problem '{}' has no trained model yet",
                problem.uuid
            ))
        })?;
    let preduplet = Preduplet {
        uuid: Uuid::new_v4(),
        problem: problem.uuid,
        workflow: problem.workflow,
        data: new.data,
        model: best.model_end,
        worker: None,
        status: UpletStatus::Todo,
        prediction_storage_uuid: None,
        timestamp_request: now(),
        timestamp_done: None,
        attempts: 0,
        lease_until: None,
        error: None,
    };
    insert_new(
        svc,
        account_id,
        Collection::Preduplet,
        preduplet.uuid,
        &preduplet,
    )
    .await?;
    compute::announce(
        svc,
        compute::Run {
            account_id,
            kind: compute::UpletKind::Preduplet,
            uuid: preduplet.uuid,
        },
    )
    .await?;
    Ok(json!({"new_preduplets": 1, "preduplet": preduplet.uuid}))
}

fn conflict(detail: String) -> ApiError {
    ApiError::new(ErrorCode::UpletConflict, detail)
}

/// A learnuplet or a preduplet, as the claim sees it.
pub(crate) trait Uplet: Serialize + serde::de::DeserializeOwned {
    /// Its collection.
    const COLLECTION: Collection;
    /// Its uuid.
    fn uuid(&self) -> Uuid;
    /// Why it cannot be claimed now, if it cannot.
    fn unclaimable(&self) -> Option<String>;
    /// Marks it claimed by `worker` until `lease_until`.
    fn claim(&mut self, worker: Uuid, lease_until: String);
    /// Its claim, when it has one whose lease ran out by `now`: the attempts so far.
    fn overdue_claim(&self, now: chrono::DateTime<chrono::Utc>) -> Option<u32>;
    /// Releases a claim: back to `todo`, or `failed` for good when `give_up`, with `why`.
    fn release(&mut self, give_up: bool, now: &str, why: &str);
    /// Its status, worker and claims so far.
    fn claim_state(&self) -> (UpletStatus, Option<Uuid>, u32);
    /// Moves the end of its claim.
    fn set_lease(&mut self, until: String);
    /// Whether a worker may take it now.
    fn claimable(&self) -> bool {
        self.unclaimable().is_none()
    }
}

/// Whether a pending uplet's lease ran out by `now`.
fn lease_over(
    status: UpletStatus,
    lease: &Option<String>,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    status == UpletStatus::Pending
        && lease
            .as_deref()
            .and_then(timestamps::parse)
            .is_some_and(|until| until <= now)
}

/// The claim bookkeeping of [`Uplet`], the same for both kinds: each keeps it in fields
/// of the same names (`status`, `worker`, `attempts`, `lease_until`, `error`,
/// `timestamp_done`).
macro_rules! claim_bookkeeping {
    () => {
        fn claim(&mut self, worker: Uuid, lease_until: String) {
            self.status = UpletStatus::Pending;
            self.worker = Some(worker);
            self.attempts += 1;
            self.lease_until = Some(lease_until);
        }

        fn overdue_claim(&self, now: chrono::DateTime<chrono::Utc>) -> Option<u32> {
            lease_over(self.status, &self.lease_until, now).then_some(self.attempts)
        }

        fn release(&mut self, give_up: bool, now: &str, why: &str) {
            self.lease_until = None;
            self.worker = None;
            if give_up {
                self.status = UpletStatus::Failed;
                self.error = Some(format!("{why} (after {} claims)", self.attempts));
                self.timestamp_done = Some(now.to_string());
            } else {
                self.status = UpletStatus::Todo;
            }
        }

        fn claim_state(&self) -> (UpletStatus, Option<Uuid>, u32) {
            (self.status, self.worker, self.attempts)
        }

        fn set_lease(&mut self, until: String) {
            self.lease_until = Some(until);
        }
    };
}

impl Uplet for Learnuplet {
    const COLLECTION: Collection = Collection::Learnuplet;

    fn uuid(&self) -> Uuid {
        self.uuid
    }

    fn unclaimable(&self) -> Option<String> {
        (!chains::runnable(self)).then(|| {
            format!(
                "is not runnable (status {:?}{})",
                self.status,
                if self.model_start.is_none() {
                    ", waiting for its model"
                } else {
                    ""
                }
            )
        })
    }

    claim_bookkeeping!();
}

impl Uplet for Preduplet {
    const COLLECTION: Collection = Collection::Preduplet;

    fn uuid(&self) -> Uuid {
        self.uuid
    }

    fn unclaimable(&self) -> Option<String> {
        (self.status != UpletStatus::Todo).then(|| format!("is {:?}, not todo", self.status))
    }

    claim_bookkeeping!();
}

/// The claim of an uplet: a compare-and-set from `todo` to `pending`, holding for
/// `lease`; the uplet as claimed.
pub(crate) async fn claim<T: Uplet>(
    svc: &Services,
    account_id: Uuid,
    uuid: Uuid,
    worker: Uuid,
    lease: Duration,
) -> Result<T, ApiError> {
    let name = T::COLLECTION.name();
    let mut uplet: T = require(svc, account_id, T::COLLECTION, uuid).await?;
    if let Some(why) = uplet.unclaimable() {
        return Err(conflict(format!("{name} '{uuid}' {why}")));
    }
    uplet.claim(worker, lease_end(lease));
    if !store::replace_if_status(svc, account_id, T::COLLECTION, uuid, &uplet, Some("todo")).await?
    {
        return Err(conflict(format!("{name} '{uuid}' was claimed meanwhile")));
    }
    Ok(uplet)
}

fn claimed(collection: Collection, uuid: Uuid) -> Value {
    json!({ format!("{}_worker_set", collection.name()): uuid })
}

/// `POST /worker/learnuplet/{uuid}`: the compute side claims a runnable learnuplet
/// (`todo` with its `model_start`); a second claim is 40024.
pub async fn claim_learnuplet(
    svc: &Services,
    account_id: Uuid,
    uuid: Uuid,
    request: Claim,
) -> Result<Value, ApiError> {
    claim::<Learnuplet>(svc, account_id, uuid, request.worker, LEASE).await?;
    Ok(claimed(Collection::Learnuplet, uuid))
}

/// `POST /worker/preduplet/{uuid}`.
pub async fn claim_preduplet(
    svc: &Services,
    account_id: Uuid,
    uuid: Uuid,
    request: Claim,
) -> Result<Value, ApiError> {
    claim::<Preduplet>(svc, account_id, uuid, request.worker, LEASE).await?;
    Ok(claimed(Collection::Preduplet, uuid))
}

/// Stores an ended uplet if it was still pending — under claim number `attempts` when
/// given (a worker's report after its claim ran out and another worker claimed it) —
/// (40024 when another report or claim came first).
async fn end<T: Serialize>(
    svc: &Services,
    account_id: Uuid,
    collection: Collection,
    uuid: Uuid,
    uplet: &T,
    attempts: Option<u32>,
) -> Result<(), ApiError> {
    let stored = match attempts {
        Some(n) => {
            store::replace_if_claim(svc, account_id, collection, uuid, uplet, "pending", n).await?
        }
        None => {
            store::replace_if_status(svc, account_id, collection, uuid, uplet, Some("pending"))
                .await?
        }
    };
    if stored {
        Ok(())
    } else {
        Err(conflict(format!(
            "{} '{uuid}' was reported meanwhile",
            collection.name()
        )))
    }
}

fn check_ending(status: UpletStatus, current: UpletStatus, what: &str) -> Result<(), ApiError> {
    if !matches!(status, UpletStatus::Done | UpletStatus::Failed) {
        return Err(ApiError::bad_json("status must be done or failed"));
    }
    if current != UpletStatus::Pending {
        return Err(conflict(format!("{what} is {current:?}, not pending")));
    }
    Ok(())
}

pub(crate) fn lease_end(lease: Duration) -> String {
    timestamps::format(timestamps::now() + chrono::Duration::from_std(lease).unwrap_or_default())
}

/// `POST /learndone/{uuid}`: ends a claimed learnuplet; the next rank of its algorithm
/// gets the best model so far as its `model_start` (and becomes runnable).
pub async fn learndone(
    svc: &Services,
    account_id: Uuid,
    uuid: Uuid,
    report: LearnDone,
) -> Result<Value, ApiError> {
    learndone_of(svc, account_id, uuid, report, None).await
}

/// `learndone`, for claim number `attempts` only when given (the compute worker's).
pub async fn learndone_of(
    svc: &Services,
    account_id: Uuid,
    uuid: Uuid,
    report: LearnDone,
    attempts: Option<u32>,
) -> Result<Value, ApiError> {
    if report.status == UpletStatus::Done && !report.perf.is_some_and(f64::is_finite) {
        return Err(ApiError::bad_json(
            "a done learnuplet reports a finite perf",
        ));
    }
    let mut uplet: Learnuplet = require(svc, account_id, Collection::Learnuplet, uuid).await?;
    check_ending(report.status, uplet.status, &format!("learnuplet '{uuid}'"))?;
    uplet.status = report.status;
    uplet.perf = report.perf;
    uplet.train_perf = report.train_perf;
    uplet.test_perf = report.test_perf;
    uplet.error = report.error;
    uplet.timestamp_done = Some(now());
    uplet.lease_until = None;
    end(
        svc,
        account_id,
        Collection::Learnuplet,
        uuid,
        &uplet,
        attempts,
    )
    .await?;
    // A crash here leaves the next rank without its model: the reconciler's sweep
    // advances an ended rank whose successor still waits (compute::sweep).
    crate::fault::point("orch_after_learn_report").await;
    advance(svc, account_id, &uplet).await?;
    Ok(json!({"updated_learnuplet": uuid}))
}

/// Gives the next rank after `ended` its model, if it still waits for one. Repeating it
/// changes nothing (the next rank is written only while it has no model).
pub async fn advance(svc: &Services, account_id: Uuid, ended: &Learnuplet) -> Result<(), ApiError> {
    let uplets: Vec<Learnuplet> = store::all(svc, account_id, Collection::Learnuplet).await?;
    let mine: Vec<Learnuplet> = uplets
        .into_iter()
        .filter(|u| u.algo == ended.algo)
        .collect();
    if let Some((next, model)) = chains::next_after(&mine, ended) {
        let mut next = next.clone();
        next.model_start = Some(model);
        let given = store::replace_if_status(
            svc,
            account_id,
            Collection::Learnuplet,
            next.uuid,
            &next,
            Some("todo"),
        )
        .await?;
        if given {
            compute::announce_runnable(svc, account_id, std::slice::from_ref(&next)).await?;
        }
    }
    Ok(())
}

/// What [`expire_leases`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    /// Uplets handed back to `todo` for another worker.
    pub requeued: usize,
    /// Uplets failed for good after [`ATTEMPTS_MAX`] claims.
    pub failed: usize,
}

/// Uplets of the account claimed by a worker whose lease ran out by `now` (the worker
/// died or hangs): back to `todo` so another worker claims them, or — claimed
/// [`ATTEMPTS_MAX`] times already — `failed` with the reason, a learnuplet's next rank
/// then starting from the best model so far, so no chain waits forever. Each write is
/// conditioned on the claim read (status and attempts), so a report or a new claim
/// landing meanwhile wins.
pub async fn expire_leases(
    svc: &Services,
    account_id: Uuid,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Expired, ApiError> {
    let learnuplets = release_overdue::<Learnuplet>(svc, account_id, now).await?;
    for uplet in learnuplets
        .iter()
        .filter(|u| u.status == UpletStatus::Failed)
    {
        advance(svc, account_id, uplet).await?;
    }
    let preduplets = release_overdue::<Preduplet>(svc, account_id, now).await?;
    let released: Vec<UpletStatus> = learnuplets
        .iter()
        .map(|u| u.status)
        .chain(preduplets.iter().map(|u| u.status))
        .collect();
    let failed = released
        .iter()
        .filter(|s| **s == UpletStatus::Failed)
        .count();
    Ok(Expired {
        requeued: released.len() - failed,
        failed,
    })
}

/// Stores `uplet` if it still holds claim number `attempts` (pending, not claimed again
/// since); whether it did.
pub(crate) async fn store_if_claim<T: Uplet>(
    svc: &Services,
    account_id: Uuid,
    uplet: &T,
    attempts: u32,
) -> Result<bool, ApiError> {
    store::replace_if_claim(
        svc,
        account_id,
        T::COLLECTION,
        uplet.uuid(),
        uplet,
        "pending",
        attempts,
    )
    .await
}

/// Releases the overdue claims of one collection; the uplets released, as written.
async fn release_overdue<T: Uplet>(
    svc: &Services,
    account_id: Uuid,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<T>, ApiError> {
    let stamp = timestamps::format(now);
    let mut released = Vec::new();
    for mut uplet in store::all::<T>(svc, account_id, T::COLLECTION).await? {
        let Some(attempts) = uplet.overdue_claim(now) else {
            continue;
        };
        uplet.release(
            attempts >= ATTEMPTS_MAX,
            &stamp,
            "no report before the lease ran out",
        );
        let uuid = uplet.uuid();
        if store_if_claim(svc, account_id, &uplet, attempts).await? {
            if !uplet.claim_state().0.eq(&UpletStatus::Failed) {
                announce_uplet::<T>(svc, account_id, uuid).await?;
            }
            released.push(uplet);
        }
    }
    Ok(released)
}

async fn announce_uplet<T: Uplet>(
    svc: &Services,
    account_id: Uuid,
    uuid: Uuid,
) -> Result<(), ApiError> {
    let kind = match T::COLLECTION {
        Collection::Preduplet => compute::UpletKind::Preduplet,
        _ => compute::UpletKind::Learnuplet,
    };
    compute::announce(
        svc,
        compute::Run {
            account_id,
            kind,
            uuid,
        },
    )
    .await
}

/// `POST /preddone/{uuid}`.
pub async fn preddone(
    svc: &Services,
    account_id: Uuid,
    uuid: Uuid,
    report: PredDone,
) -> Result<Value, ApiError> {
    preddone_of(svc, account_id, uuid, report, None).await
}

/// `preddone`, for claim number `attempts` only when given (the compute worker's).
pub async fn preddone_of(
    svc: &Services,
    account_id: Uuid,
    uuid: Uuid,
    report: PredDone,
    attempts: Option<u32>,
) -> Result<Value, ApiError> {
    let mut uplet: Preduplet = require(svc, account_id, Collection::Preduplet, uuid).await?;
    check_ending(report.status, uplet.status, &format!("preduplet '{uuid}'"))?;
    if report.status == UpletStatus::Done {
        let Some(stored) = report.prediction_storage_uuid else {
            return Err(ApiError::bad_json(
                "a done preduplet names its prediction_storage_uuid",
            ));
        };
        require_blob(svc, account_id, "prediction", stored).await?;
    }
    uplet.status = report.status;
    uplet.prediction_storage_uuid = report.prediction_storage_uuid;
    uplet.error = report.error;
    uplet.timestamp_done = Some(now());
    uplet.lease_until = None;
    end(
        svc,
        account_id,
        Collection::Preduplet,
        uuid,
        &uplet,
        attempts,
    )
    .await?;
    Ok(json!({"updated_preduplet": uuid}))
}

/// The fields a listing filters on (`GET /orchestrator/<collection>?<field>=<value>`),
/// and `account_id`.
pub const LIST_PARAMS: &[&str] = &[
    "account_id",
    "uuid",
    "name",
    "problem",
    "problems",
    "workflow",
    "algo",
    "model",
    "model_start",
    "model_end",
    "rank",
    "worker",
    "status",
    "data",
    "train_data",
    "test_data",
    "test_dataset",
    "size_train_dataset",
    "prediction_storage_uuid",
];

/// `GET /{collection}`: `{"<collection>s": [...]}`, filtered by field values.
pub async fn list(
    svc: &Services,
    account_id: Uuid,
    collection: Collection,
    filters: &[(String, String)],
) -> Result<Value, ApiError> {
    let docs = store::matching(svc, account_id, collection, filters).await?;
    Ok(json!({ collection.plural(): docs }))
}

/// `GET /{collection}/{uuid}`.
pub async fn get(
    svc: &Services,
    account_id: Uuid,
    collection: Collection,
    uuid: Uuid,
) -> Result<Value, ApiError> {
    require::<Value>(svc, account_id, collection, uuid).await
}
