//! The ClearML watchdog that the reconciler runs: a running task with no update for the
//! threshold becomes `stopped`; an updated one, a queued one and one that ended stay as
//! they are; a task deleted while running leaves no marker behind. Its own test binary:
//! the watchdog looks at every account's running tasks, so it runs alone, never next to
//! the other ClearML tests' tasks.

use chrono::Duration;
use fanout::clearml::tasks::watchdog;
use fanout::store::{KeyRange, TableQuery, keys};
use fanout::timestamps;
use fanout_e2e::clearml::Client;
use serde_json::json;

/// The task partition keys the watchdog's markers name.
async fn markers(c: &Client) -> Vec<String> {
    let query = TableQuery {
        index: None,
        partition: keys::CLEARML_RUNNING.into(),
        range: KeyRange::All,
        descending: false,
    };
    let mut out = Vec::new();
    c.stack
        .services
        .table
        .for_each(&query, |item| {
            if let Some(sk) = item.get("sk").and_then(|v| v.as_s().ok()) {
                out.push(sk.clone());
            }
            std::ops::ControlFlow::Continue(())
        })
        .await
        .unwrap();
    out
}

#[tokio::test]
async fn the_watchdog_stops_silent_running_tasks_and_nothing_else() {
    let c = Client::new().await;
    let svc = &c.stack.services;
    let silent = c.task("silent").await;
    let pinged = c.task("pinged").await;
    let reported = c.task("reported").await;
    let gone = c.task("deleted while running").await;
    let ended = c.task("ended").await;
    let queued = c.task("queued").await;
    for task in [&silent, &pinged, &reported, &gone, &ended] {
        c.ok("tasks.started", json!({"task": task})).await;
    }
    c.ok("tasks.completed", json!({"task": ended})).await;
    c.ok("tasks.enqueue", json!({"task": queued})).await;
    let running = markers(&c).await;
    for task in [&silent, &pinged, &reported, &gone] {
        assert!(
            running.contains(&keys::clearml_task_pk(task)),
            "{task} unmarked"
        );
    }
    for task in [&ended, &queued] {
        assert!(
            !running.contains(&keys::clearml_task_pk(task)),
            "{task} marked"
        );
    }

    // Everything above happened before `since`; then one task is pinged, one named by
    // a worker's status report, one deleted.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let since = timestamps::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    c.ok("tasks.ping", json!({"task": pinged})).await;
    c.ok(
        "workers.status_report",
        json!({"worker": "wd-worker", "timestamp": 1, "task": reported}),
    )
    .await;
    c.ok("tasks.delete", json!({"task": gone, "force": true}))
        .await;

    // The watchdog's clock an hour on, with a threshold of an hour from `since`.
    let threshold = Duration::hours(1);
    let stopped = watchdog(svc, since + threshold, threshold).await.unwrap();
    assert!(stopped >= 1, "nothing stopped");
    let got = c.ok("tasks.get_by_id", json!({"task": silent})).await;
    assert_eq!(got["task"]["status"], "stopped", "{got}");
    assert_eq!(got["task"]["status_reason"], "Forced stop (non-responsive)");
    assert_eq!(got["task"]["last_changed_by"], "__apiserver__");
    assert_eq!(c.status(&pinged).await, "in_progress");
    assert_eq!(c.status(&reported).await, "in_progress");
    assert_eq!(c.status(&ended).await, "completed");
    assert_eq!(c.status(&queued).await, "queued");

    let running = markers(&c).await;
    for task in [&silent, &gone] {
        assert!(
            !running.contains(&keys::clearml_task_pk(task)),
            "{task} still marked"
        );
    }
    for task in [&pinged, &reported] {
        assert!(
            running.contains(&keys::clearml_task_pk(task)),
            "{task} unmarked"
        );
    }

    // A second pass at the same time finds nothing more of this account's to stop, and
    // a stopped task enqueued and started again is watched again.
    watchdog(svc, since + threshold, threshold).await.unwrap();
    assert_eq!(c.status(&silent).await, "stopped");
    c.ok("tasks.enqueue", json!({"task": silent})).await;
    c.ok("tasks.started", json!({"task": silent})).await;
    assert!(markers(&c).await.contains(&keys::clearml_task_pk(&silent)));
    c.ok("tasks.stopped", json!({"task": silent})).await;
    assert!(!markers(&c).await.contains(&keys::clearml_task_pk(&silent)));
}

/// The queue partition keys of the sweep's markers.
async fn served(c: &Client) -> Vec<String> {
    fanout::clearml::docs::markers(&c.stack.services, keys::CLEARML_SERVED)
        .await
        .unwrap()
        .into_iter()
        .map(|(pk, _, _)| pk)
        .collect()
}

#[tokio::test]
async fn the_sweep_announces_tasks_left_waiting_in_served_queues() {
    let c = Client::new().await;
    let svc = &c.stack.services;
    let queue = c
        .ok(
            "queues.create",
            json!({"name": "swept", "system_tags": ["fanout"]}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let later = c.ok("queues.create", json!({"name": "later"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let marked = served(&c).await;
    assert!(marked.contains(&keys::clearml_queue_pk(&queue)));
    assert!(!marked.contains(&keys::clearml_queue_pk(&later)));
    // Served from an update on, and no longer after another.
    c.ok(
        "queues.update",
        json!({"queue": later, "system_tags": ["fanout"]}),
    )
    .await;
    assert!(served(&c).await.contains(&keys::clearml_queue_pk(&later)));
    c.ok("queues.update", json!({"queue": later, "system_tags": []}))
        .await;
    assert!(!served(&c).await.contains(&keys::clearml_queue_pk(&later)));

    // A task pushed: announced once (that message taken here, as if it were lost).
    let task = c.task("waiting").await;
    c.ok("tasks.enqueue", json!({"task": task, "queue": queue}))
        .await;
    assert_eq!(c.run_messages(&queue, 1).await, 1);
    let after = Duration::minutes(5);
    // Fresh: the sweep leaves it alone; waited past `after`: announced again.
    fanout::clearml::serve::sweep(svc, timestamps::now(), after)
        .await
        .unwrap();
    assert_eq!(c.run_messages(&queue, 1).await, 0);
    let sent = fanout::clearml::serve::sweep(svc, timestamps::now() + Duration::hours(1), after)
        .await
        .unwrap();
    assert!(sent >= 1);
    assert_eq!(c.run_messages(&queue, 1).await, 1);

    // A deleted queue's marker goes with the next sweep.
    c.ok("queues.delete", json!({"queue": queue, "force": true}))
        .await;
    fanout::clearml::serve::sweep(svc, timestamps::now(), after)
        .await
        .unwrap();
    assert!(!served(&c).await.contains(&keys::clearml_queue_pk(&queue)));
}
