//! Face avatars and event samples through the gateway: bytes in the emulator's S3, the
//! record of each on its DynamoDB item.

use fanout::objects::images::{self, IMAGE_MAX_BYTES, StoredImage};
use fanout::objects::{events, faces};
use fanout::store::blobs;
use fanout_e2e::{account, stack};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

/// A JPEG-looking body of `len` bytes (the signature, then a pattern).
fn jpeg(len: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
    bytes[..4].copy_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
    bytes
}

/// A PNG-looking body of `len` bytes.
fn png(len: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..len).map(|i| (i * 13 % 241) as u8).collect();
    bytes[..8].copy_from_slice(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]);
    bytes
}

async fn create_face(acc: &str) -> String {
    let answer = stack().post("/1/faces", &json!({"account_id": acc})).await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.json["face_id"].as_str().unwrap().to_string()
}

async fn create_event(acc: &str) -> String {
    let answer = stack()
        .post(
            "/1/events",
            &json!({"account_id": acc, "events": [{"source": "cam1"}]}),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.json["events"][0]["event_id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn avatar(face: &str, acc: &str) -> String {
    format!("/1/faces/{face}/avatar?account_id={acc}")
}

fn sample(event: &str, acc: &str) -> String {
    format!("/1/events/{event}/sample?account_id={acc}")
}

async fn put(path: &str, content_type: Option<&str>, body: Vec<u8>) -> fanout_e2e::Answer {
    stack()
        .send_bytes(Method::PUT, path, content_type, body)
        .await
}

/// Every S3 object of an account's images.
async fn objects_of(acc: &str) -> Vec<String> {
    stack()
        .stored_objects(&images::account_prefix(acc.parse().unwrap()))
        .await
}

/// Size of one S3 object (`HeadObject`); `None` when it does not exist.
async fn head_object(key: &str) -> Option<u64> {
    blobs::head(&stack().services, key)
        .await
        .unwrap()
        .map(|h| h.size)
}

async fn face_image(acc: &str, face: &str) -> Option<StoredImage> {
    faces::record(
        &stack().services,
        acc.parse().unwrap(),
        face.parse().unwrap(),
    )
    .await
    .expect("face")
    .image
}

#[tokio::test]
async fn uploaded_jpeg_reads_back_byte_for_byte() {
    let acc = account();
    let face = create_face(&acc).await;
    let body = jpeg(50_000);
    let put = put(&avatar(&face, &acc), Some("image/jpeg"), body.clone()).await;
    assert_eq!(put.status, 204, "{}", put.text);

    let got = stack().get_bytes(&avatar(&face, &acc)).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.content_type(), "image/jpeg");
    assert!(got.bytes == body, "bytes differ");

    let stored = face_image(&acc, &face).await.expect("image recorded");
    assert_eq!(stored.content_type, "image/jpeg");
    assert_eq!(stored.size, 50_000);
    let view = stack()
        .get(&format!("/1/faces/{face}?account_id={acc}"))
        .await;
    assert_eq!(view.json["avatar"], format!("/1/faces/{face}/avatar"));
    assert!(view.json.get("image").is_none(), "{}", view.text);
}

#[tokio::test]
async fn uploaded_png_reads_back_and_replaces_the_previous_image() {
    let acc = account();
    let face = create_face(&acc).await;
    assert_eq!(put(&avatar(&face, &acc), None, jpeg(100)).await.status, 204);
    let body = png(3_000);
    let put = put(&avatar(&face, &acc), Some("image/png"), body.clone()).await;
    assert_eq!(put.status, 204, "{}", put.text);

    let got = stack().get_bytes(&avatar(&face, &acc)).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.content_type(), "image/png");
    assert!(got.bytes == body, "bytes differ");
    let stored = face_image(&acc, &face).await.unwrap();
    assert_eq!(
        (stored.content_type.as_str(), stored.size),
        ("image/png", 3_000)
    );
    assert_eq!(objects_of(&acc).await.len(), 1);
}

#[tokio::test]
async fn image_one_byte_over_4_mib_is_413_and_nothing_is_stored() {
    let acc = account();
    let face = create_face(&acc).await;
    let put = put(
        &avatar(&face, &acc),
        Some("image/jpeg"),
        jpeg(IMAGE_MAX_BYTES + 1),
    )
    .await;
    assert_eq!(put.status, 413, "{}", put.text);
    assert_eq!(put.error_code(), 40004);
    assert!(put.json["detail"].as_str().unwrap().contains("4194305"));

    let got = stack().get_bytes(&avatar(&face, &acc)).await;
    assert_eq!(got.status, 404);
    assert_eq!(got.error_code(), 40006);
    assert!(objects_of(&acc).await.is_empty());
    assert_eq!(face_image(&acc, &face).await, None);
}

#[tokio::test]
async fn image_of_exactly_4_mib_is_accepted() {
    let acc = account();
    let face = create_face(&acc).await;
    let body = png(IMAGE_MAX_BYTES);
    let put = put(&avatar(&face, &acc), Some("image/png"), body.clone()).await;
    assert_eq!(put.status, 204, "{}", put.text);
    let got = stack().get_bytes(&avatar(&face, &acc)).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.bytes.len(), IMAGE_MAX_BYTES);
    assert!(got.bytes == body, "bytes differ");
}

#[tokio::test]
async fn body_that_is_not_an_image_is_415_and_nothing_is_stored() {
    let acc = account();
    let face = create_face(&acc).await;
    for (content_type, body) in [
        (Some("image/jpeg"), b"GIF89a not a jpeg".to_vec()),
        (None, b"plain text".to_vec()),
    ] {
        let put = put(&avatar(&face, &acc), content_type, body).await;
        assert_eq!(put.status, 415, "{}", put.text);
        assert_eq!(put.error_code(), 40005);
    }
    assert!(objects_of(&acc).await.is_empty());
    assert_eq!(face_image(&acc, &face).await, None);
    let view = stack()
        .get(&format!("/1/faces/{face}?account_id={acc}"))
        .await;
    assert_eq!(view.json["avatar"], "");
}

#[tokio::test]
async fn declared_content_type_must_match_the_bytes_when_it_is_an_image_type() {
    let acc = account();
    let face = create_face(&acc).await;
    let wrong = put(&avatar(&face, &acc), Some("image/jpeg"), png(100)).await;
    assert_eq!(wrong.status, 415, "{}", wrong.text);
    assert_eq!(wrong.error_code(), 40005);
    let generic = put(
        &avatar(&face, &acc),
        Some("application/octet-stream"),
        png(100),
    )
    .await;
    assert_eq!(generic.status, 204, "{}", generic.text);
    let got = stack().get_bytes(&avatar(&face, &acc)).await;
    assert_eq!(got.content_type(), "image/png");
}

#[tokio::test]
async fn empty_body_is_12030() {
    let acc = account();
    let face = create_face(&acc).await;
    let put = put(&avatar(&face, &acc), Some("image/jpeg"), Vec::new()).await;
    assert_eq!(put.status, 400, "{}", put.text);
    assert_eq!(put.error_code(), 12030);
}

#[tokio::test]
async fn upload_without_account_acts_on_the_tokens_account() {
    // No account_id: the token's own account (here the tests' admin), where this face
    // of another account is not found, and nothing is stored.
    let acc = account();
    let face = create_face(&acc).await;
    let put = put(
        &format!("/1/faces/{face}/avatar"),
        Some("image/jpeg"),
        jpeg(10),
    )
    .await;
    assert_eq!(put.status, 404, "{}", put.text);
    assert_eq!(put.error_code(), 22002);
    assert!(objects_of(&acc).await.is_empty());
}

#[tokio::test]
async fn unknown_face_is_22002_and_leaves_no_object_behind() {
    let acc = account();
    let face = Uuid::new_v4().to_string();
    let put = put(&avatar(&face, &acc), Some("image/jpeg"), jpeg(100)).await;
    assert_eq!(put.status, 404, "{}", put.text);
    assert_eq!(put.error_code(), 22002);
    assert!(objects_of(&acc).await.is_empty());
    let got = stack().get_bytes(&avatar(&face, &acc)).await;
    assert_eq!((got.status.as_u16(), got.error_code()), (404, 22002));
}

#[tokio::test]
async fn another_account_gets_404_and_changes_nothing() {
    let (owner, other) = (account(), account());
    let face = create_face(&owner).await;
    let body = jpeg(2_000);
    assert_eq!(
        put(&avatar(&face, &owner), None, body.clone()).await.status,
        204
    );

    let put = put(&avatar(&face, &other), Some("image/png"), png(500)).await;
    assert_eq!(put.status, 404, "{}", put.text);
    assert_eq!(put.error_code(), 22002);
    let read = stack().get_bytes(&avatar(&face, &other)).await;
    assert_eq!((read.status.as_u16(), read.error_code()), (404, 22002));
    let delete = stack().delete(&avatar(&face, &other)).await;
    assert_eq!(delete.status, 404, "{}", delete.text);
    assert_eq!(delete.error_code(), 22002);

    assert!(objects_of(&other).await.is_empty());
    let got = stack().get_bytes(&avatar(&face, &owner)).await;
    assert_eq!(got.status, 200);
    assert!(got.bytes == body, "owner's image changed");
    assert_eq!(face_image(&owner, &face).await.unwrap().size, 2_000);
}

#[tokio::test]
async fn deleting_the_avatar_removes_the_object_and_the_path() {
    let acc = account();
    let face = create_face(&acc).await;
    assert_eq!(put(&avatar(&face, &acc), None, jpeg(300)).await.status, 204);
    let delete = stack().delete(&avatar(&face, &acc)).await;
    assert_eq!(delete.status, 204, "{}", delete.text);

    let got = stack().get_bytes(&avatar(&face, &acc)).await;
    assert_eq!((got.status.as_u16(), got.error_code()), (404, 40006));
    assert!(objects_of(&acc).await.is_empty());
    assert_eq!(face_image(&acc, &face).await, None);
    let view = stack()
        .get(&format!("/1/faces/{face}?account_id={acc}"))
        .await;
    assert_eq!(view.json["avatar"], "");
    // Deleting again is fine.
    assert_eq!(stack().delete(&avatar(&face, &acc)).await.status, 204);
}

#[tokio::test]
async fn face_without_avatar_answers_40006() {
    let acc = account();
    let face = create_face(&acc).await;
    let got = stack().get_bytes(&avatar(&face, &acc)).await;
    assert_eq!((got.status.as_u16(), got.error_code()), (404, 40006));
}

#[tokio::test]
async fn deleting_the_face_removes_its_avatar_object() {
    let acc = account();
    let face = create_face(&acc).await;
    assert_eq!(
        put(&avatar(&face, &acc), None, png(1_000)).await.status,
        204
    );
    let key = images::face_avatar_key(acc.parse().unwrap(), face.parse().unwrap());
    assert_eq!(head_object(&key).await, Some(1_000));

    let delete = stack()
        .delete(&format!("/1/faces/{face}?account_id={acc}"))
        .await;
    assert_eq!(delete.status, 204, "{}", delete.text);
    assert_eq!(head_object(&key).await, None);
    assert!(objects_of(&acc).await.is_empty());
}

#[tokio::test]
async fn event_sample_reads_back_and_goes_with_the_event() {
    let acc = account();
    let (with_sample, other_sample, without) = (
        create_event(&acc).await,
        create_event(&acc).await,
        create_event(&acc).await,
    );
    let body = jpeg(10_000);
    let put_one = put(
        &sample(&with_sample, &acc),
        Some("image/jpeg"),
        body.clone(),
    )
    .await;
    assert_eq!(put_one.status, 204, "{}", put_one.text);
    assert_eq!(
        put(&sample(&other_sample, &acc), None, png(10))
            .await
            .status,
        204
    );

    let got = stack().get_bytes(&sample(&with_sample, &acc)).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.content_type(), "image/jpeg");
    assert!(got.bytes == body, "bytes differ");
    let svc = &stack().services;
    let account_id: Uuid = acc.parse().unwrap();
    let record = events::record(svc, account_id, with_sample.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(record.image.unwrap().size, 10_000);
    let missing = stack().get_bytes(&sample(&without, &acc)).await;
    assert_eq!(
        (missing.status.as_u16(), missing.error_code()),
        (404, 40006)
    );
    assert_eq!(objects_of(&acc).await.len(), 2);

    // Events have no delete route: gc tasks delete them through delete_many.
    let ids: Vec<Uuid> = [&with_sample, &other_sample, &without]
        .iter()
        .map(|id| id.parse().unwrap())
        .collect();
    events::delete_many(svc, &ids).await.unwrap();
    assert!(objects_of(&acc).await.is_empty());
    let gone = stack().get_bytes(&sample(&with_sample, &acc)).await;
    assert_eq!((gone.status.as_u16(), gone.error_code()), (404, 23001));
}

#[tokio::test]
async fn unknown_event_is_23001_and_leaves_no_object_behind() {
    let acc = account();
    let event = Uuid::new_v4().to_string();
    let put = put(&sample(&event, &acc), Some("image/png"), png(100)).await;
    assert_eq!(put.status, 404, "{}", put.text);
    assert_eq!(put.error_code(), 23001);
    assert!(objects_of(&acc).await.is_empty());
}

#[tokio::test]
async fn oversized_or_foreign_event_sample_stores_nothing() {
    let (owner, other) = (account(), account());
    let event = create_event(&owner).await;
    let big = put(&sample(&event, &owner), None, jpeg(IMAGE_MAX_BYTES + 1)).await;
    assert_eq!((big.status.as_u16(), big.error_code()), (413, 40004));
    let foreign = put(&sample(&event, &other), None, jpeg(100)).await;
    assert_eq!(
        (foreign.status.as_u16(), foreign.error_code()),
        (404, 23001)
    );
    assert!(objects_of(&owner).await.is_empty());
    assert!(objects_of(&other).await.is_empty());
    let got = stack().get_bytes(&sample(&event, &owner)).await;
    assert_eq!((got.status.as_u16(), got.error_code()), (404, 40006));
}
