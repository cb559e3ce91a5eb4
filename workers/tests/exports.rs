//! Exporter and reporter end to end, with result delivery and result lifetime: workers as
//! separate processes, the gateway in this process, archives read back with a real zip
//! reader and a real CSV reader.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{Cursor, Read};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};

use fanout::engine::reconcile;
use fanout::objects::events::{self, Location, NewEvent, NewEvents};
use fanout::store::blobs;
use fanout::timestamps;
use fanout_e2e::{Lcg, Stack, account, faces_with_descriptors, stack};

use common::{Worker, create_task, exclusive, faces_of, result, status_is, task, wait_task};

/// A client that shows redirects instead of following them.
fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// What `GET /1/tasks/{id}/result` answered: status, headers and the bytes (for a
/// redirect, the bytes behind the location).
struct Download {
    status: u16,
    headers: reqwest::header::HeaderMap,
    bytes: Vec<u8>,
    redirected: bool,
}

async fn download(stack: &Stack, account: &str, task_id: u64) -> Download {
    let url = format!(
        "{}/1/tasks/{task_id}/result?account_id={account}",
        stack.url
    );
    let answer = raw_client()
        .get(url)
        .bearer_auth(&stack.admin_token)
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    if status == 302 {
        let location = answer.headers()["location"].to_str().unwrap().to_string();
        let behind = raw_client().get(location).send().await.unwrap();
        assert_eq!(behind.status(), 200);
        return Download {
            status,
            headers: behind.headers().clone(),
            bytes: behind.bytes().await.unwrap().to_vec(),
            redirected: true,
        };
    }
    Download {
        status,
        headers: answer.headers().clone(),
        bytes: answer.bytes().await.unwrap().to_vec(),
        redirected: false,
    }
}

/// The archive of a done task: its entries by name.
fn entries(bytes: &[u8]) -> HashMap<String, Vec<u8>> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).expect("a zip archive");
    let mut entries = HashMap::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).unwrap();
        let mut content = Vec::new();
        file.read_to_end(&mut content).unwrap();
        entries.insert(file.name().unwrap().to_string(), content);
    }
    entries
}

/// Header and rows of a CSV file.
fn table(csv_bytes: &[u8]) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(csv_bytes);
    let header = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect();
    (header, rows)
}

/// Uploads a JPEG-looking avatar of `len` bytes (seeded) and returns its bytes.
async fn upload_avatar(stack: &Stack, account: &str, face_id: &str, len: usize) -> Vec<u8> {
    let mut lcg = Lcg(face_id.bytes().map(u64::from).sum());
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE0];
    bytes.extend((4..len).map(|_| (lcg.next_value() * 127.0 + 128.0) as u8));
    let path = format!("/1/faces/{face_id}/avatar?account_id={account}");
    let answer = stack
        .send_bytes(Method::PUT, &path, Some("image/jpeg"), bytes.clone())
        .await;
    assert_eq!(answer.status, 204, "{}", answer.text);
    bytes
}

async fn wait_done(stack: &Stack, task_id: u64) -> Value {
    wait_task(stack, task_id, Duration::from_secs(300), |t| {
        t["task_status"] == 5 || t["task_status"] == 3
    })
    .await
}

#[tokio::test]
async fn exporting_twenty_thousand_faces_gives_exactly_their_rows_and_images() {
    let _one = exclusive().await;
    let stack = stack();
    let account = account();
    let ids = faces_of(stack, &account, 20_000).await;
    // Another account's faces stay out.
    let other = fanout_e2e::account();
    faces_of(stack, &other, 50).await;
    // 300 faces get avatars of 20 KB: 6 MB of images, above the inline answer limit.
    let with_avatars: Vec<String> = ids.iter().step_by(67).take(300).cloned().collect();
    let avatars: HashMap<String, Vec<u8>> = stream::iter(with_avatars.clone())
        .map(|id| {
            let account = account.clone();
            async move {
                let bytes = upload_avatar(stack, &account, &id, 20_000).await;
                (id, bytes)
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let _workers = [Worker::start("work,control"), Worker::start("work")];

    // Without images: the chosen columns, in the chosen order, one row per face.
    let plain = create_task(
        stack,
        "exporter",
        &account,
        json!({"objects_type": "faces", "columns": ["user_data", "face_id", "avatar"]}),
    )
    .await;
    let done = wait_done(stack, plain).await;
    assert_eq!(done["task_status"], 5, "{done}");
    assert!(done["count_task_parts_all"].as_u64().unwrap() >= 4);
    let got = download(stack, &account, plain).await;
    assert_eq!(got.status, 200, "a small archive is answered inline");
    assert_eq!(got.headers["content-type"], "application/zip");
    assert_eq!(
        got.headers["content-disposition"],
        format!("attachment; filename=task_{plain}.zip").as_str()
    );
    let files = entries(&got.bytes);
    assert_eq!(files.len(), 1, "no images asked: {:?}", files.keys());
    let (header, rows) = table(&files["faces.csv"]);
    assert_eq!(header, ["user_data", "face_id", "avatar"]);
    assert_eq!(rows.len(), 20_000);
    let index: HashMap<&str, usize> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    let mut seen = HashSet::new();
    for row in &rows {
        let i = index[row[1].as_str()];
        assert!(seen.insert(i), "face {} twice", row[1]);
        assert_eq!(row[0], format!("face {i}"));
        let expected_avatar = if avatars.contains_key(&row[1]) {
            format!("/1/faces/{}/avatar", row[1])
        } else {
            String::new()
        };
        assert_eq!(row[2], expected_avatar);
    }

    // With images: every stored avatar under images/, byte for byte; served by redirect.
    let imaged = create_task(
        stack,
        "exporter",
        &account,
        json!({"objects_type": "faces", "columns": ["face_id"], "images": true}),
    )
    .await;
    let done = wait_done(stack, imaged).await;
    assert_eq!(done["task_status"], 5, "{done}");
    let got = download(stack, &account, imaged).await;
    assert_eq!(got.status, 302, "6 MB of images goes through S3");
    assert!(got.redirected);
    assert!(
        got.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains(&format!("task_{imaged}.zip"))
    );
    let files = entries(&got.bytes);
    assert_eq!(files.len(), 1 + avatars.len());
    let (header, rows) = table(&files["faces.csv"]);
    assert_eq!(header, ["face_id"]);
    let exported: HashSet<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(exported, ids.iter().map(String::as_str).collect());
    for (id, bytes) in &avatars {
        assert_eq!(&files[&format!("images/{id}.jpg")], bytes, "avatar of {id}");
    }
    // The parts the merge read are gone; the result stays.
    let left = common::objects_of(stack, imaged).await;
    assert!(left.iter().all(|k| !k.contains("/scratch/")), "{left:?}");
}

/// Events of one account with varied attributes; returns them by event id.
async fn varied_events(stack: &Stack, account: &str, n: usize) -> HashMap<String, NewEvent> {
    let account_id = account.parse().unwrap();
    let made: Vec<NewEvent> = (0..n)
        .map(|i| NewEvent {
            source: Some(["cam1", "cam2", "cam3"][i % 3].to_string()),
            external_id: Some(format!("ext-{i}")),
            user_data: Some(format!("event, \"{i}\"")),
            tags: (i % 2 == 0).then(|| vec!["a".to_string(), format!("t{i}")]),
            gender: Some((i % 2) as u8),
            age: (i % 5 != 0).then_some(20 + i as u32),
            location: Some(Location {
                city: Some(format!("city {i}")),
                ..Location::default()
            }),
            ..NewEvent::default()
        })
        .collect();
    let created = events::create(
        &stack.services,
        NewEvents {
            account_id,
            events: made.clone(),
        },
    )
    .await
    .unwrap();
    created
        .events
        .into_iter()
        .zip(made)
        .map(|(c, e)| (c.event_id.to_string(), e))
        .collect()
}

#[tokio::test]
async fn a_filtered_event_export_has_exactly_the_matching_rows_and_chosen_columns() {
    let _one = exclusive().await;
    let stack = stack();
    let account = account();
    let made = varied_events(stack, &account, 90).await;
    let _worker = Worker::start("work,control");
    let columns = ["event_id", "source", "age", "tags", "user_data", "city"];
    let task_id = create_task(
        stack,
        "exporter",
        &account,
        json!({"objects_type": "events", "filters": {"sources": ["cam1", "cam3"]}, "columns": columns}),
    )
    .await;
    assert_eq!(wait_done(stack, task_id).await["task_status"], 5);
    let got = download(stack, &account, task_id).await;
    let (header, rows) = table(&entries(&got.bytes)["events.csv"]);
    assert_eq!(header, columns);
    let expected: HashSet<&str> = made
        .iter()
        .filter(|(_, e)| e.source.as_deref() != Some("cam2"))
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(rows.len(), expected.len());
    for row in &rows {
        assert!(expected.contains(row[0].as_str()), "{row:?}");
        let event = &made[&row[0]];
        assert_eq!(row[1], event.source.clone().unwrap());
        assert_eq!(row[2], event.age.map(|a| a.to_string()).unwrap_or_default());
        let tags = event
            .tags
            .as_ref()
            .map(|t| serde_json::to_string(t).unwrap())
            .unwrap_or_else(|| "[]".into());
        assert_eq!(row[3], tags);
        assert_eq!(row[4], event.user_data.clone().unwrap());
        assert_eq!(
            row[5],
            event.location.as_ref().unwrap().city.clone().unwrap()
        );
    }
}

#[tokio::test]
async fn bad_export_and_report_requests_are_rejected_and_create_nothing() {
    let stack = stack();
    let account = account();
    let before = stack
        .get(&format!("/1/tasks/count?account_id={account}"))
        .await
        .json["count"]
        .clone();
    let cases = [
        ("exporter", json!({"objects_type": "cars"})),
        (
            "exporter",
            json!({"objects_type": "faces", "columns": ["nope"]}),
        ),
        ("exporter", json!({"objects_type": "faces", "columns": []})),
        (
            "exporter",
            json!({"objects_type": "events", "columns": ["lists"]}),
        ),
        (
            "exporter",
            json!({"objects_type": "faces", "filters": {"sources": ["x"]}}),
        ),
        (
            "exporter",
            json!({"objects_type": "faces", "images": "yes"}),
        ),
        ("reporter", json!({})),
        ("reporter", json!({"task_id": 1, "extra": 1})),
    ];
    for (kind, content) in cases {
        let answer = stack
            .post(
                &format!("/1/tasks/{kind}"),
                &json!({"account_id": account, "content": content}),
            )
            .await;
        assert_eq!(answer.status, 400, "{kind} {content}: {}", answer.text);
        assert_eq!(answer.error_code(), 12027, "{kind} {content}");
    }
    for ttl in [json!(0), json!(3651), json!(-1), json!("1")] {
        let answer = stack
            .post(
                "/1/tasks/exporter",
                &json!({"account_id": account, "content": {"objects_type": "faces"},
                        "result_storage_policy": {"ttl": ttl}}),
            )
            .await;
        assert_eq!(answer.status, 400, "ttl {ttl}: {}", answer.text);
        assert_eq!(answer.error_code(), 12027);
    }
    let after = stack
        .get(&format!("/1/tasks/count?account_id={account}"))
        .await
        .json["count"]
        .clone();
    assert_eq!(before, after);
}

#[tokio::test]
async fn report_rows_equal_the_clustering_result_and_deleted_objects_keep_two_filled_columns() {
    let _one = exclusive().await;
    let stack = stack();
    let account = account();
    let descriptors = Lcg(11).clustered(48, 4, 0.25);
    let ids =
        faces_with_descriptors(&stack.services, account.parse().unwrap(), &descriptors, "r").await;

    // A clustering task not done yet cannot be reported on (28015): no worker runs yet.
    let clustering = create_task(
        stack,
        "clustering",
        &account,
        json!({"objects_type": "faces", "filters": {}, "threshold": 0.75, "objects_per_block": 16}),
    )
    .await;
    let early = stack
        .post(
            "/1/tasks/reporter",
            &json!({"account_id": account, "content": {"task_id": clustering}}),
        )
        .await;
    assert_eq!(early.status, 400, "{}", early.text);
    assert_eq!(early.error_code(), 28015);
    assert_eq!(
        early.json["detail"],
        "Tasks with status '0' does not support a build report"
    );
    let _worker = Worker::start("work,control");
    wait_task(stack, clustering, Duration::from_secs(120), status_is(5)).await;
    let clusters = result(stack, clustering).await["clusters"].clone();

    // Two faces deleted since the clustering.
    let gone: Vec<String> = ids.iter().take(2).map(|id| id.to_string()).collect();
    for id in &gone {
        let answer = stack
            .delete(&format!("/1/faces/{id}?account_id={account}"))
            .await;
        assert_eq!(answer.status, 204);
    }
    // Another account cannot report on it.
    let stranger = stack
        .post(
            "/1/tasks/reporter",
            &json!({"account_id": fanout_e2e::account(), "content": {"task_id": clustering}}),
        )
        .await;
    assert_eq!(stranger.status, 404);
    assert_eq!(stranger.error_code(), 28001);

    let report = create_task(
        stack,
        "reporter",
        &account,
        json!({"task_id": clustering, "columns": ["user_data", "create_time"]}),
    )
    .await;
    assert_eq!(wait_done(stack, report).await["task_status"], 5);
    let got = download(stack, &account, report).await;
    let (header, rows) = table(&entries(&got.bytes)["report.csv"]);
    assert_eq!(header, ["cluster", "face_id", "user_data", "create_time"]);
    let expected: Vec<(String, String)> = clusters
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .flat_map(|(n, c)| {
            c.as_array()
                .unwrap()
                .iter()
                .map(move |id| (n.to_string(), id.as_str().unwrap().to_string()))
        })
        .collect();
    let got_rows: Vec<(String, String)> =
        rows.iter().map(|r| (r[0].clone(), r[1].clone())).collect();
    assert_eq!(
        got_rows, expected,
        "one row per clustered object, in result order"
    );
    for row in &rows {
        assert_eq!(row.len(), 4, "{row:?}");
        if gone.contains(&row[1]) {
            assert_eq!(
                row[2..],
                ["", ""],
                "a deleted face keeps two columns: {row:?}"
            );
        } else {
            assert_eq!(row[2], "r");
            assert!(timestamps::parse(&row[3]).is_some(), "{row:?}");
        }
    }

    // Not a clustering task: 12027.
    let not_clustering = stack
        .post(
            "/1/tasks/reporter",
            &json!({"account_id": account, "content": {"task_id": report}}),
        )
        .await;
    assert_eq!(not_clustering.status, 400);
    assert_eq!(not_clustering.error_code(), 12027);
}

#[tokio::test]
async fn an_expired_result_is_removed_and_answers_28017_and_a_report_of_it_28016() {
    let _one = exclusive().await;
    let stack = stack();
    let account = account();
    let descriptors = Lcg(5).clustered(12, 3, 0.25);
    faces_with_descriptors(
        &stack.services,
        account.parse().unwrap(),
        &descriptors,
        "ttl",
    )
    .await;
    let _worker = Worker::start("work,control");
    let kept = create_task(
        stack,
        "exporter",
        &account,
        json!({"objects_type": "faces"}),
    )
    .await;
    let answer = stack
        .post(
            "/1/tasks/clustering",
            &json!({"account_id": account, "result_storage_policy": {"ttl": 1},
                    "content": {"objects_type": "faces", "filters": {}}}),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    let expiring = answer.json["task_id"].as_u64().unwrap();
    assert_eq!(wait_done(stack, kept).await["task_status"], 5);
    let done = wait_done(stack, expiring).await;
    assert_eq!(done["task_status"], 5);
    assert_eq!(done["result_storage_policy"], json!({"ttl": 1}));
    let end = timestamps::parse(done["end_time"].as_str().unwrap()).unwrap();
    let expire = timestamps::parse(done["result_expire_time"].as_str().unwrap()).unwrap();
    assert_eq!((expire - end).num_seconds(), 86_400);
    assert_eq!(
        stack
            .get(&format!("/1/tasks/{expiring}/result"))
            .await
            .status,
        200
    );

    // A pass before the expiry removes nothing; one after it removes that result only.
    let early = reconcile::expire_results(&stack.services, end)
        .await
        .unwrap();
    assert_eq!(early, 0);
    let key = blobs::result_key(expiring);
    assert!(blobs::head(&stack.services, &key).await.unwrap().is_some());
    let later = expire + chrono::Duration::seconds(1);
    let removed = reconcile::expire_results(&stack.services, later)
        .await
        .unwrap();
    assert!(removed >= 1);
    assert!(blobs::head(&stack.services, &key).await.unwrap().is_none());
    let answer = stack.get(&format!("/1/tasks/{expiring}/result")).await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.error_code(), 28017);
    assert_eq!(
        answer.json["detail"],
        format!("Result of the task '{expiring}' not found")
    );
    assert!(task(stack, expiring).await["result_id"].is_null());
    // The task without a policy keeps its result.
    assert_eq!(download(stack, &account, kept).await.status, 200);
    // A clustering task without its result cannot be reported on.
    let answer = stack
        .post(
            "/1/tasks/reporter",
            &json!({"account_id": account, "content": {"task_id": expiring}}),
        )
        .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.error_code(), 28016);
}

#[tokio::test]
async fn results_are_private_to_their_account_and_ranges_go_through_s3() {
    let _one = exclusive().await;
    let stack = stack();
    let account = account();
    faces_of(stack, &account, 30).await;
    let _worker = Worker::start("work,control");
    let task_id = create_task(
        stack,
        "exporter",
        &account,
        json!({"objects_type": "faces"}),
    )
    .await;
    assert_eq!(wait_done(stack, task_id).await["task_status"], 5);
    let stranger = stack
        .get(&format!(
            "/1/tasks/{task_id}/result?account_id={}",
            fanout_e2e::account()
        ))
        .await;
    assert_eq!(stranger.status, 404);
    assert_eq!(stranger.error_code(), 28001);

    let whole = download(stack, &account, task_id).await;
    assert_eq!(whole.status, 200);
    let url = format!(
        "{}/1/tasks/{task_id}/result?account_id={account}",
        stack.url
    );
    let ranged = raw_client()
        .get(url)
        .bearer_auth(&stack.admin_token)
        .header("range", "bytes=0-3")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 302);
    let location = ranged.headers()["location"].to_str().unwrap().to_string();
    let part = raw_client()
        .get(&location)
        .header("range", "bytes=10-99")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(part.bytes().await.unwrap().as_ref(), &whole.bytes[10..100]);
}
