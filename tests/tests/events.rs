//! Events: batch save, filters, time ranges.

use fanout_e2e::{account, descriptor, stack};
use serde_json::{Value, json};

async fn save(acc: &str, events: Vec<Value>) -> Vec<String> {
    let answer = stack()
        .post("/1/events", &json!({"account_id": acc, "events": events}))
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect()
}

fn ids(answer: &fanout_e2e::Answer) -> Vec<String> {
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn saved_event_reads_back_with_every_field() {
    let acc = account();
    let handler = uuid::Uuid::new_v4().to_string();
    let stream = uuid::Uuid::new_v4().to_string();
    let face = uuid::Uuid::new_v4().to_string();
    let event = json!({
        "create_time": "2024-05-01T10:00:00Z",
        "end_time": "2024-05-01T10:00:05+00:00",
        "source": "cam1", "handler_id": handler, "external_id": "e1", "user_data": "door",
        "tags": ["vip", "night"], "track_id": "t1", "stream_id": stream, "gender": 1, "age": 33,
        "emotion": "happiness", "face_id": face, "descriptor": descriptor(3),
        "location": {"city": "Riga", "street": "Brivibas", "geo_position": {"longitude": 24.1, "latitude": 56.9}}
    });
    let id = save(&acc, vec![event]).await.remove(0);
    let got = stack()
        .get(&format!("/1/events/{id}?account_id={acc}"))
        .await;
    assert_eq!(got.status, 200, "{}", got.text);
    let e = &got.json;
    assert_eq!(e["create_time"], "2024-05-01T10:00:00.000000+00:00");
    assert_eq!(e["end_time"], "2024-05-01T10:00:05.000000+00:00");
    assert_eq!(e["source"], "cam1");
    assert_eq!(e["handler_id"], handler.as_str());
    assert_eq!(e["tags"], json!(["vip", "night"]));
    assert_eq!(e["stream_id"], stream.as_str());
    assert_eq!(e["gender"], 1);
    assert_eq!(e["age"], 33);
    assert_eq!(e["emotion"], "happiness");
    assert_eq!(e["face_id"], face.as_str());
    assert_eq!(e["descriptor_version"], 59);
    assert_eq!(e["location"]["city"], "Riga");
    assert_eq!(e["location"]["geo_position"]["latitude"], 56.9);
}

#[tokio::test]
async fn filters_select_exactly_the_matching_events() {
    let acc = account();
    let stream = uuid::Uuid::new_v4().to_string();
    let saved = save(
        &acc,
        vec![
            json!({"create_time": "2024-01-01T00:00:00Z", "source": "cam1", "tags": ["a"], "age": 20, "gender": 0, "track_id": "t1", "stream_id": stream}),
            json!({"create_time": "2024-01-02T00:00:00Z", "source": "cam2", "tags": ["a", "b"], "age": 40, "gender": 1, "track_id": "t1"}),
            json!({"create_time": "2024-01-03T00:00:00Z", "source": "cam1", "tags": ["c"], "age": 60, "gender": 1, "track_id": "t2", "emotion": "fear"}),
        ],
    )
    .await;
    let (e1, e2, e3) = (&saved[0], &saved[1], &saved[2]);
    let base = format!("/1/events?account_id={acc}");
    let q = |query: &str| format!("{base}{query}");
    assert_eq!(
        ids(&stack().get(&q("")).await),
        vec![e3.clone(), e2.clone(), e1.clone()]
    );
    assert_eq!(
        ids(&stack().get(&q("&sources=cam1")).await),
        vec![e3.clone(), e1.clone()]
    );
    assert_eq!(
        ids(&stack().get(&q("&tags=b,c")).await),
        vec![e3.clone(), e2.clone()]
    );
    assert_eq!(
        ids(&stack().get(&q("&age__gte=40&age__lt=60")).await),
        vec![e2.clone()]
    );
    assert_eq!(
        ids(&stack().get(&q("&gender=1")).await),
        vec![e3.clone(), e2.clone()]
    );
    assert_eq!(
        ids(&stack().get(&q("&track_ids=t1")).await),
        vec![e2.clone(), e1.clone()]
    );
    assert_eq!(
        ids(&stack().get(&q(&format!("&stream_ids={stream}"))).await),
        vec![e1.clone()]
    );
    assert_eq!(
        ids(&stack().get(&q("&emotions=fear")).await),
        vec![e3.clone()]
    );
    assert_eq!(
        ids(&stack().get(&q(&format!("&event_ids={e1},{e3}"))).await),
        vec![e3.clone(), e1.clone()]
    );
    assert_eq!(
        ids(&stack()
            .get(&q(
                "&create_time__gte=2024-01-02T00:00:00Z&create_time__lt=2024-01-03T00:00:00Z"
            ))
            .await),
        vec![e2.clone()]
    );
    assert_eq!(
        ids(&stack()
            .get(&q("&create_time__lt=2024-01-02T00:00:00Z"))
            .await),
        vec![e1.clone()]
    );
    assert_eq!(
        ids(&stack().get(&q("&page=2&page_size=2")).await),
        vec![e1.clone()]
    );
}

#[tokio::test]
async fn a_batch_of_1000_is_saved_and_1001_is_refused() {
    let acc = account();
    let batch: Vec<Value> = (0..1000)
        .map(|i| json!({"external_id": format!("x{i}")}))
        .collect();
    assert_eq!(save(&acc, batch).await.len(), 1000);
    assert_eq!(stack().stored(&acc, "EVENT").await, 1000);

    let other = account();
    let too_many: Vec<Value> = (0..1001).map(|_| json!({})).collect();
    let answer = stack()
        .post(
            "/1/events",
            &json!({"account_id": other, "events": too_many}),
        )
        .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.error_code(), 12027);
    assert_eq!(stack().stored(&other, "EVENT").await, 0);
}

#[tokio::test]
async fn one_bad_event_rejects_the_whole_batch() {
    let acc = account();
    let answer = stack()
        .post(
            "/1/events",
            &json!({"account_id": acc, "events": [{"source": "ok"}, {"age": 500}]}),
        )
        .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.error_code(), 12027);
    assert!(
        answer.json["detail"]
            .as_str()
            .unwrap()
            .contains("events[1]")
    );
    assert_eq!(stack().stored(&acc, "EVENT").await, 0);
}

/// `POST /1/events` with an `Idempotency-Key` header.
async fn save_keyed(key: &str, body: &Value) -> fanout_e2e::Answer {
    stack()
        .call_with(
            reqwest::Method::POST,
            "/1/events",
            Some(body),
            &[("Idempotency-Key", key)],
        )
        .await
}

/// Events without a create time (now by default) and enough of them for several write
/// batches of 25.
fn keyed_batch(acc: &str, n: usize) -> Value {
    let events: Vec<Value> = (0..n)
        .map(|i| json!({"external_id": format!("k{i}"), "descriptor": descriptor(i as u32)}))
        .collect();
    json!({"account_id": acc, "events": events})
}

fn created_ids(answer: &fanout_e2e::Answer) -> Vec<String> {
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_repeated_request_with_the_same_key_stores_each_event_once() {
    let acc = account();
    let key = uuid::Uuid::new_v4().to_string();
    let body = keyed_batch(&acc, 60);
    let first = created_ids(&save_keyed(&key, &body).await);
    let one = stack()
        .get(&format!("/1/events/{}?account_id={acc}", first[0]))
        .await;
    let again = created_ids(&save_keyed(&key, &body).await);
    assert_eq!(again, first, "the same ids again");
    assert_eq!(stack().stored(&acc, "EVENT").await, 60);
    let same = stack()
        .get(&format!("/1/events/{}?account_id={acc}", first[0]))
        .await;
    assert_eq!(
        same.json, one.json,
        "the retry leaves the stored event as it was (its default create time too)"
    );
    // Without the header every request is new, as before.
    let plain = stack().post("/1/events", &body).await;
    assert_ne!(created_ids(&plain), first);
    assert_eq!(stack().stored(&acc, "EVENT").await, 120);
}

/// What a failure part-way leaves: the key claimed and the first write batch stored, the
/// later ones not (here made by deleting those events after a success). The retry stores
/// the rest once and answers the ids the first request answered.
#[tokio::test]
async fn a_retry_after_a_partial_write_completes_the_batch_with_the_same_ids() {
    let acc = account();
    let key = uuid::Uuid::new_v4().to_string();
    let body = keyed_batch(&acc, 80);
    let first = created_ids(&save_keyed(&key, &body).await);
    let lost: Vec<uuid::Uuid> = first[25..].iter().map(|id| id.parse().unwrap()).collect();
    fanout::objects::events::delete_many(&stack().services, &lost)
        .await
        .unwrap();
    assert_eq!(stack().stored(&acc, "EVENT").await, 25);
    let retried = created_ids(&save_keyed(&key, &body).await);
    assert_eq!(retried, first);
    assert_eq!(stack().stored(&acc, "EVENT").await, 80);
    let listed = ids(&stack()
        .get(&format!("/1/events?account_id={acc}&page_size=100"))
        .await);
    let mut listed_sorted = listed.clone();
    listed_sorted.sort();
    let mut first_sorted = first.clone();
    first_sorted.sort();
    assert_eq!(listed_sorted, first_sorted, "each event exactly once");
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused_and_stores_nothing() {
    let acc = account();
    let key = uuid::Uuid::new_v4().to_string();
    created_ids(&save_keyed(&key, &keyed_batch(&acc, 3)).await);
    let other = save_keyed(&key, &keyed_batch(&acc, 4)).await;
    assert_eq!(other.status, 422, "{}", other.text);
    assert_eq!(other.error_code(), 40010);
    assert_eq!(
        other.json["desc"],
        "Idempotency-Key reused with another request"
    );
    assert_eq!(stack().stored(&acc, "EVENT").await, 3);
    // The key is the account's: another account may use the same one.
    let acc2 = account();
    let theirs = created_ids(&save_keyed(&key, &keyed_batch(&acc2, 3)).await);
    assert_eq!(stack().stored(&acc2, "EVENT").await, 3);
    assert!(theirs.iter().all(|id| !other.text.contains(id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_with_the_same_key_store_each_event_once() {
    let acc = account();
    let key = uuid::Uuid::new_v4().to_string();
    let body = keyed_batch(&acc, 50);
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (key, body) = (key.clone(), body.clone());
        requests.spawn(async move { created_ids(&save_keyed(&key, &body).await) });
    }
    let mut answers = Vec::new();
    while let Some(ids) = requests.join_next().await {
        answers.push(ids.unwrap());
    }
    assert!(answers.iter().all(|ids| *ids == answers[0]));
    assert_eq!(stack().stored(&acc, "EVENT").await, 50);
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_refused() {
    let acc = account();
    let body = keyed_batch(&acc, 1);
    for key in ["", &"k".repeat(256), "tab\tinside"] {
        let answer = save_keyed(key, &body).await;
        assert_eq!(answer.status, 400, "{key:?}: {}", answer.text);
        assert_eq!(answer.error_code(), 40009, "{key:?}");
    }
    assert_eq!(stack().stored(&acc, "EVENT").await, 0);
}
