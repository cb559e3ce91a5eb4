//! Who calls: accounts, their bearer tokens with permissions, and the one authorizer
//! that turns an `Authorization` header into a [`Caller`] (or a refusal).
//!
//! The authorizer runs in two hosts: as API Gateway's Lambda authorizer, whose answer
//! travels to the route function in the request context, and in the local gateway
//! before dispatch. Both hand the route the same context ([`Verdict::to_context`]);
//! the route reads the caller back from it ([`Verdict::from_context`]), never from the
//! request's own parameters.

pub mod accounts;
pub mod permissions;
pub mod rate;
pub mod tokens;

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::Services;
use crate::error::{ApiError, ErrorCode};
use crate::timestamps;

pub use accounts::AccountType;
pub use permissions::{Action, Permissions, Resource};

/// The account and rights behind a request's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's account.
    pub account_id: Uuid,
    /// Its type: an admin may act on any account.
    pub account_type: AccountType,
    /// The token (for its request counter).
    pub token_id: Uuid,
    /// What the token may do.
    pub permissions: Permissions,
    /// When the token stops working (RFC 3339); `None`: never.
    pub expiration_time: Option<String>,
}

impl Caller {
    /// Whether the caller's account is an admin account.
    pub fn is_admin(&self) -> bool {
        self.account_type == AccountType::Admin
    }

    /// Fails with 403 unless the token may take `action` on `resource`.
    pub fn require(&self, resource: Resource, action: Action) -> Result<(), ApiError> {
        if self.permissions.allows(resource, action) {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorCode::PermissionDenied,
            format!("the token lacks permission '{action}' on '{resource}'"),
        ))
    }

    /// Fails with 403 unless the caller's account is an admin account.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorCode::AdminOnly,
            "this route is for admin accounts only",
        ))
    }

    /// The account a request acts on, from the `account_id` it names (if any):
    /// - a user account's token acts on its own account: naming another answers 403;
    /// - an admin's token acts on the account named, or, when none is named, on all
    ///   accounts where the route allows it (`all_allowed`), else on its own.
    ///
    /// `None` means every account (admins only).
    pub fn bind(&self, named: Option<Uuid>, all_allowed: bool) -> Result<Option<Uuid>, ApiError> {
        match named {
            Some(account_id) if account_id == self.account_id || self.is_admin() => {
                Ok(Some(account_id))
            }
            Some(account_id) => Err(ApiError::new(
                ErrorCode::ForeignAccount,
                format!("account '{account_id}' is not the token's account"),
            )),
            None if self.is_admin() && all_allowed => Ok(None),
            None => Ok(Some(self.account_id)),
        }
    }
}

/// What the authorizer decided about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A valid token: who calls.
    Allowed(Caller),
    /// No token, or one refused: the error the route answers (401).
    Denied(ApiError),
}

/// The scheme of the `Authorization` header.
const BEARER: &str = "Bearer ";

impl Verdict {
    /// The authorizer's context: what API Gateway hands the route function (simple
    /// responses, values of one level), and what the local gateway puts in the same place.
    pub fn to_context(&self) -> Map<String, Value> {
        let mut map = Map::new();
        match self {
            Verdict::Allowed(caller) => {
                map.insert("verdict".into(), "allow".into());
                map.insert("account_id".into(), caller.account_id.to_string().into());
                map.insert("account_type".into(), caller.account_type.name().into());
                map.insert("token_id".into(), caller.token_id.to_string().into());
                map.insert("permissions".into(), caller.permissions.to_compact().into());
                map.insert(
                    "expiration_time".into(),
                    caller.expiration_time.clone().unwrap_or_default().into(),
                );
            }
            Verdict::Denied(err) => {
                map.insert("verdict".into(), "deny".into());
                map.insert("error_code".into(), err.code.code().into());
                map.insert("detail".into(), err.detail.clone().into());
            }
        }
        map
    }

    /// Reads [`Verdict::to_context`]'s map back. Anything else — no context at all (a
    /// route reached without the authorizer), or one that does not read — is a denial:
    /// a route never runs for a caller it cannot name.
    pub fn from_context<'a>(context: impl Fn(&str) -> Option<&'a Value>) -> Verdict {
        let text = |key: &str| context(key).and_then(Value::as_str);
        match text("verdict") {
            Some("allow") => {
                let caller = (|| {
                    Some(Caller {
                        account_id: Uuid::try_parse(text("account_id")?).ok()?,
                        account_type: AccountType::from_name(text("account_type")?)?,
                        token_id: Uuid::try_parse(text("token_id")?).ok()?,
                        permissions: Permissions::from_compact(text("permissions")?)?,
                        expiration_time: text("expiration_time")
                            .filter(|t| !t.is_empty())
                            .map(str::to_string),
                    })
                })();
                match caller {
                    Some(caller) => Verdict::Allowed(caller),
                    None => Verdict::Denied(ApiError::new(
                        ErrorCode::BadToken,
                        "the authorizer's context does not read",
                    )),
                }
            }
            Some("deny") => {
                let code = context("error_code")
                    .and_then(Value::as_u64)
                    .and_then(|c| ErrorCode::from_code(c as u32))
                    .filter(|c| c.status() == 401)
                    .unwrap_or(ErrorCode::BadToken);
                Verdict::Denied(ApiError::new(code, text("detail").unwrap_or_default()))
            }
            _ => Verdict::Denied(unauthenticated()),
        }
    }
}

fn unauthenticated() -> ApiError {
    ApiError::new(
        ErrorCode::Unauthenticated,
        "send 'Authorization: Bearer <token>' (create tokens with POST /1/tokens)",
    )
}

/// The scheme of ClearML's `auth.login` credentials.
const BASIC: &str = "Basic ";

/// The one authorizer: reads the `Authorization` header and checks what it carries.
/// Only a store failure is an `Err`; every refusal is a [`Verdict::Denied`].
///
/// - `Bearer fo_<id>_<secret>`: a Fanout token;
/// - `Bearer <JWT>`: a token `auth.login` of the ClearML surface issued, signed with the
///   table's key; its Fanout token is checked again (revoked, expired, account gone);
/// - `Basic base64(<access_key>:<secret_key>)`: ClearML credentials, a Fanout token in
///   two (its id in 32 hex characters, its secret), as the ClearML clients log in.
pub async fn authorize(svc: &Services, authorization: Option<&str>) -> Result<Verdict, ApiError> {
    let Some(header) = authorization.map(str::trim).filter(|h| !h.is_empty()) else {
        return Ok(Verdict::Denied(unauthenticated()));
    };
    let scheme = |name: &str| {
        header
            .get(..name.len())
            .filter(|s| s.eq_ignore_ascii_case(name))
            .map(|_| header[name.len()..].trim())
    };
    let now = timestamps::now();
    let checked = if let Some(presented) = scheme(BEARER) {
        if crate::clearml::jwt::looks_like_jwt(presented) {
            match crate::clearml::jwt::verify(svc, presented, now.timestamp()).await {
                Ok(claims) => tokens::verify_id(svc, claims.token_id, now)
                    .await
                    .map(|caller| with_expiry(caller, claims.exp)),
                Err(err) => Err(err),
            }
        } else {
            tokens::verify(svc, presented, now).await
        }
    } else if let Some(encoded) = scheme(BASIC) {
        match basic_token(encoded) {
            Some(token) => tokens::verify(svc, &token, now).await,
            None => Err(ApiError::new(
                ErrorCode::BadToken,
                "Basic credentials must be base64(<access_key>:<secret_key>) of a Fanout token",
            )),
        }
    } else {
        return Ok(Verdict::Denied(ApiError::new(
            ErrorCode::BadToken,
            "the Authorization header must read 'Bearer <token>'",
        )));
    };
    match checked {
        Ok(caller) => Ok(Verdict::Allowed(caller)),
        Err(err) if err.status() == 401 => Ok(Verdict::Denied(err)),
        Err(err) => Err(err),
    }
}

/// The Fanout token that Basic credentials `base64(<token id hex>:<secret>)` spell.
fn basic_token(encoded: &str) -> Option<String> {
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (access_key, secret_key) = text.split_once(':')?;
    let id = Uuid::try_parse(access_key).ok()?;
    Some(format!(
        "{}{}_{secret_key}",
        tokens::TOKEN_PREFIX,
        id.simple()
    ))
}

/// The caller of a JWT: it stops at the JWT's expiry if that comes before its token's.
fn with_expiry(mut caller: Caller, exp: i64) -> Caller {
    let jwt_expiry = chrono::DateTime::from_timestamp(exp, 0);
    let token_expiry = caller
        .expiration_time
        .as_deref()
        .and_then(timestamps::parse);
    if let Some(jwt_expiry) = jwt_expiry
        && token_expiry.is_none_or(|t| jwt_expiry < t)
    {
        caller.expiration_time = Some(timestamps::format(jwt_expiry));
    }
    caller
}

/// What [`bootstrap`] made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Bootstrapped {
    /// The admin account.
    pub account_id: Uuid,
    /// Its token's id.
    pub token_id: Uuid,
    /// The token itself (shown once).
    pub token: String,
}

/// Creates an account of `account_type` (with `account_id` when given) and a token with
/// every permission for it, straight through the store: how the first admin token of a
/// deployment is made (`fanout-admin bootstrap`), since no route answers without one.
pub async fn bootstrap(
    svc: &Services,
    account_type: AccountType,
    account_id: Option<Uuid>,
    description: &str,
) -> Result<Bootstrapped, ApiError> {
    let created = match accounts::create(
        svc,
        accounts::NewAccount {
            account_id,
            description: Some(description.to_string()),
            account_type: Some(account_type),
        },
    )
    .await
    {
        Ok(created) => created.account_id,
        // An existing account (of the asked type) gets another token.
        Err(err) if err.code == ErrorCode::AccountExists => {
            let id = account_id.expect("only a named account can exist already");
            let account = accounts::get(svc, id).await?;
            if account.account_type != account_type {
                return Err(ApiError::new(
                    ErrorCode::AccountExists,
                    format!(
                        "account '{id}' exists as a {} account",
                        account.account_type.name()
                    ),
                ));
            }
            id
        }
        Err(err) => return Err(err),
    };
    // The token is made as the account's own admin would make it.
    let maker = Caller {
        account_id: created,
        account_type: AccountType::Admin,
        token_id: Uuid::nil(),
        permissions: Permissions::all(),
        expiration_time: None,
    };
    let token = tokens::create(
        svc,
        &maker,
        created,
        tokens::NewToken {
            description: Some(description.to_string()),
            ..tokens::NewToken::default()
        },
    )
    .await?;
    Ok(Bootstrapped {
        account_id: created,
        token_id: token.token_id,
        token: token.token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(account_type: AccountType) -> Caller {
        Caller {
            account_id: Uuid::new_v4(),
            account_type,
            token_id: Uuid::new_v4(),
            permissions: serde_json::from_str(
                r#"{"faces": ["view"], "tasks": ["view", "creation"]}"#,
            )
            .unwrap(),
            expiration_time: Some("2030-01-01T00:00:00Z".into()),
        }
    }

    #[test]
    fn the_context_carries_the_caller_and_reads_back() {
        for account_type in [AccountType::User, AccountType::Admin] {
            let verdict = Verdict::Allowed(caller(account_type));
            let context = verdict.to_context();
            assert!(context.values().all(|v| v.is_string()), "{context:?}");
            assert_eq!(Verdict::from_context(|k| context.get(k)), verdict);
        }
        let denied = Verdict::Denied(ApiError::new(ErrorCode::TokenExpired, "expired at x"));
        let context = denied.to_context();
        assert_eq!(Verdict::from_context(|k| context.get(k)), denied);
    }

    #[test]
    fn a_missing_or_unreadable_context_is_a_denial() {
        let empty = Map::new();
        let Verdict::Denied(err) = Verdict::from_context(|k| empty.get(k)) else {
            panic!("allowed without a context");
        };
        assert_eq!(err.code, ErrorCode::Unauthenticated);
        let mut forged = Verdict::Allowed(caller(AccountType::User)).to_context();
        forged.insert("account_type".into(), "root".into());
        assert!(matches!(
            Verdict::from_context(|k| forged.get(k)),
            Verdict::Denied(_)
        ));
        // A denial can only carry an authentication code.
        let mut odd = Verdict::Denied(ApiError::new(ErrorCode::BadToken, "x")).to_context();
        odd.insert("error_code".into(), 1.into());
        let Verdict::Denied(err) = Verdict::from_context(|k| odd.get(k)) else {
            panic!("allowed");
        };
        assert_eq!(err.code, ErrorCode::BadToken);
    }

    #[test]
    fn users_act_on_their_own_account_and_admins_on_any() {
        let user = caller(AccountType::User);
        let other = Uuid::new_v4();
        assert_eq!(user.bind(None, true).unwrap(), Some(user.account_id));
        assert_eq!(
            user.bind(Some(user.account_id), false).unwrap(),
            Some(user.account_id)
        );
        assert_eq!(
            user.bind(Some(other), true).unwrap_err().code,
            ErrorCode::ForeignAccount
        );
        let admin = caller(AccountType::Admin);
        assert_eq!(admin.bind(Some(other), false).unwrap(), Some(other));
        assert_eq!(admin.bind(None, true).unwrap(), None);
        assert_eq!(admin.bind(None, false).unwrap(), Some(admin.account_id));
    }

    #[test]
    fn basic_credentials_are_a_token_in_two() {
        use base64::Engine;
        let id = Uuid::new_v4();
        let encode = |text: String| base64::engine::general_purpose::STANDARD.encode(text);
        assert_eq!(
            basic_token(&encode(format!("{}:s3cr-et_", id.simple()))),
            Some(format!("fo_{}_s3cr-et_", id.simple()))
        );
        assert_eq!(basic_token(&encode("nope:x".into())), None);
        assert_eq!(basic_token(&encode(id.simple().to_string())), None);
        assert_eq!(basic_token("%%%"), None);
        // A JWT's caller ends with the JWT.
        let caller = with_expiry(caller(AccountType::User), 1_000);
        assert_eq!(
            caller.expiration_time.as_deref(),
            Some("1970-01-01T00:16:40.000000+00:00")
        );
    }

    #[test]
    fn permissions_and_admin_routes_are_checked() {
        let user = caller(AccountType::User);
        assert!(user.require(Resource::Faces, Action::View).is_ok());
        assert_eq!(
            user.require(Resource::Faces, Action::Deletion)
                .unwrap_err()
                .code,
            ErrorCode::PermissionDenied
        );
        assert_eq!(user.require_admin().unwrap_err().code, ErrorCode::AdminOnly);
        assert!(caller(AccountType::Admin).require_admin().is_ok());
    }
}
