//! The estimator and additional extract kinds end to end: images uploaded by presigned
//! PUT into the account's upload area (a zip, single images), tasks created through the
//! gateway, workers as separate processes running the vision module on the models
//! `make models` lays out, results, task errors and created objects read back through
//! the API. The images are the package-shipped ones (insightface's t1.jpg: six people,
//! ultralytics' zidane.jpg: two) and copies made from them.

mod common;

use std::io::{Cursor, Write};
use std::time::Duration;

use serde_json::{Value, json};

use fanout::vision::geometry::Rgb;
use fanout::vision::picture;
use fanout_e2e::{Stack, account, stack};

use common::{
    Worker, create_task, exclusive, models_dir, package_image, result, upload, wait_task,
};

/// A worker on both queues (the models directory is set for every test worker).
fn vision_worker() -> Worker {
    Worker::start_with("work,control", &["--lease-seconds", "30"], &[])
}

/// The image mirrored left to right.
fn mirrored(image: &Rgb) -> Rgb {
    let mut pixels = Vec::with_capacity(image.pixels.len());
    for row in image.pixels.chunks_exact(image.width as usize * 3) {
        for px in row.chunks_exact(3).rev() {
            pixels.extend_from_slice(px);
        }
    }
    Rgb {
        width: image.width,
        height: image.height,
        pixels,
    }
}

fn zip_of(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (i, (name, data)) in files.iter().enumerate() {
        let method = if i % 2 == 0 {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        writer
            .start_file(
                *name,
                zip::write::SimpleFileOptions::default().compression_method(method),
            )
            .unwrap();
        writer.write_all(data).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// The kind's result inside the result envelope (or the body itself without one).
fn inner(result: Value) -> Value {
    match result.get("result") {
        Some(inner) if result.get("errors").is_some() => inner.clone(),
        _ => result,
    }
}

/// Waits for the task to end and checks it is done (showing its errors if not).
async fn done(stack: &Stack, task_id: u64) -> Value {
    let ended = wait_task(stack, task_id, Duration::from_secs(300), |t| {
        [2, 3, 5].contains(&t["task_status"].as_u64().unwrap_or(0))
    })
    .await;
    if ended["task_status"] != 5 {
        panic!(
            "task {task_id} ended {ended}: {:?}",
            errors_of(stack, task_id).await
        );
    }
    ended
}

async fn errors_of(stack: &Stack, task_id: u64) -> Vec<Value> {
    let answer = stack
        .get(&format!("/1/tasks/{task_id}/errors?page_size=100"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json["errors"].as_array().unwrap().clone()
}

fn descriptor(face: &Value) -> Vec<f32> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(face["descriptor"]["descriptor"].as_str().unwrap())
        .unwrap();
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The faces of an image result, left to right.
fn left_to_right(image: &Value) -> Vec<Value> {
    let mut faces = image["faces"].as_array().unwrap().clone();
    faces.sort_by(|a, b| {
        a["rect"]["x"]
            .as_f64()
            .unwrap()
            .total_cmp(&b["rect"]["x"].as_f64().unwrap())
    });
    faces
}

#[tokio::test(flavor = "multi_thread")]
async fn estimator_reads_a_zip_and_names_the_bad_images() {
    let _guard = exclusive().await;
    let stack = stack();
    let account = account();
    let t1 = package_image("t1.jpg");
    let t1_mirror = picture::encode_jpeg(&mirrored(&picture::decode(&t1).unwrap()), 92);
    // A JPEG signature and nothing a decoder can use.
    let mut truncated = t1[..4].to_vec();
    truncated.extend([0u8; 64]);
    let archive = zip_of(&[
        ("people/t1.jpg", t1.clone()),
        ("people/zidane.jpg", package_image("zidane.jpg")),
        ("broken.jpg", truncated),
        ("people/t1-mirror.jpg", t1_mirror),
        ("notes.txt", b"not an image".to_vec()),
    ]);
    let key = upload(stack, &account, archive, "application/zip").await;

    // Bad requests change nothing: a key outside the account, an unknown version.
    for bad in [
        json!({"source": {"source_type": "zip", "key": format!("uploads/{}/x", fanout_e2e::account())}}),
        json!({"source": {"source_type": "zip", "key": key}, "estimations": {"face_descriptor": true, "descriptor_version": 59}}),
        json!({"source": {"source_type": "zip", "key": format!("uploads/{account}/missing")}}),
    ] {
        let answer = stack
            .post(
                "/1/tasks/estimator",
                &json!({"account_id": account, "content": bad}),
            )
            .await;
        assert_eq!(answer.status, 400, "{}", answer.text);
        assert_eq!(answer.error_code(), 12027, "{}", answer.text);
    }

    let task_id = create_task(
        stack,
        "estimator",
        &account,
        json!({
            "source": {"source_type": "zip", "key": key},
            "estimations": {"face_descriptor": true, "basic_attributes": true, "head_pose": true, "quality": true},
            "images_per_subtask": 2
        }),
    )
    .await;
    let _worker = vision_worker();
    let done = done(stack, task_id).await;
    assert_eq!(done["count_task_parts_all"], 3, "{done}");
    assert_eq!(done["count_task_parts_done"], 3, "{done}");
    let r = inner(result(stack, task_id).await);
    assert_eq!(r["images_total"], 5, "{r}");
    assert_eq!(r["images_done"], 3, "{r}");
    assert_eq!(r["images_failed"], 2, "{r}");
    let images = r["images"].as_array().unwrap();
    let names: Vec<&str> = images
        .iter()
        .map(|i| i["filename"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["people/t1.jpg", "people/zidane.jpg", "people/t1-mirror.jpg"]
    );
    assert_eq!(images[0]["faces"].as_array().unwrap().len(), 6);
    assert_eq!(images[1]["faces"].as_array().unwrap().len(), 2);
    assert_eq!(images[2]["faces"].as_array().unwrap().len(), 6);
    assert_eq!(r["faces_found"], 14);

    // Gender on t1, left to right: F F M M M F.
    let t1_faces = left_to_right(&images[0]);
    let genders: Vec<u64> = t1_faces
        .iter()
        .map(|f| f["gender"].as_u64().unwrap())
        .collect();
    assert_eq!(genders, [0, 0, 1, 1, 1, 0]);
    // Each person's descriptor is closest to the same person in the mirror.
    let mirror_faces = left_to_right(&images[2]);
    for (i, face) in t1_faces.iter().enumerate() {
        assert_eq!(face["descriptor"]["descriptor_version"], 1001);
        let d = descriptor(face);
        assert_eq!(d.len(), 1024);
        let same = cosine(&d, &descriptor(&mirror_faces[5 - i]));
        for (j, other) in mirror_faces.iter().enumerate() {
            if j != 5 - i {
                assert!(
                    cosine(&d, &descriptor(other)) < same,
                    "face {i} vs mirror {j}"
                );
            }
        }
        assert!(same > 0.85, "face {i}: {same}");
        // Mirrored yaw flips sign (faces turned enough to tell).
        let yaw = face["head_pose"]["yaw"].as_f64().unwrap();
        let yaw_m = mirror_faces[5 - i]["head_pose"]["yaw"].as_f64().unwrap();
        if yaw.abs() > 5.0 {
            assert!(yaw * yaw_m < 0.0, "face {i}: yaw {yaw} vs {yaw_m}");
        }
    }

    // One task error per unreadable file, naming it.
    let errors = errors_of(stack, task_id).await;
    let mut named: Vec<&str> = errors
        .iter()
        .map(|e| e["additional_info"].as_str().unwrap())
        .collect();
    named.sort();
    assert_eq!(named, ["broken.jpg", "notes.txt"], "{errors:?}");
    assert!(
        errors.iter().all(|e| e["error_code"] == 40005),
        "{errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn estimator_creates_faces_and_additional_extract_adds_a_version() {
    let _guard = exclusive().await;
    let stack = stack();
    let account = account();
    let list = stack
        .post("/1/lists", &json!({"account_id": account}))
        .await;
    assert_eq!(list.status, 201, "{}", list.text);
    let list_id = list.json["list_id"].as_str().unwrap().to_string();
    let key = upload(stack, &account, package_image("t1.jpg"), "image/jpeg").await;
    let _worker = vision_worker();

    let task_id = create_task(
        stack,
        "estimator",
        &account,
        json!({
            "source": {"source_type": "keys", "keys": [key, format!("uploads/{account}/absent.jpg")]},
            "create": {"objects_type": "faces", "lists": [list_id], "user_data": "from t1"}
        }),
    )
    .await;
    done(stack, task_id).await;
    let r = inner(result(stack, task_id).await);
    assert_eq!(r["objects_created"], 6, "{r}");
    assert_eq!(r["images_failed"], 1, "{r}");
    let created: Vec<String> = r["images"][0]["faces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["face_id"].as_str().unwrap().to_string())
        .collect();
    let in_list = stack
        .get(&format!(
            "/1/faces?account_id={account}&list_id={list_id}&page_size=100"
        ))
        .await;
    assert_eq!(in_list.json["faces"].as_array().unwrap().len(), 6);
    for id in &created {
        let face = stack
            .get(&format!("/1/faces/{id}?account_id={account}"))
            .await;
        assert_eq!(face.json["descriptor_version"], 1001, "{}", face.text);
        assert_eq!(face.json["user_data"], "from t1");
        let avatar = stack
            .get_bytes(&format!("/1/faces/{id}/avatar?account_id={account}"))
            .await;
        assert_eq!(avatar.status, 200);
        assert_eq!(avatar.content_type(), "image/jpeg");
        assert!(picture::decode(&avatar.bytes).is_ok());
    }

    // The stored images of a selection: each created face's sample shows its face.
    let samples = create_task(
        stack,
        "estimator",
        &account,
        json!({
            "source": {"source_type": "faces", "filters": {"list_id": list_id}},
            "estimations": {"basic_attributes": true}
        }),
    )
    .await;
    done(stack, samples).await;
    let r = inner(result(stack, samples).await);
    assert_eq!(r["images_done"], 6, "{r}");
    let mut named: Vec<String> = r["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            assert_eq!(i["faces"].as_array().unwrap().len(), 1, "{i}");
            i["filename"].as_str().unwrap().to_string()
        })
        .collect();
    named.sort();
    let mut expected: Vec<String> = created.iter().map(|id| format!("faces/{id}")).collect();
    expected.sort();
    assert_eq!(named, expected);

    // A face whose avatar shows no face, and one without an avatar (not selected).
    let blank = stack
        .post(
            "/1/faces",
            &json!({"account_id": account, "lists": [list_id]}),
        )
        .await;
    let blank_id = blank.json["face_id"].as_str().unwrap().to_string();
    let grey = picture::encode_jpeg(
        &Rgb {
            width: 200,
            height: 200,
            pixels: vec![128; 200 * 200 * 3],
        },
        90,
    );
    let put = stack
        .send_bytes(
            reqwest::Method::PUT,
            &format!("/1/faces/{blank_id}/avatar?account_id={account}"),
            Some("image/jpeg"),
            grey,
        )
        .await;
    assert_eq!(put.status, 204);
    stack
        .post(
            "/1/faces",
            &json!({"account_id": account, "lists": [list_id]}),
        )
        .await;

    let extract = create_task(
        stack,
        "additional_extract",
        &account,
        json!({
            "extraction_target": "face_descriptor",
            "objects_type": "faces",
            "filters": {"list_id": list_id},
            "options": {"descriptor_version": 1002}
        }),
    )
    .await;
    done(stack, extract).await;
    let counts = inner(result(stack, extract).await);
    assert_eq!(counts["extracted"], 6, "{counts}");
    assert_eq!(counts["failed"], 1, "{counts}");
    for id in &created {
        let face = stack
            .get(&format!("/1/faces/{id}?account_id={account}"))
            .await;
        assert_eq!(face.json["descriptor_version"], 1002, "{}", face.text);
    }
    let errors = errors_of(stack, extract).await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["additional_info"], blank_id.as_str());

    // Again: nothing left to extract.
    let again = create_task(
        stack,
        "additional_extract",
        &account,
        json!({
            "extraction_target": "face_descriptor",
            "objects_type": "faces",
            "filters": {"list_id": list_id},
            "options": {"descriptor_version": 1002}
        }),
    )
    .await;
    done(stack, again).await;
    let counts = inner(result(stack, again).await);
    assert_eq!(counts["extracted"], 0, "{counts}");
}

#[tokio::test(flavor = "multi_thread")]
async fn estimator_creates_events_and_basic_attributes_are_filled() {
    let _guard = exclusive().await;
    let stack = stack();
    let account = account();
    let key = upload(stack, &account, package_image("zidane.jpg"), "image/jpeg").await;
    let _worker = vision_worker();
    let task_id = create_task(
        stack,
        "estimator",
        &account,
        json!({
            "source": {"source_type": "keys", "keys": [key]},
            "create": {"objects_type": "events", "source": "camera-7"}
        }),
    )
    .await;
    done(stack, task_id).await;
    let r = inner(result(stack, task_id).await);
    assert_eq!(r["objects_created"], 2, "{r}");
    let listed = stack
        .get(&format!("/1/events?account_id={account}&sources=camera-7"))
        .await;
    let events = listed.json["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{}", listed.text);
    for event in events {
        assert_eq!(event["gender"], 1, "{event}");
        assert!(event["age"].as_u64().is_some());
        assert_eq!(event["descriptor_version"], 1001);
    }

    // An event with a sample and no attributes gets them from the sample.
    let sample = stack
        .get_bytes(&format!(
            "/1/events/{}/sample?account_id={account}",
            events[0]["event_id"].as_str().unwrap()
        ))
        .await;
    let bare = stack
        .post(
            "/1/events",
            &json!({"account_id": account, "events": [{"source": "bare"}]}),
        )
        .await;
    let bare_id = bare.json["events"][0]["event_id"]
        .as_str()
        .unwrap()
        .to_string();
    stack
        .send_bytes(
            reqwest::Method::PUT,
            &format!("/1/events/{bare_id}/sample?account_id={account}"),
            Some("image/jpeg"),
            sample.bytes.clone(),
        )
        .await;
    let extract = create_task(
        stack,
        "additional_extract",
        &account,
        json!({"extraction_target": "basic_attributes", "objects_type": "events", "filters": {"sources": ["bare"]}}),
    )
    .await;
    done(stack, extract).await;
    assert_eq!(inner(result(stack, extract).await)["extracted"], 1);
    let event = stack
        .get(&format!("/1/events/{bare_id}?account_id={account}"))
        .await;
    assert_eq!(event.json["gender"], 1, "{}", event.text);
    assert!(event.json["age"].as_u64().is_some(), "{}", event.text);
}

/// Images in the big zip (`FANOUT_ESTIMATOR_IMAGES`, default 1,000; `make test` runs
/// 300, `make big` 1,000).
fn big_zip_images() -> u64 {
    std::env::var("FANOUT_ESTIMATOR_IMAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000)
}

/// A worker's peak memory may not grow with the input: one image is held at a time.
const WORKER_PEAK_MAX_KIB: u64 = 1024 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn estimator_over_many_images_keeps_worker_memory_bounded() {
    let _guard = exclusive().await;
    let stack = stack();
    let account = account();
    let count = big_zip_images();
    let archive = common::augment::zip(&models_dir().join("images"), count);
    let archive_len = archive.len();
    let key = upload(stack, &account, archive, "application/zip").await;
    let task_id = create_task(
        stack,
        "estimator",
        &account,
        json!({
            "source": {"source_type": "zip", "key": key, "postfix": ".jpg"},
            "estimations": {"face_descriptor": true, "basic_attributes": true},
            "images_per_subtask": 50
        }),
    )
    .await;
    let worker = vision_worker();
    let ended = wait_task(stack, task_id, Duration::from_secs(1800), |t| {
        [2, 3, 5].contains(&t["task_status"].as_u64().unwrap_or(0))
    })
    .await;
    let peak = worker.peak_rss_kib();
    assert_eq!(ended["task_status"], 5, "{ended}");
    let r = inner(result(stack, task_id).await);
    assert_eq!(r["images_total"], count, "{r}");
    assert_eq!(r["images_done"], count, "{r}");
    let images = r["images"].as_array().unwrap();
    assert_eq!(images.len() as u64, count);
    // Input order kept; most copies keep at least one face (crops may cut them all out).
    for (i, image) in images.iter().enumerate() {
        assert_eq!(image["index"], i as u64);
        assert_eq!(image["filename"], format!("copies/{i:05}.jpg"));
    }
    let with_faces = images
        .iter()
        .filter(|i| !i["faces"].as_array().unwrap().is_empty())
        .count();
    assert!(
        with_faces as u64 * 10 >= count * 8,
        "{with_faces} of {count}"
    );
    eprintln!("estimator: {count} images ({archive_len} bytes zipped), worker peak {peak} KiB");
    assert!(peak < WORKER_PEAK_MAX_KIB, "worker peak {peak} KiB");
}
