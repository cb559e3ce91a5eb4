//! The Lambda path, in process: API Gateway HTTP API (v2) events from `fixtures/` are
//! turned into requests exactly as the runtime does, then dispatched through the route
//! the template binds to them. Needs the local stack's environment (`make test`).

use fanout::Services;
use fanout_functions::dispatch::dispatch;
use fanout_functions::routes;
use lambda_http::{Body, Response};
use serde_json::Value;

async fn invoke(route: &str, fixture: &str) -> Response<Body> {
    let path = format!("{}/tests/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
    let event = std::fs::read_to_string(&path).expect("fixture");
    let request = lambda_http::request::from_str(&event).expect("an API Gateway v2 event");
    let services = Services::from_env()
        .await
        .expect("local stack environment: run `make test`");
    dispatch(&services, routes::by_name(route).expect("route"), request).await
}

fn json(response: &Response<Body>) -> Value {
    match response.body() {
        Body::Text(text) => serde_json::from_str(text).expect("json"),
        other => panic!("unexpected body {other:?}"),
    }
}

#[tokio::test]
async fn version_event_answers_and_echoes_the_request_id() {
    let response = invoke("version", "get_version.json").await;
    assert_eq!(response.status(), 200);
    assert_eq!(json(&response)["Version"]["api"], 1);
    assert_eq!(
        response.headers()["luna-request-id"],
        "1536751345,8b8b5937-2e9c-4e8b-a7a7-5caf86621b5a"
    );
}

#[tokio::test]
async fn get_face_event_without_account_is_rejected() {
    let response = invoke("get_face", "get_face_without_account.json").await;
    assert_eq!(response.status(), 400);
    // `page` is unknown to this route and is reported before the missing account_id.
    assert_eq!(json(&response)["error_code"], 12018);
}

#[tokio::test]
async fn create_list_event_with_base64_body_writes_to_dynamodb() {
    let response = invoke("create_list", "create_list.json").await;
    assert_eq!(response.status(), 201, "{:?}", response.body());
    let list_id: uuid::Uuid = json(&response)["list_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let services = Services::from_env().await.unwrap();
    let account = "346a5645-ec89-4806-820a-dbcb6e0dc381".parse().unwrap();
    let list = fanout::objects::lists::get(&services, account, list_id)
        .await
        .expect("stored");
    assert_eq!(list.user_data, "from a lambda event");
}
