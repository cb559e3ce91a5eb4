//! Orchestrator documents in the one table: a collection of an account is one partition
//! (`ORCH#<account_id>#<collection>`), a document one item keyed by its uuid — a get is
//! a `GetItem`, a listing a `Query` of one partition, and another account's documents
//! are simply not there. Blobs (workflows, algorithms, data, models, predictions) are S3
//! objects at `orchestrator/<account_id>/<uuid>`.

use std::collections::HashMap;
use std::ops::ControlFlow;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::Collection;
use crate::Services;
use crate::error::ApiError;
use crate::store::dynamo::{Item, from_item, s, to_item};
use crate::store::{KeyRange, TableQuery};

/// The partition of an account's collection.
pub fn partition(account_id: Uuid, collection: Collection) -> String {
    format!("ORCH#{account_id}#{}", collection.name())
}

/// The S3 key of a blob of an account.
pub fn blob_key(account_id: Uuid, uuid: Uuid) -> String {
    format!("orchestrator/{account_id}/{uuid}")
}

/// A document with its keys, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored<T> {
    pk: String,
    sk: String,
    #[serde(flatten)]
    doc: T,
}

fn item<T: Serialize>(
    account_id: Uuid,
    collection: Collection,
    uuid: Uuid,
    doc: &T,
) -> Result<Item, ApiError> {
    to_item(&Stored {
        pk: partition(account_id, collection),
        sk: uuid.to_string(),
        doc,
    })
}

/// Stores a new document; `false` when one with its uuid exists.
pub async fn insert<T: Serialize>(
    svc: &Services,
    account_id: Uuid,
    collection: Collection,
    uuid: Uuid,
    doc: &T,
) -> Result<bool, ApiError> {
    svc.table
        .put_if_absent(item(account_id, collection, uuid, doc)?)
        .await
}

/// Replaces a document if its `status` is still `expected` (`None`: unconditionally);
/// `false` when it was not.
pub async fn replace_if_status<T: Serialize>(
    svc: &Services,
    account_id: Uuid,
    collection: Collection,
    uuid: Uuid,
    doc: &T,
    expected: Option<&str>,
) -> Result<bool, ApiError> {
    let (condition, values) = match expected {
        Some(status) => (
            Some("attribute_exists(pk) AND #status = :expected"),
            HashMap::from([(":expected".to_string(), s(status))]),
        ),
        None => (None, HashMap::new()),
    };
    svc.table
        .put_when(item(account_id, collection, uuid, doc)?, condition, values)
        .await
}

/// Replaces a document if its `status` and `attempts` are still `status` and
/// `attempts` (a claim renewed meanwhile by another worker is not overwritten); `false`
/// when they were not.
pub async fn replace_if_claim<T: Serialize>(
    svc: &Services,
    account_id: Uuid,
    collection: Collection,
    uuid: Uuid,
    doc: &T,
    status: &str,
    attempts: u32,
) -> Result<bool, ApiError> {
    svc.table
        .put_when(
            item(account_id, collection, uuid, doc)?,
            Some("attribute_exists(pk) AND #status = :status AND attempts = :attempts"),
            HashMap::from([
                (":status".to_string(), s(status)),
                (":attempts".to_string(), crate::store::dynamo::n(attempts)),
            ]),
        )
        .await
}

/// A document, if the account has it.
pub async fn get<T: DeserializeOwned>(
    svc: &Services,
    account_id: Uuid,
    collection: Collection,
    uuid: Uuid,
) -> Result<Option<T>, ApiError> {
    match svc
        .table
        .get(&partition(account_id, collection), &uuid.to_string())
        .await?
    {
        Some(item) => Ok(Some(from_item::<Stored<T>>(item)?.doc)),
        None => Ok(None),
    }
}

/// Every document of a collection of the account, in uuid order.
pub async fn all<T: DeserializeOwned>(
    svc: &Services,
    account_id: Uuid,
    collection: Collection,
) -> Result<Vec<T>, ApiError> {
    let query = TableQuery {
        index: None,
        partition: partition(account_id, collection),
        range: KeyRange::All,
        descending: false,
    };
    let mut docs = Vec::new();
    svc.table
        .for_each_record(&query, |stored: Stored<T>| {
            docs.push(stored.doc);
            ControlFlow::Continue(())
        })
        .await?;
    Ok(docs)
}

/// The documents of a collection whose fields equal the filters (Morpheo's
/// `GET /<collection>?field=value`): a field holding a list matches when the list holds
/// the value; values compare as their JSON text without quotes.
pub async fn matching(
    svc: &Services,
    account_id: Uuid,
    collection: Collection,
    filters: &[(String, String)],
) -> Result<Vec<Value>, ApiError> {
    let docs: Vec<Value> = all(svc, account_id, collection).await?;
    Ok(docs
        .into_iter()
        .filter(|doc| {
            filters
                .iter()
                .all(|(field, wanted)| field_matches(doc, field, wanted))
        })
        .collect())
}

fn field_matches(doc: &Value, field: &str, wanted: &str) -> bool {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match doc.get(field) {
        Some(Value::Array(items)) => items.iter().any(|v| text(v) == wanted),
        Some(value) => text(value) == wanted,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_match_fields_and_list_members() {
        let doc = json!({"uuid": "a", "rank": 2, "problems": ["p", "q"], "perf": null});
        assert!(field_matches(&doc, "uuid", "a"));
        assert!(field_matches(&doc, "rank", "2"));
        assert!(field_matches(&doc, "problems", "q"));
        assert!(field_matches(&doc, "perf", "null"));
        assert!(!field_matches(&doc, "problems", "r"));
        assert!(!field_matches(&doc, "missing", "a"));
    }
}
