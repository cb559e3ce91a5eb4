//! ClearML records as JSON documents in the table: one item per task, project or queue,
//! holding the document as JSON text, its account, and a revision number. Every change
//! is a read, a change of the document, and a put on the condition that the revision is
//! still the one read (compare-and-set), tried again on a lost race: concurrent writers
//! (an agent's status report and the SDK's edit of the same task, two agents popping
//! one queue) never overwrite each other's changes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::Services;
use crate::store::dynamo::{
    TransactError, delete_op, from_item, n, put_new_op, put_op, s, to_item,
};
use crate::store::{Item, keys};

use super::error::{ClearmlError, Result};

/// Attempts of one change against concurrent writers before it gives up (500).
const ATTEMPTS: usize = 25;

/// The stored item of a document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DocItem {
    /// Partition key.
    pub pk: String,
    /// Sort key ([`keys::CLEARML_DOC_SK`]).
    pub sk: String,
    /// Listing of the account's records of this kind.
    pub gsi1pk: String,
    /// Creation time and id: listings come in creation order.
    pub gsi1sk: String,
    /// The owner.
    pub account_id: Uuid,
    /// Revision: 1 when created, one more at every change.
    pub rev: u64,
    /// The document, JSON.
    pub doc: String,
}

/// A document read from the table.
#[derive(Debug, Clone)]
pub struct Doc {
    /// The item as read.
    pub item: DocItem,
    /// Its document.
    pub body: Map<String, Value>,
}

/// A new id: 32 hex characters, as ClearML's (the agent takes anything else for a name).
pub fn new_id() -> String {
    Uuid::new_v4().simple().to_string()
}

/// Whether `text` reads as a ClearML id.
pub fn is_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

fn parse_body(item: &DocItem) -> Result<Map<String, Value>> {
    match serde_json::from_str(&item.doc) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(ClearmlError::internal("stored document does not read")),
    }
}

/// The strings of a document's list field (`tags`, `system_tags`, …); none when absent.
pub fn strings(body: &Map<String, Value>, field: &str) -> Vec<String> {
    body.get(field)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a document's list field holds `tag`.
pub fn has_tag(body: &Map<String, Value>, field: &str, tag: &str) -> bool {
    body.get(field)
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|t| t == tag))
}

/// Reads the document at `pk` if it is `account_id`'s (another account's is absent).
pub async fn get(svc: &Services, pk: &str, account_id: Uuid) -> Result<Option<Doc>> {
    let Some(item) = svc.table.get(pk, keys::CLEARML_DOC_SK).await? else {
        return Ok(None);
    };
    let item: DocItem = from_item(item)?;
    if item.account_id != account_id {
        return Ok(None);
    }
    let body = parse_body(&item)?;
    Ok(Some(Doc { item, body }))
}

/// Reads many documents of `account_id` by partition key (absent and foreign ones are
/// left out), in no particular order.
pub async fn get_many(svc: &Services, pks: &[String], account_id: Uuid) -> Result<Vec<Doc>> {
    let keys: Vec<(String, String)> = pks
        .iter()
        .map(|pk| (pk.clone(), keys::CLEARML_DOC_SK.to_string()))
        .collect();
    let mut out = Vec::new();
    for item in svc.table.batch_get(&keys).await? {
        let item: DocItem = from_item(item)?;
        if item.account_id == account_id {
            let body = parse_body(&item)?;
            out.push(Doc { item, body });
        }
    }
    Ok(out)
}

/// The documents of `account_id` with the ids `ids` (partition keys made by `pk`; text
/// that is no id is skipped), in no particular order.
pub async fn get_by_ids(
    svc: &Services,
    account_id: Uuid,
    ids: &[String],
    pk: fn(&str) -> String,
) -> Result<Vec<Doc>> {
    let pks: Vec<String> = ids.iter().filter(|i| is_id(i)).map(|i| pk(i)).collect();
    get_many(svc, &pks, account_id).await
}

/// Every document of an account's listing partition, in creation order.
pub async fn list(svc: &Services, account_id: Uuid, kind: &str) -> Result<Vec<Doc>> {
    let query = crate::store::TableQuery {
        index: Some(keys::GSI1),
        partition: keys::account_partition(account_id, kind),
        range: crate::store::KeyRange::All,
        descending: false,
    };
    let mut out = Vec::new();
    let mut failure = None;
    svc.table
        .for_each_record(&query, |item: DocItem| {
            match parse_body(&item) {
                Ok(body) => out.push(Doc { item, body }),
                Err(err) => failure = Some(err),
            }
            std::ops::ControlFlow::Continue(())
        })
        .await?;
    match failure {
        Some(err) => Err(err),
        None => Ok(out),
    }
}

/// Stores a new document; `false` when its key is taken. A document that belongs in a
/// side index ([`index_of`]) gets its marker in the same transaction.
pub async fn create(
    svc: &Services,
    pk: String,
    account_id: Uuid,
    kind: &str,
    created: &str,
    id: &str,
    body: &Map<String, Value>,
) -> Result<bool> {
    let item = DocItem {
        pk,
        sk: keys::CLEARML_DOC_SK.into(),
        gsi1pk: keys::account_partition(account_id, kind),
        gsi1sk: format!("{created}#{id}"),
        account_id,
        rev: 1,
        doc: serde_json::to_string(body).map_err(|e| ClearmlError::internal(e.to_string()))?,
    };
    let Some(index) = index_of(&item.pk, body) else {
        return Ok(svc.table.put_if_absent(to_item(&item)?).await?);
    };
    let table = svc.table.name();
    let writes = vec![
        put_new_op(table, to_item(&item)?)?,
        put_op(table, marker(index, &item))?,
    ];
    match svc.table.transact(writes).await {
        Ok(()) => Ok(true),
        Err(TransactError::ConditionFailed) => Ok(false),
        Err(TransactError::Api(err)) => Err(err.into()),
    }
}

/// The side index a document belongs in, one partition for every account: a running
/// task in the watchdog's ([`keys::CLEARML_RUNNING`], [`super::tasks::watched`]), a
/// queue Fanout serves in the sweep's ([`keys::CLEARML_SERVED`],
/// [`super::serve::is_served`]).
fn index_of(pk: &str, body: &Map<String, Value>) -> Option<&'static str> {
    if super::tasks::watched(pk, body) {
        Some(keys::CLEARML_RUNNING)
    } else if pk.starts_with(&keys::clearml_queue_pk("")) && super::serve::is_served(body) {
        Some(keys::CLEARML_SERVED)
    } else {
        None
    }
}

/// Writes `body` as the next revision of `doc`; `false` when another writer came first.
/// A document that enters or leaves a side index ([`index_of`]: a task that starts or
/// stops running, a queue that starts or stops being served) gains or loses its marker
/// in the same transaction, so neither the watchdog nor the sweep misses one.
async fn put_next(svc: &Services, doc: &Doc, body: &Map<String, Value>) -> Result<bool> {
    let mut item = doc.item.clone();
    item.rev += 1;
    item.doc = serde_json::to_string(body).map_err(|e| ClearmlError::internal(e.to_string()))?;
    let same_rev = "rev = :rev";
    let rev = Item::from([(":rev".to_string(), n(doc.item.rev))]);
    let was = index_of(&doc.item.pk, &doc.body);
    let is = index_of(&doc.item.pk, body);
    if was == is {
        return Ok(svc
            .table
            .put_when(to_item(&item)?, Some(same_rev), rev)
            .await?);
    }
    let table = svc.table.name();
    let put = aws_sdk_dynamodb::types::Put::builder()
        .table_name(table)
        .set_item(Some(to_item(&item)?))
        .condition_expression(same_rev)
        .set_expression_attribute_values(Some(rev))
        .build()
        .map_err(|e| ClearmlError::internal(e.to_string()))?;
    let mut writes = vec![
        aws_sdk_dynamodb::types::TransactWriteItem::builder()
            .put(put)
            .build(),
    ];
    if let Some(index) = was {
        writes.push(delete_op(
            table,
            index.into(),
            item.pk.clone(),
            None,
            Item::new(),
        )?);
    }
    if let Some(index) = is {
        writes.push(put_op(table, marker(index, &item))?);
    }
    match svc.table.transact(writes).await {
        Ok(()) => Ok(true),
        Err(TransactError::ConditionFailed) => Ok(false),
        Err(TransactError::Api(err)) => Err(err.into()),
    }
}

/// A side index's marker of a document: keyed by the document's partition key, with its
/// account and the revision that put it there.
fn marker(index: &str, item: &DocItem) -> Item {
    Item::from([
        ("pk".to_string(), s(index)),
        ("sk".to_string(), s(&item.pk)),
        ("account_id".to_string(), s(&item.account_id.to_string())),
        ("rev".to_string(), n(item.rev)),
    ])
}

/// The markers of side index `index`: `(document pk, account, revision)`.
pub async fn markers(svc: &Services, index: &str) -> Result<Vec<(String, Uuid, String)>> {
    let mut found = Vec::new();
    let query = crate::store::TableQuery {
        index: None,
        partition: index.into(),
        range: crate::store::KeyRange::All,
        descending: false,
    };
    svc.table
        .for_each(&query, |item| {
            let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
            let rev = item.get("rev").and_then(|v| v.as_n().ok()).cloned();
            let account = text("account_id").and_then(|a| a.parse::<Uuid>().ok());
            if let (Some(pk), Some(account), Some(rev)) = (text("sk"), account, rev) {
                found.push((pk, account, rev));
            }
            std::ops::ControlFlow::Continue(())
        })
        .await?;
    Ok(found)
}

/// Removes the marker of `pk` from `index` if it is still the one of revision `rev`
/// (its document gone, or no longer belonging there).
pub async fn forget_marker(svc: &Services, index: &str, pk: &str, rev: &str) -> Result<()> {
    let values = Item::from([(":rev".to_string(), n(rev))]);
    svc.table
        .delete_when(index, pk, "rev = :rev", values)
        .await?;
    Ok(())
}

/// What a change decided.
pub enum Change<T> {
    /// Write the changed document and answer `T`.
    Write(T),
    /// Write nothing and answer `T`.
    Keep(T),
}

/// Changes the document at `pk` of `account_id` with `change` (called again on the
/// fresh document after a lost race, with the attempt number from 0) and answers what
/// it decided with the document as stored after it. `None` when there is no document.
pub async fn update<T>(
    svc: &Services,
    pk: &str,
    account_id: Uuid,
    mut change: impl FnMut(&mut Map<String, Value>, usize) -> Result<Change<T>>,
) -> Result<Option<(T, Map<String, Value>)>> {
    for attempt in 0..ATTEMPTS {
        let Some(doc) = get(svc, pk, account_id).await? else {
            return Ok(None);
        };
        let mut body = doc.body.clone();
        match change(&mut body, attempt)? {
            Change::Keep(answer) => return Ok(Some((answer, doc.body))),
            Change::Write(answer) => {
                if put_next(svc, &doc, &body).await? {
                    return Ok(Some((answer, body)));
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(5 + 5 * attempt as u64)).await;
    }
    Err(ClearmlError::internal(format!(
        "{pk}: too many concurrent changes, try again"
    )))
}

/// Deletes the document at `pk` (and nothing else).
pub async fn delete(svc: &Services, pk: &str) -> Result<()> {
    svc.table
        .batch_write(
            Vec::new(),
            vec![(pk.to_string(), keys::CLEARML_DOC_SK.to_string())],
        )
        .await?;
    Ok(())
}

/// Takes `name` for a record of `kind` of the account (a marker item naming the
/// record's id); `Err` with the id that holds it when taken.
pub async fn claim_name(
    svc: &Services,
    account_id: Uuid,
    kind: &str,
    name: &str,
    id: &str,
) -> Result<std::result::Result<(), String>> {
    let pk = keys::clearml_name_pk(account_id, kind, name);
    let mut item = crate::store::Item::new();
    item.insert("pk".into(), s(&pk));
    item.insert("sk".into(), s(keys::CLEARML_NAME_SK));
    item.insert("id".into(), s(id));
    if svc.table.put_if_absent(item).await? {
        return Ok(Ok(()));
    }
    let holder = svc
        .table
        .get(&pk, keys::CLEARML_NAME_SK)
        .await?
        .and_then(|item| item.get("id").and_then(|v| v.as_s().ok()).cloned())
        .unwrap_or_default();
    Ok(Err(holder))
}

/// Takes `name` for the record `id` of `kind`, unless a record that still exists holds
/// it: a marker left by a deleted record (its document at `holder_pk(holder)` is gone) is
/// replaced, with a delete conditioned on that stale holder, so two creators never both
/// take one name. `false` when the name is taken.
pub async fn take_name(
    svc: &Services,
    account_id: Uuid,
    kind: &str,
    name: &str,
    id: &str,
    holder_pk: impl Fn(&str) -> String,
) -> Result<bool> {
    for _ in 0..3 {
        let holder = match claim_name(svc, account_id, kind, name, id).await? {
            Ok(()) => return Ok(true),
            Err(holder) => holder,
        };
        if is_id(&holder) && get(svc, &holder_pk(&holder), account_id).await?.is_some() {
            return Ok(false);
        }
        svc.table
            .delete_when(
                &keys::clearml_name_pk(account_id, kind, name),
                keys::CLEARML_NAME_SK,
                "id = :holder",
                crate::store::Item::from([(":holder".to_string(), s(&holder))]),
            )
            .await?;
    }
    Ok(false)
}

/// Frees a name taken by [`claim_name`].
pub async fn release_name(svc: &Services, account_id: Uuid, kind: &str, name: &str) -> Result<()> {
    svc.table
        .batch_write(
            Vec::new(),
            vec![(
                keys::clearml_name_pk(account_id, kind, name),
                keys::CLEARML_NAME_SK.to_string(),
            )],
        )
        .await?;
    Ok(())
}
