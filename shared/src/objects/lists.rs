//! Lists: named sets of faces of one account. Membership items live in the list's
//! partition, so a list's faces and its face count are one query.

use std::collections::HashSet;
use std::ops::ControlFlow;

use futures::future::try_join_all;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Count, USER_DATA_MAX, check_text, faces};
use crate::Services;
use crate::error::{ApiError, ErrorCode};
use crate::query::{Page, PageBuffer, Query, TimeRange};
use crate::store::dynamo::{from_item, to_item};
use crate::store::{KeyRange, TableQuery, keys};
use crate::timestamps;

/// Most faces one `PATCH /1/lists/{list_id}` attaches or detaches.
pub const FACES_PER_PATCH_MAX: usize = 1000;

/// Body of `POST /1/lists`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewList {
    /// Owner of the list.
    pub account_id: Uuid,
    /// Free text, at most 128 characters.
    pub user_data: Option<String>,
}

/// What `PATCH /1/lists/{list_id}` does with the faces.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ListAction {
    /// Link the faces to the list.
    Attach,
    /// Unlink the faces from the list.
    Detach,
}

/// Body of `PATCH /1/lists/{list_id}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListPatch {
    /// Attach or detach.
    pub action: ListAction,
    /// Faces to attach or detach (1 to 1000, same account as the list).
    #[schema(min_items = 1, max_items = 1000)]
    pub face_ids: Vec<Uuid>,
}

/// Answer to `POST /1/lists`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct ListCreated {
    /// Id of the new list.
    pub list_id: Uuid,
    /// Path of the new list.
    pub url: String,
}

/// A list as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct List {
    /// List id.
    pub list_id: Uuid,
    /// Owner.
    pub account_id: Uuid,
    /// Free text ("" when unset).
    pub user_data: String,
    /// Creation time (RFC 3339, UTC).
    pub create_time: String,
    /// Number of faces in the list.
    pub face_count: usize,
}

/// Answer to `GET /1/lists`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ListPage {
    /// The lists of the requested page.
    pub lists: Vec<List>,
}

/// The stored item of a list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ListRecord {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    /// List id.
    pub list_id: Uuid,
    /// Owner.
    pub account_id: Uuid,
    /// Free text.
    #[serde(default)]
    pub user_data: String,
    /// Creation time.
    pub create_time: String,
}

impl ListRecord {
    /// A new list created now.
    fn new(account_id: Uuid, list_id: Uuid, user_data: Option<String>) -> ListRecord {
        let now = timestamps::format(timestamps::now());
        ListRecord {
            pk: keys::list_pk(list_id),
            sk: keys::LIST_SK.into(),
            gsi1pk: keys::account_partition(account_id, "LIST"),
            gsi1sk: keys::time_sort_key(&now, list_id),
            list_id,
            account_id,
            user_data: user_data.unwrap_or_default(),
            create_time: now,
        }
    }
}

/// Filters of `GET /1/lists`.
#[derive(Debug, Clone)]
pub struct ListFilter {
    /// Owner (required).
    pub account_id: Uuid,
    /// Only these lists.
    pub list_ids: Option<Vec<Uuid>>,
    /// Only lists whose user_data equals this.
    pub user_data: Option<String>,
    /// Creation time range.
    pub create_time: TimeRange,
}

/// Query parameters `GET /1/lists` knows.
pub const LIST_PARAMS: &[&str] = &[
    "account_id",
    "list_ids",
    "user_data",
    "create_time__gte",
    "create_time__lt",
    "page",
    "page_size",
];

impl ListFilter {
    /// Reads the filter from a query string.
    pub fn from_query(query: &Query) -> Result<ListFilter, ApiError> {
        Ok(ListFilter {
            account_id: query.account_id()?,
            list_ids: query.uuid_list("list_ids")?,
            user_data: query.single("user_data")?.map(str::to_string),
            create_time: query.time_range("create_time")?,
        })
    }

    fn matches(&self, list: &ListRecord) -> bool {
        list.account_id == self.account_id
            && self
                .list_ids
                .as_ref()
                .is_none_or(|ids| ids.contains(&list.list_id))
            && self.user_data.as_ref().is_none_or(|u| *u == list.user_data)
    }
}

/// Creates an empty list.
pub async fn create(svc: &Services, new: NewList) -> Result<ListCreated, ApiError> {
    check_text("user_data", new.user_data.as_deref(), USER_DATA_MAX)?;
    let list_id = Uuid::new_v4();
    let list = ListRecord::new(new.account_id, list_id, new.user_data);
    if !svc.table.put_if_absent(to_item(&list)?).await? {
        return Err(ApiError::internal(
            "list create",
            format!("list id {list_id} taken"),
        ));
    }
    Ok(ListCreated {
        list_id,
        url: format!("/1/lists/{list_id}"),
    })
}

/// Creates the list `list_id` unless it exists (a task that creates a list derives its
/// id from the task, so a retried step finds the list it made before). A list of that id
/// in another account is an error.
pub async fn ensure(
    svc: &Services,
    account_id: Uuid,
    list_id: Uuid,
    user_data: Option<String>,
) -> Result<(), ApiError> {
    check_text("user_data", user_data.as_deref(), USER_DATA_MAX)?;
    let list = ListRecord::new(account_id, list_id, user_data);
    if svc.table.put_if_absent(to_item(&list)?).await? {
        Ok(())
    } else {
        record(svc, account_id, list_id).await.map(|_| ())
    }
}

/// Reads the stored list if it belongs to `account_id`.
pub async fn record(
    svc: &Services,
    account_id: Uuid,
    list_id: Uuid,
) -> Result<ListRecord, ApiError> {
    let item = svc
        .table
        .get(&keys::list_pk(list_id), keys::LIST_SK)
        .await?
        .ok_or_else(|| ApiError::list_not_found(list_id))?;
    let list: ListRecord = from_item(item)?;
    if list.account_id != account_id {
        return Err(ApiError::list_not_found(list_id));
    }
    Ok(list)
}

/// One list with its face count.
pub async fn get(svc: &Services, account_id: Uuid, list_id: Uuid) -> Result<List, ApiError> {
    let list = record(svc, account_id, list_id).await?;
    view(svc, list).await
}

/// Attaches or detaches faces. An attach checks the list and every face before it
/// writes: 22003 / 22004 mean nothing changed (see [`faces::attach`] for the rest).
pub async fn patch(
    svc: &Services,
    account_id: Uuid,
    list_id: Uuid,
    patch: ListPatch,
) -> Result<(), ApiError> {
    if patch.face_ids.is_empty() || patch.face_ids.len() > FACES_PER_PATCH_MAX {
        return Err(ApiError::bad_json(format!(
            "'face_ids' must hold 1 to {FACES_PER_PATCH_MAX} ids"
        )));
    }
    let mut face_ids = patch.face_ids;
    face_ids.sort();
    face_ids.dedup();
    record(svc, account_id, list_id).await?;
    match patch.action {
        ListAction::Attach => faces::attach(svc, account_id, list_id, &face_ids).await,
        ListAction::Detach => faces::detach(svc, list_id, &face_ids).await,
    }
}

/// Deletes a list and its memberships (both items of each); the faces stay.
pub async fn delete(svc: &Services, account_id: Uuid, list_id: Uuid) -> Result<(), ApiError> {
    record(svc, account_id, list_id).await?;
    let members = faces::faces_in_list(svc, list_id).await?;
    faces::detach(svc, list_id, &members).await?;
    let list = (keys::list_pk(list_id), keys::LIST_SK.to_string());
    svc.table.batch_write(Vec::new(), vec![list]).await
}

/// One page of the lists matching `filter`, newest first.
pub async fn list(svc: &Services, filter: &ListFilter, page: Page) -> Result<ListPage, ApiError> {
    let query = TableQuery {
        index: Some(keys::GSI1),
        partition: keys::account_partition(filter.account_id, "LIST"),
        range: faces::time_range_keys(&filter.create_time),
        descending: true,
    };
    let mut buffer = PageBuffer::new(page);
    svc.table
        .for_each_matching(
            &query,
            |r: &ListRecord| filter.matches(r),
            |list| buffer.offer(list),
        )
        .await?;
    let records = buffer.into_items();
    let lists = try_join_all(records.into_iter().map(|r| view(svc, r))).await?;
    Ok(ListPage { lists })
}

/// Number of faces in a list.
pub async fn face_count(svc: &Services, list_id: Uuid) -> Result<Count, ApiError> {
    let query = TableQuery {
        index: None,
        partition: keys::list_pk(list_id),
        range: KeyRange::Prefix("FACE#".into()),
        descending: false,
    };
    let mut count = 0;
    svc.table
        .for_each(&query, |_| {
            count += 1;
            ControlFlow::Continue(())
        })
        .await?;
    Ok(Count { count })
}

/// Fails with 22005 naming the first of `list_ids` missing from `account_id`.
pub async fn require_all(
    svc: &Services,
    account_id: Uuid,
    list_ids: &[Uuid],
) -> Result<(), ApiError> {
    if list_ids.is_empty() {
        return Ok(());
    }
    let keys: Vec<(String, String)> = list_ids
        .iter()
        .map(|&id| (keys::list_pk(id), keys::LIST_SK.to_string()))
        .collect();
    let found: HashSet<Uuid> = svc
        .table
        .batch_get(&keys)
        .await?
        .into_iter()
        .map(from_item::<ListRecord>)
        .filter_map(Result::ok)
        .filter(|l| l.account_id == account_id)
        .map(|l| l.list_id)
        .collect();
    match list_ids.iter().find(|id| !found.contains(id)) {
        Some(missing) => Err(ApiError::new(
            ErrorCode::ListsNotFound,
            format!("One or more lists not found, including list with id '{missing}'"),
        )),
        None => Ok(()),
    }
}

async fn view(svc: &Services, list: ListRecord) -> Result<List, ApiError> {
    let count = face_count(svc, list.list_id).await?;
    Ok(List {
        list_id: list.list_id,
        account_id: list.account_id,
        user_data: list.user_data,
        create_time: list.create_time,
        face_count: count.count,
    })
}
