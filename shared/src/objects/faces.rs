//! Faces: a descriptor with its attributes, owned by an account, member of lists.
//!
//! A face is one item (`FACE#<id>`); each list membership is one more item in the list's
//! partition (`LIST#<list>`, `FACE#<face>`) that the index also files under the face
//! (`FACELISTS#<face>`), so both "faces of a list" and "lists of a face" are one query.
//! Memberships are written in transactions that check the face still exists, so a
//! membership never outlives its face.
//!
//! The index is eventually consistent, so deleting a face does not find its memberships
//! there: each membership made after creation also has a record in the face's own
//! partition (`FACE#<face>`, `LIST#<list>`), written and removed with it, and the lists
//! a face is created in are kept on its item. Delete reads both consistently.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use futures::future::try_join_all;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::images::{self, StoredImage};
use super::{Count, SHORT_TEXT_MAX, USER_DATA_MAX, check_text};
use crate::Services;
use crate::descriptor::Descriptor;
use crate::error::{ApiError, ErrorCode};
use crate::query::{Page, PageBuffer, Query, TimeRange};
use crate::store::dynamo::{
    TRANSACTION_MAX, TransactError, check_op, delete_op, from_item, put_new_op, put_op, s, to_item,
};
use crate::store::{Item, KeyRange, TableQuery, blobs, keys};
use crate::timestamps;

/// Most lists a face can be put in when it is created.
pub const LISTS_ON_CREATE_MAX: usize = 40;
/// Most characters of an avatar URL.
pub const AVATAR_MAX: usize = 256;

/// Body of `POST /1/faces`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFace {
    /// Owner of the face.
    pub account_id: Uuid,
    /// Float array, or base64 of little-endian f32 values.
    #[schema(value_type = Option<Object>)]
    pub descriptor: Option<Value>,
    /// Version of `descriptor`; the configured default when absent.
    pub descriptor_version: Option<u32>,
    /// Client-side id, at most 36 characters.
    pub external_id: Option<String>,
    /// Free text, at most 128 characters.
    pub user_data: Option<String>,
    /// Event the face was made from.
    pub event_id: Option<Uuid>,
    /// Avatar image URL, at most 256 characters.
    pub avatar: Option<String>,
    /// Lists to put the face in (same account).
    pub lists: Option<Vec<Uuid>>,
}

/// Body of `PATCH /1/faces/{face_id}`: the attributes to change.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FacePatch {
    /// New client-side id.
    pub external_id: Option<String>,
    /// New free text.
    pub user_data: Option<String>,
    /// New source event.
    pub event_id: Option<Uuid>,
    /// New avatar URL.
    pub avatar: Option<String>,
}

/// Answer to `POST /1/faces`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct FaceCreated {
    /// Id of the new face.
    pub face_id: Uuid,
    /// Path of the new face.
    pub url: String,
}

/// A face as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Face {
    /// Face id.
    pub face_id: Uuid,
    /// Owner.
    pub account_id: Uuid,
    /// Source event, if any.
    pub event_id: Option<Uuid>,
    /// Client-side id.
    pub external_id: Option<String>,
    /// Free text ("" when unset).
    pub user_data: String,
    /// Avatar URL ("" when unset).
    pub avatar: String,
    /// Creation time (RFC 3339, UTC).
    pub create_time: String,
    /// Last change of the attributes.
    pub last_update_time: String,
    /// Version of the stored descriptor; null when the face has none.
    pub descriptor_version: Option<u32>,
    /// Lists the face belongs to.
    pub lists: Vec<Uuid>,
}

/// Answer to `GET /1/faces`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FacePage {
    /// The faces of the requested page.
    pub faces: Vec<Face>,
}

/// The stored item of a face.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaceRecord {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi3pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi3sk: Option<String>,
    /// Face id.
    pub face_id: Uuid,
    /// Owner.
    pub account_id: Uuid,
    /// Source event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Uuid>,
    /// Client-side id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Free text.
    #[serde(default)]
    pub user_data: String,
    /// Avatar URL.
    #[serde(default)]
    pub avatar: String,
    /// Creation time.
    pub create_time: String,
    /// Last change.
    pub last_update_time: String,
    /// Descriptor version, when the face has a descriptor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptor_version: Option<u32>,
    /// Descriptor as little-endian f32 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub descriptor: Option<Vec<u8>>,
    /// The uploaded avatar, whose bytes are in S3 at [`images::face_avatar_key`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<StoredImage>,
    /// Lists the face was put in when it was created, written with it in one transaction
    /// (it may have left them since): where delete finds those memberships, which have no
    /// record in the face's partition (a creation in 40 lists would not fit one
    /// transaction with them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    created_lists: Vec<Uuid>,
}

impl FaceRecord {
    /// The stored descriptor, if any.
    pub fn descriptor(&self) -> Option<Descriptor> {
        Some(Descriptor::from_le_bytes(
            self.descriptor_version?,
            self.descriptor.as_deref()?,
        ))
    }

    fn view(&self, lists: Vec<Uuid>) -> Face {
        Face {
            face_id: self.face_id,
            account_id: self.account_id,
            event_id: self.event_id,
            external_id: self.external_id.clone(),
            user_data: self.user_data.clone(),
            avatar: self.avatar.clone(),
            create_time: self.create_time.clone(),
            last_update_time: self.last_update_time.clone(),
            descriptor_version: self.descriptor_version,
            lists,
        }
    }
}

/// The stored item of one face's membership in one list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MembershipRecord {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    pub(crate) list_id: Uuid,
    pub(crate) face_id: Uuid,
    pub(crate) account_id: Uuid,
}

impl MembershipRecord {
    pub(crate) fn new(list_id: Uuid, face_id: Uuid, account_id: Uuid) -> MembershipRecord {
        MembershipRecord {
            pk: keys::list_pk(list_id),
            sk: keys::membership_sk(face_id),
            gsi1pk: keys::face_lists_partition(face_id),
            gsi1sk: list_id.to_string(),
            list_id,
            face_id,
            account_id,
        }
    }
}

/// The face's own record of one membership, in the face's partition: a consistent query
/// there finds every membership made after creation, which the index may not show yet.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FaceMembershipRecord {
    pk: String,
    sk: String,
    list_id: Uuid,
    face_id: Uuid,
    account_id: Uuid,
}

impl FaceMembershipRecord {
    fn new(list_id: Uuid, face_id: Uuid, account_id: Uuid) -> FaceMembershipRecord {
        FaceMembershipRecord {
            pk: keys::face_pk(face_id),
            sk: keys::face_membership_sk(list_id),
            list_id,
            face_id,
            account_id,
        }
    }
}

/// Both items of a membership made after creation: the list's and the face's.
fn membership_items(list_id: Uuid, face_id: Uuid, account_id: Uuid) -> Result<[Item; 2], ApiError> {
    Ok([
        to_item(&MembershipRecord::new(list_id, face_id, account_id))?,
        to_item(&FaceMembershipRecord::new(list_id, face_id, account_id))?,
    ])
}

/// The keys of both items of a membership.
fn membership_keys(list_id: Uuid, face_id: Uuid) -> [(String, String); 2] {
    [
        (keys::list_pk(list_id), keys::membership_sk(face_id)),
        (keys::face_pk(face_id), keys::face_membership_sk(list_id)),
    ]
}

/// Filters of `GET /1/faces` and `GET /1/faces/count`.
#[derive(Debug, Clone)]
pub struct FaceFilter {
    /// Owner (required).
    pub account_id: Uuid,
    /// Only faces in this list.
    pub list_id: Option<Uuid>,
    /// Only these faces.
    pub face_ids: Option<Vec<Uuid>>,
    /// Only faces with one of these external ids.
    pub external_ids: Option<Vec<String>>,
    /// Only faces whose user_data equals this.
    pub user_data: Option<String>,
    /// Creation time range.
    pub create_time: TimeRange,
}

/// Query parameters `GET /1/faces/count` knows.
pub const COUNT_PARAMS: &[&str] = &[
    "account_id",
    "list_id",
    "face_ids",
    "external_ids",
    "user_data",
    "create_time__gte",
    "create_time__lt",
];
/// Query parameters `GET /1/faces` knows.
pub const LIST_PARAMS: &[&str] = &[
    "account_id",
    "list_id",
    "face_ids",
    "external_ids",
    "user_data",
    "create_time__gte",
    "create_time__lt",
    "page",
    "page_size",
];

impl FaceFilter {
    /// Reads the filter from a query string.
    pub fn from_query(query: &Query) -> Result<FaceFilter, ApiError> {
        Ok(FaceFilter {
            account_id: query.account_id()?,
            list_id: query.uuid("list_id")?,
            face_ids: query.uuid_list("face_ids")?,
            external_ids: query.string_list("external_ids")?,
            user_data: query.single("user_data")?.map(str::to_string),
            create_time: query.time_range("create_time")?,
        })
    }

    pub(crate) fn matches(&self, face: &FaceRecord) -> bool {
        let created = timestamps::parse(&face.create_time);
        face.account_id == self.account_id
            && self
                .face_ids
                .as_ref()
                .is_none_or(|ids| ids.contains(&face.face_id))
            && self
                .external_ids
                .as_ref()
                .is_none_or(|ids| face.external_id.as_ref().is_some_and(|id| ids.contains(id)))
            && self.user_data.as_ref().is_none_or(|u| *u == face.user_data)
            && created.is_some_and(|t| self.create_time.contains(t))
    }
}

/// Creates a face, and its memberships, in one transaction.
pub async fn create(svc: &Services, new: NewFace) -> Result<FaceCreated, ApiError> {
    let lists = creation_lists(&new)?;
    let mut record = new_record(svc, new)?;
    record.created_lists = lists.clone();
    let face_id = record.face_id;
    super::lists::require_all(svc, record.account_id, &lists).await?;
    if lists.is_empty() {
        // One item with a fresh random id: a plain put, no transaction needed.
        svc.table
            .batch_write(vec![to_item(&record)?], Vec::new())
            .await?;
        return Ok(FaceCreated {
            face_id,
            url: format!("/1/faces/{face_id}"),
        });
    }
    match svc
        .table
        .transact(creation_writes(svc, &record, &lists)?)
        .await
    {
        Ok(()) => Ok(FaceCreated {
            face_id,
            url: format!("/1/faces/{face_id}"),
        }),
        // A list vanished between the check and the write.
        Err(TransactError::ConditionFailed) => Err(lists_gone()),
        Err(TransactError::Api(err)) => Err(err),
    }
}

/// The writes of a face's creation: the face, only if new, and per list a check that
/// the list is the account's and the membership.
fn creation_writes(
    svc: &Services,
    record: &FaceRecord,
    lists: &[Uuid],
) -> Result<Vec<TransactWriteItem>, ApiError> {
    let table = svc.table.name();
    let mut writes = vec![put_new_op(table, to_item(record)?)?];
    for &list_id in lists {
        writes.push(list_exists_check(table, list_id, record.account_id)?);
        let membership = MembershipRecord::new(list_id, record.face_id, record.account_id);
        writes.push(put_op(table, to_item(&membership)?)?);
    }
    Ok(writes)
}

/// The lists a new face goes in: sorted, each once, at most [`LISTS_ON_CREATE_MAX`].
fn creation_lists(new: &NewFace) -> Result<Vec<Uuid>, ApiError> {
    let mut lists = new.lists.clone().unwrap_or_default();
    lists.sort();
    lists.dedup();
    if lists.len() > LISTS_ON_CREATE_MAX {
        return Err(ApiError::bad_json(format!(
            "a face can be put in at most {LISTS_ON_CREATE_MAX} lists at creation"
        )));
    }
    Ok(lists)
}

/// A list of a creation was deleted between its check and the write.
fn lists_gone() -> ApiError {
    ApiError::new(
        ErrorCode::ListsNotFound,
        "One or more lists not found (deleted while the face was created)",
    )
}

/// Creates many faces without lists (a bulk loader: 25 per write call instead of one
/// transaction each); each is checked exactly like `POST /1/faces` checks one, and
/// nothing is written unless all pass.
pub async fn create_batch(svc: &Services, batch: Vec<NewFace>) -> Result<Vec<Uuid>, ApiError> {
    let mut items = Vec::with_capacity(batch.len());
    let mut ids = Vec::with_capacity(batch.len());
    for (i, new) in batch.into_iter().enumerate() {
        if new.lists.as_ref().is_some_and(|l| !l.is_empty()) {
            return Err(ApiError::bad_json(format!(
                "faces[{i}]: lists are not set in a batch"
            )));
        }
        let record = new_record(svc, new)
            .map_err(|err| ApiError::new(err.code, format!("faces[{i}]: {}", err.detail)))?;
        ids.push(record.face_id);
        items.push(to_item(&record)?);
    }
    svc.table.batch_write(items, Vec::new()).await?;
    Ok(ids)
}

/// Creates a face under a chosen id, and its memberships, in one transaction: a task
/// derives the id from its input, so a retried subtask finds the face it made instead of
/// making another. `false` when that face exists already.
pub async fn create_with_id(svc: &Services, face_id: Uuid, new: NewFace) -> Result<bool, ApiError> {
    let lists = creation_lists(&new)?;
    let mut record = new_record_with_id(svc, new, face_id)?;
    record.created_lists = lists.clone();
    match svc
        .table
        .transact(creation_writes(svc, &record, &lists)?)
        .await
    {
        Ok(()) => Ok(true),
        Err(TransactError::ConditionFailed) => {
            let exists = svc
                .table
                .get(&keys::face_pk(face_id), keys::FACE_SK)
                .await?;
            if exists.is_some() {
                Ok(false)
            } else {
                Err(lists_gone())
            }
        }
        Err(TransactError::Api(err)) => Err(err),
    }
}

/// Checks a new face and builds its item.
fn new_record(svc: &Services, new: NewFace) -> Result<FaceRecord, ApiError> {
    new_record_with_id(svc, new, Uuid::new_v4())
}

/// Checks a new face and builds its item under `face_id`.
fn new_record_with_id(svc: &Services, new: NewFace, face_id: Uuid) -> Result<FaceRecord, ApiError> {
    check_text("external_id", new.external_id.as_deref(), SHORT_TEXT_MAX)?;
    check_text("user_data", new.user_data.as_deref(), USER_DATA_MAX)?;
    check_text("avatar", new.avatar.as_deref(), AVATAR_MAX)?;
    if new.descriptor.is_none() && new.descriptor_version.is_some() {
        return Err(ApiError::bad_json(
            "'descriptor_version' given without 'descriptor'",
        ));
    }
    let descriptor = new
        .descriptor
        .as_ref()
        .map(|raw| Descriptor::from_json(raw, new.descriptor_version, &svc.config))
        .transpose()?;
    let now = timestamps::format(timestamps::now());
    let gsi1sk = keys::time_sort_key(&now, face_id);
    let version = descriptor.as_ref().map(|d| d.version);
    let (gsi3pk, gsi3sk) = keys::descriptor_index(new.account_id, "FACE", version, &gsi1sk);
    Ok(FaceRecord {
        pk: keys::face_pk(face_id),
        sk: keys::FACE_SK.into(),
        gsi1pk: keys::account_partition(new.account_id, "FACE"),
        gsi1sk,
        gsi3pk,
        gsi3sk,
        face_id,
        account_id: new.account_id,
        event_id: new.event_id,
        external_id: new.external_id,
        user_data: new.user_data.unwrap_or_default(),
        avatar: new.avatar.unwrap_or_default(),
        create_time: now.clone(),
        last_update_time: now,
        descriptor_version: descriptor.as_ref().map(|d| d.version),
        descriptor: descriptor.as_ref().map(Descriptor::to_le_bytes),
        image: None,
        created_lists: Vec::new(),
    })
}

/// Reads the stored face if it belongs to `account_id`.
pub async fn record(
    svc: &Services,
    account_id: Uuid,
    face_id: Uuid,
) -> Result<FaceRecord, ApiError> {
    let item = svc
        .table
        .get(&keys::face_pk(face_id), keys::FACE_SK)
        .await?
        .ok_or_else(|| ApiError::face_not_found(face_id))?;
    let face: FaceRecord = from_item(item)?;
    if face.account_id != account_id {
        return Err(ApiError::face_not_found(face_id));
    }
    Ok(face)
}

/// One face with its lists.
pub async fn get(svc: &Services, account_id: Uuid, face_id: Uuid) -> Result<Face, ApiError> {
    let face = record(svc, account_id, face_id).await?;
    let lists = lists_of(svc, face_id).await?;
    Ok(face.view(lists))
}

/// Changes a face's attributes; an empty patch is an error.
pub async fn patch(
    svc: &Services,
    account_id: Uuid,
    face_id: Uuid,
    patch: FacePatch,
) -> Result<(), ApiError> {
    check_text("external_id", patch.external_id.as_deref(), SHORT_TEXT_MAX)?;
    check_text("user_data", patch.user_data.as_deref(), USER_DATA_MAX)?;
    check_text("avatar", patch.avatar.as_deref(), AVATAR_MAX)?;
    let mut sets = vec!["last_update_time = :now".to_string()];
    let mut values = HashMap::from([
        (
            ":now".to_string(),
            s(&timestamps::format(timestamps::now())),
        ),
        (":account".to_string(), s(&account_id.to_string())),
    ]);
    let fields = [
        ("external_id", patch.external_id),
        ("user_data", patch.user_data),
        ("event_id", patch.event_id.map(|id| id.to_string())),
        ("avatar", patch.avatar),
    ];
    for (name, value) in fields {
        if let Some(value) = value {
            sets.push(format!("{name} = :{name}"));
            values.insert(format!(":{name}"), AttributeValue::S(value));
        }
    }
    if sets.len() == 1 {
        return Err(ApiError::new(
            ErrorCode::EmptyJson,
            "Request body has none of 'external_id', 'user_data', 'event_id', 'avatar'",
        ));
    }
    svc.table
        .update(
            &keys::face_pk(face_id),
            keys::FACE_SK,
            &format!("SET {}", sets.join(", ")),
            Some("attribute_exists(pk) AND account_id = :account"),
            values,
        )
        .await?
        .map(|_| ())
        .ok_or_else(|| ApiError::face_not_found(face_id))
}

/// Deletes a face, its memberships, then its avatar object.
///
/// Memberships are found without the eventually consistent index: in the face's own
/// partition and on its item (see the module doc), plus the index for memberships older
/// than those records. They are deleted before the face, so a retry after a crash finds
/// the face and does it again, and looked for once more after it: a membership made while
/// the face was being deleted is removed too (one made after it cannot be: attaching
/// checks the face in the same transaction, and linking removes what it linked to a face
/// that is gone).
///
/// The object goes last and whether or not the read record had an image, so an upload
/// racing the delete is removed too (its own conditional update fails once the item is
/// gone, and it deletes what it wrote). A crash between the item delete and the object
/// delete leaves an orphan object under the account's prefix that nothing refers to.
pub async fn delete(svc: &Services, account_id: Uuid, face_id: Uuid) -> Result<(), ApiError> {
    let face = record(svc, account_id, face_id).await?;
    let mut lists = lists_recorded_on(svc, face_id).await?;
    lists.extend(&face.created_lists);
    lists.extend(lists_of(svc, face_id).await?);
    remove_memberships(svc, face_id, lists).await?;
    let values = HashMap::from([(":account".to_string(), s(&account_id.to_string()))]);
    let delete = delete_op(
        svc.table.name(),
        keys::face_pk(face_id),
        keys::FACE_SK.to_string(),
        Some("account_id = :account"),
        values,
    )?;
    match svc.table.transact(vec![delete]).await {
        Ok(()) | Err(TransactError::ConditionFailed) => {}
        Err(TransactError::Api(err)) => return Err(err),
    }
    let late = lists_recorded_on(svc, face_id).await?;
    remove_memberships(svc, face_id, late).await?;
    blobs::delete(svc, &images::face_avatar_key(account_id, face_id)).await
}

/// The lists named by the membership records in a face's partition (a consistent read).
async fn lists_recorded_on(svc: &Services, face_id: Uuid) -> Result<HashSet<Uuid>, ApiError> {
    let query = TableQuery {
        index: None,
        partition: keys::face_pk(face_id),
        range: KeyRange::Prefix(keys::FACE_MEMBERSHIP_PREFIX.into()),
        descending: false,
    };
    let mut lists = HashSet::new();
    svc.table
        .for_each_record(&query, |m: FaceMembershipRecord| {
            lists.insert(m.list_id);
            ControlFlow::Continue(())
        })
        .await?;
    Ok(lists)
}

/// Deletes both items of the face's memberships in `lists` (absent ones are fine).
async fn remove_memberships(
    svc: &Services,
    face_id: Uuid,
    lists: HashSet<Uuid>,
) -> Result<(), ApiError> {
    let doomed = lists
        .into_iter()
        .flat_map(|list_id| membership_keys(list_id, face_id))
        .collect();
    svc.table.batch_write(Vec::new(), doomed).await
}

/// One page of the faces matching `filter`.
pub async fn list(svc: &Services, filter: &FaceFilter, page: Page) -> Result<FacePage, ApiError> {
    let mut buffer = PageBuffer::new(page);
    visit_matching(svc, filter, |face| buffer.offer(face)).await?;
    let records = buffer.into_items();
    let lists = try_join_all(records.iter().map(|f| lists_of(svc, f.face_id))).await?;
    let faces = records
        .iter()
        .zip(lists)
        .map(|(face, lists)| face.view(lists))
        .collect();
    Ok(FacePage { faces })
}

/// Number of faces matching `filter`.
pub async fn count(svc: &Services, filter: &FaceFilter) -> Result<Count, ApiError> {
    let mut count = 0;
    visit_matching(svc, filter, |_| {
        count += 1;
        ControlFlow::Continue(())
    })
    .await?;
    Ok(Count { count })
}

/// Hands every face matching `filter` to `visit`, newest first (by face id within a list
/// filter), until it breaks. Reads one partition: the account's faces, the list's
/// memberships, or the given ids.
pub async fn visit_matching(
    svc: &Services,
    filter: &FaceFilter,
    mut visit: impl FnMut(FaceRecord) -> ControlFlow<()>,
) -> Result<(), ApiError> {
    let candidate_ids = match (&filter.face_ids, filter.list_id) {
        (Some(ids), _) => Some(ids.clone()),
        (None, Some(list_id)) => {
            if super::lists::record(svc, filter.account_id, list_id)
                .await
                .is_err()
            {
                return Ok(());
            }
            Some(faces_in_list(svc, list_id).await?)
        }
        (None, None) => None,
    };
    let Some(ids) = candidate_ids else {
        let query = TableQuery {
            index: Some(keys::GSI1),
            partition: keys::account_partition(filter.account_id, "FACE"),
            range: time_range_keys(&filter.create_time),
            descending: true,
        };
        return svc
            .table
            .for_each_matching(&query, |r: &FaceRecord| filter.matches(r), &mut visit)
            .await;
    };
    let members: Option<HashSet<Uuid>> = match (filter.list_id, &filter.face_ids) {
        (Some(list_id), Some(_)) => Some(faces_in_list(svc, list_id).await?.into_iter().collect()),
        _ => None,
    };
    for chunk in ids.chunks(100) {
        let keys: Vec<(String, String)> = chunk
            .iter()
            .map(|&id| (keys::face_pk(id), keys::FACE_SK.to_string()))
            .collect();
        let mut faces: Vec<FaceRecord> = svc
            .table
            .batch_get(&keys)
            .await?
            .into_iter()
            .map(from_item)
            .collect::<Result<_, _>>()?;
        // Keep the order the ids were given in.
        let order: HashMap<Uuid, usize> =
            chunk.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        faces.sort_by_key(|f| order.get(&f.face_id).copied().unwrap_or(usize::MAX));
        for face in faces {
            let in_list = members.as_ref().is_none_or(|m| m.contains(&face.face_id));
            if in_list && filter.matches(&face) && visit(face).is_break() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Ids of the lists a face belongs to.
pub async fn lists_of(svc: &Services, face_id: Uuid) -> Result<Vec<Uuid>, ApiError> {
    let query = TableQuery {
        index: Some(keys::GSI1),
        partition: keys::face_lists_partition(face_id),
        range: KeyRange::All,
        descending: false,
    };
    let mut lists = Vec::new();
    svc.table
        .for_each_record(&query, |m: MembershipRecord| {
            lists.push(m.list_id);
            ControlFlow::Continue(())
        })
        .await?;
    Ok(lists)
}

/// Ids of the faces in a list, in face-id order.
pub async fn faces_in_list(svc: &Services, list_id: Uuid) -> Result<Vec<Uuid>, ApiError> {
    let query = TableQuery {
        index: None,
        partition: keys::list_pk(list_id),
        range: KeyRange::Prefix("FACE#".into()),
        descending: false,
    };
    let mut faces = Vec::new();
    svc.table
        .for_each_record(&query, |m: MembershipRecord| {
            faces.push(m.face_id);
            ControlFlow::Continue(())
        })
        .await?;
    Ok(faces)
}

/// Links faces to a list; idempotent.
///
/// Every face is checked before anything is written, so 22004 (a face missing or another
/// account's) means nothing changed. The memberships are then written in transactions of
/// 33 faces that check the list and each face again, so none dangles. A face deleted
/// after the check is left out and the rest is linked (as if the delete came after the
/// attach); a list deleted meanwhile is 22003 and takes back what this call wrote. Any
/// other failure (500) may leave the first transactions written: repeating the request
/// completes it.
pub async fn attach(
    svc: &Services,
    account_id: Uuid,
    list_id: Uuid,
    face_ids: &[Uuid],
) -> Result<(), ApiError> {
    require_all(svc, account_id, face_ids).await?;
    let table = svc.table.name();
    // Each face costs a check and two puts; one slot checks the list.
    let per_transaction = (TRANSACTION_MAX - 1) / 3;
    let mut written: Vec<Uuid> = Vec::with_capacity(face_ids.len());
    for chunk in face_ids.chunks(per_transaction) {
        let mut pending = chunk.to_vec();
        for _ in 0..ATTACH_ATTEMPTS {
            let mut writes = vec![list_exists_check(table, list_id, account_id)?];
            for &face_id in &pending {
                writes.push(face_exists_check(table, face_id, account_id)?);
                for item in membership_items(list_id, face_id, account_id)? {
                    writes.push(put_op(table, item)?);
                }
            }
            match svc.table.transact(writes).await {
                Ok(()) => {
                    written.append(&mut pending);
                    break;
                }
                Err(TransactError::Api(err)) => return Err(err),
                // A face or the list was deleted after the check: find out which.
                Err(TransactError::ConditionFailed) => {
                    match faces_and_list(svc, account_id, &pending, Some(list_id)).await {
                        Ok(existing) => pending.retain(|id| existing.contains(id)),
                        Err(err) if err.code == ErrorCode::ListNotFound => {
                            detach(svc, list_id, &written).await?;
                            return Err(err);
                        }
                        Err(err) => return Err(err),
                    }
                    if pending.is_empty() {
                        break;
                    }
                }
            }
        }
        if !pending.is_empty() {
            return Err(ApiError::internal(
                "list attach",
                "memberships kept failing their checks while their faces and list exist",
            ));
        }
    }
    Ok(())
}

/// Tries of one attach transaction: each failed try leaves out the faces that are gone.
const ATTACH_ATTEMPTS: usize = 4;

/// Unlinks faces from a list; faces not in the list are ignored. Idempotent.
pub async fn detach(svc: &Services, list_id: Uuid, face_ids: &[Uuid]) -> Result<(), ApiError> {
    let memberships = face_ids
        .iter()
        .flat_map(|&face_id| membership_keys(list_id, face_id))
        .collect();
    svc.table.batch_write(Vec::new(), memberships).await
}

/// Fails with 22004 naming the first of `face_ids` missing from `account_id`.
pub async fn require_all(
    svc: &Services,
    account_id: Uuid,
    face_ids: &[Uuid],
) -> Result<(), ApiError> {
    let found = existing_faces(svc, account_id, face_ids).await?;
    match face_ids.iter().find(|id| !found.contains(id)) {
        Some(missing) => Err(ApiError::new(
            ErrorCode::FacesNotFound,
            format!("One or more faces not found, including face with id '{missing}'"),
        )),
        None => Ok(()),
    }
}

/// What linking a set of faces to a list did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Linked {
    /// Faces now in the list.
    pub linked: Vec<Uuid>,
    /// Faces that do not exist in the account (any more).
    pub missing: Vec<Uuid>,
}

/// Links the faces of `face_ids` that exist to a list, skipping the missing ones instead
/// of failing (a task's set may lose faces while it runs). `stop` is asked between
/// chunks and ends the work early with its error. Idempotent.
///
/// Memberships are written in batches (not transactions, which cost a task too much per
/// face), then checked: a membership whose face or list vanished meanwhile is removed
/// again, and a vanished list fails the call with 22003.
pub async fn link_existing(
    svc: &Services,
    account_id: Uuid,
    list_id: Uuid,
    face_ids: &[Uuid],
    stop: &(dyn Fn() -> Result<(), ApiError> + Sync),
) -> Result<Linked, ApiError> {
    let mut outcome = Linked::default();
    if face_ids.is_empty() {
        super::lists::record(svc, account_id, list_id).await?;
        return Ok(outcome);
    }
    // Memberships are written first, then the faces (and, with the last chunk, the list)
    // are read back in one BatchGetItem: a membership whose face is missing is removed
    // again, and a list that is missing takes back every membership of the call. A
    // one-chunk call is one batch write and one read.
    let chunks: Vec<&[Uuid]> = face_ids.chunks(LINK_CHUNK).collect();
    let last = chunks.len() - 1;
    for (i, chunk) in chunks.into_iter().enumerate() {
        stop()?;
        let mut memberships = Vec::with_capacity(2 * chunk.len());
        for &face_id in chunk {
            memberships.extend(membership_items(list_id, face_id, account_id)?);
        }
        svc.table.batch_write(memberships, Vec::new()).await?;
        let existing = faces_and_list(svc, account_id, chunk, (i == last).then_some(list_id));
        let existing = match existing.await {
            Ok(existing) => existing,
            Err(err) if err.code == ErrorCode::ListNotFound => {
                let written: Vec<Uuid> = outcome.linked.iter().chain(chunk).copied().collect();
                detach(svc, list_id, &written).await?;
                return Err(err);
            }
            Err(err) => return Err(err),
        };
        let missing: Vec<(String, String)> = chunk
            .iter()
            .filter(|id| !existing.contains(id))
            .flat_map(|&face_id| membership_keys(list_id, face_id))
            .collect();
        svc.table.batch_write(Vec::new(), missing).await?;
        for &face_id in chunk {
            if existing.contains(&face_id) {
                outcome.linked.push(face_id);
            } else {
                outcome.missing.push(face_id);
            }
        }
    }
    Ok(outcome)
}

/// Faces linked per chunk: one key of BatchGetItem's 100 is left for the list.
const LINK_CHUNK: usize = 99;

/// The stored faces of `account_id` among `face_ids`, read (ids only) in one BatchGetItem
/// together with the list `list` when given; a missing list (or another account's) is 22003.
async fn faces_and_list(
    svc: &Services,
    account_id: Uuid,
    face_ids: &[Uuid],
    list: Option<Uuid>,
) -> Result<HashSet<Uuid>, ApiError> {
    let mut keys: Vec<(String, String)> = face_ids
        .iter()
        .map(|&id| (keys::face_pk(id), keys::FACE_SK.to_string()))
        .collect();
    if let Some(list_id) = list {
        keys.push((keys::list_pk(list_id), keys::LIST_SK.to_string()));
    }
    let mut found = HashSet::with_capacity(face_ids.len());
    let mut list_found = false;
    let attributes = ["sk", "account_id", "face_id"];
    for item in svc.table.batch_get_attributes(&keys, &attributes).await? {
        let is_list = item
            .get("sk")
            .and_then(|v| v.as_s().ok())
            .map(String::as_str)
            == Some(keys::LIST_SK);
        let owner = item.get("account_id").and_then(|v| v.as_s().ok());
        let ours = owner.is_some_and(|owner| *owner == account_id.to_string());
        if is_list {
            list_found = ours;
        } else if ours {
            let face_id = item.get("face_id").and_then(|v| v.as_s().ok());
            if let Some(face_id) = face_id.and_then(|id| id.parse().ok()) {
                found.insert(face_id);
            }
        }
    }
    match list {
        Some(list_id) if !list_found => Err(ApiError::list_not_found(list_id)),
        _ => Ok(found),
    }
}

/// The stored faces of `account_id` among `face_ids` (missing ones are absent).
pub async fn records(
    svc: &Services,
    account_id: Uuid,
    face_ids: &[Uuid],
) -> Result<Vec<FaceRecord>, ApiError> {
    let keys: Vec<(String, String)> = face_ids
        .iter()
        .map(|&id| (keys::face_pk(id), keys::FACE_SK.to_string()))
        .collect();
    let mut found = Vec::with_capacity(face_ids.len());
    for item in svc.table.batch_get(&keys).await? {
        let face: FaceRecord = from_item(item)?;
        if face.account_id == account_id {
            found.push(face);
        }
    }
    Ok(found)
}

async fn existing_faces(
    svc: &Services,
    account_id: Uuid,
    face_ids: &[Uuid],
) -> Result<HashSet<Uuid>, ApiError> {
    Ok(records(svc, account_id, face_ids)
        .await?
        .into_iter()
        .map(|face| face.face_id)
        .collect())
}

/// Makes the face of an event: a face with id `face_id` carrying the event's descriptor
/// and attributes, and its sample as the face's avatar, unless that face exists already
/// (so a retried step makes one face, and copies no image onto a face that has one or
/// whose avatar was deleted since).
///
/// The sample is copied before the face is written, so a face never shows an avatar
/// whose object is not there yet; a crash in between leaves the copy for the retry to
/// overwrite (or, with no retry, an object no record refers to, like a failed upload).
pub async fn ensure_from_event(
    svc: &Services,
    face_id: Uuid,
    event: &super::events::EventRecord,
) -> Result<(), ApiError> {
    if svc
        .table
        .get(&keys::face_pk(face_id), keys::FACE_SK)
        .await?
        .is_some()
    {
        return Ok(());
    }
    let image = images::copy_sample_to_avatar(svc, event, face_id).await?;
    let avatar = match image {
        Some(_) => images::face_avatar_path(face_id),
        None => String::new(),
    };
    let now = timestamps::format(timestamps::now());
    let shown = &event.event;
    let gsi1sk = keys::time_sort_key(&now, face_id);
    let version = event.descriptor.as_ref().and(shown.descriptor_version);
    let (gsi3pk, gsi3sk) = keys::descriptor_index(shown.account_id, "FACE", version, &gsi1sk);
    let record = FaceRecord {
        pk: keys::face_pk(face_id),
        sk: keys::FACE_SK.into(),
        gsi1pk: keys::account_partition(shown.account_id, "FACE"),
        gsi1sk,
        gsi3pk,
        gsi3sk,
        face_id,
        account_id: shown.account_id,
        event_id: Some(shown.event_id),
        external_id: shown.external_id.clone(),
        user_data: shown.user_data.clone(),
        avatar,
        create_time: now.clone(),
        last_update_time: now,
        descriptor_version: version,
        descriptor: event.descriptor.clone(),
        image,
        created_lists: Vec::new(),
    };
    svc.table.put_if_absent(to_item(&record)?).await.map(|_| ())
}

/// Gives a face the descriptor a task extracted from its image, replacing the one it
/// had, if the face has not changed since `seen` was read (its `last_update_time`): a
/// descriptor set or removed meanwhile is not overwritten. `false` when it had.
pub async fn set_descriptor(
    svc: &Services,
    seen: &FaceRecord,
    descriptor: &Descriptor,
) -> Result<bool, ApiError> {
    let (gsi3pk, gsi3sk) = keys::descriptor_index(
        seen.account_id,
        "FACE",
        Some(descriptor.version),
        &seen.gsi1sk,
    );
    let (Some(gsi3pk), Some(gsi3sk)) = (gsi3pk, gsi3sk) else {
        return Err(ApiError::internal("face descriptor", "no index keys"));
    };
    let updated = svc
        .table
        .update(
            &keys::face_pk(seen.face_id),
            keys::FACE_SK,
            "SET #descriptor = :descriptor, descriptor_version = :version, gsi3pk = :gsi3pk, \
             gsi3sk = :gsi3sk, last_update_time = :now",
            Some("account_id = :account AND last_update_time = :seen"),
            HashMap::from([
                (":account".to_string(), s(&seen.account_id.to_string())),
                (":seen".to_string(), s(&seen.last_update_time)),
                (
                    ":descriptor".to_string(),
                    AttributeValue::B(descriptor.to_le_bytes().into()),
                ),
                (
                    ":version".to_string(),
                    AttributeValue::N(descriptor.version.to_string()),
                ),
                (":gsi3pk".to_string(), s(&gsi3pk)),
                (":gsi3sk".to_string(), s(&gsi3sk)),
                (
                    ":now".to_string(),
                    s(&timestamps::format(timestamps::now())),
                ),
            ]),
        )
        .await?;
    Ok(updated.is_some())
}

/// Removes a face's descriptor if it has version `version`; `false` when it had not
/// (another version, none, or the face is gone).
pub async fn remove_descriptor(
    svc: &Services,
    account_id: Uuid,
    face_id: Uuid,
    version: u32,
) -> Result<bool, ApiError> {
    let removed = svc
        .table
        .update(
            &keys::face_pk(face_id),
            keys::FACE_SK,
            "REMOVE #descriptor, descriptor_version, gsi3pk, gsi3sk SET last_update_time = :now",
            Some("account_id = :account AND descriptor_version = :version"),
            HashMap::from([
                (":account".to_string(), s(&account_id.to_string())),
                (
                    ":version".to_string(),
                    AttributeValue::N(version.to_string()),
                ),
                (
                    ":now".to_string(),
                    s(&timestamps::format(timestamps::now())),
                ),
            ]),
        )
        .await?;
    Ok(removed.is_some())
}

/// Index sort-key bounds for a creation-time range.
///
/// The keys are `<time>#<id>` with the time in [`timestamps::format`], whose text sorts
/// like the time only for years 0000 to 9999 (chrono writes `-0001-…` and `+10000-…`
/// beyond), and DynamoDB refuses a `BETWEEN` whose lower bound sorts above its upper
/// one. So a bound outside those years is dropped when it excludes nothing and makes
/// the range empty otherwise, and an empty range (`gte >= lt`, e.g. reversed by the
/// client) becomes `BETWEEN x AND x` for a bare time `x`, which no `<time>#<id>` key
/// equals: the query finds nothing instead of failing.
pub(crate) fn time_range_keys(range: &TimeRange) -> KeyRange {
    let first = timestamps::parse(KEY_TIME_FIRST).expect("a valid time");
    let last = timestamps::parse(KEY_TIME_LAST).expect("a valid time");
    let gte = range.gte.filter(|gte| *gte > first);
    let lt = range.lt.filter(|lt| *lt <= last);
    let empty = range.gte.is_some_and(|gte| gte > last)
        || range.lt.is_some_and(|lt| lt <= first)
        || gte.zip(lt).is_some_and(|(gte, lt)| gte >= lt);
    if empty {
        return KeyRange::Between {
            gte: Some(KEY_TIME_FIRST_FORMATTED.into()),
            lt: Some(KEY_TIME_FIRST_FORMATTED.into()),
        };
    }
    KeyRange::Between {
        gte: gte.map(timestamps::format),
        lt: lt.map(timestamps::format),
    }
}

/// The first and last times whose [`timestamps::format`] sorts like the time.
const KEY_TIME_FIRST: &str = "0000-01-01T00:00:00Z";
const KEY_TIME_LAST: &str = "9999-12-31T23:59:59.999999Z";
/// [`KEY_TIME_FIRST`] as keys write it: the bound of an empty range.
const KEY_TIME_FIRST_FORMATTED: &str = "0000-01-01T00:00:00.000000+00:00";

fn exists_check(
    table: &str,
    pk: String,
    sk: &str,
    account_id: Uuid,
) -> Result<TransactWriteItem, ApiError> {
    let values = HashMap::from([(":account".to_string(), s(&account_id.to_string()))]);
    check_op(
        table,
        pk,
        sk.to_string(),
        "attribute_exists(pk) AND account_id = :account",
        values,
    )
}

fn face_exists_check(
    table: &str,
    face_id: Uuid,
    account_id: Uuid,
) -> Result<TransactWriteItem, ApiError> {
    exists_check(table, keys::face_pk(face_id), keys::FACE_SK, account_id)
}

fn list_exists_check(
    table: &str,
    list_id: Uuid,
    account_id: Uuid,
) -> Result<TransactWriteItem, ApiError> {
    exists_check(table, keys::list_pk(list_id), keys::LIST_SK, account_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(gte: Option<&str>, lt: Option<&str>) -> TimeRange {
        TimeRange {
            gte: gte.map(|t| timestamps::parse(t).unwrap()),
            lt: lt.map(|t| timestamps::parse(t).unwrap()),
        }
    }

    fn bounds(range: &TimeRange) -> (Option<String>, Option<String>) {
        match time_range_keys(range) {
            KeyRange::Between { gte, lt } => (gte, lt),
            other => panic!("not a between: {other:?}"),
        }
    }

    /// Found by schemathesis: `GET /1/lists?create_time__gte=0267-…&create_time__lt=0251-…`
    /// answered 500 (DynamoDB refuses a BETWEEN whose bounds are reversed).
    #[test]
    fn reversed_or_empty_ranges_query_nothing_instead_of_failing() {
        for (gte, lt) in [
            ("0267-11-25T10:22:50+06:47", "0251-10-04T14:34:45.735Z"),
            ("2020-01-02T00:00:00Z", "2020-01-01T00:00:00Z"),
            ("2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z"),
        ] {
            let (low, high) = bounds(&range(Some(gte), Some(lt)));
            let (low, high) = (low.unwrap(), high.unwrap());
            assert!(low <= high, "{gte} {lt}: {low} > {high}");
            assert!(!low.contains('#'), "a bare time, which no key equals");
            assert_eq!(low, high);
        }
    }

    /// Years past 9999 (or before 0000) once in UTC format as `+10000-…` (`-0001-…`),
    /// which sort before every other key.
    #[test]
    fn bounds_beyond_four_digit_years_are_dropped_or_empty() {
        let late = "9999-12-31T23:30:00-01:00";
        let early = "0000-01-01T00:30:00+01:00";
        let (low, high) = bounds(&range(Some("2020-01-01T00:00:00Z"), Some(late)));
        assert_eq!(low.as_deref(), Some("2020-01-01T00:00:00.000000+00:00"));
        assert_eq!(high, None, "an upper bound past every key bounds nothing");
        let (low, high) = bounds(&range(Some(early), Some("2020-01-01T00:00:00Z")));
        assert_eq!(low, None, "a lower bound before every key bounds nothing");
        assert_eq!(high.as_deref(), Some("2020-01-01T00:00:00.000000+00:00"));
        for (gte, lt) in [(Some(late), None), (None, Some(early))] {
            let (low, high) = bounds(&range(gte, lt));
            assert_eq!(low, high, "{gte:?} {lt:?} selects nothing");
        }
        let (low, high) = bounds(&range(None, None));
        assert_eq!((low, high), (None, None));
    }
}
