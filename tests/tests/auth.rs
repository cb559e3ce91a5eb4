//! Authentication and tenancy, over the whole route table: every route that is not
//! public refuses a request without a credential (401), with another account's token
//! (403, or 404 where the path alone names the record), with a token that lacks the
//! route's permission (403), and with an expired or a revoked token (401) — and none of
//! those requests changes anything. A route added to the table is covered by this test
//! as soon as it exists (it fails until the route has a sample request below).
//!
//! The ClearML route answers the same refusals in ClearML's envelope (HTTP status ==
//! `meta.result_code`, Fanout's code in `meta.error_data.error_code`); where ClearML
//! has its own answer (another account's task is an unknown task, 400/101) the tables
//! below say so.

use std::collections::BTreeMap;

use fanout_e2e::{Answer, Stack, User, stack};
use fanout_functions::routes::{Access, AccountIn, ROUTES, Route, Surface};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

/// A small body that passes for a JPEG.
fn jpeg() -> Vec<u8> {
    let mut bytes = vec![0u8; 64];
    bytes[..4].copy_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
    bytes
}

/// Records of one account that the refused requests aim at.
struct Target {
    owner: User,
    face: String,
    list: String,
    event: String,
    task: u64,
    token_id: String,
    /// A ClearML task of the owner.
    clearml_task: String,
}

/// The code a refusal carries: Fanout's `error_code`, or from a ClearML envelope (whose
/// `result_code` must be the HTTP status) Fanout's code in `error_data`, else ClearML's
/// subcode.
fn code_of(route: &Route, answer: &Answer) -> u64 {
    match route.surface {
        Surface::Fanout | Surface::CatchAll => answer.error_code(),
        Surface::Clearml => {
            let meta = &answer.json["meta"];
            assert_eq!(
                meta["result_code"].as_u64(),
                Some(u64::from(answer.status.as_u16())),
                "{}: not an envelope with the status: {}",
                route.name,
                answer.text
            );
            meta["error_data"]["error_code"]
                .as_u64()
                .or_else(|| meta["result_subcode"].as_u64())
                .unwrap_or_else(|| panic!("{}: no code in {}", route.name, answer.text))
        }
    }
}

/// What another account's token gets where the route's surface answers it its own way:
/// a ClearML record of another account is unknown (`tasks.edit`: 400/101).
fn foreign_outcome(route: &Route) -> Option<(u16, u64)> {
    match route.surface {
        Surface::Clearml => Some((400, 101)),
        Surface::Fanout | Surface::CatchAll => None,
    }
}

async fn target(stack: &Stack) -> Target {
    let owner = stack.user().await;
    let owner_token = owner.token.clone();
    let token = Some(owner_token.as_str());
    // Made with the owner's own token and no account_id: the token names the account.
    let face = stack
        .call_as(token, Method::POST, "/1/faces", Some(&json!({})))
        .await;
    assert_eq!(face.status, StatusCode::CREATED, "{}", face.text);
    let list = stack
        .call_as(token, Method::POST, "/1/lists", Some(&json!({})))
        .await;
    let event = stack
        .call_as(
            token,
            Method::POST,
            "/1/events",
            Some(&json!({"events": [{}]})),
        )
        .await;
    let task = stack
        .call_as(
            token,
            Method::POST,
            "/1/tasks/gc",
            Some(&json!({"content": {"target": "events", "filters": {}}})),
        )
        .await;
    assert_eq!(task.status, StatusCode::CREATED, "{}", task.text);
    let tokens = stack.call_as(token, Method::GET, "/1/tokens", None).await;
    let clearml = stack
        .call_as(
            token,
            Method::POST,
            "/clearml/tasks.create",
            Some(&json!({"name": "target", "type": "training"})),
        )
        .await;
    assert_eq!(clearml.status, StatusCode::OK, "{}", clearml.text);
    let face = face.json["face_id"].as_str().unwrap().to_string();
    let target = Target {
        face,
        list: list.json["list_id"].as_str().unwrap().to_string(),
        event: event.json["events"][0]["event_id"]
            .as_str()
            .unwrap()
            .to_string(),
        task: task.json["task_id"].as_u64().unwrap(),
        token_id: tokens.json["tokens"][0]["token_id"]
            .as_str()
            .unwrap()
            .to_string(),
        clearml_task: clearml.json["data"]["id"].as_str().unwrap().to_string(),
        owner,
    };
    // Every record is the owner's.
    for path in [
        format!("/1/faces/{}", target.face),
        format!("/1/lists/{}", target.list),
        format!("/1/events/{}", target.event),
        format!("/1/tasks/{}", target.task),
    ] {
        let answer = stack.call_as(token, Method::GET, &path, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text);
        assert_eq!(answer.json["account_id"], target.owner.account_id.as_str());
    }
    target
}

/// What one request of a route sends: path (parameters filled with the target's
/// records), query, and body.
struct Sample {
    path: String,
    body: Option<(Option<&'static str>, Vec<u8>)>,
}

/// The request a route is tried with. `account` goes where the route names its account.
fn sample(route: &Route, target: &Target, account: &str) -> Sample {
    let mut path = route.path.to_string();
    for (param, value) in [
        ("{face_id}", target.face.clone()),
        ("{list_id}", target.list.clone()),
        ("{event_id}", target.event.clone()),
        // A video task's id is a uuid: the owner's LUNA task's, which is no video task
        // (28001 when allowed).
        (
            "{task_id}",
            if route.path.starts_with("/1/video/") {
                fanout::video::task::video_task_uuid(target.task).to_string()
            } else {
                target.task.to_string()
            },
        ),
        ("{error_id}", "1".to_string()),
        ("{account_id}", target.owner.account_id.clone()),
        ("{token_id}", target.token_id.clone()),
        // The ClearML route's endpoint: a change of the owner's task.
        ("{proxy+}", "v2.23/tasks.edit".to_string()),
        // The orchestrator's routes: a problem of the owner's (none there: 40022 when
        // allowed).
        ("{collection}", "problem".to_string()),
        ("{uplet_type}", "learnuplet".to_string()),
        ("{uuid}", ORCH_SAMPLE.to_string()),
        // A stream of the owner's (none there: 40026 when allowed).
        ("{stream_id}", STREAM_SAMPLE.to_string()),
    ] {
        path = path.replace(param, &value);
    }
    assert!(
        !path.contains('{'),
        "{}: a path parameter has no sample",
        route.name
    );
    if let Access::Token {
        account: AccountIn::Query { .. },
        ..
    } = route.access
    {
        path = format!("{path}?account_id={account}");
    }
    // Required query parameters, so the sample passes the route's own checks.
    match route.name {
        "patch_stream" => path.push_str("&action=stop"),
        "delete_stream_logs" => path.push_str("&log_time__lt=2020-01-01T00:00:00Z"),
        _ => {}
    }
    let json_body = |value: Value| Some((Some("application/json"), value.to_string().into_bytes()));
    let body = match route.name {
        "create_face" | "create_list" | "create_token" | "create_upload" => {
            json_body(json!({"account_id": account}))
        }
        "create_events" => json_body(json!({"account_id": account, "events": [{}]})),
        "create_video_task" => json_body(json!({
            "deferred_task": {"enable": true},
            "video": {"key": format!("uploads/{account}/none.mp4")},
            "analytics": [{"name": "people_count"}]
        })),
        "create_stream" => json_body(json!({
            "data": {"reference": "rtsp://camera.invalid/1", "type": "stream"},
            "analytics": [{"analytic_name": "people_count", "parameters": {"parameters": {}}}]
        })),
        name if name.starts_with("create_") && name.ends_with("_task") => json_body(
            json!({"account_id": account, "content": {"target": "events", "filters": {}}}),
        ),
        "patch_face" => json_body(json!({"user_data": "changed"})),
        "patch_list" => json_body(json!({"action": "detach", "face_ids": [target.face]})),
        "put_face_avatar" | "put_event_sample" => Some((Some("image/jpeg"), jpeg())),
        "cancel_task" => None,
        "create_account" => json_body(json!({"description": "intruder"})),
        "patch_account" => json_body(json!({"account_type": "admin"})),
        "patch_token" => json_body(json!({"description": "changed"})),
        "create_orchestrator_storage" => json_body(json!({})),
        "create_orchestrator_problem" => json_body(
            json!({"uuid": ORCH_SAMPLE, "workflow": ORCH_SAMPLE, "test_dataset": [], "size_train_dataset": 1}),
        ),
        "create_orchestrator_algo" => {
            json_body(json!({"uuid": ORCH_SAMPLE, "name": "a", "problem": ORCH_SAMPLE}))
        }
        "create_orchestrator_data" => {
            json_body(json!({"uuid": ORCH_SAMPLE, "problems": ORCH_SAMPLE}))
        }
        "create_orchestrator_prediction" => {
            json_body(json!({"data": [ORCH_SAMPLE], "problem": ORCH_SAMPLE}))
        }
        "claim_orchestrator_uplet" => json_body(json!({"worker": ORCH_SAMPLE})),
        "orchestrator_learndone" => json_body(json!({"status": "failed"})),
        "orchestrator_preddone" => json_body(json!({"status": "failed"})),
        "clearml" => {
            json_body(json!({"task": target.clearml_task, "name": "changed", "force": true}))
        }
        name => {
            assert!(
                route.doc.body.is_none(),
                "{name}: a route with a body needs a sample body here"
            );
            None
        }
    };
    Sample { path, body }
}

/// The uuid the orchestrator's samples name.
const ORCH_SAMPLE: &str = "5b2a7c4e-0d3f-4b8e-9a61-2f7d8c9e0a1b";

/// The stream id the stream routes' samples name.
const STREAM_SAMPLE: &str = "0c6f3d2a-7b1e-4f5a-8d9c-3e2b1a0f4c6d";

async fn send(stack: &Stack, route: &Route, sample: &Sample, token: Option<&str>) -> Answer {
    let (content_type, bytes) = sample.body.clone().unwrap_or((None, Vec::new()));
    stack
        .send_as(
            token,
            route.method.clone(),
            &sample.path,
            content_type,
            bytes,
        )
        .await
}

/// Everything stored for the owner, as the admin reads it: compared before and after.
async fn snapshot(stack: &Stack, target: &Target) -> Value {
    let acc = &target.owner.account_id;
    let mut out = serde_json::Map::new();
    for path in [
        format!("/1/faces/{}?account_id={acc}", target.face),
        format!("/1/faces?account_id={acc}"),
        format!("/1/faces/{}/avatar?account_id={acc}", target.face),
        format!("/1/lists/{}?account_id={acc}", target.list),
        format!("/1/lists?account_id={acc}"),
        format!("/1/events/{}?account_id={acc}", target.event),
        format!("/1/events?account_id={acc}"),
        format!("/1/events/{}/sample?account_id={acc}", target.event),
        format!("/1/tasks/{}?account_id={acc}", target.task),
        format!("/1/tasks?account_id={acc}"),
        format!("/1/tokens?account_id={acc}&page_size=100"),
        format!("/1/accounts/{acc}"),
    ] {
        let answer = stack.get(&path).await;
        out.insert(path, json!([answer.status.as_u16(), answer.json]));
    }
    for kind in ["FACE", "LIST", "EVENT", "TOKEN"] {
        out.insert(kind.into(), json!(stack.stored(acc, kind).await));
    }
    let clearml = stack
        .services
        .table
        .get(
            &fanout::store::keys::clearml_task_pk(&target.clearml_task),
            fanout::store::keys::CLEARML_DOC_SK,
        )
        .await
        .unwrap()
        .expect("the owner's ClearML task");
    out.insert(
        "clearml_task".into(),
        json!(format!("{:?}", clearml.get("doc"))),
    );
    Value::Object(out)
}

/// A token of the owner's account with every permission but `resource`'s `action`.
async fn token_without(stack: &Stack, target: &Target, route: &Route) -> Option<String> {
    let Access::Token {
        resource, action, ..
    } = route.access
    else {
        return None;
    };
    let mut permissions = fanout::auth::Permissions::all();
    permissions.0.get_mut(&resource).unwrap().remove(&action);
    Some(
        stack
            .token_for(
                &target.owner.account_id,
                &json!({"permissions": permissions}),
            )
            .await,
    )
}

/// One refusal as the table records it.
fn outcome(route: &Route, answer: &Answer) -> String {
    format!("{} {}", answer.status.as_u16(), code_of(route, answer))
}

#[tokio::test]
async fn every_route_refuses_what_the_token_does_not_allow_and_changes_nothing() {
    let stack = stack();
    let target = target(stack).await;
    let intruder = stack.user().await;
    // An expired token of the owner: made valid for two seconds.
    let soon = chrono::Utc::now() + chrono::Duration::seconds(2);
    let expired = stack
        .token_for(
            &target.owner.account_id,
            &json!({"expiration_time": soon.to_rfc3339()}),
        )
        .await;
    // A revoked token of the owner.
    let revoked = stack.token_for(&target.owner.account_id, &json!({})).await;
    let revoked_id = fanout::auth::tokens::parse_token(&revoked).unwrap().0;
    let revoke = stack
        .call_as(
            Some(&target.owner.token),
            Method::DELETE,
            &format!("/1/tokens/{revoked_id}"),
            None,
        )
        .await;
    assert_eq!(revoke.status, StatusCode::NO_CONTENT, "{}", revoke.text);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;

    // Tokens that lack one route's permission each, made before the snapshot.
    let mut lacking_tokens = BTreeMap::new();
    for route in ROUTES.iter().filter(|r| !r.is_public()) {
        if let Some(token) = token_without(stack, &target, route).await {
            lacking_tokens.insert(route.name, token);
        }
    }
    let before = snapshot(stack, &target).await;
    let mut table: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut tried = 0;
    for route in ROUTES.iter().filter(|r| !r.is_public()) {
        tried += 1;
        let aimed = sample(route, &target, &target.owner.account_id);
        let mut row = Vec::new();

        let none = send(stack, route, &aimed, None).await;
        assert_eq!(
            none.status,
            StatusCode::UNAUTHORIZED,
            "{}: {}",
            route.name,
            none.text
        );
        assert_eq!(code_of(route, &none), 40011, "{}", route.name);
        row.push(outcome(route, &none));

        // Another account's token, aimed at the owner's records.
        let foreign = send(stack, route, &aimed, Some(&intruder.token)).await;
        let expected = match route.access {
            _ if foreign_outcome(route).is_some() => foreign_outcome(route).unwrap(),
            Access::Admin => (403, 40016),
            Access::Token {
                account: AccountIn::Nowhere,
                resource,
                ..
            } => {
                assert_eq!(resource, fanout::auth::Resource::Tokens, "{}", route.name);
                (404, 40020)
            }
            _ => (403, 40015),
        };
        assert_eq!(
            (foreign.status.as_u16(), code_of(route, &foreign)),
            expected,
            "{}: {}",
            route.name,
            foreign.text
        );
        row.push(outcome(route, &foreign));
        // Leaving the account out, the intruder acts on its own account, where the
        // owner's records do not exist.
        if let Access::Token {
            account: AccountIn::Query { .. },
            ..
        } = route.access
            && route.path.contains('{')
            // A collection named in the path is no record: the intruder's own is listed.
            && route.name != "list_orchestrator_documents"
        {
            let own = sample(route, &target, &intruder.account_id);
            let own = send(stack, route, &own, Some(&intruder.token)).await;
            assert_eq!(
                own.status,
                StatusCode::NOT_FOUND,
                "{}: {}",
                route.name,
                own.text
            );
            row.push(outcome(route, &own));
        } else {
            row.push("-".into());
        }

        let lacking = match lacking_tokens.get(route.name) {
            Some(token) => send(stack, route, &aimed, Some(token)).await,
            // Admin routes: the owner's own full token is a user account's.
            None => send(stack, route, &aimed, Some(&target.owner.token)).await,
        };
        let expected = if route.access == Access::Admin {
            40016
        } else {
            40014
        };
        assert_eq!(
            lacking.status,
            StatusCode::FORBIDDEN,
            "{}: {}",
            route.name,
            lacking.text
        );
        assert_eq!(code_of(route, &lacking), expected, "{}", route.name);
        row.push(outcome(route, &lacking));

        for (token, code) in [(&expired, 40013), (&revoked, 40012)] {
            let answer = send(stack, route, &aimed, Some(token)).await;
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{}: {}",
                route.name,
                answer.text
            );
            assert_eq!(code_of(route, &answer), code, "{}", route.name);
            row.push(outcome(route, &answer));
        }
        table.insert(route.name, row);
    }
    let after = snapshot(stack, &target).await;
    assert_eq!(
        before, after,
        "a refused request changed the owner's records"
    );
    let public: Vec<&str> = ROUTES
        .iter()
        .filter(|r| r.is_public())
        .map(|r| r.name)
        .collect();
    assert_eq!(
        public,
        [
            "version",
            "healthcheck",
            "docs_spec",
            "docs_spec_root",
            "docs_dev",
            "docs_dev_page",
            "catch_all"
        ],
        "the public routes"
    );
    assert_eq!(tried, ROUTES.len() - public.len());

    // The table RELIABILITY.md shows (run with --nocapture to print it).
    println!(
        "| route | no credential | other account's token | other token, own account | permission missing | expired | revoked |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, row) in &table {
        println!("| {name} | {} |", row.join(" | "));
    }
}

#[tokio::test]
async fn the_owners_token_reads_every_route_it_may() {
    // The refusals above come from authentication, not from bad samples: the owner's
    // own token gets past it on every read route.
    let stack = stack();
    let target = target(stack).await;
    for route in ROUTES
        .iter()
        .filter(|r| !r.is_public() && r.method == Method::GET)
    {
        let aimed = sample(route, &target, &target.owner.account_id);
        let answer = send(stack, route, &aimed, Some(&target.owner.token)).await;
        let status = answer.status.as_u16();
        if route.access == Access::Admin {
            assert_eq!(status, 403, "{}", route.name);
        } else {
            assert!(
                ![401, 403, 429].contains(&status),
                "{}: {}",
                route.name,
                answer.text
            );
        }
    }
}

#[tokio::test]
async fn public_routes_need_no_token_and_config_needs_an_admin() {
    let stack = stack();
    for path in [
        "/version",
        "/1/healthcheck",
        "/1/docs/spec",
        "/docs/spec",
        "/docs/dev/index.html",
    ] {
        let answer = stack.call_as(None, Method::GET, path, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
    }
    let user = stack.user().await;
    let config = stack
        .call_as(Some(&user.token), Method::GET, "/1/config", None)
        .await;
    assert_eq!(config.status, StatusCode::FORBIDDEN);
    assert_eq!(config.error_code(), 40016);
    assert_eq!(stack.get("/1/config").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_token_is_shown_once_and_stored_only_as_a_hash() {
    let stack = stack();
    let user = stack.user().await;
    let made = stack
        .call_as(
            Some(&user.token),
            Method::POST,
            "/1/tokens",
            Some(&json!({"description": "ci"})),
        )
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.text);
    let token = made.json["token"].as_str().unwrap();
    let token_id = made.json["token_id"].as_str().unwrap();
    let (_, secret) = fanout::auth::tokens::parse_token(token).unwrap();
    for path in [format!("/1/tokens/{token_id}"), "/1/tokens".to_string()] {
        let answer = stack
            .call_as(Some(&user.token), Method::GET, &path, None)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        assert!(!answer.text.contains(secret), "{path} shows the secret");
        assert!(!answer.text.contains("sha256"), "{path} shows the hash");
    }
    // Nor does the stored item hold the secret.
    let item = stack
        .services
        .table
        .get(&format!("TOKEN#{token_id}"), "TOKEN")
        .await
        .unwrap()
        .unwrap();
    let stored = format!("{item:?}");
    assert!(!stored.contains(secret));
    assert!(stored.contains("secret_sha256"));
    // The new token works, for the same account.
    let listed = stack
        .call_as(Some(token), Method::GET, "/1/faces", None)
        .await;
    assert_eq!(listed.status, StatusCode::OK);
}

#[tokio::test]
async fn a_user_token_grants_no_more_than_it_has() {
    let stack = stack();
    let user = stack.user().await;
    let narrow = stack
        .token_for(
            &user.account_id,
            &json!({"permissions": {"faces": ["view"], "tokens": ["view", "creation"]},
                    "expiration_time": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339()}),
        )
        .await;
    for body in [
        json!({"permissions": {"faces": ["view", "deletion"]}}),
        json!({"permissions": {"faces": ["view"]},
               "expiration_time": (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339()}),
    ] {
        let answer = stack
            .call_as(Some(&narrow), Method::POST, "/1/tokens", Some(&body))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{body}: {}",
            answer.text
        );
        assert_eq!(answer.error_code(), 40014);
    }
    // Within its rights it may, and the new token inherits the expiration.
    let answer = stack
        .call_as(
            Some(&narrow),
            Method::POST,
            "/1/tokens",
            Some(&json!({"permissions": {"faces": ["view"]}})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let id = answer.json["token_id"].as_str().unwrap();
    let shown = stack
        .call_as(Some(&narrow), Method::GET, &format!("/1/tokens/{id}"), None)
        .await;
    assert!(shown.json["expiration_time"].is_string(), "{}", shown.text);
    assert_eq!(shown.json["permissions"], json!({"faces": ["view"]}));
    // Bad input changes nothing.
    let before = stack.stored(&user.account_id, "TOKEN").await;
    for body in [
        json!({"expiration_time": "tomorrow"}),
        json!({"expiration_time": "2001-01-01T00:00:00Z"}),
        json!({"permissions": {"robots": ["view"]}}),
        json!({"permissions": {"faces": ["fly"]}}),
        json!({"colour": "red"}),
    ] {
        let answer = stack
            .call_as(Some(&user.token), Method::POST, "/1/tokens", Some(&body))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            answer.text
        );
        assert_eq!(answer.error_code(), 12027);
    }
    assert_eq!(stack.stored(&user.account_id, "TOKEN").await, before);
}

#[tokio::test]
async fn users_see_their_own_tasks_and_admins_all() {
    let stack = stack();
    let a = stack.user().await;
    let b = stack.user().await;
    let body = json!({"content": {"target": "events", "filters": {}}});
    let task_a = stack
        .call_as(Some(&a.token), Method::POST, "/1/tasks/gc", Some(&body))
        .await
        .json["task_id"]
        .as_u64()
        .unwrap();
    let task_b = stack
        .call_as(Some(&b.token), Method::POST, "/1/tasks/gc", Some(&body))
        .await
        .json["task_id"]
        .as_u64()
        .unwrap();
    let listed = stack
        .call_as(Some(&a.token), Method::GET, "/1/tasks?page_size=100", None)
        .await;
    let ids: Vec<u64> = listed.json["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert_eq!(t["account_id"], a.account_id.as_str());
            t["task_id"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(ids, [task_a]);
    let other = stack
        .call_as(
            Some(&a.token),
            Method::GET,
            &format!("/1/tasks/{task_b}"),
            None,
        )
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "{}", other.text);
    // The admin's view without account_id: both.
    let all = stack.get("/1/tasks?page_size=100").await;
    let ids: Vec<u64> = all.json["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["task_id"].as_u64().unwrap())
        .collect();
    assert!(ids.contains(&task_a) && ids.contains(&task_b), "{ids:?}");
    assert_eq!(
        stack.get(&format!("/1/tasks/{task_b}")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn deleting_an_account_revokes_its_tokens() {
    let stack = stack();
    let user = stack.user().await;
    let ok = stack
        .call_as(Some(&user.token), Method::GET, "/1/faces", None)
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let deleted = stack
        .delete(&format!("/1/accounts/{}", user.account_id))
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
    let refused = stack
        .call_as(Some(&user.token), Method::GET, "/1/faces", None)
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.error_code(), 40012);
    assert_eq!(stack.stored(&user.account_id, "TOKEN").await, 0);
    let gone = stack.get(&format!("/1/accounts/{}", user.account_id)).await;
    assert_eq!(gone.error_code(), 40019);
}

#[tokio::test]
async fn bodies_over_a_routes_limit_are_refused_before_anything_happens() {
    let stack = stack();
    let acc = fanout_e2e::account();
    for route in ROUTES.iter().filter(|r| r.method != Method::GET) {
        let limit = route.body_limit();
        let path = route
            .path
            .replace("{face_id}", &Uuid::new_v4().to_string())
            .replace("{list_id}", &Uuid::new_v4().to_string())
            .replace("{event_id}", &Uuid::new_v4().to_string())
            .replace("{task_id}", "1")
            .replace("{account_id}", &acc)
            .replace("{token_id}", &Uuid::new_v4().to_string())
            .replace("{stream_id}", &Uuid::new_v4().to_string())
            .replace("{proxy+}", "events.add_batch");
        let body = vec![b' '; limit + 1];
        let answer = stack
            .send_bytes(route.method.clone(), &path, Some("application/json"), body)
            .await;
        assert_eq!(
            answer.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{}: {}",
            route.name,
            answer.text
        );
        assert_eq!(code_of(route, &answer), 40017, "{}", route.name);
    }
    for kind in ["FACE", "LIST", "EVENT", "TOKEN"] {
        assert_eq!(stack.stored(&acc, kind).await, 0);
    }
}

/// ClearML's login: `Basic base64(access_key:secret_key)` (a Fanout token in two) gets a
/// JWT; the JWT then works like its token on the ClearML route (and on Fanout's own,
/// through the one authorizer), a forged one does not, and revoking the token ends it.
#[tokio::test]
async fn a_clearml_login_gives_a_jwt_that_lives_and_dies_with_its_token() {
    use base64::Engine;
    let stack = stack();
    let user = stack.user().await;
    let token = stack.token_for(&user.account_id, &json!({})).await;
    let (access_key, secret_key) = fanout::clearml::dispatch::split_token(&token).unwrap();
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{access_key}:{secret_key}"));
    let client = reqwest::Client::new();
    let login = |authorization: String| {
        let client = client.clone();
        let url = format!("{}/clearml/auth.login", stack.url);
        async move {
            let response = client
                .get(url)
                .header("Authorization", authorization)
                .send()
                .await
                .unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = login(format!("Basic {basic}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["meta"]["result_code"], 200);
    let jwt = body["data"]["token"].as_str().unwrap().to_string();
    let (status, body) = login(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{access_key}:wrong"))
    ))
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["meta"]["error_data"]["error_code"], 40012);

    let list = stack
        .call_as(
            Some(&jwt),
            Method::POST,
            "/clearml/v2.23/tasks.get_all",
            Some(&json!({})),
        )
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let faces = stack
        .call_as(Some(&jwt), Method::GET, "/1/faces", None)
        .await;
    assert_eq!(faces.status, StatusCode::OK, "{}", faces.text);
    // Another signature.
    let mut parts: Vec<&str> = jwt.split('.').collect();
    parts[2] = "AAAA";
    let forged = parts.join(".");
    let refused = stack
        .call_as(
            Some(&forged),
            Method::POST,
            "/clearml/tasks.get_all",
            Some(&json!({})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.text);
    assert_eq!(refused.json["meta"]["error_data"]["error_code"], 40012);
    // Revoked: the JWT goes with it.
    let token_id = fanout::auth::tokens::parse_token(&token).unwrap().0;
    let revoke = stack
        .call_as(
            Some(&user.token),
            Method::DELETE,
            &format!("/1/tokens/{token_id}"),
            None,
        )
        .await;
    assert_eq!(revoke.status, StatusCode::NO_CONTENT, "{}", revoke.text);
    let after = stack
        .call_as(
            Some(&jwt),
            Method::POST,
            "/clearml/tasks.get_all",
            Some(&json!({})),
        )
        .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED, "{}", after.text);
    assert_eq!(after.json["meta"]["error_data"]["error_code"], 40012);
    assert_eq!(after.json["meta"]["endpoint"]["name"], "tasks.get_all");
}
