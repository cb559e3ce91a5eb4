//! Bad input gets a 4xx with the documented error code, and the store is unchanged.

use fanout_e2e::{account, descriptor, stack};
use reqwest::Method;
use serde_json::{Value, json};

/// Posts `body` to `path` and checks the status, the code and that nothing was stored
/// under the account.
async fn refused(path: &str, body: Value, account_id: &str, kind: &str, status: u16, code: u64) {
    let answer = stack().post(path, &body).await;
    assert_eq!(answer.status, status, "{body} -> {}", answer.text);
    assert_eq!(answer.error_code(), code, "{body} -> {}", answer.text);
    assert!(!answer.json["desc"].as_str().unwrap().is_empty());
    assert!(!answer.json["detail"].as_str().unwrap().is_empty());
    assert!(
        answer.json["link"]
            .as_str()
            .unwrap()
            .ends_with(&code.to_string())
    );
    assert_eq!(
        stack().stored(account_id, kind).await,
        0,
        "{body} stored something"
    );
}

#[tokio::test]
async fn malformed_json_and_empty_bodies() {
    let acc = account();
    for raw in [r#"{"account_id": "#, "not json", r#"[1,2]"#] {
        let answer = stack().send_raw(Method::POST, "/1/faces", raw).await;
        assert_eq!(answer.status, 400, "{raw}");
        assert_eq!(answer.error_code(), 12027, "{raw}");
    }
    let empty = stack().send_raw(Method::POST, "/1/lists", "").await;
    assert_eq!(empty.status, 400);
    assert_eq!(empty.error_code(), 12030);
    assert_eq!(stack().stored(&acc, "FACE").await, 0);
}

#[tokio::test]
async fn face_bodies_with_wrong_types_ids_lengths_or_fields() {
    let acc = account();
    let good = descriptor(1);
    let too_long = [good.clone(), vec![0.5]].concat();
    let cases = [
        json!({"account_id": "not-a-uuid", "descriptor": good}),
        json!({"account_id": 5, "descriptor": good}),
        json!({"account_id": acc, "descriptor": &good[..511]}),
        json!({"account_id": acc, "descriptor": too_long}),
        json!({"account_id": acc, "descriptor": good, "descriptor_version": 12}),
        json!({"account_id": acc, "descriptor": "%%%"}),
        json!({"account_id": acc, "descriptor": good, "user_data": 5}),
        json!({"account_id": acc, "descriptor": good, "user_data": "x".repeat(129)}),
        json!({"account_id": acc, "descriptor": good, "external_id": "x".repeat(37)}),
        json!({"account_id": acc, "descriptor": good, "event_id": "123"}),
        json!({"account_id": acc, "descriptor": good, "lists": ["nope"]}),
        json!({"account_id": acc, "descriptor": good, "colour": "red"}),
        json!({"account_id": acc, "descriptor_version": 59}),
    ];
    for body in cases {
        refused("/1/faces", body, &acc, "FACE", 400, 12027).await;
    }
}

#[tokio::test]
async fn list_and_event_bodies_are_checked_too() {
    let acc = account();
    refused(
        "/1/lists",
        json!({"account_id": acc, "name": "x"}),
        &acc,
        "LIST",
        400,
        12027,
    )
    .await;
    refused(
        "/1/lists",
        json!({"account_id": acc, "user_data": 7}),
        &acc,
        "LIST",
        400,
        12027,
    )
    .await;
    for event in [
        json!({"gender": 2}),
        json!({"emotion": "bored"}),
        json!({"create_time": "yesterday"}),
        json!({"create_time": "2024-01-02T00:00:00Z", "end_time": "2024-01-01T00:00:00Z"}),
        json!({"tags": [""]}),
        json!({"location": {"geo_position": {"longitude": 200.0, "latitude": 0.0}}}),
        json!({"descriptor": [1.0, 2.0]}),
        json!({"colour": "red"}),
    ] {
        refused(
            "/1/events",
            json!({"account_id": acc, "events": [event]}),
            &acc,
            "EVENT",
            400,
            12027,
        )
        .await;
    }
    refused(
        "/1/events",
        json!({"account_id": acc, "events": []}),
        &acc,
        "EVENT",
        400,
        12027,
    )
    .await;
}

#[tokio::test]
async fn query_parameters_are_validated() {
    let acc = account();
    let cases = [
        (format!("/1/faces?account_id={acc}&page_size=0"), 101),
        (format!("/1/faces?account_id={acc}&page_size=101"), 101),
        (format!("/1/faces?account_id={acc}&page=0"), 101),
        (format!("/1/faces?account_id={acc}&page=two"), 101),
        ("/1/faces?account_id=123".to_string(), 101),
        (format!("/1/faces?account_id={acc}&face_ids=1,2"), 101),
        (
            format!("/1/faces?account_id={acc}&create_time__gte=2020-01-01"),
            101,
        ),
        (format!("/1/faces?account_id={acc}&colour=red"), 12018),
        (format!("/1/events?account_id={acc}&gender=3"), 101),
        (format!("/1/events?account_id={acc}&age__gte=x"), 101),
        (format!("/1/faces/count?account_id={acc}&page=1"), 12018),
        (format!("/1/faces/not-a-uuid?account_id={acc}"), 101),
        (
            format!("/1/faces/{}?account_id=", uuid::Uuid::new_v4()),
            101,
        ),
    ];
    for (path, code) in cases {
        let answer = stack().get(&path).await;
        assert_eq!(answer.status, 400, "{path} -> {}", answer.text);
        assert_eq!(answer.error_code(), code, "{path} -> {}", answer.text);
    }
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let missing = stack().get("/1/nothing").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.error_code(), 106);
    let wrong_method = stack()
        .call(Method::PUT, "/1/faces", Some(&json!({})))
        .await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.error_code(), 106);
}

/// Found by a new user: `POST /1/tasks/foo` answered 405 "Method POST is not allowed on
/// /1/tasks/foo" (`/1/tasks/{task_id}` takes GET, PATCH and DELETE). An unknown kind is
/// a 404 that names it and the kinds there are.
#[tokio::test]
async fn an_unknown_task_kind_is_a_404_naming_the_kinds() {
    let acc = account();
    for kind in ["foo", "count", "Clustering"] {
        let body = json!({"account_id": acc, "content": {}});
        let answer = stack().post(&format!("/1/tasks/{kind}"), &body).await;
        assert_eq!(answer.status, 404, "{}", answer.text);
        assert_eq!(answer.error_code(), 106, "{}", answer.text);
        assert!(answer.headers.contains_key("luna-request-id"));
        let detail = answer.json["detail"].as_str().unwrap();
        assert!(detail.contains(&format!("'{kind}'")), "{detail}");
        for known in fanout::kinds::REGISTRY {
            assert!(detail.contains(known.name()), "{detail}");
        }
    }
    let count = format!("/1/tasks/count?account_id={acc}");
    assert_eq!(stack().get(&count).await.json["count"], 0);
    // A known kind is still created, and the other methods on a task id still answer.
    let gc = json!({"account_id": acc, "content": {"target": "events", "filters": {}}});
    assert_eq!(stack().post("/1/tasks/gc", &gc).await.status, 201);
    assert_eq!(stack().get(&count).await.json["count"], 1);
    let put = stack()
        .call(Method::PUT, "/1/tasks/foo", Some(&json!({})))
        .await;
    assert_eq!(put.status, 405, "{}", put.text);
}
