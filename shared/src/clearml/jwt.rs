//! The tokens `auth.login` answers: HS256 JWTs, the form the ClearML clients decode
//! (without checking the signature) for `exp`, `api_version`, `server_version` and
//! `feature_set`. Fanout checks the signature with a key kept in the table: made on
//! first use with a conditional put (so concurrent first logins agree on one key),
//! never in the template or the environment.

use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

use crate::Services;
use crate::error::{ApiError, ErrorCode};
use crate::store::dynamo::{from_item, to_item};
use crate::store::keys;

use super::envelope::{API_VERSION, SERVER_VERSION};

type HmacSha256 = hmac::Hmac<Sha256>;

/// How long a token from `auth.login` lasts (the clients log in again before).
pub const TOKEN_SECONDS: i64 = 24 * 3600;

/// Who a token speaks for, as ClearML's own tokens carry it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    /// The account (ClearML's company).
    pub company: String,
    /// The Fanout token the credentials were (ClearML's user).
    pub user: String,
    /// `user` or `admin`.
    pub role: String,
}

/// The claims of a token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issue time.
    pub iat: i64,
    /// The API version the clients speak to.
    pub api_version: String,
    /// The server version.
    pub server_version: String,
    /// `basic`: the clients ask for nothing more.
    pub feature_set: String,
    /// Fanout's account.
    pub account_id: Uuid,
    /// Fanout's token behind it (checked again at every request, so revoking it ends
    /// the JWTs made from it).
    pub token_id: Uuid,
    /// ClearML's view of the same.
    pub identity: Identity,
}

impl Claims {
    /// Claims for a login at `now` (seconds), expiring at the earlier of a day later
    /// and `token_expiry`.
    pub fn new(
        account_id: Uuid,
        token_id: Uuid,
        admin: bool,
        now: i64,
        token_expiry: Option<i64>,
    ) -> Claims {
        let exp = match token_expiry {
            Some(t) => t.min(now + TOKEN_SECONDS),
            None => now + TOKEN_SECONDS,
        };
        Claims {
            exp,
            iat: now,
            api_version: API_VERSION.into(),
            server_version: SERVER_VERSION.into(),
            feature_set: "basic".into(),
            account_id,
            token_id,
            identity: Identity {
                company: account_id.simple().to_string(),
                user: token_id.simple().to_string(),
                role: if admin { "admin" } else { "user" }.into(),
            },
        }
    }
}

/// The item holding the signing key.
#[derive(Debug, Serialize, Deserialize)]
struct KeyRecord {
    pk: String,
    sk: String,
    /// Hex of 32 random bytes.
    key: String,
}

/// The key of this process's table, once read.
static KEY: Mutex<Option<(String, Vec<u8>)>> = Mutex::new(None);

fn cached(table: &str) -> Option<Vec<u8>> {
    let guard = KEY.lock().unwrap_or_else(|p| p.into_inner());
    guard
        .as_ref()
        .filter(|(t, _)| t == table)
        .map(|(_, k)| k.clone())
}

fn remember(table: &str, key: &[u8]) {
    let mut guard = KEY.lock().unwrap_or_else(|p| p.into_inner());
    *guard = Some((table.to_string(), key.to_vec()));
}

async fn read_key(svc: &Services) -> Result<Option<Vec<u8>>, ApiError> {
    if let Some(key) = cached(svc.table.name()) {
        return Ok(Some(key));
    }
    let Some(item) = svc
        .table
        .get(keys::CLEARML_KEY_PK, keys::CLEARML_KEY_SK)
        .await?
    else {
        return Ok(None);
    };
    let record: KeyRecord = from_item(item)?;
    let key = hex::decode(&record.key).map_err(|e| ApiError::internal("clearml key", e))?;
    remember(svc.table.name(), &key);
    Ok(Some(key))
}

/// The signing key, made when there is none yet.
pub async fn signing_key(svc: &Services) -> Result<Vec<u8>, ApiError> {
    if let Some(key) = read_key(svc).await? {
        return Ok(key);
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal("random key", e))?;
    let record = KeyRecord {
        pk: keys::CLEARML_KEY_PK.into(),
        sk: keys::CLEARML_KEY_SK.into(),
        key: hex::encode(bytes),
    };
    if svc.table.put_if_absent(to_item(&record)?).await? {
        tracing::info!("clearml token signing key created");
    }
    // Whoever won the put, the stored key is the one.
    read_key(svc)
        .await?
        .ok_or_else(|| ApiError::internal("clearml key", "the key vanished"))
}

fn mac(key: &[u8]) -> Result<HmacSha256, ApiError> {
    <HmacSha256 as KeyInit>::new_from_slice(key).map_err(|e| ApiError::internal("hmac key", e))
}

/// `header.claims.signature`, HS256.
pub fn encode(key: &[u8], claims: &Claims) -> Result<String, ApiError> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = serde_json::to_vec(claims).map_err(|e| ApiError::internal("claims", e))?;
    let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(body));
    let mut mac = mac(key)?;
    mac.update(signed.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    Ok(format!("{signed}.{signature}"))
}

/// Whether `text` has the shape of a JWT (three base64url parts, a JSON header).
pub fn looks_like_jwt(text: &str) -> bool {
    text.starts_with("eyJ") && text.split('.').count() == 3
}

fn bad(detail: &str) -> ApiError {
    ApiError::new(ErrorCode::BadToken, detail)
}

/// The claims of a token signed with `key`, checked for signature and expiry at `now`.
pub fn decode(key: &[u8], token: &str, now: i64) -> Result<Claims, ApiError> {
    let mut parts = token.split('.');
    let (Some(header), Some(body), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("the bearer token is not a JWT"));
    };
    let header: serde_json::Value = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or_else(|| bad("the JWT's header does not read"))?;
    if header["alg"] != "HS256" {
        return Err(bad("the JWT is not HS256"));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| bad("the JWT's signature does not read"))?;
    let mut mac = mac(key)?;
    let signed = &token[..token.rfind('.').unwrap_or(0)];
    mac.update(signed.as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| bad("the JWT's signature is wrong"))?;
    let claims: Claims = URL_SAFE_NO_PAD
        .decode(body)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("the JWT's claims do not read"))?;
    if claims.exp <= now {
        return Err(ApiError::new(
            ErrorCode::TokenExpired,
            format!("the JWT expired at {}", claims.exp),
        ));
    }
    Ok(claims)
}

/// Checks a JWT against the table's key: its claims, or why not (401).
pub async fn verify(svc: &Services, token: &str, now: i64) -> Result<Claims, ApiError> {
    let Some(key) = read_key(svc).await? else {
        return Err(bad("no JWT was issued by this service"));
    };
    decode(&key, token, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_carry_what_the_clients_read() {
        let key = b"0123456789abcdef0123456789abcdef";
        let claims = Claims::new(Uuid::new_v4(), Uuid::new_v4(), false, 1_000, None);
        let token = encode(key, &claims).unwrap();
        assert!(looks_like_jwt(&token));
        assert_eq!(decode(key, &token, 1_001).unwrap(), claims);
        let body: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(body["api_version"], "2.31");
        assert_eq!(body["server_version"], "2.0.0");
        assert_eq!(body["feature_set"], "basic");
        assert_eq!(body["exp"], 1_000 + TOKEN_SECONDS);
        // Another key, a changed body, expiry.
        assert!(decode(b"another key", &token, 1_001).is_err());
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"exp": 99999999999}"#);
        parts[1] = &forged;
        assert!(decode(key, &parts.join("."), 1_001).is_err());
        let expired = decode(key, &token, 1_000 + TOKEN_SECONDS).unwrap_err();
        assert_eq!(expired.code, ErrorCode::TokenExpired);
        assert!(decode(key, "eyJ.x", 0).is_err());
    }

    #[test]
    fn a_token_never_outlives_its_credentials() {
        let claims = Claims::new(Uuid::new_v4(), Uuid::new_v4(), true, 1_000, Some(1_500));
        assert_eq!(claims.exp, 1_500);
        assert_eq!(claims.identity.role, "admin");
    }
}
