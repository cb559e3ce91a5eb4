//! Every record is scoped by account: another account's object is a 404 and never listed.

use fanout_e2e::{account, stack};
use serde_json::json;

#[tokio::test]
async fn another_accounts_objects_are_not_found() {
    let owner = account();
    let intruder = account();
    let face = stack()
        .post("/1/faces", &json!({"account_id": owner}))
        .await
        .json["face_id"]
        .as_str()
        .unwrap()
        .to_string();
    let list = stack()
        .post("/1/lists", &json!({"account_id": owner}))
        .await
        .json["list_id"]
        .as_str()
        .unwrap()
        .to_string();
    let event = stack()
        .post("/1/events", &json!({"account_id": owner, "events": [{}]}))
        .await
        .json["events"][0]["event_id"]
        .as_str()
        .unwrap()
        .to_string();

    for (path, code) in [
        (format!("/1/faces/{face}?account_id={intruder}"), 22002),
        (format!("/1/lists/{list}?account_id={intruder}"), 22003),
        (format!("/1/events/{event}?account_id={intruder}"), 23001),
    ] {
        let answer = stack().get(&path).await;
        assert_eq!(answer.status, 404, "{path}");
        assert_eq!(answer.error_code(), code, "{path}");
    }
    let patch = stack()
        .patch(
            &format!("/1/faces/{face}?account_id={intruder}"),
            &json!({"user_data": "mine"}),
        )
        .await;
    assert_eq!(patch.error_code(), 22002);
    let delete = stack()
        .delete(&format!("/1/faces/{face}?account_id={intruder}"))
        .await;
    assert_eq!(delete.error_code(), 22002);
    let delete_list = stack()
        .delete(&format!("/1/lists/{list}?account_id={intruder}"))
        .await;
    assert_eq!(delete_list.error_code(), 22003);
    let attach = stack()
        .patch(
            &format!("/1/lists/{list}?account_id={intruder}"),
            &json!({"action": "attach", "face_ids": [face]}),
        )
        .await;
    assert_eq!(attach.error_code(), 22003);

    for path in ["/1/faces", "/1/lists", "/1/events"] {
        let listing = stack().get(&format!("{path}?account_id={intruder}")).await;
        assert_eq!(listing.status, 200);
        let key = path.trim_start_matches("/1/");
        assert_eq!(listing.json[key], json!([]), "{path} leaked");
    }
    let by_id = stack()
        .get(&format!("/1/faces?account_id={intruder}&face_ids={face}"))
        .await;
    assert_eq!(by_id.json["faces"], json!([]));

    // The owner still sees everything, unchanged.
    let mine = stack()
        .get(&format!("/1/faces/{face}?account_id={owner}"))
        .await;
    assert_eq!(mine.status, 200);
    assert_eq!(mine.json["user_data"], "");
    assert_eq!(
        stack()
            .get(&format!("/1/lists/{list}?account_id={owner}"))
            .await
            .status,
        200
    );
}
