//! The orchestrator's compute on the engine: every uplet that becomes runnable (a chain's
//! head, the next rank given its model, a prediction, a claim handed back) is announced
//! by a message on the engine's work queue; a container worker receiving it claims the
//! uplet (the seed's `todo` → `pending` compare-and-set, here with a short lease the
//! worker keeps renewing), runs it in its sandbox and reports. A duplicate message finds
//! the uplet claimed or ended and does nothing.
//!
//! The reconciler's [`sweep`] makes this whole when parts die: a claim whose lease ran
//! out (its worker was killed) goes back to `todo` and is announced again, or fails for
//! good after [`api::ATTEMPTS_MAX`] claims so its chain goes on from the best model so
//! far; and when the work queue is empty, runnable uplets are announced again (their
//! message was lost with a function that died between its write and its send).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::api::{self, ATTEMPTS_MAX, Uplet};
use super::{Collection, Learnuplet, Preduplet, chains, store};
use crate::Services;
use crate::error::{ApiError, ErrorCode};
use crate::store::dynamo::s;
use crate::store::{KeyRange, TableQuery, queues};
use crate::timestamps;

/// The partition listing the accounts with orchestrator work under way (one item each,
/// stamped by every announcement), which the reconciler's sweep visits; the sweep removes
/// an account with nothing to do or to watch, unless an announcement stamped it since.
pub const ACCOUNTS: &str = "ORCHACCOUNTS";

/// The kinds of uplet a worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpletKind {
    /// A learning task.
    Learnuplet,
    /// A prediction task.
    Preduplet,
}

impl UpletKind {
    /// Its collection.
    pub fn collection(self) -> Collection {
        match self {
            UpletKind::Learnuplet => Collection::Learnuplet,
            UpletKind::Preduplet => Collection::Preduplet,
        }
    }
}

/// One uplet to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    /// Its account.
    pub account_id: Uuid,
    /// Learnuplet or preduplet.
    pub kind: UpletKind,
    /// Its uuid.
    pub uuid: Uuid,
}

/// The work queue's message announcing a runnable uplet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunMessage {
    /// The uplet.
    pub orchestrator_run: Run,
}

/// Sends the work message of `run` (and marks its account active for the sweep).
pub async fn announce(svc: &Services, run: Run) -> Result<(), ApiError> {
    remember_account(svc, run.account_id).await?;
    send(svc, run).await
}

/// Sends the work message of `run` (its account already marked).
async fn send(svc: &Services, run: Run) -> Result<(), ApiError> {
    let body = serde_json::to_string(&RunMessage {
        orchestrator_run: run,
    })
    .map_err(|e| ApiError::internal("orchestrator message", e))?;
    queues::send(svc, &svc.config.work_queue_url, body).await
}

/// Announces the learnuplets of `uplets` that are runnable (the account marked once);
/// how many.
pub async fn announce_runnable(
    svc: &Services,
    account_id: Uuid,
    uplets: &[Learnuplet],
) -> Result<usize, ApiError> {
    let runnable: Vec<&Learnuplet> = uplets.iter().filter(|u| chains::runnable(u)).collect();
    if !runnable.is_empty() {
        remember_account(svc, account_id).await?;
    }
    for uplet in &runnable {
        send(
            svc,
            Run {
                account_id,
                kind: UpletKind::Learnuplet,
                uuid: uplet.uuid,
            },
        )
        .await?;
    }
    Ok(runnable.len())
}

/// Marks `account_id` active for the sweep, stamped with a fresh token.
pub async fn remember_account(svc: &Services, account_id: Uuid) -> Result<(), ApiError> {
    let item = crate::store::dynamo::Item::from([
        ("pk".to_string(), s(ACCOUNTS)),
        ("sk".to_string(), s(&account_id.to_string())),
        ("touched".to_string(), s(&Uuid::new_v4().to_string())),
    ]);
    svc.table.put_when(item, None, Default::default()).await?;
    Ok(())
}

/// Removes the mark of `account_id` if no announcement stamped it since `touched`.
pub async fn forget_account(
    svc: &Services,
    account_id: Uuid,
    touched: &str,
) -> Result<bool, ApiError> {
    svc.table
        .delete_when(
            ACCOUNTS,
            &account_id.to_string(),
            "touched = :touched",
            crate::store::dynamo::Item::from([(":touched".to_string(), s(touched))]),
        )
        .await
}

/// The active accounts and their stamps.
pub async fn accounts(svc: &Services) -> Result<Vec<(Uuid, String)>, ApiError> {
    let query = TableQuery {
        index: None,
        partition: ACCOUNTS.into(),
        range: KeyRange::All,
        descending: false,
    };
    let mut found = Vec::new();
    svc.table
        .for_each(&query, |item| {
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
            if let (Some(id), Some(touched)) =
                (text("sk").and_then(|t| t.parse().ok()), text("touched"))
            {
                found.push((id, touched));
            }
            std::ops::ControlFlow::Continue(())
        })
        .await?;
    Ok(found)
}

/// An uplet a worker claimed.
#[derive(Debug, Clone)]
pub enum Claimed {
    /// A learning task, as claimed.
    Learn(Learnuplet),
    /// A prediction task, as claimed.
    Predict(Preduplet),
}

impl Claimed {
    /// The claim's number (the uplet's attempts after it).
    pub fn attempts(&self) -> u32 {
        match self {
            Claimed::Learn(u) => u.attempts,
            Claimed::Predict(u) => u.attempts,
        }
    }
}

/// The worker's claim of `run` for `lease`; `None` when it is not runnable now (claimed
/// by another worker, ended, or a duplicate message).
pub async fn take(
    svc: &Services,
    run: Run,
    worker: Uuid,
    lease: Duration,
) -> Result<Option<Claimed>, ApiError> {
    let taken = match run.kind {
        UpletKind::Learnuplet => {
            api::claim::<Learnuplet>(svc, run.account_id, run.uuid, worker, lease)
                .await
                .map(Claimed::Learn)
        }
        UpletKind::Preduplet => {
            api::claim::<Preduplet>(svc, run.account_id, run.uuid, worker, lease)
                .await
                .map(Claimed::Predict)
        }
    };
    match taken {
        Ok(claimed) => Ok(Some(claimed)),
        Err(err)
            if matches!(
                err.code,
                ErrorCode::UpletConflict | ErrorCode::DocumentNotFound
            ) =>
        {
            tracing::info!(?run, reason = err.detail, "uplet not taken");
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

/// Extends claim number `attempts` of `run` by `lease` from now; `false` when the claim
/// is no longer this worker's (it ran out and was released, or the uplet was reported).
pub async fn renew(
    svc: &Services,
    run: Run,
    worker: Uuid,
    attempts: u32,
    lease: Duration,
) -> Result<bool, ApiError> {
    match run.kind {
        UpletKind::Learnuplet => renew_one::<Learnuplet>(svc, run, worker, attempts, lease).await,
        UpletKind::Preduplet => renew_one::<Preduplet>(svc, run, worker, attempts, lease).await,
    }
}

async fn renew_one<T: Uplet>(
    svc: &Services,
    run: Run,
    worker: Uuid,
    attempts: u32,
    lease: Duration,
) -> Result<bool, ApiError> {
    let Some(mut uplet) = store::get::<T>(svc, run.account_id, T::COLLECTION, run.uuid).await?
    else {
        return Ok(false);
    };
    if uplet.claim_state() != (super::UpletStatus::Pending, Some(worker), attempts) {
        return Ok(false);
    }
    uplet.set_lease(api::lease_end(lease));
    api::store_if_claim(svc, run.account_id, &uplet, attempts).await
}

/// Hands claim number `attempts` back after a failure of the worker's own (storage,
/// queue), not of the uplet's programs: back to `todo` and announced again, or failed
/// for good with `why` after [`ATTEMPTS_MAX`] claims (a learnuplet's next rank then
/// starting from the best model so far).
pub async fn give_back(svc: &Services, run: Run, attempts: u32, why: &str) -> Result<(), ApiError> {
    match run.kind {
        UpletKind::Learnuplet => {
            if let Some(uplet) = give_back_one::<Learnuplet>(svc, run, attempts, why).await?
                && uplet.status == super::UpletStatus::Failed
            {
                api::advance(svc, run.account_id, &uplet).await?;
            }
        }
        UpletKind::Preduplet => {
            give_back_one::<Preduplet>(svc, run, attempts, why).await?;
        }
    }
    Ok(())
}

async fn give_back_one<T: Uplet>(
    svc: &Services,
    run: Run,
    attempts: u32,
    why: &str,
) -> Result<Option<T>, ApiError> {
    let Some(mut uplet) = store::get::<T>(svc, run.account_id, T::COLLECTION, run.uuid).await?
    else {
        return Ok(None);
    };
    let (status, _, now_attempts) = uplet.claim_state();
    if status != super::UpletStatus::Pending || now_attempts != attempts {
        return Ok(None);
    }
    let give_up = attempts >= ATTEMPTS_MAX;
    uplet.release(give_up, &timestamps::format(timestamps::now()), why);
    let written = api::store_if_claim(svc, run.account_id, &uplet, attempts).await?;
    if !written {
        return Ok(None);
    }
    if !give_up {
        announce(svc, run).await?;
    }
    Ok(Some(uplet))
}

/// What [`sweep`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Swept {
    /// Claims whose lease ran out, handed back to `todo` (and announced).
    pub requeued: usize,
    /// Uplets failed for good after [`ATTEMPTS_MAX`] claims.
    pub failed: usize,
    /// Runnable uplets announced again while the work queue was empty.
    pub announced: usize,
    /// Accounts left with nothing to run or watch, no longer visited.
    pub idle: usize,
    /// Ranks given their model late: the report of the rank before them was stored but
    /// its reporter died before passing the model on.
    pub advanced: usize,
}

/// The reconciler's pass over every account using the orchestrator, at `now`.
pub async fn sweep(svc: &Services, now: chrono::DateTime<chrono::Utc>) -> Result<Swept, ApiError> {
    let mut swept = Swept::default();
    let mut active = Vec::new();
    for (account_id, touched) in accounts(svc).await? {
        let expired = api::expire_leases(svc, account_id, now).await?;
        swept.requeued += expired.requeued;
        swept.failed += expired.failed;
        // Read once for the rest of the pass: a rank advanced below is announced by its
        // advance, and still shows without a model here, so it is not announced twice.
        let learnuplets: Vec<Learnuplet> =
            store::all(svc, account_id, Collection::Learnuplet).await?;
        let preduplets: Vec<Preduplet> = store::all(svc, account_id, Collection::Preduplet).await?;
        swept.advanced += advance_stranded(svc, account_id, &learnuplets).await?;
        if expired == api::Expired::default() && !has_work(&learnuplets, &preduplets) {
            if forget_account(svc, account_id, &touched).await? {
                swept.idle += 1;
            }
            continue;
        }
        active.push((account_id, learnuplets, preduplets));
    }
    if active.is_empty() || queues::backlog(svc, &svc.config.work_queue_url).await? > 0 {
        return Ok(swept);
    }
    for (account_id, learnuplets, preduplets) in active {
        swept.announced += announce_runnable(svc, account_id, &learnuplets).await?;
        for uplet in preduplets.iter().filter(|u| u.claimable()) {
            announce(
                svc,
                Run {
                    account_id,
                    kind: UpletKind::Preduplet,
                    uuid: uplet.uuid,
                },
            )
            .await?;
            swept.announced += 1;
        }
    }
    if swept.requeued + swept.failed + swept.announced + swept.advanced > 0 {
        tracing::warn!(?swept, "orchestrator sweep");
    }
    Ok(swept)
}

/// Advances every ended learnuplet whose next rank still has no model (its report was
/// stored, the call died before `advance`); how many it advanced.
async fn advance_stranded(
    svc: &Services,
    account_id: Uuid,
    uplets: &[Learnuplet],
) -> Result<usize, ApiError> {
    let mut advanced = 0;
    for ended in uplets.iter().filter(|u| {
        matches!(
            u.status,
            super::UpletStatus::Done | super::UpletStatus::Failed
        )
    }) {
        let waiting = uplets
            .iter()
            .any(|u| u.algo == ended.algo && u.rank == ended.rank + 1 && u.model_start.is_none());
        if waiting {
            tracing::warn!(uplet = %ended.uuid, "next rank stranded without its model: advanced");
            api::advance(svc, account_id, ended).await?;
            advanced += 1;
        }
    }
    Ok(advanced)
}

/// Whether an uplet is waiting or claimed.
fn has_work(learnuplets: &[Learnuplet], preduplets: &[Preduplet]) -> bool {
    let open = |status: super::UpletStatus| {
        matches!(
            status,
            super::UpletStatus::Todo | super::UpletStatus::Pending
        )
    };
    learnuplets.iter().any(|u| open(u.status)) || preduplets.iter().any(|u| open(u.status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_messages_are_told_apart_from_the_engine_s() {
        let run = Run {
            account_id: Uuid::nil(),
            kind: UpletKind::Preduplet,
            uuid: Uuid::nil(),
        };
        let text = serde_json::to_string(&RunMessage {
            orchestrator_run: run,
        })
        .unwrap();
        assert!(text.starts_with(r#"{"orchestrator_run":{"account_id":"#));
        assert!(text.contains(r#""kind":"preduplet""#));
        let back: RunMessage = serde_json::from_str(&text).unwrap();
        assert_eq!(back.orchestrator_run, run);
        assert!(serde_json::from_str::<crate::engine::messages::WorkMessage>(&text).is_err());
    }
}
