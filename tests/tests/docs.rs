//! The documentation where LUNA Tasks serves it (seed 000): `GET /docs/spec` (YAML for
//! `Accept: application/x-yaml`), `GET /docs/dev` redirecting to `/docs/dev/index.html`,
//! the OpenAPI document rendered as one HTML page; all public.

use fanout_e2e::stack;
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn docs_spec_is_served_where_luna_serves_it() {
    let yaml = stack().call_as(None, Method::GET, "/docs/spec", None).await;
    assert_eq!(yaml.status, StatusCode::OK, "{}", yaml.text);
    let yaml = stack()
        .call_with(
            Method::GET,
            "/docs/spec",
            None,
            &[("Accept", "application/x-yaml")],
        )
        .await;
    assert_eq!(yaml.status, StatusCode::OK);
    assert_eq!(yaml.headers["content-type"], "application/x-yaml");
    assert!(yaml.text.starts_with("openapi: 3"), "{}", &yaml.text[..40]);
    assert!(yaml.text.contains("/docs/dev/index.html:"));
    let versioned = stack()
        .call_with(
            Method::GET,
            "/1/docs/spec",
            None,
            &[("Accept", "application/x-yaml")],
        )
        .await;
    assert_eq!(versioned.text, yaml.text, "the same document at both paths");
    let html = stack()
        .call_with(Method::GET, "/docs/spec", None, &[("Accept", "text/html")])
        .await;
    assert!(
        html.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(html.text, fanout_functions::openapi::html());
}

#[tokio::test]
async fn docs_dev_redirects_to_the_rendered_page() {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in ["/docs/dev", "/docs/dev/"] {
        let answer = client
            .get(format!("{}{path}", stack().url))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::FOUND, "{path}");
        assert_eq!(
            answer.headers()["location"],
            "/docs/dev/index.html",
            "{path}"
        );
    }
    // Followed, without a token.
    let page = stack().call_as(None, Method::GET, "/docs/dev", None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(page.text, fanout_functions::openapi::html());
    assert!(
        page.text
            .contains("<section class=\"operation\" id=\"op-get_task_result\"")
    );
}
