//! The ClearML surface over HTTP, at the gateway over the emulator: the envelope on
//! every answer, the status machine through the calls, queue pops under concurrency,
//! compare-and-set writes, workers' expiry, events by the batch, and the `*_many` forms.
//! (The real clients run in tests/clearml/, `make clearml`.)

use fanout_e2e::clearml::Client;
use fanout_e2e::stack;
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn every_answer_is_an_envelope_with_its_status() {
    let stack = stack();
    let client = Client::new().await;
    for (method, path, token, status) in [
        (Method::GET, "/clearml/tasks.nothing", true, 404),
        (Method::DELETE, "/clearml/tasks.get_all", true, 405),
        (Method::GET, "/clearml/v2.5/x/y/tasks.get_all", true, 404),
        (Method::POST, "/clearml/tasks.get_all", false, 401),
    ] {
        let token = token.then_some(client.token.as_str());
        let answer = stack.call_as(token, method.clone(), path, None).await;
        assert_eq!(
            answer.status.as_u16(),
            status,
            "{method} {path}: {}",
            answer.text
        );
        assert_eq!(
            answer.json["meta"]["result_code"], status,
            "{}",
            answer.text
        );
        assert!(answer.json["meta"]["id"].is_string());
        assert!(answer.json["data"].is_object());
    }
    // A JSON body on GET, and query arguments merged in.
    let task = client.task("get-with-body").await;
    let body = json!({"task": task}).to_string();
    let answer = stack
        .send_as(
            Some(&client.token),
            Method::GET,
            "/clearml/tasks.get_by_id",
            Some("application/json"),
            body.into_bytes(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let answer = stack
        .call_as(
            Some(&client.token),
            Method::PUT,
            &format!("/clearml/tasks.get_by_id?task={task}"),
            None,
        )
        .await;
    assert_eq!(
        answer.json["data"]["task"]["id"],
        task.as_str(),
        "{}",
        answer.text
    );
    // A malformed body.
    let answer = stack
        .send_as(
            Some(&client.token),
            Method::POST,
            "/clearml/tasks.get_by_id",
            Some("application/json"),
            b"{nope".to_vec(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text);
    assert_eq!(answer.json["meta"]["result_subcode"], 12);
}

#[tokio::test]
async fn the_status_machine_through_the_calls() {
    let c = Client::new().await;
    let queue = c.default_queue().await;
    let task = c.task("machine").await;
    // created -> completed is not allowed; with force it is.
    assert_eq!(
        c.err("tasks.completed", json!({"task": task})).await,
        (400, 110)
    );
    assert_eq!(c.status(&task).await, "created");
    // A name is no queue id (the SDK relies on it).
    assert_eq!(
        c.err("queues.get_by_id", json!({"queue": "default"})).await,
        (400, 701)
    );
    let queued = c
        .ok("tasks.enqueue", json!({"task": task, "queue": queue}))
        .await;
    assert_eq!(queued["queued"], 1);
    assert_eq!(queued["fields"]["status"], "queued");
    assert_eq!(
        c.err("tasks.enqueue", json!({"task": task, "queue": queue}))
            .await,
        (400, 706)
    );
    let popped = c.ok("queues.get_next_task", json!({"queue": queue})).await;
    assert_eq!(popped["entry"]["task"], task.as_str());
    assert_eq!(
        c.ok("queues.get_next_task", json!({"queue": queue})).await,
        json!({})
    );
    c.ok("tasks.started", json!({"task": task, "force": true}))
        .await;
    // Same-state changes are allowed (the task's own SDK sends started again).
    let again = c.ok("tasks.started", json!({"task": task})).await;
    assert_eq!(again["started"], 0);
    assert_eq!(
        c.err("tasks.enqueue", json!({"task": task, "queue": queue}))
            .await,
        (400, 110)
    );
    // stop with a worker reporting: "stopping", the status stays.
    c.ok(
        "workers.status_report",
        json!({"worker": "w:0", "timestamp": 1, "task": task, "queues": [queue]}),
    )
    .await;
    let stop = c.ok("tasks.stop", json!({"task": task})).await;
    assert_eq!(stop["fields"]["status_message"], "stopping");
    assert_eq!(c.status(&task).await, "in_progress");
    c.ok("tasks.stopped", json!({"task": task})).await;
    assert_eq!(c.status(&task).await, "stopped");
    c.ok("tasks.close", json!({"task": task})).await;
    c.ok("tasks.publish", json!({"task": task})).await;
    assert_eq!(c.status(&task).await, "published");
    // Published is final: reset only with force; delete only when created.
    assert_eq!(
        c.err("tasks.reset", json!({"task": task})).await,
        (400, 110)
    );
    assert_eq!(
        c.err("tasks.delete", json!({"task": task})).await,
        (400, 123)
    );
    c.ok("tasks.reset", json!({"task": task, "force": true}))
        .await;
    let reset = c.ok("tasks.get_by_id", json!({"task": task})).await;
    assert_eq!(reset["task"]["status"], "created");
    assert_eq!(reset["task"]["last_worker"], "");
    c.ok("tasks.delete", json!({"task": task})).await;
    assert_eq!(
        c.err("tasks.get_by_id", json!({"task": task})).await,
        (400, 101)
    );

    // A queued development task is stopped at once, and leaves its queue.
    let dev = c
        .ok(
            "tasks.create",
            json!({"name": "dev", "type": "training", "system_tags": ["development"]}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    c.ok("tasks.enqueue", json!({"task": dev})).await;
    let got = c.ok("tasks.get_by_id", json!({"task": dev})).await;
    assert_eq!(
        got["task"]["system_tags"],
        json!([]),
        "enqueue drops development"
    );
    assert_eq!(got["task"]["execution"]["queue"], queue.as_str());
    c.ok("tasks.stop", json!({"task": dev})).await;
    assert_eq!(c.status(&dev).await, "stopped");
    assert_eq!(
        c.ok("queues.get_num_entries", json!({"queue": queue}))
            .await["num"],
        0
    );
}

/// Eight pollers pop one queue of 30 tasks at once: every task comes out exactly once.
#[tokio::test]
async fn concurrent_pops_hand_each_task_out_once() {
    let c = Client::new().await;
    let queue = c.ok("queues.create", json!({"name": "race"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut tasks = Vec::new();
    for i in 0..30 {
        let task = c.task(&format!("race-{i}")).await;
        c.ok("tasks.enqueue", json!({"task": task, "queue": queue}))
            .await;
        tasks.push(task);
    }
    let pollers = (0..8).map(|_| async {
        let mut got = Vec::new();
        loop {
            let popped = c.ok("queues.get_next_task", json!({"queue": queue})).await;
            match popped["entry"]["task"].as_str() {
                Some(task) => got.push(task.to_string()),
                None => return got,
            }
        }
    });
    let mut popped: Vec<String> = join_all(pollers).await.into_iter().flatten().collect();
    popped.sort();
    tasks.sort();
    assert_eq!(popped, tasks, "each task exactly once");
}

/// Concurrent changes of one task: every status change is checked against the status
/// it finds and written only if that status still holds, so of two agents claiming the
/// same queued task with `started` (not forced) and `dequeue`, the task ends in one
/// consistent state; concurrent edits of other fields all land.
#[tokio::test]
async fn concurrent_writes_of_one_task_lose_nothing() {
    let c = Client::new().await;
    let task = c.task("cas").await;
    // Twenty concurrent pings and runtime edits: all land, none is lost.
    let edits = (0..10).map(|i| {
        let c = &c;
        let task = task.clone();
        async move {
            c.ok("tasks.ping", json!({"task": task})).await;
            c.ok(
                "tasks.edit_hyper_params",
                json!({"task": task, "hyperparams": [{"section": "S", "name": format!("p{i}"), "value": i.to_string()}]}),
            )
            .await;
        }
    });
    join_all(edits).await;
    let got = c
        .ok("tasks.get_hyper_params", json!({"tasks": [task]}))
        .await;
    assert_eq!(
        got["params"][0]["hyperparams"].as_array().unwrap().len(),
        10,
        "{got}"
    );
    // Racing status changes: each answers 200, 110 or 121, and the task is in one of the
    // statuses the winners wrote.
    let racers = [
        "tasks.started",
        "tasks.failed",
        "tasks.started",
        "tasks.failed",
    ]
    .map(|e| {
        let c = &c;
        let task = task.clone();
        async move { (e, c.call(e, json!({"task": task})).await) }
    });
    let mut winners = Vec::new();
    for (endpoint, answer) in join_all(racers).await {
        let sub = answer.json["meta"]["result_subcode"].as_u64().unwrap();
        assert!(
            answer.status == StatusCode::OK || [110, 121].contains(&sub),
            "{endpoint}: {}",
            answer.text
        );
        if answer.status == StatusCode::OK {
            winners.push(answer.json["data"]["fields"]["status"].clone());
        }
    }
    let status = c.status(&task).await;
    assert!(!winners.is_empty());
    assert!(
        winners.iter().any(|w| w.is_null() || *w == json!(status)),
        "{status} not written by a winner: {winners:?}"
    );
}

#[tokio::test]
async fn workers_expire_and_list_their_queues() {
    let c = Client::new().await;
    let queue = c.default_queue().await;
    assert_eq!(
        c.err(
            "workers.register",
            json!({"worker": "w:1", "queues": ["nope"]})
        )
        .await,
        (400, 701)
    );
    c.ok(
        "workers.register",
        json!({"worker": "short:0", "queues": [queue], "timeout": 3}),
    )
    .await;
    c.ok(
        "workers.register",
        json!({"worker": "long:0", "queues": [queue]}),
    )
    .await;
    let ids = |all: Value| -> Vec<String> {
        let mut ids: Vec<String> = all["workers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let all = c.ok("workers.get_all", json!({"last_seen": 0})).await;
    assert_eq!(all["workers"][0]["queues"][0]["id"], queue.as_str());
    assert_eq!(ids(all), ["long:0", "short:0"]);
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_eq!(ids(c.ok("workers.get_all", json!({})).await), ["long:0"]);
    // Unregistering twice, or a worker never registered, is fine.
    c.ok("workers.unregister", json!({"worker": "long:0"}))
        .await;
    c.ok(
        "workers.unregister",
        json!({"worker": "long:0", "queues": [queue]}),
    )
    .await;
    assert_eq!(c.ok("workers.get_count", json!({})).await["count"], 0);
    assert_eq!(
        c.err("workers.get_runtime_properties", json!({"worker": "x"}))
            .await,
        (404, 0)
    );
}

/// A batch larger than a table item is stored in chunks and read back a page at a time,
/// newest page first.
#[tokio::test]
async fn logs_are_stored_by_the_batch_and_paged_back() {
    let stack = stack();
    let c = Client::new().await;
    let task = c.task("logs").await;
    let line = "x".repeat(1000);
    let mut body = String::new();
    for i in 0..700 {
        body.push_str(
            &json!({"type": "log", "task": task, "level": "INFO", "worker": "w", "msg": format!("{i} {line}"), "timestamp": 1_000 + i, "method": "get"})
                .to_string(),
        );
        body.push('\n');
    }
    let answer = stack
        .send_as(
            Some(&c.token),
            Method::POST,
            "/clearml/events.add_batch",
            Some("application/json-lines"),
            body.into_bytes(),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["data"]["added"], 700);
    // Every page size, both directions: each event once, in time order.
    for batch in [300, 289, 290, 97, 700, 1000] {
        for earlier in [true, false] {
            let seen = read_log(&c, &task, batch, earlier).await;
            assert_eq!(
                seen,
                (0..700).collect::<Vec<u64>>(),
                "batch {batch}, earlier {earlier}"
            );
        }
    }
    // Another account's task takes no events.
    let other = Client::new().await;
    let line = json!({"type": "log", "task": task, "msg": "intruder"}).to_string();
    let answer = stack
        .send_as(
            Some(&other.token),
            Method::POST,
            "/clearml/events.add_batch",
            Some("application/json-lines"),
            line.into_bytes(),
        )
        .await;
    assert_eq!(answer.json["data"]["added"], 0, "{}", answer.text);
    assert_eq!(answer.json["data"]["errors"], 1);
}

/// A task's log read page by page (`navigate_earlier`: from the newest back), as the
/// numbers the test's messages start with, oldest first.
async fn read_log(c: &Client, task: &str, batch: usize, earlier: bool) -> Vec<u64> {
    let mut seen = Vec::new();
    let mut scroll: Option<String> = None;
    for _ in 0..1000 {
        let mut args =
            json!({"task": task, "batch_size": batch, "order": "asc", "navigate_earlier": earlier});
        if let Some(scroll) = &scroll {
            args["scroll_id"] = json!(scroll);
        }
        let page = c.ok("events.get_task_log", args).await;
        assert_eq!(page["total"], 700);
        let events = page["events"].as_array().unwrap();
        assert!(events.len() <= batch);
        assert_eq!(page["returned"], events.len());
        if events.is_empty() {
            return seen;
        }
        let numbers: Vec<u64> = events
            .iter()
            .map(|e| {
                e["msg"]
                    .as_str()
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        if earlier {
            seen.splice(0..0, numbers);
        } else {
            seen.extend(numbers);
        }
        scroll = page["scroll_id"].as_str().map(String::from);
    }
    panic!("the log does not end");
}

#[tokio::test]
async fn many_forms_answer_succeeded_and_failed() {
    let c = Client::new().await;
    let a = c.task("many-a").await;
    let b = c.task("many-b").await;
    let missing = "0".repeat(32);
    let done = c
        .ok("tasks.enqueue_many", json!({"ids": [a, b, missing]}))
        .await;
    let succeeded: Vec<&str> = done["succeeded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(succeeded, [a.as_str(), b.as_str()]);
    assert_eq!(done["failed"][0]["id"], missing.as_str());
    assert_eq!(done["failed"][0]["error"]["codes"], json!([400, 101]));
    let stopped = c.ok("tasks.stop_many", json!({"ids": [a, b]})).await;
    assert_eq!(
        stopped["succeeded"].as_array().unwrap().len(),
        2,
        "{stopped}"
    );
    assert_eq!(c.status(&a).await, "stopped");
    let deleted = c
        .ok("tasks.delete_many", json!({"ids": [a], "force": true}))
        .await;
    assert_eq!(deleted["succeeded"][0]["deleted"], true);
    // A clone of b: a new created task with b's fields and parent, out of any queue.
    let clone = c
        .ok(
            "tasks.clone",
            json!({"task": b, "new_task_name": "many-b-clone"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let cloned = c.ok("tasks.get_by_id", json!({"task": clone})).await["task"].clone();
    assert_eq!(cloned["status"], "created");
    assert_eq!(cloned["name"], "many-b-clone");
    assert_eq!(cloned["parent"], b.as_str());
    assert_eq!(cloned["execution"].get("queue"), None);
    // Listing with filters, projection and order.
    let listed = c
        .ok(
            "tasks.get_all",
            json!({"name": "^many\\-b$", "status": ["stopped"], "only_fields": ["name", "execution.queue"], "order_by": ["-name"]}),
        )
        .await;
    assert_eq!(listed["tasks"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["tasks"][0]["name"], "many-b");
    assert!(listed["tasks"][0]["execution"]["queue"].is_string());
    assert!(listed["tasks"][0].get("status").is_none());
}

/// Names are unique in an account (not across accounts), and free again once their
/// record is deleted; concurrent creations of one name make one record.
#[tokio::test]
async fn names_are_unique_per_account() {
    let c = Client::new().await;
    c.ok("projects.create", json!({"name": "p"})).await;
    assert_eq!(
        c.err("projects.create", json!({"name": "p"})).await,
        (400, 12)
    );
    Client::new()
        .await
        .ok("projects.create", json!({"name": "p"}))
        .await;
    let q = c.ok("queues.create", json!({"name": "q"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        c.err("queues.create", json!({"name": "q"})).await,
        (400, 12)
    );
    c.ok("queues.delete", json!({"queue": q})).await;
    c.ok("queues.create", json!({"name": "q"})).await;
    let racers = (0..6).map(|_| c.call("queues.create", json!({"name": "raced"})));
    let made = join_all(racers)
        .await
        .iter()
        .filter(|a| a.status == StatusCode::OK)
        .count();
    assert_eq!(made, 1);
    let listed = c.ok("queues.get_all", json!({"name": "^raced$"})).await;
    assert_eq!(listed["queues"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn queues_and_workers_keep_their_series() {
    let c = Client::new().await;
    let queue = c.ok("queues.create", json!({"name": "measured"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let tasks = [c.task("m1").await, c.task("m2").await, c.task("m3").await];
    let since = chrono::Utc::now().timestamp();
    for task in &tasks {
        c.ok("tasks.enqueue", json!({"task": task, "queue": queue}))
            .await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let popped = c.ok("queues.get_next_task", json!({"queue": queue})).await;
    assert_eq!(popped["entry"]["task"], tasks[0]);
    // An empty pop changes nothing, so it adds no point.
    let other = c.ok("queues.create", json!({"name": "idle"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        c.ok("queues.get_next_task", json!({"queue": other})).await,
        json!({})
    );

    let until = chrono::Utc::now().timestamp() + 1;
    let range = json!({"from_date": since - 5, "to_date": until, "interval": 1});
    let mut asked = range.clone();
    asked["queue_ids"] = json!([queue, other]);
    let got = c.ok("queues.get_queue_metrics", asked).await;
    let series = got["queues"].as_array().unwrap();
    assert_eq!(series.len(), 2, "{got}");
    let measured = &series[0];
    assert_eq!(measured["queue"], queue.as_str());
    let lengths: Vec<u64> = measured["queue_lengths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let waits: Vec<f64> = measured["avg_waiting_times"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let dates = measured["dates"].as_array().unwrap();
    assert!(dates.len() >= 2, "{measured}");
    assert!(dates.windows(2).all(|w| w[0].as_i64() < w[1].as_i64()));
    assert!(lengths.iter().all(|l| (1..=3).contains(l)), "{measured}");
    assert_eq!(*lengths.last().unwrap(), 2, "{measured}");
    // The two left waited since they were added, over a second before the pop.
    assert!(*waits.last().unwrap() >= 1.0, "{measured}");
    assert_eq!(series[1]["dates"], json!([]), "{got}");
    // Without ids: one series over the account's queues, the last length 2.
    let total = c.ok("queues.get_queue_metrics", range.clone()).await;
    assert_eq!(total["queues"][0]["queue"], "total", "{total}");
    assert_eq!(
        total["queues"][0]["queue_lengths"]
            .as_array()
            .unwrap()
            .last(),
        Some(&json!(2)),
        "{total}"
    );
    // Another account's queue is unknown; a range without its interval is refused.
    let stranger = Client::new().await;
    let mut foreign = range.clone();
    foreign["queue_ids"] = json!([queue]);
    assert_eq!(
        stranger.err("queues.get_queue_metrics", foreign).await,
        (400, 701)
    );
    assert_eq!(
        c.err(
            "queues.get_queue_metrics",
            json!({"from_date": since, "to_date": until})
        )
        .await
        .0,
        400
    );

    // Two status reports of one worker, the second while it runs a task.
    c.ok("workers.register", json!({"worker": "measured-worker"}))
        .await;
    c.ok(
        "workers.status_report",
        json!({"worker": "measured-worker", "timestamp": 1,
               "machine_stats": {"cpu_usage": [10.0, 30.0], "memory_used": 100}}),
    )
    .await;
    c.ok(
        "workers.status_report",
        json!({"worker": "measured-worker", "timestamp": 2, "task": tasks[1],
               "machine_stats": {"cpu_usage": [20.0, 40.0], "memory_used": 300}}),
    )
    .await;
    let now = chrono::Utc::now().timestamp();
    let window = json!({
        "from_date": now - 600, "to_date": now + 600, "interval": 1200,
        "items": [{"key": "cpu_usage", "category": "max"}, {"key": "memory_used", "category": "avg"},
                  {"key": "memory_used", "category": "min"}],
    });
    let stats = c.ok("workers.get_stats", window.clone()).await;
    let worker = &stats["workers"][0];
    assert_eq!(worker["worker"], "measured-worker", "{stats}");
    let metric = |name: &str| {
        worker["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["metric"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(
        metric("cpu_usage")["stats"][0]["values"],
        json!([30.0]),
        "{stats}"
    );
    assert_eq!(metric("memory_used")["stats"][0]["aggregation"], "avg");
    assert_eq!(metric("memory_used")["stats"][0]["values"], json!([200.0]));
    assert_eq!(metric("memory_used")["stats"][1]["values"], json!([100.0]));
    let mut split = window.clone();
    split["split_by_variant"] = json!(true);
    split["items"] = json!([{"key": "cpu_usage", "category": "max"}]);
    let by_core = c.ok("workers.get_stats", split).await;
    let cores = by_core["workers"][0]["metrics"].as_array().unwrap();
    let core =
        |v: &str| cores.iter().find(|m| m["variant"] == v).unwrap()["stats"][0]["values"].clone();
    assert_eq!(core("0"), json!([20.0]), "{by_core}");
    assert_eq!(core("1"), json!([40.0]), "{by_core}");
    let mut unknown = window.clone();
    unknown["items"] = json!([{"key": "fan_speed", "category": "max"}]);
    assert_eq!(c.err("workers.get_stats", unknown).await.0, 400);

    let activity = c
        .ok(
            "workers.get_activity_report",
            json!({"from_date": now - 600, "to_date": now + 1200, "interval": 1200}),
        )
        .await;
    assert_eq!(activity["total"]["counts"], json!([1]), "{activity}");
    assert_eq!(activity["active"]["counts"], json!([1]), "{activity}");
    let keys = c.ok("workers.get_metric_keys", json!({})).await;
    assert!(
        keys["categories"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "cpu"
                && c["metric_keys"] == json!(["cpu_usage", "cpu_temperature"])),
        "{keys}"
    );
}

#[tokio::test]
async fn pushes_into_a_served_queue_announce_a_run_even_when_already_queued() {
    let c = Client::new().await;
    let served = c
        .ok(
            "queues.create",
            json!({"name": "served", "system_tags": ["fanout"]}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let plain = c.ok("queues.create", json!({"name": "plain"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let task = c.task("served one").await;
    c.ok("tasks.enqueue", json!({"task": task, "queue": served}))
        .await;
    assert_eq!(c.run_messages(&served, 1).await, 1);
    // The client retries a push that answered an error after it landed: 706, and the
    // run is announced again (the first announcement may be what failed).
    assert_eq!(
        c.err("queues.add_task", json!({"queue": served, "task": task}))
            .await,
        (400, 706)
    );
    assert_eq!(c.run_messages(&served, 1).await, 1);
    // A queue nobody told Fanout to serve sends nothing.
    let other = c.task("plain one").await;
    c.ok("tasks.enqueue", json!({"task": other, "queue": plain}))
        .await;
    assert_eq!(c.run_messages(&plain, 1).await, 0);
}
