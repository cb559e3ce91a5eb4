//! Thin typed layer over the DynamoDB client: conditional puts, paged queries,
//! batched reads and writes with retry of unprocessed keys, chunked transactions.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeysAndAttributes, PutRequest, TransactWriteItem, WriteRequest,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A raw DynamoDB item.
pub type Item = HashMap<String, AttributeValue>;

/// Most items one `BatchGetItem` call takes.
const BATCH_GET_MAX: usize = 100;
/// Most requests one `BatchWriteItem` call takes.
const BATCH_WRITE_MAX: usize = 25;
/// Most items one `TransactWriteItems` call takes.
pub const TRANSACTION_MAX: usize = 100;
/// Aliases of attribute names that are DynamoDB reserved words, as the expressions of
/// [`Table::update`] spell them.
const RESERVED_NAMES: &[(&str, &str)] = &[
    ("#status", "status"),
    ("#output", "output"),
    ("#value", "value"),
    ("#descriptor", "descriptor"),
    ("#image", "image"),
    ("#description", "description"),
    ("#permissions", "permissions"),
];
/// The [`RESERVED_NAMES`] aliases an expression uses, for its attribute names.
fn reserved_names(expression: &str) -> HashMap<String, String> {
    RESERVED_NAMES
        .iter()
        .filter(|(alias, _)| expression.contains(alias))
        .map(|(alias, name)| (alias.to_string(), name.to_string()))
        .collect()
}

/// Attempts at unprocessed batch items before giving up.
const BATCH_ATTEMPTS: u32 = 8;

/// The service's table.
#[derive(Debug, Clone)]
pub struct Table {
    client: Client,
    name: String,
}

/// Sort-key condition of a query.
#[derive(Debug, Clone)]
pub enum KeyRange {
    /// Every item of the partition.
    All,
    /// Sort keys starting with a prefix.
    Prefix(String),
    /// Sort keys in `[gte, lt)`; either end may be open.
    Between {
        /// Included lower bound.
        gte: Option<String>,
        /// Excluded upper bound.
        lt: Option<String>,
    },
}

/// One partition to read, in sort-key order.
#[derive(Debug, Clone)]
pub struct TableQuery {
    /// `Some(index)` to read a secondary index.
    pub index: Option<&'static str>,
    /// Partition key value.
    pub partition: String,
    /// Which sort keys to read.
    pub range: KeyRange,
    /// Newest (highest sort key) first.
    pub descending: bool,
}

/// Why a transaction did not apply.
#[derive(Debug)]
pub enum TransactError {
    /// A condition failed; nothing was written.
    ConditionFailed,
    /// Any other failure.
    Api(ApiError),
}

impl Table {
    /// Binds a client to the table name from the configuration.
    pub fn new(client: Client, name: impl Into<String>) -> Table {
        Table {
            client,
            name: name.into(),
        }
    }

    /// The underlying client, for operations this layer does not wrap.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The table name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Strongly consistent read of one item.
    pub async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, ApiError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.name)
            .key("pk", AttributeValue::S(pk.into()))
            .key("sk", AttributeValue::S(sk.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ApiError::internal("dynamodb get_item", aws_error(&e)))?;
        Ok(out.item)
    }

    /// Puts an item unless one with its key exists; `false` when one did.
    pub async fn put_if_absent(&self, item: Item) -> Result<bool, ApiError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        Ok(unless_condition_failed(result, "dynamodb put_item")?.is_some())
    }

    /// Puts `item`, replacing what its key holds, when `condition` holds (`None`:
    /// always; the aliases of [`RESERVED_NAMES`] name those attributes); `false` when it
    /// did not.
    pub async fn put_when(
        &self,
        item: Item,
        condition: Option<&str>,
        values: Item,
    ) -> Result<bool, ApiError> {
        let names = reserved_names(condition.unwrap_or_default());
        let result = self
            .client
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_string))
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .send()
            .await;
        Ok(unless_condition_failed(result, "dynamodb put_item")?.is_some())
    }

    /// Deletes the item `(pk, sk)` when `condition` holds; `false` when it did not.
    pub async fn delete_when(
        &self,
        pk: &str,
        sk: &str,
        condition: &str,
        values: Item,
    ) -> Result<bool, ApiError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.name)
            .key("pk", AttributeValue::S(pk.into()))
            .key("sk", AttributeValue::S(sk.into()))
            .condition_expression(condition)
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .send()
            .await;
        Ok(unless_condition_failed(result, "dynamodb delete_item")?.is_some())
    }

    /// Applies `update` to the item `(pk, sk)` when `condition` holds (`None`: always).
    /// Answers the item as it is after the update (`Some`), or `None` when the condition
    /// did not hold. The aliases of [`RESERVED_NAMES`] (`#status`, `#output`, `#value`,
    /// `#descriptor`, `#image`, `#description`, `#permissions`) name those attributes.
    pub async fn update(
        &self,
        pk: &str,
        sk: &str,
        update: &str,
        condition: Option<&str>,
        values: Item,
    ) -> Result<Option<Item>, ApiError> {
        let names = reserved_names(&format!("{update} {}", condition.unwrap_or_default()));
        let result = self
            .client
            .update_item()
            .table_name(&self.name)
            .key("pk", AttributeValue::S(pk.into()))
            .key("sk", AttributeValue::S(sk.into()))
            .update_expression(update)
            .set_condition_expression(condition.map(str::to_string))
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        Ok(unless_condition_failed(result, "dynamodb update_item")?
            .map(|out| out.attributes.unwrap_or_default()))
    }

    /// Reads the partition of `query` page by page, handing each item to `visit` until it
    /// breaks or the partition ends.
    pub async fn for_each(
        &self,
        query: &TableQuery,
        mut visit: impl FnMut(Item) -> ControlFlow<()>,
    ) -> Result<(), ApiError> {
        let (condition, names, values) = key_condition(query);
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.name)
                .set_index_name(query.index.map(str::to_string))
                .key_condition_expression(&condition)
                .set_expression_attribute_names(Some(names.clone()))
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(!query.descending)
                // Base-table reads see every write that came before (index reads cannot).
                .set_consistent_read(query.index.is_none().then_some(true))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| ApiError::internal("dynamodb query", aws_error(&e)))?;
            for item in out.items.unwrap_or_default() {
                if visit(item).is_break() {
                    return Ok(());
                }
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(()),
            }
        }
    }

    /// One page of up to `limit` items of `query`, starting after `start` (the key an
    /// earlier page answered); answers the items and where the next page starts (`None`
    /// at the end of the partition).
    pub async fn query_page(
        &self,
        query: &TableQuery,
        limit: i32,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>), ApiError> {
        let (condition, names, values) = key_condition(query);
        let out = self
            .client
            .query()
            .table_name(&self.name)
            .set_index_name(query.index.map(str::to_string))
            .key_condition_expression(&condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .scan_index_forward(!query.descending)
            .set_consistent_read(query.index.is_none().then_some(true))
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| ApiError::internal("dynamodb query", aws_error(&e)))?;
        let next = out.last_evaluated_key.filter(|key| !key.is_empty());
        Ok((out.items.unwrap_or_default(), next))
    }

    /// Like [`Table::for_each`], handing each item deserialized as `T`; an item that does
    /// not deserialize stops the read with its error.
    pub async fn for_each_record<T: DeserializeOwned>(
        &self,
        query: &TableQuery,
        mut visit: impl FnMut(T) -> ControlFlow<()>,
    ) -> Result<(), ApiError> {
        let mut failure = None;
        self.for_each(query, |item| match from_item::<T>(item) {
            Ok(record) => visit(record),
            Err(err) => {
                failure = Some(err);
                ControlFlow::Break(())
            }
        })
        .await?;
        failure.map_or(Ok(()), Err)
    }

    /// Like [`Table::for_each_record`], handing on only the records `keep` accepts: how
    /// every listing applies the filters its key condition cannot express.
    pub async fn for_each_matching<T: DeserializeOwned>(
        &self,
        query: &TableQuery,
        keep: impl Fn(&T) -> bool,
        mut visit: impl FnMut(T) -> ControlFlow<()>,
    ) -> Result<(), ApiError> {
        self.for_each_record(query, |record: T| {
            if keep(&record) {
                visit(record)
            } else {
                ControlFlow::Continue(())
            }
        })
        .await
    }

    /// Reads many items by `(pk, sk)`; missing ones are simply absent from the answer.
    pub async fn batch_get(&self, keys: &[(String, String)]) -> Result<Vec<Item>, ApiError> {
        self.batch_get_attributes(keys, &[]).await
    }

    /// [`Table::batch_get`] reading only the named attributes (all when empty): the
    /// existence checks of big items (faces carry 2 KB descriptors) read a few bytes each.
    pub async fn batch_get_attributes(
        &self,
        keys: &[(String, String)],
        attributes: &[&str],
    ) -> Result<Vec<Item>, ApiError> {
        let (projection, names) = if attributes.is_empty() {
            (None, None)
        } else {
            let names: HashMap<String, String> = attributes
                .iter()
                .enumerate()
                .map(|(i, a)| (format!("#a{i}"), a.to_string()))
                .collect();
            let mut placeholders: Vec<&String> = names.keys().collect();
            placeholders.sort();
            let projection = placeholders
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            (Some(projection), Some(names))
        };
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_GET_MAX) {
            let mut pending: Vec<Item> = chunk
                .iter()
                .map(|(pk, sk)| HashMap::from([("pk".into(), s(pk)), ("sk".into(), s(sk))]))
                .collect();
            pending.dedup();
            let mut attempt = 0;
            while !pending.is_empty() {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .set_projection_expression(projection.clone())
                    .set_expression_attribute_names(names.clone())
                    .build()
                    .map_err(|e| ApiError::internal("dynamodb batch_get request", e))?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.name, request)
                    .send()
                    .await
                    .map_err(|e| ApiError::internal("dynamodb batch_get_item", aws_error(&e)))?;
                if let Some(mut responses) = out.responses {
                    found.extend(responses.remove(&self.name).unwrap_or_default());
                }
                if let Some(rest) = out
                    .unprocessed_keys
                    .and_then(|mut rest| rest.remove(&self.name))
                {
                    pending = rest.keys;
                }
                attempt += 1;
                backoff_or_give_up(attempt, !pending.is_empty(), "batch_get_item").await?;
            }
        }
        Ok(found)
    }

    /// Writes puts and deletes in batches of 25, retrying unprocessed requests.
    /// Unconditional: use only for idempotent writes.
    pub async fn batch_write(
        &self,
        puts: Vec<Item>,
        deletes: Vec<(String, String)>,
    ) -> Result<(), ApiError> {
        let mut requests: Vec<WriteRequest> = Vec::with_capacity(puts.len() + deletes.len());
        for item in puts {
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| ApiError::internal("dynamodb put request", e))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        for (pk, sk) in deletes {
            let delete = DeleteRequest::builder()
                .key("pk", s(&pk))
                .key("sk", s(&sk))
                .build()
                .map_err(|e| ApiError::internal("dynamodb delete request", e))?;
            requests.push(WriteRequest::builder().delete_request(delete).build());
        }
        for chunk in requests.chunks(BATCH_WRITE_MAX) {
            let mut pending = chunk.to_vec();
            let mut attempt = 0;
            while !pending.is_empty() {
                let out = self
                    .client
                    .batch_write_item()
                    .request_items(&self.name, std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(|e| ApiError::internal("dynamodb batch_write_item", aws_error(&e)))?;
                if let Some(mut rest) = out.unprocessed_items {
                    pending = rest.remove(&self.name).unwrap_or_default();
                }
                attempt += 1;
                backoff_or_give_up(attempt, !pending.is_empty(), "batch_write_item").await?;
            }
        }
        Ok(())
    }

    /// Applies up to [`TRANSACTION_MAX`] writes atomically. A transaction cancelled by a
    /// conflicting concurrent write (not by a condition) is tried again.
    pub async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<(), TransactError> {
        debug_assert!(items.len() <= TRANSACTION_MAX);
        let mut attempt = 0;
        loop {
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let err = match result {
                Ok(_) => return Ok(()),
                Err(err) => err,
            };
            let Some(
                aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(
                    cancelled,
                ),
            ) = err.as_service_error()
            else {
                return Err(TransactError::Api(ApiError::internal(
                    "dynamodb transact_write_items",
                    aws_error(&err),
                )));
            };
            let condition_failed = cancelled
                .cancellation_reasons()
                .iter()
                .any(|r| r.code() == Some("ConditionalCheckFailed"));
            // Emulators may give no reasons; treat a bare cancellation as a condition.
            if condition_failed || cancelled.cancellation_reasons().is_empty() {
                return Err(TransactError::ConditionFailed);
            }
            attempt += 1;
            if attempt >= BATCH_ATTEMPTS {
                return Err(TransactError::Api(ApiError::internal(
                    "dynamodb transact_write_items",
                    aws_error(&err),
                )));
            }
            tokio::time::sleep(Duration::from_millis(10 << attempt.min(6))).await;
        }
    }
}

async fn backoff_or_give_up(attempt: u32, pending: bool, op: &str) -> Result<(), ApiError> {
    if !pending {
        return Ok(());
    }
    if attempt >= BATCH_ATTEMPTS {
        return Err(ApiError::internal(op, "unprocessed items after retries"));
    }
    tokio::time::sleep(Duration::from_millis(25 << attempt.min(6))).await;
    Ok(())
}

/// The answer of a conditional write, or `None` when its condition did not hold; any
/// other failure is an internal error.
pub fn unless_condition_failed<T, E, R>(
    result: Result<T, aws_sdk_dynamodb::error::SdkError<E, R>>,
    op: &str,
) -> Result<Option<T>, ApiError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    match result {
        Ok(out) => Ok(Some(out)),
        Err(err) if err.code() == Some("ConditionalCheckFailedException") => Ok(None),
        Err(err) => Err(ApiError::internal(op, aws_error(&err))),
    }
}

/// A string attribute.
pub fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

/// A number attribute.
pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Serializes a record into an item.
pub fn to_item<T: Serialize>(record: &T) -> Result<Item, ApiError> {
    serde_dynamo::to_item(record).map_err(|e| ApiError::internal("serialize item", e))
}

/// Deserializes an item into a record.
pub fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, ApiError> {
    serde_dynamo::from_item(item).map_err(|e| ApiError::internal("deserialize item", e))
}

/// Full text of an SDK error, including its source chain, for logs.
pub fn aws_error(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The key condition of `query`: expression, attribute names and values.
fn key_condition(query: &TableQuery) -> (String, HashMap<String, String>, Item) {
    // Each index `gsiN` is keyed by `gsiNpk` / `gsiNsk`.
    let (pk_attr, sk_attr) = match query.index {
        Some(index) => (format!("{index}pk"), format!("{index}sk")),
        None => ("pk".to_string(), "sk".to_string()),
    };
    let mut condition = "#pk = :pk".to_string();
    let mut values: Item = HashMap::from([(":pk".into(), s(&query.partition))]);
    let mut names = HashMap::from([("#pk".to_string(), pk_attr)]);
    match &query.range {
        KeyRange::All => {}
        KeyRange::Prefix(prefix) => {
            condition.push_str(" AND begins_with(#sk, :prefix)");
            values.insert(":prefix".into(), s(prefix));
        }
        KeyRange::Between { gte, lt } => {
            // Sort keys are `<bound>#<id>`, so BETWEEN gte AND lt keeps exactly [gte, lt).
            match (gte, lt) {
                (Some(gte), Some(lt)) => {
                    condition.push_str(" AND #sk BETWEEN :gte AND :lt");
                    values.insert(":gte".into(), s(gte));
                    values.insert(":lt".into(), s(lt));
                }
                (Some(gte), None) => {
                    condition.push_str(" AND #sk >= :gte");
                    values.insert(":gte".into(), s(gte));
                }
                (None, Some(lt)) => {
                    condition.push_str(" AND #sk < :lt");
                    values.insert(":lt".into(), s(lt));
                }
                (None, None) => {}
            }
        }
    }
    if condition.contains("#sk") {
        names.insert("#sk".into(), sk_attr);
    }
    (condition, names, values)
}

/// A conditional update, as one write of a transaction; `#status` in the expressions
/// names the attribute `status` (a reserved word).
pub fn update_op(
    table: &str,
    pk: String,
    sk: String,
    update: &str,
    condition: &str,
    values: Item,
) -> Result<TransactWriteItem, ApiError> {
    let names = (update.contains("#status") || condition.contains("#status"))
        .then(|| HashMap::from([("#status".to_string(), "status".to_string())]));
    let update = aws_sdk_dynamodb::types::Update::builder()
        .set_expression_attribute_names(names)
        .table_name(table)
        .key("pk", AttributeValue::S(pk))
        .key("sk", AttributeValue::S(sk))
        .update_expression(update)
        .condition_expression(condition)
        .set_expression_attribute_values((!values.is_empty()).then_some(values))
        .build()
        .map_err(|e| ApiError::internal("dynamodb update request", e))?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// A put, as one write of a transaction.
pub fn put_op(table: &str, item: Item) -> Result<TransactWriteItem, ApiError> {
    let put = aws_sdk_dynamodb::types::Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .build()
        .map_err(|e| ApiError::internal("dynamodb put request", e))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// A put of a new item (fails the transaction if the key exists).
pub fn put_new_op(table: &str, item: Item) -> Result<TransactWriteItem, ApiError> {
    let put = aws_sdk_dynamodb::types::Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .map_err(|e| ApiError::internal("dynamodb put request", e))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// Most conditional puts [`Table::put_each_if_absent`] keeps in flight.
const PUTS_IN_FLIGHT: usize = 25;

impl Table {
    /// Puts each item unless one with its key exists: one conditional `PutItem` per item,
    /// up to 25 in flight. For writes that may be repeated but must never replace what is
    /// stored (a batch write cannot be conditional). Answers how many items were new.
    pub async fn put_each_if_absent(&self, items: Vec<Item>) -> Result<usize, ApiError> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        let written: Vec<bool> = stream::iter(items)
            .map(|item| self.put_if_absent(item))
            .buffer_unordered(PUTS_IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(written.into_iter().filter(|new| *new).count())
    }
}

/// A condition on an item that exists, as one write of a transaction (it writes nothing).
pub fn check_op(
    table: &str,
    pk: String,
    sk: String,
    condition: &str,
    values: Item,
) -> Result<TransactWriteItem, ApiError> {
    let check = aws_sdk_dynamodb::types::ConditionCheck::builder()
        .table_name(table)
        .key("pk", AttributeValue::S(pk))
        .key("sk", AttributeValue::S(sk))
        .condition_expression(condition)
        .set_expression_attribute_values((!values.is_empty()).then_some(values))
        .build()
        .map_err(|e| ApiError::internal("dynamodb condition check", e))?;
    Ok(TransactWriteItem::builder().condition_check(check).build())
}

/// A delete of the item `(pk, sk)` when `condition` holds (`None`: always), as one
/// write of a transaction.
pub fn delete_op(
    table: &str,
    pk: String,
    sk: String,
    condition: Option<&str>,
    values: Item,
) -> Result<TransactWriteItem, ApiError> {
    let delete = aws_sdk_dynamodb::types::Delete::builder()
        .table_name(table)
        .key("pk", AttributeValue::S(pk))
        .key("sk", AttributeValue::S(sk))
        .set_condition_expression(condition.map(str::to_string))
        .set_expression_attribute_values((!values.is_empty()).then_some(values))
        .build()
        .map_err(|e| ApiError::internal("dynamodb delete request", e))?;
    Ok(TransactWriteItem::builder().delete(delete).build())
}
