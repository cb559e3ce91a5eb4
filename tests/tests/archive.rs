//! Result archives are written to S3 part by part while they are built. These tests write
//! them to the emulator through the SDK and read them back whole: a multipart object
//! matches what was written, a zip of copied objects opens with its entries intact, and an
//! aborted upload leaves nothing behind.

use std::io::{Cursor, Read};

use fanout::Services;
use fanout::error::{ApiError, ErrorCode};
use fanout::store::archive::{Compression, ZipUpload};
use fanout::store::blobs;
use fanout::store::multipart::{MultipartUpload, PART_SIZE};
use fanout_e2e::stack;
use uuid::Uuid;
use zip::ZipArchive;

/// A prefix of its own for one test's objects.
fn test_prefix() -> String {
    format!("tmp/tests/{}/", Uuid::new_v4())
}

/// Bytes unlike any S3 part boundary or zip structure (xorshift), seeded per use.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A CSV export of `rows` rows.
fn csv_rows(rows: usize) -> Vec<u8> {
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record(["face_id", "list_id", "similarity", "created_at"])
        .unwrap();
    for row in 0..rows {
        csv.write_record([
            Uuid::from_u128(row as u128).to_string(),
            Uuid::from_u128(!(row as u128)).to_string(),
            format!("0.{:06}", row % 1_000_000),
            format!("2026-01-01T00:00:{:02}Z", row % 60),
        ])
        .unwrap();
    }
    csv.into_inner().unwrap()
}

/// Reads an archive object back whole.
async fn read_archive(svc: &Services, key: &str) -> ZipArchive<Cursor<Vec<u8>>> {
    let bytes = blobs::get(svc, key).await.unwrap().expect("archive object");
    ZipArchive::new(Cursor::new(bytes)).expect("a valid zip")
}

/// Name and content of entry `index`.
fn entry(archive: &mut ZipArchive<Cursor<Vec<u8>>>, index: usize) -> (String, Vec<u8>) {
    let mut file = archive.by_index(index).unwrap();
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).unwrap();
    (file.name().unwrap().to_string(), bytes)
}

/// Size of object `key`; `None` when there is none.
async fn object_size(svc: &Services, key: &str) -> Option<u64> {
    blobs::head(svc, key).await.unwrap().map(|h| h.size)
}

/// How many uploads of `key` are pending.
async fn pending_uploads(svc: &Services, key: &str) -> usize {
    let out = svc
        .aws
        .s3
        .list_multipart_uploads()
        .bucket(&svc.config.bucket)
        .prefix(key)
        .send()
        .await
        .unwrap();
    out.uploads().len()
}

#[tokio::test]
async fn multipart_upload_of_20_mib_reads_back_identical() {
    let svc = &stack().services;
    let prefix = test_prefix();
    let key = format!("{prefix}blob.bin");
    let data = noise(20 * 1024 * 1024 + 12_345, 1);

    let mut upload = MultipartUpload::begin(svc, &key, "application/octet-stream")
        .await
        .unwrap();
    // Uneven writes, so parts are cut across them.
    for piece in data.chunks(1024 * 1024 + 7) {
        upload.write(piece).await.unwrap();
    }
    assert_eq!(upload.written(), data.len() as u64);
    let size = upload.finish().await.unwrap();

    assert!(data.len() > 2 * PART_SIZE);
    assert_eq!(size, data.len() as u64);
    let stored = blobs::get(svc, &key).await.unwrap().expect("object");
    assert!(stored == data, "the object differs from what was written");
    // A multipart object's ETag ends with its number of parts.
    let head = svc
        .aws
        .s3
        .head_object()
        .bucket(&svc.config.bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    assert!(
        head.e_tag().unwrap().ends_with("-3\""),
        "{:?}",
        head.e_tag()
    );
    assert_eq!(pending_uploads(svc, &key).await, 0);
    blobs::delete_prefix(svc, &prefix).await.unwrap();
}

#[tokio::test]
async fn archive_of_a_copied_csv_and_a_split_pack_reads_back() {
    let svc = &stack().services;
    let prefix = test_prefix();
    let (csv_key, pack_key, zip_key) = (
        format!("{prefix}rows.csv"),
        format!("{prefix}images.pack"),
        format!("{prefix}result.zip"),
    );
    let csv = csv_rows(130_000);
    assert!(csv.len() > 12 * 1024 * 1024, "{} bytes", csv.len());
    let images = [noise(150_000, 2), Vec::new(), noise(3 * 1024 * 1024 + 5, 3)];
    let pack: Vec<u8> = images.concat();
    let names = ["images/1.jpg", "images/2.jpg", "images/3.jpg"];
    let entries: Vec<(String, u64)> = names
        .iter()
        .zip(&images)
        .map(|(name, image)| (name.to_string(), image.len() as u64))
        .collect();
    blobs::put(svc, &csv_key, csv.clone(), "text/csv")
        .await
        .unwrap();
    blobs::put(svc, &pack_key, pack, "application/octet-stream")
        .await
        .unwrap();

    let mut zip = ZipUpload::begin(svc, &zip_key).await.unwrap();
    zip.start_file("rows.csv", Compression::Deflated)
        .await
        .unwrap();
    assert_eq!(zip.copy_object(&csv_key).await.unwrap(), csv.len() as u64);
    zip.copy_entries(&pack_key, &entries).await.unwrap();
    let size = zip.finish().await.unwrap();

    assert_eq!(object_size(svc, &zip_key).await, Some(size));
    let mut archive = read_archive(svc, &zip_key).await;
    assert_eq!(archive.len(), 4);
    let (name, rows) = entry(&mut archive, 0);
    assert_eq!(name, "rows.csv");
    assert!(rows == csv, "rows.csv differs");
    for (index, (name, image)) in names.iter().zip(&images).enumerate() {
        let (read_name, bytes) = entry(&mut archive, index + 1);
        assert_eq!(read_name, *name);
        assert_eq!(bytes.len(), image.len(), "{name}");
        assert!(bytes == *image, "{name} differs");
    }
    blobs::delete_prefix(svc, &prefix).await.unwrap();
}

#[tokio::test]
async fn copying_a_missing_object_or_a_pack_of_another_length_fails() {
    let svc = &stack().services;
    let prefix = test_prefix();
    let pack_key = format!("{prefix}images.pack");
    blobs::put(svc, &pack_key, vec![7; 100], "application/octet-stream")
        .await
        .unwrap();

    let mut zip = ZipUpload::begin(svc, &format!("{prefix}result.zip"))
        .await
        .unwrap();
    zip.start_file("missing.csv", Compression::Deflated)
        .await
        .unwrap();
    let missing: ApiError = zip
        .copy_object(&format!("{prefix}missing.csv"))
        .await
        .unwrap_err();
    assert_eq!(missing.code, ErrorCode::Internal);
    let entries = [("a.jpg".to_string(), 60), ("b.jpg".to_string(), 50)];
    let mismatched = zip.copy_entries(&pack_key, &entries).await.unwrap_err();
    assert_eq!(mismatched.code, ErrorCode::Internal);
    zip.abort().await;
    blobs::delete_prefix(svc, &prefix).await.unwrap();
}

#[tokio::test]
async fn aborted_archive_leaves_no_object_and_no_pending_upload() {
    let svc = &stack().services;
    let prefix = test_prefix();
    let key = format!("{prefix}result.zip");

    let mut zip = ZipUpload::begin(svc, &key).await.unwrap();
    zip.start_file("noise.bin", Compression::Stored)
        .await
        .unwrap();
    // More than a part, so one is uploaded before the abort.
    zip.write(&noise(PART_SIZE + 1024, 4)).await.unwrap();
    assert_eq!(pending_uploads(svc, &key).await, 1);
    zip.abort().await;

    assert_eq!(object_size(svc, &key).await, None);
    assert_eq!(pending_uploads(svc, &key).await, 0);
}

#[tokio::test]
async fn empty_and_tiny_archives_and_an_empty_upload_finish() {
    let svc = &stack().services;
    let prefix = test_prefix();

    let empty_key = format!("{prefix}empty.zip");
    let size = ZipUpload::begin(svc, &empty_key)
        .await
        .unwrap()
        .finish()
        .await
        .unwrap();
    assert_eq!(size, 22, "an end of central directory record alone");
    assert_eq!(read_archive(svc, &empty_key).await.len(), 0);

    let tiny_key = format!("{prefix}tiny.zip");
    let mut zip = ZipUpload::begin(svc, &tiny_key).await.unwrap();
    zip.start_file("empty.txt", Compression::Deflated)
        .await
        .unwrap();
    zip.start_file("hello.txt", Compression::Deflated)
        .await
        .unwrap();
    zip.write(b"hello").await.unwrap();
    zip.finish().await.unwrap();
    let mut archive = read_archive(svc, &tiny_key).await;
    assert_eq!(
        entry(&mut archive, 0),
        ("empty.txt".to_string(), Vec::new())
    );
    assert_eq!(
        entry(&mut archive, 1),
        ("hello.txt".to_string(), b"hello".to_vec())
    );

    let blob_key = format!("{prefix}empty.bin");
    let upload = MultipartUpload::begin(svc, &blob_key, "application/octet-stream")
        .await
        .unwrap();
    assert_eq!(upload.finish().await.unwrap(), 0);
    assert_eq!(blobs::get(svc, &blob_key).await.unwrap(), Some(Vec::new()));
    blobs::delete_prefix(svc, &prefix).await.unwrap();
}
