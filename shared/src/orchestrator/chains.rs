//! Learnuplet chains, as Morpheo's orchestrator builds and advances them, written as pure
//! functions over the documents (the store reads and writes them; tests need no stack).
//!
//! * A problem's training data (its data minus its test data) is cut into chunks of
//!   `size_train_dataset`; an algorithm gets one learnuplet per chunk, ranks `start`,
//!   `start + 1`, ...; each has a fresh `model_end`; only the first has a `model_start`
//!   (the algorithm itself at rank 0), the others wait for theirs.
//! * Only a chain's head is runnable: `todo` with a `model_start`.
//! * When a learnuplet is done, the best model of its algorithm so far (the done
//!   learnuplet with the highest `perf`) becomes the `model_start` of the next rank.
//! * New data appends a chain per algorithm after its last rank, starting from the best
//!   model so far (Morpheo's code took the last rank's model; its documentation, and this
//!   service, the best).
//! * A prediction uses the problem's best model over every algorithm.

use uuid::Uuid;

use super::{Learnuplet, UpletStatus};

/// The learnuplets of a new chain of `algo` on `train` (in order), from `start_rank`,
/// its head starting from `model_start`. Empty when there is no training data.
#[allow(clippy::too_many_arguments)]
pub fn new_chain(
    problem: Uuid,
    workflow: Uuid,
    algo: Uuid,
    train: &[Uuid],
    test: &[Uuid],
    size_train_dataset: usize,
    start_rank: u32,
    model_start: Option<Uuid>,
    now: &str,
) -> Vec<Learnuplet> {
    train
        .chunks(size_train_dataset.max(1))
        .enumerate()
        .map(|(i, chunk)| Learnuplet {
            uuid: uplet_uuid(algo, start_rank + i as u32),
            problem,
            workflow,
            algo,
            model_start: model_start.filter(|_| i == 0),
            model_end: Uuid::new_v4(),
            train_data: chunk.to_vec(),
            test_data: test.to_vec(),
            rank: start_rank + i as u32,
            worker: None,
            status: UpletStatus::Todo,
            perf: None,
            train_perf: None,
            test_perf: None,
            timestamp_creation: now.to_string(),
            timestamp_done: None,
            attempts: 0,
            lease_until: None,
            error: None,
        })
        .collect()
}

/// The uuid of `algo`'s learnuplet of rank `rank`: one per rank, whoever makes it.
pub fn uplet_uuid(algo: Uuid, rank: u32) -> Uuid {
    Uuid::new_v5(&algo, format!("learnuplet rank {rank}").as_bytes())
}

/// The done learnuplet with the highest `perf` among `uplets` (ties: the lower rank).
pub fn best<'a>(uplets: impl IntoIterator<Item = &'a Learnuplet>) -> Option<&'a Learnuplet> {
    uplets
        .into_iter()
        .filter(|u| u.status == UpletStatus::Done && u.perf.is_some_and(f64::is_finite))
        .fold(None, |best: Option<&Learnuplet>, u| match best {
            Some(b) if b.perf >= u.perf => Some(b),
            _ => Some(u),
        })
}

/// Whether a learnuplet can be run now: `todo` with its `model_start` known.
pub fn runnable(uplet: &Learnuplet) -> bool {
    uplet.status == UpletStatus::Todo && uplet.model_start.is_some()
}

/// After `done` (a learnuplet of `uplets`, all of one algorithm) ended: the learnuplet of
/// the next rank that waits for a model, and the model it gets (the best so far).
pub fn next_after<'a>(
    uplets: &'a [Learnuplet],
    done: &Learnuplet,
) -> Option<(&'a Learnuplet, Uuid)> {
    let next = uplets
        .iter()
        .find(|u| u.algo == done.algo && u.rank == done.rank + 1 && u.model_start.is_none())?;
    let model = best(uplets.iter().filter(|u| u.algo == done.algo))
        .map(|b| b.model_end)
        // Nothing done well yet (the finished one failed): the chain goes on from the
        // model the failed one started from.
        .or(done.model_start)?;
    Some((next, model))
}

/// The rank after the last of `algo`'s learnuplets (0 when it has none).
pub fn next_rank(uplets: &[Learnuplet], algo: Uuid) -> u32 {
    uplets
        .iter()
        .filter(|u| u.algo == algo)
        .map(|u| u.rank + 1)
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<Uuid> {
        (0..n).map(|_| Uuid::new_v4()).collect()
    }

    #[test]
    fn a_chain_cuts_the_training_data_and_only_its_head_can_run() {
        let (problem, workflow, algo) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let train = ids(7);
        let test = ids(2);
        let chain = new_chain(
            problem,
            workflow,
            algo,
            &train,
            &test,
            3,
            0,
            Some(algo),
            "t",
        );
        assert_eq!(chain.len(), 3);
        assert_eq!(
            chain.iter().map(|u| u.train_data.len()).collect::<Vec<_>>(),
            [3, 3, 1]
        );
        assert_eq!(chain.iter().map(|u| u.rank).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(chain[0].model_start, Some(algo));
        assert!(chain[1..].iter().all(|u| u.model_start.is_none()));
        assert_eq!(
            chain.iter().filter(|u| runnable(u)).count(),
            1,
            "only the head"
        );
        assert!(chain.iter().all(|u| u.test_data == test));
        assert!(new_chain(problem, workflow, algo, &[], &test, 3, 0, Some(algo), "t").is_empty());
    }

    #[test]
    fn the_next_rank_starts_from_the_best_model_so_far() {
        let (problem, workflow, algo) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut chain = new_chain(problem, workflow, algo, &ids(9), &[], 3, 0, Some(algo), "t");
        chain[0].status = UpletStatus::Done;
        chain[0].perf = Some(0.8);
        let (next, model) = next_after(&chain, &chain[0].clone()).unwrap();
        assert_eq!(next.rank, 1);
        assert_eq!(model, chain[0].model_end);
        chain[1].model_start = Some(model);
        // Rank 1 does worse: rank 2 still starts from rank 0's model.
        chain[1].status = UpletStatus::Done;
        chain[1].perf = Some(0.6);
        let (next, model) = next_after(&chain, &chain[1].clone()).unwrap();
        assert_eq!(next.rank, 2);
        assert_eq!(model, chain[0].model_end);
        // Nothing waits after the last rank.
        chain[2].model_start = Some(model);
        chain[2].status = UpletStatus::Failed;
        assert!(next_after(&chain, &chain[2].clone()).is_none());
        assert_eq!(next_rank(&chain, algo), 3);
        assert_eq!(next_rank(&chain, Uuid::new_v4()), 0);
    }

    #[test]
    fn a_failed_head_passes_on_its_own_starting_model() {
        let (problem, workflow, algo) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut chain = new_chain(problem, workflow, algo, &ids(4), &[], 2, 0, Some(algo), "t");
        chain[0].status = UpletStatus::Failed;
        let (next, model) = next_after(&chain, &chain[0].clone()).unwrap();
        assert_eq!((next.rank, model), (1, algo));
    }

    #[test]
    fn the_best_ignores_unfinished_and_missing_perfs() {
        let (problem, workflow, algo) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let mut chain = new_chain(problem, workflow, algo, &ids(3), &[], 1, 0, Some(algo), "t");
        assert!(best(&chain).is_none());
        chain[0].status = UpletStatus::Done;
        chain[0].perf = Some(0.5);
        chain[1].perf = Some(0.9); // not done
        chain[2].status = UpletStatus::Done;
        chain[2].perf = Some(f64::NAN);
        assert_eq!(best(&chain).unwrap().rank, 0);
    }
}
