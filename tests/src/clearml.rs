//! A ClearML client of the surface under `/clearml/`, for the tests that speak it: every
//! answer checked to be ClearML's envelope with its status.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{Answer, Stack, stack};

/// A ClearML client of a fresh account.
pub struct Client {
    /// The stack it speaks to.
    pub stack: &'static Stack,
    /// The account's token.
    pub token: String,
}

impl Client {
    /// A client of a fresh account of the shared stack.
    pub async fn new() -> Client {
        let stack = stack();
        let user = stack.user().await;
        Client {
            stack,
            token: user.token,
        }
    }

    /// Calls `endpoint` with `body` (POST), checking the envelope.
    pub async fn call(&self, endpoint: &str, body: Value) -> Answer {
        let answer = self
            .stack
            .call_as(
                Some(&self.token),
                Method::POST,
                &format!("/clearml/v2.23/{endpoint}"),
                Some(&body),
            )
            .await;
        let meta = &answer.json["meta"];
        assert_eq!(
            meta["result_code"].as_u64(),
            Some(u64::from(answer.status.as_u16())),
            "{endpoint}: not an envelope with the status: {}",
            answer.text
        );
        assert_eq!(meta["endpoint"]["name"], endpoint, "{}", answer.text);
        answer
    }

    /// The `data` of a call that must succeed.
    pub async fn ok(&self, endpoint: &str, body: Value) -> Value {
        let answer = self.call(endpoint, body).await;
        assert_eq!(answer.status, StatusCode::OK, "{endpoint}: {}", answer.text);
        answer.json["data"].clone()
    }

    /// `(code, subcode)` of a call that must fail.
    pub async fn err(&self, endpoint: &str, body: Value) -> (u64, u64) {
        let answer = self.call(endpoint, body).await;
        assert_ne!(answer.status, StatusCode::OK, "{endpoint}: {}", answer.text);
        let meta = &answer.json["meta"];
        (
            meta["result_code"].as_u64().unwrap(),
            meta["result_subcode"].as_u64().unwrap(),
        )
    }

    /// A new task named `name`; its id.
    pub async fn task(&self, name: &str) -> String {
        let made = self
            .ok("tasks.create", json!({"name": name, "type": "training"}))
            .await;
        made["id"].as_str().unwrap().to_string()
    }

    /// The status of `task`.
    pub async fn status(&self, task: &str) -> String {
        let got = self.ok("tasks.get_by_id", json!({"task": task})).await;
        got["task"]["status"].as_str().unwrap().to_string()
    }

    /// The id of the account's default queue.
    pub async fn default_queue(&self) -> String {
        let got = self.ok("queues.get_default", json!({})).await;
        got["id"].as_str().unwrap().to_string()
    }

    /// Takes the run messages of `queue` off the work queue (others are left to come back),
    /// waiting up to a few seconds for `wanted` of them.
    pub async fn run_messages(&self, queue: &str, wanted: usize) -> usize {
        let svc = &self.stack.services;
        let mut found = 0;
        for _ in 0..20 {
            let out = svc
                .aws
                .sqs
                .receive_message()
                .queue_url(&svc.config.work_queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(1)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            for message in out.messages.unwrap_or_default() {
                if message.body().unwrap_or_default().contains(queue) {
                    found += 1;
                    svc.aws
                        .sqs
                        .delete_message()
                        .queue_url(&svc.config.work_queue_url)
                        .receipt_handle(message.receipt_handle().unwrap())
                        .send()
                        .await
                        .unwrap();
                }
            }
            if found >= wanted {
                break;
            }
        }
        found
    }
}
