//! Regressions for what the schemathesis run (`tests/fuzz/run.sh`, RELIABILITY.md
//! "Fuzzing") found: each request here once answered a 5xx or no answer at all.

use fanout_e2e::{account, stack};
use serde_json::json;

/// `create_time__gte` above `create_time__lt` made the index query a `BETWEEN` with
/// reversed bounds, which DynamoDB refuses: 500. A reversed or empty range selects nothing.
#[tokio::test]
async fn reversed_time_ranges_list_nothing() {
    let acc = account();
    let created = stack().post("/1/lists", &json!({"account_id": acc})).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let face = stack().post("/1/faces", &json!({"account_id": acc})).await;
    assert_eq!(face.status, 201, "{}", face.text);
    let events = stack()
        .post(
            "/1/events",
            &json!({"account_id": acc, "events": [{"source": "fuzz"}]}),
        )
        .await;
    assert_eq!(events.status, 201, "{}", events.text);
    // The schemathesis case, then a plain reversed range and an empty one.
    let ranges = [
        (
            "0267-11-25T10%3A22%3A50%2B06%3A47",
            "0251-10-04T14%3A34%3A45.735Z",
        ),
        ("2030-01-02T00%3A00%3A00Z", "2020-01-01T00%3A00%3A00Z"),
        ("2020-01-01T00%3A00%3A00Z", "2020-01-01T00%3A00%3A00Z"),
    ];
    for (gte, lt) in ranges {
        let filter = format!("account_id={acc}&create_time__gte={gte}&create_time__lt={lt}");
        for (path, field) in [
            ("/1/lists", "lists"),
            ("/1/faces", "faces"),
            ("/1/events", "events"),
        ] {
            let page = stack().get(&format!("{path}?{filter}")).await;
            assert_eq!(page.status, 200, "{path} {gte} {lt}: {}", page.text);
            assert_eq!(page.json[field].as_array().map(Vec::len), Some(0), "{path}");
        }
        let count = stack().get(&format!("/1/faces/count?{filter}")).await;
        assert_eq!(count.status, 200, "{}", count.text);
        assert_eq!(count.json["count"], 0);
    }
    // The bounds still select what lies between them, also past year 9999 in UTC.
    let wide = format!(
        "account_id={acc}&create_time__gte=2000-01-01T00%3A00%3A00Z\
         &create_time__lt=9999-12-31T23%3A30%3A00-01%3A00"
    );
    for (path, field) in [
        ("/1/lists", "lists"),
        ("/1/faces", "faces"),
        ("/1/events", "events"),
    ] {
        let page = stack().get(&format!("{path}?{wide}")).await;
        assert_eq!(page.status, 200, "{path}: {}", page.text);
        assert_eq!(page.json[field].as_array().map(Vec::len), Some(1), "{path}");
    }
}

/// `GET /1/errors/18446744073709551615` computed `error_id + 1`: a panic, and the
/// gateway closed the connection without an answer (500 on Lambda).
#[tokio::test]
async fn the_largest_ids_are_not_found_rather_than_crashing() {
    let max = u64::MAX;
    for path in [
        format!("/1/errors/{max}"),
        format!("/1/tasks/{max}"),
        format!("/1/tasks/{max}/result"),
        format!("/1/tasks/{max}/subtasks"),
        format!("/1/tasks/{max}/errors"),
        format!("/1/tasks/{max}/errors/count"),
    ] {
        let answer = stack().get(&path).await;
        assert_eq!(answer.status, 404, "{path}: {}", answer.text);
    }
}
