//! Caps on what one request may ask for: a task that would fan out past a cap is refused
//! with 40007 and nothing is stored; listings stop at a documented depth (40008), page
//! the subtasks of a task, and keep large task contents out of `GET /1/tasks`.

use fanout::tasks::model::SubtaskRecord;
use fanout::timestamps;
use fanout_e2e::{account, descriptor, faces_with_descriptors, stack};
use serde_json::{Value, json};
use uuid::Uuid;

/// LUNA code of a request over a documented cap.
const LIMIT_EXCEEDED: u64 = 40007;
/// LUNA code of a page beyond the listing depth.
const PAGE_TOO_DEEP: u64 = 40008;

/// Number of tasks of `account`, through the API.
async fn tasks_of(account: &str) -> u64 {
    let answer = stack()
        .get(&format!("/1/tasks/count?account_id={account}"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json["count"].as_u64().unwrap()
}

/// Posts a task and checks it is refused with 40007, a detail naming `names`, and that
/// the account has no task afterwards.
async fn refused_over_cap(kind: &str, account: &str, content: Value, names: &[&str]) {
    let answer = stack()
        .post(
            &format!("/1/tasks/{kind}"),
            &json!({"account_id": account, "content": content}),
        )
        .await;
    assert_eq!(answer.status, 400, "{kind}: {}", answer.text);
    assert_eq!(
        answer.error_code(),
        LIMIT_EXCEEDED,
        "{kind}: {}",
        answer.text
    );
    let detail = answer.json["detail"].as_str().unwrap();
    for name in names {
        assert!(detail.contains(name), "{kind}: '{name}' not in {detail}");
    }
    assert_eq!(tasks_of(account).await, 0, "{kind}: a task was stored");
}

fn markup(objects: usize) -> Vec<Value> {
    (0..objects)
        .map(|i| json!({"object_id": Uuid::new_v4(), "label": format!("person-{}", i % 50)}))
        .collect()
}

#[tokio::test]
async fn a_roc_task_with_too_many_tiles_is_refused_and_not_stored() {
    let acc = account();
    // 200 blocks of one object: 40,000 tiles.
    let content = json!({"objects_type": "faces", "markup": markup(200), "objects_per_block": 1});
    refused_over_cap("roc", &acc, content, &["40000", "10000", "tiles"]).await;
}

#[tokio::test]
async fn a_large_limit_with_large_blocks_is_refused_for_the_memory_of_a_tile() {
    let acc = account();
    let set = json!({"objects_type": "faces", "filters": {}});
    let content = json!({"references": set, "candidates": set, "limit": 1000,
                         "objects_per_block": 10000});
    refused_over_cap(
        "cross_match",
        &acc,
        content,
        &["10000000", "1000000", "objects_per_block"],
    )
    .await;
    let roc = json!({"objects_type": "faces", "markup": markup(100), "limit": 1000,
                     "objects_per_block": 5000});
    refused_over_cap("roc", &acc, roc, &["5000000", "1000000"]).await;
}

#[tokio::test]
async fn a_large_limit_alone_gets_blocks_that_fit_the_tile_cap() {
    let acc = account();
    let set = json!({"objects_type": "faces", "filters": {}});
    let created = stack()
        .post(
            "/1/tasks/cross_match",
            &json!({"account_id": acc, "content": {"references": set, "candidates": set, "limit": 1000}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let task_id = created.json["task_id"].as_u64().unwrap();
    let task = stack()
        .get(&format!("/1/tasks/{task_id}?account_id={acc}"))
        .await;
    assert_eq!(
        task.json["content"]["objects_per_block"], 1000,
        "{}",
        task.text
    );
}

#[tokio::test]
async fn a_cross_match_of_small_blocks_over_many_faces_is_refused_at_creation() {
    let acc = account();
    let account_id: Uuid = acc.parse().unwrap();
    let descriptors: Vec<Vec<f32>> = (0..101).map(descriptor).collect();
    faces_with_descriptors(&stack().services, account_id, &descriptors, "limits").await;
    let set = json!({"objects_type": "faces", "filters": {"user_data": "limits"}});
    // 101 blocks of one face on each side: 10,201 tiles.
    let content = json!({"references": set, "candidates": set, "objects_per_block": 1});
    refused_over_cap("cross_match", &acc, content, &["10201", "10000"]).await;
    let clustering = json!({"objects_type": "faces", "filters": {"user_data": "limits"}, "objects_per_block": 1});
    // 101 blocks: 5,151 pair tiles, under the cap, so accepted.
    let created = stack()
        .post(
            "/1/tasks/clustering",
            &json!({"account_id": acc, "content": clustering}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
}

#[tokio::test]
async fn pages_beyond_the_listing_depth_are_refused() {
    let acc = account();
    for path in [
        format!("/1/faces?account_id={acc}&page=1001"),
        format!("/1/events?account_id={acc}&page=101&page_size=100"),
        format!("/1/tasks?account_id={acc}&page=10001&page_size=1"),
        "/1/errors?page=4294967".to_string(),
    ] {
        let answer = stack().get(&path).await;
        assert_eq!(answer.status, 400, "{path}: {}", answer.text);
        assert_eq!(
            answer.error_code(),
            PAGE_TOO_DEEP,
            "{path}: {}",
            answer.text
        );
        assert!(
            answer.json["detail"].as_str().unwrap().contains("10000"),
            "{}",
            answer.text
        );
    }
    let deepest = stack()
        .get(&format!("/1/faces?account_id={acc}&page=100&page_size=100"))
        .await;
    assert_eq!(deepest.status, 200, "{}", deepest.text);
}

/// A gc task (no events: nothing to remove) with `n` subtask items written beside it.
async fn task_with_subtasks(acc: &str, n: u32) -> u64 {
    let created = stack()
        .post(
            "/1/tasks/gc",
            &json!({"account_id": acc, "content": {"target": "events", "filters": {}}}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let task_id = created.json["task_id"].as_u64().unwrap();
    let now = timestamps::format(timestamps::now());
    for subtask_id in 1000..1000 + n {
        let record = SubtaskRecord::new(task_id, subtask_id, 0, &now);
        let item = fanout::store::dynamo::to_item(&record).unwrap();
        stack().services.table.put_if_absent(item).await.unwrap();
    }
    task_id
}

fn subtask_ids(answer: &fanout_e2e::Answer) -> Vec<u64> {
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json["subtasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["subtask_id"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn subtasks_are_listed_a_page_at_a_time() {
    let acc = account();
    let task_id = task_with_subtasks(&acc, 125).await;
    let path = |query: &str| format!("/1/tasks/{task_id}/subtasks?account_id={acc}{query}");
    let first = subtask_ids(&stack().get(&path("")).await);
    assert_eq!(first, (1000..1100).collect::<Vec<_>>(), "default page: 100");
    let third = subtask_ids(&stack().get(&path("&page=3&page_size=10")).await);
    assert_eq!(third, (1020..1030).collect::<Vec<_>>());
    let last = subtask_ids(&stack().get(&path("&page=2&page_size=100")).await);
    assert_eq!(last, (1100..1125).collect::<Vec<_>>());
    let past = subtask_ids(&stack().get(&path("&page=20&page_size=10")).await);
    assert!(past.is_empty());
    let too_big = stack().get(&path("&page_size=101")).await;
    assert_eq!(too_big.status, 400, "{}", too_big.text);
    assert_eq!(too_big.error_code(), 101);
}

#[tokio::test]
async fn task_listings_leave_large_contents_out() {
    let acc = account();
    let big = json!({"objects_type": "faces", "markup": markup(2000)});
    let small = json!({"target": "events", "filters": {}});
    let mut ids = Vec::new();
    for (kind, content) in [("roc", &big), ("gc", &small)] {
        let created = stack()
            .post(
                &format!("/1/tasks/{kind}"),
                &json!({"account_id": acc, "content": content}),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        ids.push(created.json["task_id"].as_u64().unwrap());
    }
    let listed = stack().get(&format!("/1/tasks?account_id={acc}")).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let tasks = listed.json["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2);
    let content_of = |id: u64| {
        tasks
            .iter()
            .find(|t| t["task_id"] == id)
            .map(|t| t["content"].clone())
            .unwrap()
    };
    assert!(content_of(ids[0]).is_null(), "large content listed inline");
    assert_eq!(content_of(ids[1])["target"], "events", "small content kept");
    assert!(listed.text.len() < 16 * 1024, "{} bytes", listed.text.len());
    let one = stack()
        .get(&format!("/1/tasks/{}?account_id={acc}", ids[0]))
        .await;
    assert_eq!(
        one.json["content"]["markup"].as_array().unwrap().len(),
        2000
    );
}

/// A roc task stored with a content no creation would accept now (as one stored before
/// the caps): its planner fails it with 40007 instead of building 22,500 tiles.
#[tokio::test]
async fn a_stored_plan_over_the_cap_fails_the_task_before_building_it() {
    use fanout::tasks::model::{TaskRecord, TaskType};
    use fanout::tasks::store as task_store;
    let svc = &stack().services;
    let acc = account();
    let content = json!({"objects_type": "faces", "markup": markup(150), "limit": 5,
                         "threshold_hit_top": 0.0, "key_FPRs": [0.1], "descriptor_version": 59,
                         "objects_per_block": 1});
    let task_id = task_store::next_id(svc, "TASK").await.unwrap();
    let now = timestamps::format(timestamps::now());
    let mut record = TaskRecord::new(
        task_id,
        TaskType::Roc,
        acc.parse().unwrap(),
        String::new(),
        &now,
    );
    record.content = Some(content.to_string());
    let item = fanout::store::dynamo::to_item(&record).unwrap();
    assert!(svc.table.put_if_absent(item).await.unwrap());
    fanout::engine::control::plan_with(svc, record, 0)
        .await
        .unwrap();
    let task = stack()
        .get(&format!("/1/tasks/{task_id}?account_id={acc}"))
        .await;
    assert_eq!(task.json["task_status"], 3, "{}", task.text);
    assert_eq!(task.json["count_task_parts_all"], 0, "{}", task.text);
    let errors = stack()
        .get(&format!("/1/tasks/{task_id}/errors?account_id={acc}"))
        .await;
    let error = &errors.json["errors"][0];
    assert_eq!(error["error_code"], LIMIT_EXCEEDED, "{}", errors.text);
    let detail = error["detail"].as_str().unwrap();
    assert!(detail.contains("22500 match tiles"), "{detail}");
}
