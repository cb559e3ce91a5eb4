//! The Lambda path, in process: API Gateway HTTP API (v2) events from `fixtures/` are
//! turned into requests exactly as the runtime does, then dispatched through the route
//! the template binds to them. Needs the local stack's environment (`make test`).

use std::collections::HashMap;

use fanout::Services;
use fanout_functions::dispatch::dispatch;
use fanout_functions::routes;
use lambda_http::{Body, Request, RequestExt, Response};
use serde_json::Value;

/// The account the fixtures name.
const FIXTURE_ACCOUNT: &str = "346a5645-ec89-4806-820a-dbcb6e0dc381";

/// A fixture turned into a request, as the runtime does.
fn event(fixture: &str) -> Request {
    let path = format!("{}/tests/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
    let event = std::fs::read_to_string(&path).expect("fixture");
    lambda_http::request::from_str(&event).expect("an API Gateway v2 event")
}

async fn services() -> Services {
    Services::from_env()
        .await
        .expect("local stack environment: run `make test`")
}

async fn invoke(route: &str, fixture: &str) -> Response<Body> {
    let route = routes::by_name(route).expect("route");
    dispatch(&services().await, route, event(fixture)).await
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
    let account = FIXTURE_ACCOUNT.parse().unwrap();
    let list = fanout::objects::lists::get(&services, account, list_id)
        .await
        .expect("stored");
    assert_eq!(list.user_data, "from a lambda event");
}

/// A route event that did not come through the authorizer (no context), or whose
/// context is a denial, is refused with 401 before the handler reads anything.
#[tokio::test]
async fn a_route_event_without_an_allowing_authorizer_context_is_refused() {
    let services = services().await;
    let route = routes::by_name("create_list").unwrap();
    let mut raw: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/tests/fixtures/create_list.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    raw["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    let request = lambda_http::request::from_str(&raw.to_string()).unwrap();
    let response = dispatch(&services, route, request).await;
    assert_eq!(response.status(), 401);
    assert_eq!(json(&response)["error_code"], 40011);
    assert!(response.headers().contains_key("www-authenticate"));

    let denial = fanout::auth::Verdict::Denied(fanout::error::ApiError::new(
        fanout::error::ErrorCode::TokenExpired,
        "expired",
    ));
    raw["requestContext"]["authorizer"] = serde_json::json!({"lambda": denial.to_context()});
    let request = lambda_http::request::from_str(&raw.to_string()).unwrap();
    let response = dispatch(&services, route, request).await;
    assert_eq!(response.status(), 401);
    assert_eq!(json(&response)["error_code"], 40013);

    // A cached allowing verdict of a token that has expired since.
    raw["requestContext"]["authorizer"]["lambda"] = serde_json::json!({
        "verdict": "allow",
        "account_id": FIXTURE_ACCOUNT,
        "account_type": "user",
        "token_id": "5b0c9c1e-3a3f-4d52-9a43-0c6f2b1d7e11",
        "permissions": "lists:vcmd",
        "expiration_time": "2026-01-01T00:00:00+00:00",
    });
    let request = lambda_http::request::from_str(&raw.to_string()).unwrap();
    let response = dispatch(&services, route, request).await;
    assert_eq!(response.status(), 401);
    assert_eq!(json(&response)["error_code"], 40013);
}

/// The recorded REQUEST event of the authorizer, its bearer token written `TOKEN`.
fn authorize_fixture() -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/authorize_request.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

/// The authorizer function answers API Gateway's REQUEST event (payload 2.0) with a
/// simple response whose context the route functions read: the caller for a valid
/// token, a denial (still `isAuthorized`, so the route can answer with an error body)
/// for a missing, malformed or revoked one.
#[tokio::test]
async fn the_authorizer_function_answers_with_the_callers_context() {
    use fanout::auth::{AccountType, Verdict};
    let services = services().await;
    let made = fanout::auth::bootstrap(&services, AccountType::User, None, "authorizer test")
        .await
        .unwrap();
    let fixture = authorize_fixture();
    let with =
        |token: &str| -> Value { serde_json::from_str(&fixture.replace("TOKEN", token)).unwrap() };
    let answer = fanout_functions::lambda::authorizer_answer(&services, &with(&made.token))
        .await
        .unwrap();
    assert_eq!(answer["isAuthorized"], true);
    let context = answer["context"].as_object().unwrap();
    let Verdict::Allowed(caller) = Verdict::from_context(|k| context.get(k)) else {
        panic!("refused a valid token: {answer}");
    };
    assert_eq!(caller.account_id, made.account_id);
    assert_eq!(caller.account_type, AccountType::User);
    assert_eq!(caller.token_id, made.token_id);
    assert!(
        !answer.to_string().contains(&made.token),
        "the secret travels on"
    );

    let mut forged = made.token.clone();
    forged.pop();
    forged.push(if made.token.ends_with('A') { 'B' } else { 'A' });
    for token in [forged.as_str(), "nonsense"] {
        let answer = fanout_functions::lambda::authorizer_answer(&services, &with(token))
            .await
            .unwrap();
        let context = answer["context"].as_object().unwrap();
        assert_eq!(context["verdict"], "deny", "{answer}");
        assert_eq!(context["error_code"], 40012);
    }
    let mut bare = with("x");
    bare["headers"]
        .as_object_mut()
        .unwrap()
        .remove("authorization");
    let answer = fanout_functions::lambda::authorizer_answer(&services, &bare)
        .await
        .unwrap();
    assert_eq!(answer["context"]["error_code"], 40011);
}

/// The JPEG whose base64 is the body of `put_face_avatar.json`.
const FIXTURE_JPEG: &[u8] = &[
    0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00, 0x01, 0x01, 0x00, 0x00, 0x01,
    0x00, 0x01, 0x00, 0x00, 0xFF, 0xD9,
];

#[tokio::test]
async fn put_avatar_event_with_base64_body_stores_the_decoded_bytes() {
    let services = services().await;
    let account = FIXTURE_ACCOUNT.parse().unwrap();
    let new = fanout::objects::faces::NewFace {
        account_id: account,
        descriptor: None,
        descriptor_version: None,
        external_id: None,
        user_data: None,
        event_id: None,
        avatar: None,
        lists: None,
    };
    let face_id = fanout::objects::faces::create(&services, new)
        .await
        .unwrap()
        .face_id;
    // The fixture names a face that does not exist: point it at the new one.
    let params = HashMap::from([("face_id".to_string(), face_id.to_string())]);
    let request = event("put_face_avatar.json").with_path_parameters(params);
    let route = routes::by_name("put_face_avatar").unwrap();
    let response = dispatch(&services, route, request).await;
    assert_eq!(response.status(), 204, "{:?}", response.body());
    let image = fanout::objects::images::get_face_avatar(&services, account, face_id)
        .await
        .expect("stored");
    assert_eq!(image.bytes, FIXTURE_JPEG);
    assert_eq!(image.content_type, "image/jpeg");
    fanout::objects::faces::delete(&services, account, face_id)
        .await
        .unwrap();
}

#[tokio::test]
async fn put_avatar_event_for_an_unknown_face_is_a_face_not_found() {
    // Decoded, the body passes validation (else 415), so the face lookup decides.
    let response = invoke("put_face_avatar", "put_face_avatar.json").await;
    assert_eq!(response.status(), 404);
    assert_eq!(json(&response)["error_code"], 22002);
}

/// The catch-all function (`ANY /{proxy+}`, what API Gateway hands every request no other
/// route takes) answers as the local gateway does: an unknown path is 404 with LUNA's 106
/// (not API Gateway's `{"message":"Not Found"}`), a known path with another method 405
/// with 106, an unknown task kind 404 naming the kinds, and a known path written with a
/// trailing slash a redirect to the path without it.
#[tokio::test]
async fn the_catch_all_function_answers_lunas_error_106() {
    let unknown = invoke("catch_all", "catch_all_unknown_path.json").await;
    assert_eq!(unknown.status(), 404);
    let body = json(&unknown);
    assert_eq!(body["error_code"], 106, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("/nothing/here"),
        "{body}"
    );
    assert_eq!(
        unknown.headers()["luna-request-id"],
        "1536751345,8b8b5937-2e9c-4e8b-a7a7-5caf86621b5a"
    );

    let wrong_method = invoke("catch_all", "catch_all_wrong_method.json").await;
    assert_eq!(wrong_method.status(), 405);
    let body = json(&wrong_method);
    assert_eq!(body["error_code"], 106, "{body}");
    assert_eq!(body["detail"], "Method PUT is not allowed on /1/faces");

    let kind = invoke("catch_all", "catch_all_unknown_kind.json").await;
    assert_eq!(kind.status(), 404);
    let body = json(&kind);
    assert_eq!(body["error_code"], 106, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("'foo'"), "{body}");

    let slash = invoke("catch_all", "catch_all_trailing_slash.json").await;
    assert_eq!(slash.status(), 308);
    assert_eq!(slash.headers()["location"], "/docs/dev?lang=en");

    // The same answers as the local gateway's, built by the same function.
    let local =
        fanout_functions::dispatch::unrouted_error(&event("catch_all_wrong_method.json"), true);
    assert_eq!(local.status(), wrong_method.status());
    assert_eq!(json(&local), json(&wrong_method));
}

/// The control function (the control queue's consumer on AWS) runs the steps of an SQS
/// batch: a task created with no worker running gets planned, merged and done by it; an
/// unreadable message is dropped rather than retried; only failed steps are reported.
#[tokio::test]
async fn control_function_runs_the_steps_of_an_sqs_batch() {
    use fanout::engine::messages::ControlMessage;
    use fanout::tasks::api::{self, NewTask};
    use fanout::tasks::model::TaskStatus;
    use fanout_functions::lambda::control_batch;
    let svc = services().await;
    // A gc task with nothing to remove: its plan has no subtasks, so the plan step
    // merges at once and no work message is left behind.
    let created = api::create(
        &svc,
        fanout::kinds::by_name("gc").expect("gc kind"),
        NewTask {
            account_id: uuid::Uuid::new_v4(),
            description: None,
            content: serde_json::json!({"target": "events", "filters": {"sources": ["nowhere"]}}),
            result_storage_policy: None,
        },
    )
    .await
    .expect("task created");
    let plan = ControlMessage::Plan {
        task_id: created.task_id,
        stage: 0,
    };
    let event = serde_json::json!({"Records": [
        {"messageId": "plan", "body": serde_json::to_string(&plan).unwrap(),
         "attributes": {"ApproximateReceiveCount": "1"}, "eventSource": "aws:sqs"},
        {"messageId": "garbage", "body": "not a step", "eventSource": "aws:sqs"},
    ]});
    let answer = control_batch(&svc, event).await;
    assert_eq!(
        serde_json::to_value(&answer).unwrap(),
        serde_json::json!({"batchItemFailures": []})
    );
    let task = api::get(&svc, None, created.task_id).await.expect("task");
    assert_eq!(task.task_status, TaskStatus::Done);
    assert!(task.result_id.is_some());
}

/// The ClearML route under Lambda: a GET with a JSON body (base64, as API Gateway hands
/// it on), a versioned path under `ANY /clearml/{proxy+}`, ClearML's envelope; and the
/// authorizer function takes ClearML's Basic credentials and the JWT of `auth.login`,
/// handing on the same caller as the token itself.
#[tokio::test]
async fn clearml_events_answer_envelopes_and_the_authorizer_takes_basic_and_jwt() {
    use base64::Engine;
    use fanout::auth::Verdict;
    let services = services().await;
    let response = invoke("clearml", "clearml_get_with_body.json").await;
    assert_eq!(response.status(), 200, "{:?}", response.body());
    let body = json(&response);
    assert_eq!(body["meta"]["result_code"], 200);
    assert_eq!(body["meta"]["endpoint"]["name"], "tasks.create");
    assert_eq!(body["meta"]["endpoint"]["requested_version"], "2.23");
    let id = body["data"]["id"].as_str().unwrap();
    assert_eq!(id.len(), 32);
    let stored = services
        .table
        .get(
            &fanout::store::keys::clearml_task_pk(id),
            fanout::store::keys::CLEARML_DOC_SK,
        )
        .await
        .unwrap()
        .expect("the task is stored");
    assert_eq!(
        stored["account_id"].as_s().unwrap(),
        FIXTURE_ACCOUNT,
        "the account comes from the authorizer's context"
    );

    let made = fanout::auth::bootstrap(
        &services,
        fanout::auth::AccountType::User,
        None,
        "clearml authorizer test",
    )
    .await
    .unwrap();
    let fixture = authorize_fixture();
    let with = |header: &str| -> Value {
        serde_json::from_str(&fixture.replace("Bearer TOKEN", header)).unwrap()
    };
    let caller_of = |answer: Value| match Verdict::from_context(|k| answer["context"].get(k)) {
        Verdict::Allowed(caller) => caller,
        Verdict::Denied(err) => panic!("refused: {err:?}"),
    };
    let (access_key, secret_key) = fanout::clearml::dispatch::split_token(&made.token).unwrap();
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{access_key}:{secret_key}"));
    let by_basic =
        fanout_functions::lambda::authorizer_answer(&services, &with(&format!("Basic {basic}")))
            .await
            .unwrap();
    let caller = caller_of(by_basic);
    assert_eq!(caller.token_id, made.token_id);
    assert_eq!(caller.account_id, made.account_id);
    let key = fanout::clearml::jwt::signing_key(&services).await.unwrap();
    let now = chrono::Utc::now().timestamp();
    let claims =
        fanout::clearml::jwt::Claims::new(made.account_id, made.token_id, false, now, None);
    let jwt = fanout::clearml::jwt::encode(&key, &claims).unwrap();
    let by_jwt =
        fanout_functions::lambda::authorizer_answer(&services, &with(&format!("Bearer {jwt}")))
            .await
            .unwrap();
    let jwt_caller = caller_of(by_jwt);
    assert_eq!(jwt_caller.token_id, made.token_id);
    assert_eq!(jwt_caller.permissions, caller.permissions);
    assert!(
        jwt_caller.expiration_time.is_some(),
        "a JWT's caller ends with it"
    );
    // A bad secret, and a JWT signed with another key.
    let wrong = base64::engine::general_purpose::STANDARD.encode(format!("{access_key}:nope"));
    let forged = fanout::clearml::jwt::encode(b"another key", &claims).unwrap();
    for header in [format!("Basic {wrong}"), format!("Bearer {forged}")] {
        let answer = fanout_functions::lambda::authorizer_answer(&services, &with(&header))
            .await
            .unwrap();
        assert_eq!(answer["context"]["verdict"], "deny", "{header}: {answer}");
        assert_eq!(answer["context"]["error_code"], 40012);
    }
}
