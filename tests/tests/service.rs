//! Request ids, version, health, configuration and the OpenAPI document.

use fanout_e2e::{account, stack};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn request_id_is_echoed_or_generated() {
    let given = "1536751345,8b8b5937-2e9c-4e8b-a7a7-5caf86621b5a";
    let echoed = stack()
        .call_with(Method::GET, "/version", None, &[("Luna-Request-Id", given)])
        .await;
    assert_eq!(echoed.headers["luna-request-id"], given);

    let generated = stack().get("/version").await;
    let id = generated.headers["luna-request-id"].to_str().unwrap();
    assert!(fanout::request_id::RequestId::parse(id).is_some(), "{id}");

    // Errors carry it too.
    let error = stack()
        .call_with(
            Method::GET,
            "/1/faces?page=0",
            None,
            &[("Luna-Request-Id", given)],
        )
        .await;
    assert_eq!(error.status, 400);
    assert_eq!(error.headers["luna-request-id"], given);

    let bad = stack()
        .call_with(
            Method::POST,
            "/1/lists",
            Some(&json!({"account_id": account()})),
            &[("Luna-Request-Id", "42")],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.error_code(), 40001);
    assert!(bad.headers.contains_key("luna-request-id"));
}

#[tokio::test]
async fn version_and_health() {
    let version = stack().get("/version").await;
    assert_eq!(version.status, 200);
    assert_eq!(version.json["Version"]["api"], 1);
    assert!(version.json["Version"]["minor"].is_u64());

    let health = stack().get("/1/healthcheck").await;
    assert_eq!(health.status, 200, "{}", health.text);
    let components: Vec<&str> = health.json["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(d["status"], "ok", "{d}");
            d["component"].as_str().unwrap()
        })
        .collect();
    assert_eq!(components, ["dynamodb", "sqs:work", "sqs:control", "s3"]);
    assert!(health.json["execution_time"].as_f64().unwrap() >= 0.0);

    // The seed's `include_luna_services` (0 or 1): both check the same dependencies.
    for value in ["0", "1"] {
        let health = stack()
            .get(&format!("/1/healthcheck?include_luna_services={value}"))
            .await;
        assert_eq!(health.status, 200, "{}", health.text);
        assert_eq!(health.json["dependencies"].as_array().unwrap().len(), 4);
    }
    for value in ["2", "yes", "-1"] {
        let bad = stack()
            .get(&format!("/1/healthcheck?include_luna_services={value}"))
            .await;
        assert_eq!(bad.status, 400, "{value}: {}", bad.text);
    }
}

#[tokio::test]
async fn config_shows_resources_but_hides_credentials() {
    let config = stack().get("/1/config").await;
    assert_eq!(config.status, 200);
    assert_eq!(
        config.json["FANOUT_TABLE"],
        stack().services.config.table.as_str()
    );
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap();
    assert!(
        !config.text.contains(&format!("\"{secret}\"")),
        "secret leaked: {}",
        config.text
    );
    assert_eq!(
        config.json["CREDENTIALS"]["AWS_SECRET_ACCESS_KEY"],
        "******"
    );
}

#[tokio::test]
async fn docs_spec_is_yaml_json_or_html() {
    let yaml = stack()
        .call_with(
            Method::GET,
            "/1/docs/spec",
            None,
            &[("Accept", "application/x-yaml")],
        )
        .await;
    assert_eq!(yaml.status, 200);
    assert_eq!(yaml.headers["content-type"], "application/x-yaml");
    assert!(yaml.text.starts_with("openapi: 3"), "{}", &yaml.text[..40]);
    assert!(yaml.text.contains("/1/faces/{face_id}:"));
    let html = stack().get("/1/docs/spec").await;
    assert!(
        html.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(html.text.contains("<table"));
    // A JSON client gets JSON (it got the HTML page before).
    let json = stack()
        .call_with(
            Method::GET,
            "/1/docs/spec",
            None,
            &[("Accept", "application/json")],
        )
        .await;
    assert_eq!(json.status, 200);
    assert_eq!(json.headers["content-type"], "application/json");
    assert!(json.json["openapi"].as_str().unwrap().starts_with("3."));
    assert!(json.json["paths"]["/1/faces/{face_id}"].is_object());
    // A browser's Accept (HTML first, */* too) still gets the page.
    let browser = stack()
        .call_with(
            Method::GET,
            "/1/docs/spec",
            None,
            &[(
                "Accept",
                "text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8",
            )],
        )
        .await;
    assert!(browser.text.contains("<table"));
}
