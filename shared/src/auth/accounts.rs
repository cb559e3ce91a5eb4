//! Accounts: who owns records. An admin account's tokens may act on any account.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::Services;
use crate::error::{ApiError, ErrorCode};
use crate::query::{Page, PageBuffer};
use crate::store::dynamo::{from_item, s, to_item};
use crate::store::{KeyRange, TableQuery, keys};
use crate::timestamps;

use super::tokens;

/// Most characters of an account's or a token's description.
pub const DESCRIPTION_MAX: usize = 128;

/// The two kinds of account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AccountType {
    /// Acts on its own records only.
    #[default]
    User,
    /// May act on any account, and manages accounts.
    Admin,
}

impl AccountType {
    /// The name the API uses.
    pub fn name(self) -> &'static str {
        match self {
            AccountType::User => "user",
            AccountType::Admin => "admin",
        }
    }

    /// Reads [`AccountType::name`]'s form.
    pub fn from_name(name: &str) -> Option<AccountType> {
        match name {
            "user" => Some(AccountType::User),
            "admin" => Some(AccountType::Admin),
            _ => None,
        }
    }
}

/// Body of `POST /1/accounts`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccount {
    /// Id to give the account (to adopt records stored under it before); a new UUID
    /// when absent.
    pub account_id: Option<Uuid>,
    /// Free text, at most 128 characters.
    pub description: Option<String>,
    /// `user` (default) or `admin`.
    pub account_type: Option<AccountType>,
}

/// Answer to `POST /1/accounts`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct AccountCreated {
    /// Id of the new account.
    pub account_id: Uuid,
    /// Path of the new account.
    pub url: String,
}

/// An account as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Account {
    /// Account id.
    pub account_id: Uuid,
    /// Free text ("" when unset).
    pub description: String,
    /// `user` or `admin`.
    pub account_type: AccountType,
    /// Creation time (RFC 3339, UTC).
    pub create_time: String,
}

/// Answer to `GET /1/accounts`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AccountPage {
    /// The accounts of the requested page, newest first.
    pub accounts: Vec<Account>,
}

/// Body of `PATCH /1/accounts/{account_id}`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    /// New description.
    pub description: Option<String>,
    /// New type.
    pub account_type: Option<AccountType>,
}

/// The stored item of an account.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AccountRecord {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    #[serde(flatten)]
    account: Account,
}

impl AccountRecord {
    fn new(account: Account) -> AccountRecord {
        AccountRecord {
            pk: keys::account_pk(account.account_id),
            sk: keys::ACCOUNT_SK.into(),
            gsi1pk: keys::ACCOUNTS_LISTING.into(),
            gsi1sk: keys::time_sort_key(&account.create_time, account.account_id),
            account,
        }
    }
}

fn check_description(value: Option<&str>) -> Result<(), ApiError> {
    crate::objects::check_text("description", value, DESCRIPTION_MAX)
}

/// Creates an account.
pub async fn create(svc: &Services, new: NewAccount) -> Result<AccountCreated, ApiError> {
    check_description(new.description.as_deref())?;
    let account_id = new.account_id.unwrap_or_else(Uuid::new_v4);
    let account = Account {
        account_id,
        description: new.description.unwrap_or_default(),
        account_type: new.account_type.unwrap_or_default(),
        create_time: timestamps::format(timestamps::now()),
    };
    if !svc
        .table
        .put_if_absent(to_item(&AccountRecord::new(account))?)
        .await?
    {
        return Err(ApiError::new(
            ErrorCode::AccountExists,
            format!("Account with id '{account_id}' already exists"),
        ));
    }
    Ok(AccountCreated {
        account_id,
        url: format!("/1/accounts/{account_id}"),
    })
}

fn not_found(account_id: Uuid) -> ApiError {
    ApiError::new(
        ErrorCode::AccountNotFound,
        format!("Account with id '{account_id}' not found"),
    )
}

/// The account, if it exists.
pub async fn find(svc: &Services, account_id: Uuid) -> Result<Option<Account>, ApiError> {
    let item = svc
        .table
        .get(&keys::account_pk(account_id), keys::ACCOUNT_SK)
        .await?;
    item.map(|item| from_item::<AccountRecord>(item).map(|r| r.account))
        .transpose()
}

/// One account.
pub async fn get(svc: &Services, account_id: Uuid) -> Result<Account, ApiError> {
    find(svc, account_id)
        .await?
        .ok_or_else(|| not_found(account_id))
}

/// One page of the accounts, newest first.
pub async fn list(svc: &Services, page: Page) -> Result<AccountPage, ApiError> {
    let query = TableQuery {
        index: Some(keys::GSI1),
        partition: keys::ACCOUNTS_LISTING.into(),
        range: KeyRange::All,
        descending: true,
    };
    let mut buffer = PageBuffer::new(page);
    svc.table
        .for_each_record(&query, |r: AccountRecord| buffer.offer(r.account))
        .await?;
    Ok(AccountPage {
        accounts: buffer.into_items(),
    })
}

/// Changes an account's description or type.
pub async fn patch(svc: &Services, account_id: Uuid, patch: AccountPatch) -> Result<(), ApiError> {
    check_description(patch.description.as_deref())?;
    let mut sets = Vec::new();
    let mut values = crate::store::Item::new();
    if let Some(description) = &patch.description {
        sets.push("#description = :description");
        values.insert(":description".into(), s(description));
    }
    if let Some(account_type) = patch.account_type {
        sets.push("account_type = :type");
        values.insert(":type".into(), s(account_type.name()));
    }
    if sets.is_empty() {
        return get(svc, account_id).await.map(|_| ());
    }
    let updated = svc
        .table
        .update(
            &keys::account_pk(account_id),
            keys::ACCOUNT_SK,
            &format!("SET {}", sets.join(", ")),
            Some("attribute_exists(pk)"),
            values,
        )
        .await?;
    updated.map(|_| ()).ok_or_else(|| not_found(account_id))
}

/// Deletes an account and revokes all its tokens. Records stored under the account stay
/// (an admin token can still read and delete them).
pub async fn delete(svc: &Services, account_id: Uuid) -> Result<(), ApiError> {
    get(svc, account_id).await?;
    // The account first: from here on the authorizer refuses its tokens, whatever the
    // token deletes below manage to do.
    svc.table
        .batch_write(
            Vec::new(),
            vec![(keys::account_pk(account_id), keys::ACCOUNT_SK.to_string())],
        )
        .await?;
    tokens::delete_all_of(svc, account_id).await
}
