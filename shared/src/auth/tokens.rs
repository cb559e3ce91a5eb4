//! Tokens: bearer credentials of an account with permissions. A token reads
//! `fo_<token_id>_<secret>`; only the SHA-256 of the secret is stored, so the secret is
//! shown once, in the answer that creates it.

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::Services;
use crate::error::{ApiError, ErrorCode};
use crate::query::{Page, PageBuffer};
use crate::store::dynamo::{from_item, s, to_item};
use crate::store::{Item, KeyRange, TableQuery, keys};
use crate::timestamps;

use super::accounts::{self, DESCRIPTION_MAX};
use super::{Caller, Permissions};

/// What every token starts with, so a leaked one is easy to recognise (and scan for).
pub const TOKEN_PREFIX: &str = "fo_";

/// Body of `POST /1/tokens`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// Owner of the token: the caller's account when absent (an admin may name another).
    pub account_id: Option<Uuid>,
    /// Free text, at most 128 characters.
    pub description: Option<String>,
    /// When the token stops working (RFC 3339); never when absent. A token made by a
    /// token that expires cannot outlive it.
    pub expiration_time: Option<String>,
    /// What the token may do; when absent, everything the creating token may do. A user
    /// account's token cannot grant what it lacks itself.
    pub permissions: Option<Permissions>,
}

/// Answer to `POST /1/tokens`: the only answer that shows the secret.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct TokenCreated {
    /// Id of the new token.
    pub token_id: Uuid,
    /// The bearer token to send as `Authorization: Bearer <token>`. Shown only here.
    pub token: String,
    /// Path of the new token.
    pub url: String,
}

/// A token as the API shows it (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct Token {
    /// Token id.
    pub token_id: Uuid,
    /// Owner.
    pub account_id: Uuid,
    /// Free text ("" when unset).
    pub description: String,
    /// What the token may do.
    pub permissions: Permissions,
    /// When it stops working; null when never.
    pub expiration_time: Option<String>,
    /// Creation time (RFC 3339, UTC).
    pub create_time: String,
}

/// Answer to `GET /1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenPage {
    /// The tokens of the requested page, newest first.
    pub tokens: Vec<Token>,
}

/// Body of `PATCH /1/tokens/{token_id}`.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenPatch {
    /// New description.
    pub description: Option<String>,
    /// New expiration time (RFC 3339).
    pub expiration_time: Option<String>,
    /// New permissions (replacing the old ones).
    pub permissions: Option<Permissions>,
}

/// The stored item of a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenRecord {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    /// Hex SHA-256 of the secret.
    secret_sha256: String,
    #[serde(flatten)]
    token: Token,
}

/// Hex SHA-256 of a secret.
fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// 32 random bytes from the operating system, URL-safe base64 (43 characters).
fn new_secret() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal("random secret", e))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The token string of `token_id` and `secret`.
fn format_token(token_id: Uuid, secret: &str) -> String {
    format!("{TOKEN_PREFIX}{}_{secret}", token_id.simple())
}

/// Splits a token string into its id and secret; `None` when it is not one.
pub fn parse_token(text: &str) -> Option<(Uuid, &str)> {
    let rest = text.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 32 || secret.is_empty() {
        return None;
    }
    Some((Uuid::try_parse(id).ok()?, secret))
}

fn bad_expiration(raw: &str, reason: &str) -> ApiError {
    ApiError::bad_json(format!("'expiration_time' {raw:?} {reason}"))
}

/// Reads an expiration time: RFC 3339, in the future, and not after `limit`.
fn expiration(
    raw: &str,
    now: DateTime<Utc>,
    limit: Option<DateTime<Utc>>,
) -> Result<String, ApiError> {
    let time = DateTime::parse_from_rfc3339(raw)
        .map_err(|_| bad_expiration(raw, "is not an RFC 3339 time"))?
        .with_timezone(&Utc);
    if time <= now {
        return Err(bad_expiration(raw, "is not in the future"));
    }
    if let Some(limit) = limit
        && time > limit
    {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            format!(
                "'expiration_time' {raw:?} is after the creating token's own ({})",
                timestamps::format(limit)
            ),
        ));
    }
    Ok(timestamps::format(time))
}

/// Checks that `caller` may give `permissions` away: an admin may give anything, a user
/// account's token only what it has.
fn check_grant(caller: &Caller, permissions: &Permissions) -> Result<(), ApiError> {
    if caller.is_admin() || caller.permissions.covers(permissions) {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::PermissionDenied,
        format!(
            "a token cannot grant permissions it lacks: asked '{}', has '{}'",
            permissions.to_compact(),
            caller.permissions.to_compact()
        ),
    ))
}

/// The latest expiration `caller` may give: its own, unless it is an admin's.
fn expiration_limit(caller: &Caller) -> Option<DateTime<Utc>> {
    if caller.is_admin() {
        return None;
    }
    caller
        .expiration_time
        .as_deref()
        .and_then(timestamps::parse)
}

fn check_description(value: Option<&str>) -> Result<(), ApiError> {
    crate::objects::check_text("description", value, DESCRIPTION_MAX)
}

/// Creates a token for `account_id` (bound to the caller's account, or any account for
/// an admin). The answer is the only place the secret appears.
pub async fn create(
    svc: &Services,
    caller: &Caller,
    account_id: Uuid,
    new: NewToken,
) -> Result<TokenCreated, ApiError> {
    check_description(new.description.as_deref())?;
    let now = timestamps::now();
    let permissions = match new.permissions {
        Some(permissions) => permissions.normalized(),
        None if caller.is_admin() => Permissions::all(),
        None => caller.permissions.clone(),
    };
    check_grant(caller, &permissions)?;
    let limit = expiration_limit(caller);
    let expiration_time = match (new.expiration_time.as_deref(), limit) {
        (Some(raw), _) => Some(expiration(raw, now, limit)?),
        (None, Some(limit)) => Some(timestamps::format(limit)),
        (None, None) => None,
    };
    accounts::get(svc, account_id).await?;
    let token_id = Uuid::new_v4();
    let secret = new_secret()?;
    let create_time = timestamps::format(now);
    let record = TokenRecord {
        pk: keys::token_pk(token_id),
        sk: keys::TOKEN_SK.into(),
        gsi1pk: keys::account_partition(account_id, "TOKEN"),
        gsi1sk: keys::time_sort_key(&create_time, token_id),
        secret_sha256: digest(&secret),
        token: Token {
            token_id,
            account_id,
            description: new.description.unwrap_or_default(),
            permissions,
            expiration_time,
            create_time,
        },
    };
    if !svc.table.put_if_absent(to_item(&record)?).await? {
        return Err(ApiError::internal("token id", "a new token id is taken"));
    }
    tracing::info!(%token_id, %account_id, "token created");
    Ok(TokenCreated {
        token_id,
        token: format_token(token_id, &secret),
        url: format!("/1/tokens/{token_id}"),
    })
}

async fn record(svc: &Services, token_id: Uuid) -> Result<Option<TokenRecord>, ApiError> {
    let item = svc
        .table
        .get(&keys::token_pk(token_id), keys::TOKEN_SK)
        .await?;
    item.map(from_item::<TokenRecord>).transpose()
}

fn not_found(token_id: Uuid) -> ApiError {
    ApiError::new(
        ErrorCode::TokenNotFound,
        format!("Token with id '{token_id}' not found"),
    )
}

/// The token if `caller` may see it: its account's, or any for an admin. Another
/// account's token is answered as missing.
async fn visible(svc: &Services, caller: &Caller, token_id: Uuid) -> Result<Token, ApiError> {
    match record(svc, token_id).await? {
        Some(r) if caller.is_admin() || r.token.account_id == caller.account_id => Ok(r.token),
        _ => Err(not_found(token_id)),
    }
}

/// One token.
pub async fn get(svc: &Services, caller: &Caller, token_id: Uuid) -> Result<Token, ApiError> {
    visible(svc, caller, token_id).await
}

/// One page of an account's tokens, newest first.
pub async fn list(svc: &Services, account_id: Uuid, page: Page) -> Result<TokenPage, ApiError> {
    let query = TableQuery {
        index: Some(keys::GSI1),
        partition: keys::account_partition(account_id, "TOKEN"),
        range: KeyRange::All,
        descending: true,
    };
    let mut buffer = PageBuffer::new(page);
    svc.table
        .for_each_record(&query, |r: TokenRecord| buffer.offer(r.token))
        .await?;
    Ok(TokenPage {
        tokens: buffer.into_items(),
    })
}

/// Changes a token's description, expiration or permissions (within what the caller
/// may grant).
pub async fn patch(
    svc: &Services,
    caller: &Caller,
    token_id: Uuid,
    patch: TokenPatch,
) -> Result<(), ApiError> {
    check_description(patch.description.as_deref())?;
    let token = visible(svc, caller, token_id).await?;
    let mut sets = Vec::new();
    let mut values = Item::new();
    if let Some(description) = &patch.description {
        sets.push("#description = :description");
        values.insert(":description".into(), s(description));
    }
    if let Some(raw) = &patch.expiration_time {
        let time = expiration(raw, timestamps::now(), expiration_limit(caller))?;
        sets.push("expiration_time = :expiration");
        values.insert(":expiration".into(), s(&time));
    }
    if let Some(permissions) = patch.permissions {
        let permissions = permissions.normalized();
        check_grant(caller, &permissions)?;
        sets.push("#permissions = :permissions");
        values.insert(
            ":permissions".into(),
            serde_dynamo::to_attribute_value(&permissions)
                .map_err(|e| ApiError::internal("permissions attribute", e))?,
        );
    }
    if sets.is_empty() {
        return Ok(());
    }
    values.insert(":account".into(), s(&token.account_id.to_string()));
    let updated = svc
        .table
        .update(
            &keys::token_pk(token_id),
            keys::TOKEN_SK,
            &format!("SET {}", sets.join(", ")),
            Some("attribute_exists(pk) AND account_id = :account"),
            values,
        )
        .await?;
    updated.map(|_| ()).ok_or_else(|| not_found(token_id))
}

/// Revokes a token: it is deleted, and the authorizer refuses it from the next request
/// it checks (API Gateway may serve a cached answer for up to its cache time).
pub async fn delete(svc: &Services, caller: &Caller, token_id: Uuid) -> Result<(), ApiError> {
    visible(svc, caller, token_id).await?;
    svc.table
        .batch_write(
            Vec::new(),
            vec![(keys::token_pk(token_id), keys::TOKEN_SK.to_string())],
        )
        .await?;
    tracing::info!(%token_id, "token revoked");
    Ok(())
}

/// Deletes every token of an account (the account itself is gone already).
pub(crate) async fn delete_all_of(svc: &Services, account_id: Uuid) -> Result<(), ApiError> {
    let query = TableQuery {
        index: Some(keys::GSI1),
        partition: keys::account_partition(account_id, "TOKEN"),
        range: KeyRange::All,
        descending: false,
    };
    let mut doomed = Vec::new();
    svc.table
        .for_each_record(&query, |r: TokenRecord| {
            doomed.push((r.pk, r.sk));
            std::ops::ControlFlow::Continue(())
        })
        .await?;
    svc.table.batch_write(Vec::new(), doomed).await
}

/// Why a presented token is refused.
fn refused(code: ErrorCode, detail: &str) -> ApiError {
    ApiError::new(code, detail)
}

/// Checks a presented token against the store: its secret, its expiration, its
/// account. Answers who calls, or why not (401: malformed, unknown, revoked, expired,
/// account deleted). Nothing about the secret is logged.
pub async fn verify(
    svc: &Services,
    presented: &str,
    now: DateTime<Utc>,
) -> Result<Caller, ApiError> {
    let Some((token_id, secret)) = parse_token(presented) else {
        return Err(refused(
            ErrorCode::BadToken,
            "the bearer token is not a Fanout token (fo_<id>_<secret>)",
        ));
    };
    let unknown = || refused(ErrorCode::BadToken, "the token is unknown or revoked");
    let record = record(svc, token_id).await?.ok_or_else(unknown)?;
    let matches: bool = digest(secret)
        .as_bytes()
        .ct_eq(record.secret_sha256.as_bytes())
        .into();
    if !matches {
        return Err(unknown());
    }
    caller_of(svc, token_id, record.token, now).await
}

/// Checks the token `token_id` without its secret: for credentials derived from a
/// checked token (the JWTs of the ClearML surface), which end when the token is revoked,
/// expires or loses its account. Answers who calls, or why not (401).
pub async fn verify_id(
    svc: &Services,
    token_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Caller, ApiError> {
    let record = record(svc, token_id)
        .await?
        .ok_or_else(|| refused(ErrorCode::BadToken, "the token is unknown or revoked"))?;
    caller_of(svc, token_id, record.token, now).await
}

/// The caller of a token found in the store: refused once expired or its account gone.
async fn caller_of(
    svc: &Services,
    token_id: Uuid,
    token: Token,
    now: DateTime<Utc>,
) -> Result<Caller, ApiError> {
    if let Some(expiration) = token.expiration_time.as_deref().and_then(timestamps::parse)
        && expiration <= now
    {
        return Err(refused(
            ErrorCode::TokenExpired,
            &format!("the token expired at {}", timestamps::format(expiration)),
        ));
    }
    let account = accounts::find(svc, token.account_id)
        .await?
        .ok_or_else(|| refused(ErrorCode::BadToken, "the token's account was deleted"))?;
    Ok(Caller {
        account_id: account.account_id,
        account_type: account.account_type,
        token_id,
        permissions: token.permissions,
        expiration_time: token.expiration_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_back_to_their_id_and_secret() {
        let id = Uuid::new_v4();
        let secret = new_secret().unwrap();
        assert_eq!(secret.len(), 43);
        let token = format_token(id, &secret);
        assert!(token.starts_with("fo_"));
        assert_eq!(parse_token(&token), Some((id, secret.as_str())));
        for bad in [
            "",
            "fo_",
            "fo_abc_def",
            &format!("xx_{}_{secret}", id.simple()),
            &format!("fo_{}_", id.simple()),
            &format!("fo_{}", id.simple()),
        ] {
            assert_eq!(parse_token(bad), None, "{bad}");
        }
    }

    #[test]
    fn secrets_differ_and_only_their_digest_is_kept() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert_ne!(a, b);
        assert_eq!(digest(&a).len(), 64);
        assert_ne!(digest(&a), digest(&b));
        assert!(!digest(&a).contains(&a));
    }

    #[test]
    fn expirations_must_be_future_rfc3339_and_within_the_limit() {
        let now = timestamps::parse("2026-01-01T00:00:00Z").unwrap();
        assert!(expiration("2026-01-02T00:00:00Z", now, None).is_ok());
        assert_eq!(
            expiration("tomorrow", now, None).unwrap_err().code,
            ErrorCode::BadJson
        );
        assert_eq!(
            expiration("2025-12-31T00:00:00Z", now, None)
                .unwrap_err()
                .code,
            ErrorCode::BadJson
        );
        let limit = timestamps::parse("2026-01-03T00:00:00Z");
        assert!(expiration("2026-01-02T00:00:00Z", now, limit).is_ok());
        assert_eq!(
            expiration("2026-01-04T00:00:00Z", now, limit)
                .unwrap_err()
                .code,
            ErrorCode::PermissionDenied
        );
    }
}
