//! The per-token request rate limit: past its budget for the minute a token is answered
//! 429 with an error body and `Retry-After`, and other tokens are not held back. This
//! binary's gateway allows 5 requests a minute per token.

use fanout_e2e::stack;
use reqwest::{Method, StatusCode};

const LIMIT: usize = 5;

#[tokio::test]
async fn a_token_past_its_budget_is_answered_429() {
    // SAFETY: set before the stack (and any other thread of this binary) reads it.
    unsafe { std::env::set_var("FANOUT_TOKEN_REQUESTS_PER_MINUTE", LIMIT.to_string()) };
    let stack = stack();
    // The admin token made the account and the user's token: two of its five.
    let user = stack.user().await;
    let mut answers = Vec::new();
    for _ in 0..(3 * LIMIT) {
        let answer = stack
            .call_as(Some(&user.token), Method::GET, "/1/faces", None)
            .await;
        let limited = answer.status == StatusCode::TOO_MANY_REQUESTS;
        answers.push(answer);
        if limited {
            break;
        }
    }
    let last = answers.last().unwrap();
    assert_eq!(last.status, StatusCode::TOO_MANY_REQUESTS, "never limited");
    // A minute may turn during the run: at least LIMIT passed, at most two minutes' worth.
    let passed = answers.len() - 1;
    assert!((LIMIT..=2 * LIMIT).contains(&passed), "{passed} passed");
    assert!(answers[..passed].iter().all(|a| a.status == StatusCode::OK));
    assert_eq!(last.error_code(), 40018);
    let retry: u64 = last.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Another token of the same account has its own budget.
    let other = stack
        .token_for(&user.account_id, &serde_json::json!({}))
        .await;
    let answer = stack
        .call_as(Some(&other), Method::GET, "/1/faces", None)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    // The ClearML route counts the same budget and answers 429 in ClearML's envelope.
    let mut last = None;
    for _ in 0..(3 * LIMIT) {
        let answer = stack
            .call_as(
                Some(&other),
                Method::POST,
                "/clearml/tasks.get_all",
                Some(&serde_json::json!({})),
            )
            .await;
        let limited = answer.status == StatusCode::TOO_MANY_REQUESTS;
        last = Some(answer);
        if limited {
            break;
        }
    }
    let last = last.unwrap();
    assert_eq!(last.status, StatusCode::TOO_MANY_REQUESTS, "{}", last.text);
    assert_eq!(last.json["meta"]["result_code"], 429);
    assert_eq!(last.json["meta"]["error_data"]["error_code"], 40018);
    assert!(last.headers.contains_key("retry-after"));
}
