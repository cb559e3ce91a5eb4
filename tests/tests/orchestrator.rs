//! The orchestrator's domain operations against the local stack (documents in DynamoDB,
//! blobs in S3): chains made by algorithms and data, the claim's compare-and-set, the
//! best model passed rank to rank, predictions from the best model, accounts apart.

use serde_json::Value;
use uuid::Uuid;

use fanout::Services;
use fanout::error::ErrorCode;
use fanout::orchestrator::api::{
    self, Claim, LearnDone, NewAlgo, NewData, NewPrediction, NewProblem, OneOrMany, PredDone,
};
use fanout::orchestrator::store::blob_key;
use fanout::orchestrator::{Collection, UpletStatus, compute};
use fanout::store::blobs;
use fanout_e2e::stack;

/// The stack's services with a work queue of the test's own: the uplets these tests make
/// are announced there, not to the workers of other tests. [`Isolated::end`] deletes the
/// queue and the account's mark for the reconciler's sweep.
struct Isolated {
    svc: Services,
    account: Uuid,
}

impl Isolated {
    async fn new() -> Isolated {
        let mut svc = stack().services.as_ref().clone();
        let queue = svc
            .aws
            .sqs
            .create_queue()
            .queue_name(format!("fanout-orch-test-{}", Uuid::new_v4()))
            .send()
            .await
            .unwrap();
        svc.config.work_queue_url = queue.queue_url().unwrap().to_string();
        Isolated {
            svc,
            account: Uuid::new_v4(),
        }
    }

    async fn end(self) {
        let svc = &self.svc;
        for (account, touched) in compute::accounts(svc).await.unwrap() {
            if account == self.account {
                compute::forget_account(svc, account, &touched)
                    .await
                    .unwrap();
            }
        }
        svc.aws
            .sqs
            .delete_queue()
            .queue_url(&svc.config.work_queue_url)
            .send()
            .await
            .unwrap();
    }
}

async fn upload(svc: &Services, account: Uuid) -> Uuid {
    let uuid = Uuid::new_v4();
    blobs::put(
        svc,
        &blob_key(account, uuid),
        b"blob".to_vec(),
        "application/octet-stream",
    )
    .await
    .unwrap();
    uuid
}

async fn learnuplets(svc: &Services, account: Uuid, filters: &[(&str, String)]) -> Vec<Value> {
    let filters: Vec<(String, String)> = filters
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let mut all = api::list(svc, account, Collection::Learnuplet, &filters)
        .await
        .unwrap()["learnuplets"]
        .as_array()
        .unwrap()
        .clone();
    all.sort_by_key(|u| u["rank"].as_u64());
    all
}

/// A claim of learnuplet `uuid` by a new worker.
async fn claim(
    svc: &Services,
    account: Uuid,
    uuid: Uuid,
) -> Result<Value, fanout::error::ApiError> {
    api::claim_learnuplet(
        svc,
        account,
        uuid,
        Claim {
            worker: Uuid::new_v4(),
        },
    )
    .await
}

fn id(v: &Value) -> Uuid {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn chains_advance_from_the_best_model_and_predictions_use_it() {
    let isolated = Isolated::new().await;
    let (svc, account) = (&isolated.svc, isolated.account);
    let workflow = upload(svc, account).await;
    let mut data = Vec::new();
    for _ in 0..5 {
        data.push(upload(svc, account).await);
    }
    let test = vec![data[4]];
    let problem = Uuid::new_v4();

    // The workflow must be in storage; sizes are checked.
    let bad = api::post_problem(
        svc,
        account,
        NewProblem {
            uuid: problem,
            workflow: Uuid::new_v4(),
            test_dataset: test.clone(),
            size_train_dataset: 2,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(bad.code, ErrorCode::DocumentNotFound);
    let made = api::post_problem(
        svc,
        account,
        NewProblem {
            uuid: problem,
            workflow,
            test_dataset: test.clone(),
            size_train_dataset: 2,
        },
    )
    .await
    .unwrap();
    assert_eq!(made["new_problem"]["uuid"], problem.to_string());
    let again = api::post_problem(
        svc,
        account,
        NewProblem {
            uuid: problem,
            workflow,
            test_dataset: test.clone(),
            size_train_dataset: 2,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(again.code, ErrorCode::DocumentExists);

    // Four training items and one test item, then an algo: a chain of two ranks.
    let added = api::post_data(
        svc,
        account,
        NewData {
            uuid: OneOrMany::Many(data[..4].to_vec()),
            problems: OneOrMany::One(problem),
        },
    )
    .await
    .unwrap();
    assert_eq!(added["new_learnuplets"], 0, "no algo yet");
    api::post_data(
        svc,
        account,
        NewData {
            uuid: OneOrMany::One(data[4]),
            problems: OneOrMany::One(problem),
        },
    )
    .await
    .unwrap();
    let algo = upload(svc, account).await;
    let registered = api::post_algo(
        svc,
        account,
        NewAlgo {
            uuid: algo,
            name: "forest".into(),
            problem,
        },
    )
    .await
    .unwrap();
    assert_eq!(registered["new_learnuplets"], 2);
    let chain = learnuplets(svc, account, &[("algo", algo.to_string())]).await;
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[0]["model_start"], algo.to_string());
    assert!(chain[1]["model_start"].is_null());
    assert!(
        chain
            .iter()
            .all(|u| u["test_data"] == serde_json::json!([data[4]]))
    );

    // Only the head can be claimed, once.
    let head = id(&chain[0]["uuid"]);
    let second = id(&chain[1]["uuid"]);
    let waiting = claim(svc, account, second).await.unwrap_err();
    assert_eq!(waiting.code, ErrorCode::UpletConflict);
    let (a, b) = tokio::join!(claim(svc, account, head), claim(svc, account, head),);
    assert_eq!(
        [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{a:?} {b:?}"
    );

    // No trained model yet: no prediction.
    let early = api::post_prediction(
        svc,
        account,
        NewPrediction {
            data: vec![data[0]],
            problem,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(early.code, ErrorCode::BadJson);

    // Done: the next rank starts from the head's model.
    api::learndone(
        svc,
        account,
        head,
        LearnDone {
            status: UpletStatus::Done,
            perf: Some(0.9),
            train_perf: Some(vec![0.9, 0.8]),
            test_perf: Some(vec![0.9]),
            error: None,
        },
    )
    .await
    .unwrap();
    let chain = learnuplets(svc, account, &[("algo", algo.to_string())]).await;
    assert_eq!(chain[0]["status"], "done");
    assert_eq!(chain[1]["model_start"], chain[0]["model_end"]);
    // A second report of the same learnuplet is refused and changes nothing.
    let twice = api::learndone(
        svc,
        account,
        head,
        LearnDone {
            status: UpletStatus::Done,
            perf: Some(0.1),
            train_perf: None,
            test_perf: None,
            error: None,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(twice.code, ErrorCode::UpletConflict);

    // Rank 1 does worse; new data appends rank 2 from rank 0's (the best) model.
    claim(svc, account, second).await.unwrap();
    api::learndone(
        svc,
        account,
        second,
        LearnDone {
            status: UpletStatus::Done,
            perf: Some(0.5),
            train_perf: None,
            test_perf: None,
            error: None,
        },
    )
    .await
    .unwrap();
    let more = upload(svc, account).await;
    let appended = api::post_data(
        svc,
        account,
        NewData {
            uuid: OneOrMany::One(more),
            problems: OneOrMany::Many(vec![problem]),
        },
    )
    .await
    .unwrap();
    assert_eq!(appended["new_learnuplets"], 1);
    let chain = learnuplets(svc, account, &[("algo", algo.to_string())]).await;
    assert_eq!(chain.len(), 3);
    assert_eq!(chain[2]["rank"], 2);
    assert_eq!(chain[2]["model_start"], chain[0]["model_end"]);
    assert_eq!(chain[2]["train_data"], serde_json::json!([more]));

    // A prediction uses the best model; its report needs the stored predictions.
    let predicted = api::post_prediction(
        svc,
        account,
        NewPrediction {
            data: vec![data[4]],
            problem,
        },
    )
    .await
    .unwrap();
    assert_eq!(predicted["new_preduplets"], 1);
    let pred = id(&predicted["preduplet"]);
    let doc = api::get(svc, account, Collection::Preduplet, pred)
        .await
        .unwrap();
    assert_eq!(doc["model"], chain[0]["model_end"]);
    assert_eq!(doc["status"], "todo");
    api::claim_preduplet(
        svc,
        account,
        pred,
        Claim {
            worker: Uuid::new_v4(),
        },
    )
    .await
    .unwrap();
    let missing = api::preddone(
        svc,
        account,
        pred,
        PredDone {
            status: UpletStatus::Done,
            prediction_storage_uuid: Some(Uuid::new_v4()),
            error: None,
        },
    )
    .await
    .unwrap_err();
    assert_eq!(missing.code, ErrorCode::DocumentNotFound);
    let stored = upload(svc, account).await;
    api::preddone(
        svc,
        account,
        pred,
        PredDone {
            status: UpletStatus::Done,
            prediction_storage_uuid: Some(stored),
            error: None,
        },
    )
    .await
    .unwrap();
    let doc = api::get(svc, account, Collection::Preduplet, pred)
        .await
        .unwrap();
    assert_eq!(doc["status"], "done");
    assert_eq!(doc["prediction_storage_uuid"], stored.to_string());

    // Filters, and another account sees nothing.
    let done = learnuplets(svc, account, &[("status", "done".into())]).await;
    assert_eq!(done.len(), 2);
    let other = Uuid::new_v4();
    let none = api::get(svc, other, Collection::Problem, problem)
        .await
        .unwrap_err();
    assert_eq!(none.code, ErrorCode::DocumentNotFound);
    assert!(learnuplets(svc, other, &[]).await.is_empty());
    isolated.end().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claim_whose_lease_runs_out_is_handed_out_again_then_failed() {
    let isolated = Isolated::new().await;
    let (svc, account) = (&isolated.svc, isolated.account);
    let workflow = upload(svc, account).await;
    let problem = Uuid::new_v4();
    api::post_problem(
        svc,
        account,
        NewProblem {
            uuid: problem,
            workflow,
            test_dataset: vec![],
            size_train_dataset: 1,
        },
    )
    .await
    .unwrap();
    let data = vec![upload(svc, account).await, upload(svc, account).await];
    api::post_data(
        svc,
        account,
        NewData {
            uuid: OneOrMany::Many(data),
            problems: OneOrMany::One(problem),
        },
    )
    .await
    .unwrap();
    let algo = upload(svc, account).await;
    api::post_algo(
        svc,
        account,
        NewAlgo {
            uuid: algo,
            name: "a".into(),
            problem,
        },
    )
    .await
    .unwrap();
    let chain = learnuplets(svc, account, &[]).await;
    let head = id(&chain[0]["uuid"]);
    let later = chrono::Utc::now() + chrono::Duration::hours(1);

    // Nothing is overdue before the lease ends.
    claim(svc, account, head).await.unwrap();
    let none = api::expire_leases(svc, account, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(none, api::Expired::default());
    // A dead worker's claim comes back to todo, claimable again, until the attempts run out.
    for attempt in 1..=api::ATTEMPTS_MAX {
        let expired = api::expire_leases(svc, account, later).await.unwrap();
        let doc = api::get(svc, account, Collection::Learnuplet, head)
            .await
            .unwrap();
        assert_eq!(doc["attempts"], attempt);
        if attempt < api::ATTEMPTS_MAX {
            assert_eq!(
                expired,
                api::Expired {
                    requeued: 1,
                    failed: 0
                }
            );
            assert_eq!(doc["status"], "todo");
            claim(svc, account, head).await.unwrap();
        } else {
            assert_eq!(
                expired,
                api::Expired {
                    requeued: 0,
                    failed: 1
                }
            );
            assert_eq!(doc["status"], "failed");
            assert!(doc["error"].as_str().unwrap().contains("lease ran out"));
        }
    }
    // The chain does not wait forever: the next rank starts from the algo itself.
    let chain = learnuplets(svc, account, &[]).await;
    assert_eq!(chain[1]["model_start"], algo.to_string());
    api::claim_learnuplet(
        svc,
        account,
        id(&chain[1]["uuid"]),
        Claim {
            worker: Uuid::new_v4(),
        },
    )
    .await
    .unwrap();
    // A report landing before the expiry wins over it.
    api::learndone(
        svc,
        account,
        id(&chain[1]["uuid"]),
        LearnDone {
            status: UpletStatus::Done,
            perf: Some(0.7),
            train_perf: None,
            test_perf: None,
            error: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(
        api::expire_leases(svc, account, later).await.unwrap(),
        api::Expired::default()
    );
    isolated.end().await;
}

/// A registration repeated after a crash completes what the crash left undone and makes
/// nothing twice: the chain's learnuplets have uuids derived from algorithm and rank,
/// data and algorithms already registered the same way are taken as they are. Before,
/// the repeat answered 40023 and the missing rank was never made.
#[tokio::test(flavor = "multi_thread")]
async fn registrations_repeated_after_a_crash_complete_the_chain_once() {
    let isolated = Isolated::new().await;
    let (svc, account) = (&isolated.svc, isolated.account);
    let workflow = upload(svc, account).await;
    let test = upload(svc, account).await;
    let problem = Uuid::new_v4();
    let new_problem = |uuid| NewProblem {
        uuid,
        workflow,
        test_dataset: vec![test],
        size_train_dataset: 1,
    };
    api::post_problem(svc, account, new_problem(problem))
        .await
        .unwrap();
    let data = |uuids: Vec<Uuid>, problems: Vec<Uuid>| NewData {
        uuid: OneOrMany::Many(uuids),
        problems: OneOrMany::Many(problems),
    };
    let (d0, d1) = (upload(svc, account).await, upload(svc, account).await);
    api::post_data(svc, account, data(vec![test, d0, d1], vec![problem]))
        .await
        .unwrap();
    let algo = upload(svc, account).await;
    let new_algo = |name: &str| NewAlgo {
        uuid: algo,
        name: name.into(),
        problem,
    };
    let made = api::post_algo(svc, account, new_algo("a")).await.unwrap();
    assert_eq!(made["new_learnuplets"], 2);
    let chain = learnuplets(svc, account, &[]).await;
    assert_eq!(
        chain.iter().map(|u| id(&u["uuid"])).collect::<Vec<_>>(),
        [
            fanout::orchestrator::chains::uplet_uuid(algo, 0),
            fanout::orchestrator::chains::uplet_uuid(algo, 1)
        ]
    );
    // The same registration again: nothing new; another algorithm under its uuid: 40023.
    let again = api::post_algo(svc, account, new_algo("a")).await.unwrap();
    assert_eq!(again["new_learnuplets"], 0);
    assert_eq!(learnuplets(svc, account, &[]).await, chain);
    let other = api::post_algo(svc, account, new_algo("b"))
        .await
        .unwrap_err();
    assert_eq!(other.code, ErrorCode::DocumentExists);

    // New data while rank 1 waits: ranks 2 and 3, rank 2 waiting for rank 1's end.
    let (d2, d3) = (upload(svc, account).await, upload(svc, account).await);
    let appended = api::post_data(svc, account, data(vec![d2, d3], vec![problem]))
        .await
        .unwrap();
    assert_eq!(appended["new_learnuplets"], 2);
    let chain = learnuplets(svc, account, &[]).await;
    assert_eq!(chain.len(), 4);
    assert!(chain[2]["model_start"].is_null(), "{:#}", chain[2]);

    // A crash before rank 3 was stored, then the call repeated: rank 3 made, once.
    let rank3 = id(&chain[3]["uuid"]);
    svc.table
        .delete_when(
            &fanout::orchestrator::store::partition(account, Collection::Learnuplet),
            &rank3.to_string(),
            "attribute_exists(pk)",
            Default::default(),
        )
        .await
        .unwrap();
    let repeated = api::post_data(svc, account, data(vec![d2, d3], vec![problem]))
        .await
        .unwrap();
    assert_eq!(repeated["new_learnuplets"], 1);
    let after = learnuplets(svc, account, &[]).await;
    assert_eq!(after.len(), 4);
    assert_eq!(id(&after[3]["uuid"]), rank3);
    assert_eq!(after[3]["train_data"], serde_json::json!([d3]));
    assert_eq!(after[3]["rank"], 3);
    let repeated = api::post_data(svc, account, data(vec![d2, d3], vec![problem]))
        .await
        .unwrap();
    assert_eq!(repeated["new_learnuplets"], 0);

    // The same data for other problems is another registration: 40023.
    let second = Uuid::new_v4();
    api::post_problem(svc, account, new_problem(second))
        .await
        .unwrap();
    let clash = api::post_data(svc, account, data(vec![d2], vec![second]))
        .await
        .unwrap_err();
    assert_eq!(clash.code, ErrorCode::DocumentExists);
    isolated.end().await;
}
