//! The ML orchestrator (seed 003, in the style of Morpheo): problems, algorithms and data
//! registered by uuid, learnuplets (learning tasks) chained rank by rank from the best
//! model so far, preduplets (prediction tasks) from a problem's best model, and the
//! compute side's claim (`todo` → `pending`, a compare-and-set) and reports. Its own room
//! on the shared floors: documents in the one DynamoDB table under the account
//! ([`store`]), blobs in S3 under the account, errors from the shared registry.
//!
//! Beyond Morpheo, a claimed uplet carries a lease (`lease_until`) and an attempt count,
//! so that an uplet whose worker died can be handed out again instead of blocking its
//! chain forever.

pub mod api;
pub mod chains;
pub mod compute;
pub mod storage;
pub mod store;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Status of a learnuplet or preduplet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum UpletStatus {
    /// Waiting for a worker (a learnuplet also for its `model_start`).
    Todo,
    /// Claimed by a worker.
    Pending,
    /// Ended well.
    Done,
    /// Ended badly.
    Failed,
}

/// The documents the orchestrator keeps, by their collection name in paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Collection {
    /// Problems.
    Problem,
    /// Algorithms.
    Algo,
    /// Data.
    Data,
    /// Learning tasks.
    Learnuplet,
    /// Prediction tasks.
    Preduplet,
}

impl Collection {
    /// Every collection.
    pub const ALL: [Collection; 5] = [
        Collection::Problem,
        Collection::Algo,
        Collection::Data,
        Collection::Learnuplet,
        Collection::Preduplet,
    ];

    /// Its name in paths (`/orchestrator/<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Collection::Problem => "problem",
            Collection::Algo => "algo",
            Collection::Data => "data",
            Collection::Learnuplet => "learnuplet",
            Collection::Preduplet => "preduplet",
        }
    }

    /// The collection named `name`.
    pub fn from_name(name: &str) -> Option<Collection> {
        Collection::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The member of a listing's answer (`{"problems": [...]}`).
    pub fn plural(self) -> &'static str {
        match self {
            Collection::Problem => "problems",
            Collection::Algo => "algos",
            Collection::Data => "datas",
            Collection::Learnuplet => "learnuplets",
            Collection::Preduplet => "preduplets",
        }
    }
}

/// A problem: a workflow (the container scoring models) and its test data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// Its uuid.
    pub uuid: Uuid,
    /// Storage uuid of its workflow.
    pub workflow: Uuid,
    /// Data uuids kept for testing.
    pub test_dataset: Vec<Uuid>,
    /// Training data per learnuplet.
    pub size_train_dataset: u32,
    /// When it was registered.
    pub timestamp_upload: String,
}

/// An algorithm proposed for a problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Algo {
    /// Its uuid (and its storage uuid).
    pub uuid: Uuid,
    /// Its name.
    pub name: String,
    /// The problem it solves.
    pub problem: Uuid,
    /// When it was registered.
    pub timestamp_upload: String,
}

/// A data item, usable by problems.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Data {
    /// Its uuid (and its storage uuid).
    pub uuid: Uuid,
    /// The problems it serves.
    pub problems: Vec<Uuid>,
    /// When it was registered.
    pub timestamp_upload: String,
}

/// A learning task: train `algo` from `model_start` on `train_data`, score on
/// `test_data` with the problem's workflow, store `model_end`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Learnuplet {
    /// Its uuid.
    pub uuid: Uuid,
    /// The problem.
    pub problem: Uuid,
    /// The problem's workflow.
    pub workflow: Uuid,
    /// The algorithm.
    pub algo: Uuid,
    /// The model it starts from (the algorithm at rank 0); none until the previous
    /// rank has ended.
    pub model_start: Option<Uuid>,
    /// Storage uuid of the model it makes.
    pub model_end: Uuid,
    /// Training data.
    pub train_data: Vec<Uuid>,
    /// Test data.
    pub test_data: Vec<Uuid>,
    /// Its place in its algorithm's chain.
    pub rank: u32,
    /// The worker that claimed it.
    pub worker: Option<Uuid>,
    /// Its status.
    pub status: UpletStatus,
    /// Performance of `model_end` on the test data.
    pub perf: Option<f64>,
    /// Performance per training data item.
    pub train_perf: Option<Vec<f64>>,
    /// Performance per test data item.
    pub test_perf: Option<Vec<f64>>,
    /// When it was made.
    pub timestamp_creation: String,
    /// When it ended.
    pub timestamp_done: Option<String>,
    /// Claims so far (a claim whose lease ran out counts).
    #[serde(default)]
    pub attempts: u32,
    /// Until when the current claim holds.
    #[serde(default)]
    pub lease_until: Option<String>,
    /// Why it failed, when it did.
    #[serde(default)]
    pub error: Option<String>,
}

/// A prediction task: apply `model` to `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Preduplet {
    /// Its uuid.
    pub uuid: Uuid,
    /// The problem.
    pub problem: Uuid,
    /// The problem's workflow.
    pub workflow: Uuid,
    /// The data to predict on.
    pub data: Vec<Uuid>,
    /// The model (the problem's best when it was requested).
    pub model: Uuid,
    /// The worker that claimed it.
    pub worker: Option<Uuid>,
    /// Its status.
    pub status: UpletStatus,
    /// Storage uuid of the predictions.
    pub prediction_storage_uuid: Option<Uuid>,
    /// When it was requested.
    pub timestamp_request: String,
    /// When it ended.
    pub timestamp_done: Option<String>,
    /// Claims so far.
    #[serde(default)]
    pub attempts: u32,
    /// Until when the current claim holds.
    #[serde(default)]
    pub lease_until: Option<String>,
    /// Why it failed, when it did.
    #[serde(default)]
    pub error: Option<String>,
}
