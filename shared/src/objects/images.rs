//! Object images: a face's avatar and an event's sample.
//!
//! The bytes live in the results bucket under `objects/<account_id>/` (beside the
//! engine's `tasks/` and the scratch `tmp/`), never in DynamoDB: an item holds at most
//! 400 KB, and every read of a face or event would pay for its image. The object's item
//! keeps a [`StoredImage`] (content type and size), so readers such as the exporter learn
//! from the record alone whether there is an image and what it is.
//!
//! An upload writes the S3 object first, then sets `image` on the item with a condition
//! (the item exists and belongs to the account); when the condition fails the object is
//! deleted again. The key names the caller's account, so an upload naming another
//! account's face lands under the caller's own prefix and never touches that face's image.
//! Deletes go the other way, record first and object second: a crash in between leaves
//! an orphan object that no record refers to, nothing worse. Readers treat a record whose
//! object is missing (an upload and a delete racing) as having no image.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Services;
use crate::error::{ApiError, ErrorCode};
use crate::store::blobs;
use crate::store::dynamo::s;
use crate::store::keys;
use crate::timestamps;

/// Largest image stored, in bytes (4 MiB). Lambda's invocation payload is at most 6 MB
/// and API Gateway hands it a binary body base64-encoded (4/3 of its size), so 4 MiB
/// (5.6 MB encoded) is the largest round number that still reaches the function.
pub const IMAGE_MAX_BYTES: usize = 4 * 1024 * 1024;
/// Content type of a JPEG image.
pub const JPEG: &str = "image/jpeg";
/// Content type of a PNG image.
pub const PNG: &str = "image/png";
/// Every content type an image can have.
pub const CONTENT_TYPES: &[&str] = &[JPEG, PNG];

/// First bytes of every JPEG file (SOI marker and the start of the next marker).
const JPEG_MAGIC: &[u8] = &[0xFF, 0xD8, 0xFF];
/// The PNG file signature.
const PNG_MAGIC: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

/// The image of a face or event, as its DynamoDB item records it (the bytes are in S3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredImage {
    /// `image/jpeg` or `image/png`, from the image's first bytes.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
}

/// An image read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// `image/jpeg` or `image/png`.
    pub content_type: String,
    /// The bytes as uploaded.
    pub bytes: Vec<u8>,
}

/// Prefix of every image of an account.
pub fn account_prefix(account_id: Uuid) -> String {
    format!("objects/{account_id}/")
}

/// S3 key of a face's avatar.
pub fn face_avatar_key(account_id: Uuid, face_id: Uuid) -> String {
    format!("{}faces/{face_id}/avatar", account_prefix(account_id))
}

/// S3 key of an event's sample.
pub fn event_sample_key(account_id: Uuid, event_id: Uuid) -> String {
    format!("{}events/{event_id}/sample", account_prefix(account_id))
}

/// The API path of a face's avatar, shown in the face's `avatar` field once uploaded.
pub fn face_avatar_path(face_id: Uuid) -> String {
    format!("/1/faces/{face_id}/avatar")
}

/// File extension for a content type (`jpg`, `png`; `bin` for anything else, which a
/// stored image never has).
pub fn extension(content_type: &str) -> &'static str {
    match content_type {
        JPEG => "jpg",
        PNG => "png",
        _ => "bin",
    }
}

/// The content type the first bytes announce, if JPEG or PNG.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(JPEG_MAGIC) {
        Some(JPEG)
    } else if bytes.starts_with(PNG_MAGIC) {
        Some(PNG)
    } else {
        None
    }
}

/// Checks an upload and describes it: empty is 12030, over [`IMAGE_MAX_BYTES`] 413,
/// neither JPEG nor PNG 415.
///
/// The bytes decide the content type. A `declared` Content-Type is checked only when it
/// is one of [`CONTENT_TYPES`] (a 415 if the bytes say otherwise); any other value, such
/// as curl's default form type or `application/octet-stream`, is ignored.
pub fn validate(body: &[u8], declared: Option<&str>) -> Result<StoredImage, ApiError> {
    if body.is_empty() {
        return Err(ApiError::new(
            ErrorCode::NoData,
            "Request does not contain data: the image body is empty",
        ));
    }
    if body.len() > IMAGE_MAX_BYTES {
        return Err(ApiError::new(
            ErrorCode::ImageTooLarge,
            format!(
                "Image of {} bytes is larger than the limit of {IMAGE_MAX_BYTES} bytes (4 MiB)",
                body.len()
            ),
        ));
    }
    let content_type = sniff(body).ok_or_else(|| {
        ApiError::new(
            ErrorCode::ImageUnsupported,
            "Image is neither JPEG nor PNG (judged by its first bytes)",
        )
    })?;
    check_declared(declared, content_type)?;
    Ok(StoredImage {
        content_type: content_type.to_string(),
        size: body.len() as u64,
    })
}

/// A declared JPEG or PNG content type must match the bytes.
fn check_declared(declared: Option<&str>, actual: &str) -> Result<(), ApiError> {
    let Some(declared) = declared else {
        return Ok(());
    };
    let essence = declared
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if CONTENT_TYPES.contains(&essence.as_str()) && essence != actual {
        return Err(ApiError::new(
            ErrorCode::ImageUnsupported,
            format!("Content-Type '{declared}' does not match the image bytes ({actual})"),
        ));
    }
    Ok(())
}

/// Stores a face's avatar and points the face's `avatar` field at
/// `/1/faces/<face_id>/avatar`; 22002 when the face is not in the account.
pub async fn put_face_avatar(
    svc: &Services,
    account_id: Uuid,
    face_id: Uuid,
    body: Vec<u8>,
    declared: Option<&str>,
) -> Result<StoredImage, ApiError> {
    put(svc, account_id, Owner::Face(face_id), body, declared).await
}

/// Stores an event's sample; 23001 when the event is not in the account.
pub async fn put_event_sample(
    svc: &Services,
    account_id: Uuid,
    event_id: Uuid,
    body: Vec<u8>,
    declared: Option<&str>,
) -> Result<StoredImage, ApiError> {
    put(svc, account_id, Owner::Event(event_id), body, declared).await
}

/// A face's avatar; 22002 for an unknown face, 40006 when it has none.
pub async fn get_face_avatar(
    svc: &Services,
    account_id: Uuid,
    face_id: Uuid,
) -> Result<Image, ApiError> {
    let face = super::faces::record(svc, account_id, face_id).await?;
    read(svc, account_id, Owner::Face(face_id), face.image).await
}

/// An event's sample; 23001 for an unknown event, 40006 when it has none.
pub async fn get_event_sample(
    svc: &Services,
    account_id: Uuid,
    event_id: Uuid,
) -> Result<Image, ApiError> {
    let event = super::events::record(svc, account_id, event_id).await?;
    read(svc, account_id, Owner::Event(event_id), event.image).await
}

/// The avatar of a face made from an event: the event's sample copied (S3 `CopyObject`,
/// the bytes never pass through here) to the face's avatar key, answering the image the
/// face's item is to record, with `avatar` set to [`face_avatar_path`] as
/// [`put_face_avatar`] sets it. `None` when the event has no sample, or its object is
/// gone (a delete racing; readers treat such a record as having no image). The key
/// derives from the face id, so a repeated copy overwrites the same object.
pub async fn copy_sample_to_avatar(
    svc: &Services,
    event: &super::events::EventRecord,
    face_id: Uuid,
) -> Result<Option<StoredImage>, ApiError> {
    use aws_sdk_s3::error::ProvideErrorMetadata;

    let Some(image) = event.image.clone() else {
        return Ok(None);
    };
    let account_id = event.event.account_id;
    let from = Owner::Event(event.event.event_id).object_key(account_id);
    let copied = svc
        .aws
        .s3
        .copy_object()
        .bucket(&svc.config.bucket)
        .copy_source(format!("{}/{from}", svc.config.bucket))
        .key(Owner::Face(face_id).object_key(account_id))
        .send()
        .await;
    match copied {
        Ok(_) => Ok(Some(image)),
        Err(err) if err.code() == Some("NoSuchKey") => Ok(None),
        Err(err) => Err(ApiError::internal(
            "s3 copy_object",
            crate::store::dynamo::aws_error(&err),
        )),
    }
}

/// Removes a face's avatar: the `image` attribute (and the `avatar` path when it still
/// points at the upload), then the object. Idempotent; 22002 for an unknown face.
pub async fn delete_face_avatar(
    svc: &Services,
    account_id: Uuid,
    face_id: Uuid,
) -> Result<(), ApiError> {
    let face = super::faces::record(svc, account_id, face_id).await?;
    let mut update = "REMOVE #image".to_string();
    let mut values = HashMap::from([(":account".to_string(), s(&account_id.to_string()))]);
    if face.avatar == face_avatar_path(face_id) {
        update.push_str(" SET avatar = :empty, last_update_time = :now");
        values.insert(":empty".into(), s(""));
        values.insert(":now".into(), s(&timestamps::format(timestamps::now())));
    }
    let owner = Owner::Face(face_id);
    if !update_item(svc, owner, &update, values).await? {
        return Err(owner.not_found());
    }
    blobs::delete(svc, &owner.object_key(account_id)).await
}

/// The object an image belongs to.
#[derive(Debug, Clone, Copy)]
enum Owner {
    Face(Uuid),
    Event(Uuid),
}

impl Owner {
    fn object_key(self, account_id: Uuid) -> String {
        match self {
            Owner::Face(id) => face_avatar_key(account_id, id),
            Owner::Event(id) => event_sample_key(account_id, id),
        }
    }

    fn item_key(self) -> (String, &'static str) {
        match self {
            Owner::Face(id) => (keys::face_pk(id), keys::FACE_SK),
            Owner::Event(id) => (keys::event_pk(id), keys::EVENT_SK),
        }
    }

    fn not_found(self) -> ApiError {
        match self {
            Owner::Face(id) => ApiError::face_not_found(id),
            Owner::Event(id) => ApiError::event_not_found(id),
        }
    }

    fn no_image(self) -> ApiError {
        let detail = match self {
            Owner::Face(id) => format!("Face with id '{id}' has no avatar"),
            Owner::Event(id) => format!("Event with id '{id}' has no sample"),
        };
        ApiError::new(ErrorCode::ImageNotFound, detail)
    }
}

/// Validates, writes the object, then records it on the item; undoes the write when the
/// item is not in the account. On any other failure the object stays: the update may
/// have been applied, and a surplus object is harmless.
async fn put(
    svc: &Services,
    account_id: Uuid,
    owner: Owner,
    body: Vec<u8>,
    declared: Option<&str>,
) -> Result<StoredImage, ApiError> {
    let image = validate(&body, declared)?;
    let key = owner.object_key(account_id);
    blobs::put(svc, &key, body, &image.content_type).await?;
    let mut update = "SET #image = :image".to_string();
    let mut values = HashMap::from([
        (":account".to_string(), s(&account_id.to_string())),
        (":image".to_string(), image_attribute(&image)?),
    ]);
    if let Owner::Face(face_id) = owner {
        update.push_str(", avatar = :avatar, last_update_time = :now");
        values.insert(":avatar".into(), s(&face_avatar_path(face_id)));
        values.insert(":now".into(), s(&timestamps::format(timestamps::now())));
    }
    if update_item(svc, owner, &update, values).await? {
        return Ok(image);
    }
    blobs::delete(svc, &key).await?;
    Err(owner.not_found())
}

/// The bytes of a recorded image; its content type as the bytes announce it (they win
/// over the record should two uploads have raced).
async fn read(
    svc: &Services,
    account_id: Uuid,
    owner: Owner,
    stored: Option<StoredImage>,
) -> Result<Image, ApiError> {
    let stored = stored.ok_or_else(|| owner.no_image())?;
    let bytes = blobs::get(svc, &owner.object_key(account_id))
        .await?
        .ok_or_else(|| owner.no_image())?;
    let content_type = sniff(&bytes).map_or(stored.content_type, str::to_string);
    Ok(Image {
        content_type,
        bytes,
    })
}

/// Applies `update` to the owner's item if it exists in the account (`:account`);
/// `false` when it does not. `#image` names the `image` attribute.
async fn update_item(
    svc: &Services,
    owner: Owner,
    update: &str,
    values: HashMap<String, AttributeValue>,
) -> Result<bool, ApiError> {
    let (pk, sk) = owner.item_key();
    let updated = svc
        .table
        .update(
            &pk,
            sk,
            update,
            Some("attribute_exists(pk) AND account_id = :account"),
            values,
        )
        .await?;
    Ok(updated.is_some())
}

fn image_attribute(image: &StoredImage) -> Result<AttributeValue, ApiError> {
    serde_dynamo::to_attribute_value(image).map_err(|e| ApiError::internal("serialize image", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(len: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; len];
        bytes[..3].copy_from_slice(JPEG_MAGIC);
        bytes
    }

    #[test]
    fn jpeg_and_png_are_told_by_their_first_bytes() {
        let png = [PNG_MAGIC, b"rest"].concat();
        assert_eq!(validate(&jpeg(10), None).unwrap().content_type, JPEG);
        let stored = validate(&png, None).unwrap();
        assert_eq!(stored.content_type, PNG);
        assert_eq!(stored.size, png.len() as u64);
    }

    #[test]
    fn empty_oversized_and_unknown_bodies_are_refused_with_their_codes() {
        let code = |body: &[u8]| validate(body, None).unwrap_err().code;
        assert_eq!(code(b""), ErrorCode::NoData);
        assert_eq!(code(&jpeg(IMAGE_MAX_BYTES + 1)), ErrorCode::ImageTooLarge);
        assert_eq!(code(b"GIF89a......"), ErrorCode::ImageUnsupported);
        assert_eq!(code(&[0xFF, 0xD8]), ErrorCode::ImageUnsupported);
        assert!(validate(&jpeg(IMAGE_MAX_BYTES), None).is_ok());
    }

    #[test]
    fn too_large_detail_names_the_size_and_the_limit() {
        let err = validate(&jpeg(IMAGE_MAX_BYTES + 1), None).unwrap_err();
        assert!(err.detail.contains("4194305"), "{}", err.detail);
        assert!(err.detail.contains("4194304"), "{}", err.detail);
    }

    #[test]
    fn a_declared_image_type_must_match_and_others_are_ignored() {
        let body = jpeg(10);
        assert!(validate(&body, Some("image/jpeg")).is_ok());
        assert!(validate(&body, Some("Image/JPEG; q=1")).is_ok());
        assert!(validate(&body, Some("application/octet-stream")).is_ok());
        assert!(validate(&body, Some("application/x-www-form-urlencoded")).is_ok());
        let err = validate(&body, Some("image/png")).unwrap_err();
        assert_eq!(err.code, ErrorCode::ImageUnsupported);
    }

    #[test]
    fn keys_sit_under_the_account_prefix_apart_from_tasks_and_tmp() {
        let (account, id) = (Uuid::new_v4(), Uuid::new_v4());
        let other = Uuid::new_v4();
        for key in [face_avatar_key(account, id), event_sample_key(account, id)] {
            assert!(key.starts_with(&account_prefix(account)), "{key}");
            assert!(
                !key.starts_with("tasks/") && !key.starts_with("tmp/"),
                "{key}"
            );
        }
        assert_ne!(face_avatar_key(account, id), face_avatar_key(other, id));
        assert_ne!(face_avatar_key(account, id), event_sample_key(account, id));
    }

    #[test]
    fn extensions_follow_the_content_type() {
        assert_eq!(extension(JPEG), "jpg");
        assert_eq!(extension(PNG), "png");
        assert_eq!(extension("text/plain"), "bin");
    }

    #[test]
    fn stored_image_is_a_map_attribute() {
        let image = StoredImage {
            content_type: PNG.into(),
            size: 42,
        };
        let AttributeValue::M(map) = image_attribute(&image).unwrap() else {
            panic!("not a map");
        };
        assert_eq!(map["content_type"], s(PNG));
        assert_eq!(map["size"], AttributeValue::N("42".into()));
    }
}
