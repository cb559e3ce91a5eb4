//! Who may call a route, checked before its handler runs, under Lambda and the local
//! gateway alike: the caller from the authorizer's context, the route's permission, the
//! token's request rate, the body size, and the account the request acts on.

use std::collections::HashMap;

use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};
use serde_json::{Map, Value};
use uuid::Uuid;

use fanout::Services;
use fanout::auth::{self, Caller, Verdict, rate};
use fanout::error::{ApiError, ErrorCode};
use fanout::timestamps;

use crate::routes::{Access, AccountIn, Route};

/// The authorizer's context carried by the request (API Gateway puts it at
/// `requestContext.authorizer.lambda`; the local gateway puts it in the same place).
pub fn verdict(req: &Request) -> Verdict {
    let fields = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => {
            context.authorizer.as_ref().map(|a| &a.fields)
        }
        _ => None,
    };
    Verdict::from_context(|key| fields.and_then(|f| f.get(key)))
}

/// `req` with the authorizer's `context` in its request context, as API Gateway hands
/// it to a route function.
pub fn with_context(req: Request, context: Map<String, Value>) -> Request {
    let mut request_context = match req.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context.clone(),
        _ => Default::default(),
    };
    let mut authorizer = request_context.authorizer.take().unwrap_or_default();
    authorizer.fields = context.into_iter().collect();
    request_context.authorizer = Some(authorizer);
    req.with_request_context(RequestContext::ApiGatewayV2(request_context))
}

/// The caller of a checked request (the handlers of non-public routes only run after
/// [`admit`] put it there).
pub fn caller(req: &Request) -> Result<&Caller, ApiError> {
    req.extensions()
        .get::<Caller>()
        .ok_or_else(|| ApiError::new(ErrorCode::Unauthenticated, "no caller on this route"))
}

/// Bytes of the request body.
fn body_len(req: &Request) -> usize {
    match req.body() {
        Body::Text(text) => text.len(),
        Body::Binary(bytes) => bytes.len(),
        _ => 0,
    }
}

/// Admits `req` to `route`, or answers why not: 401 without a valid token, 403 without
/// the permission (or for another account's records), 429 past the token's rate, 413
/// past the route's body limit. On success the caller is in the request's extensions
/// and the `account_id` the handler reads is the one the caller may act on.
pub async fn admit(svc: &Services, route: &Route, req: &mut Request) -> Result<(), ApiError> {
    let (resource_action, account_in) = match route.access {
        Access::Public => return check_body(route, req),
        Access::Admin => (None, AccountIn::Nowhere),
        Access::Token {
            resource,
            action,
            account,
        } => (Some((resource, action)), account),
    };
    let caller = match verdict(req) {
        Verdict::Allowed(caller) => caller,
        Verdict::Denied(err) => return Err(err),
    };
    // API Gateway may serve a cached verdict for a token that has expired since: the
    // expiration travels in the context, so it holds to the second whatever the cache.
    if let Some(expiration) = caller
        .expiration_time
        .as_deref()
        .and_then(timestamps::parse)
        && expiration <= timestamps::now()
    {
        return Err(ApiError::new(
            ErrorCode::TokenExpired,
            format!("the token expired at {}", timestamps::format(expiration)),
        ));
    }
    match resource_action {
        None => caller.require_admin()?,
        Some((resource, action)) => caller.require(resource, action)?,
    }
    rate::count_request(
        svc,
        caller.token_id,
        svc.config.token_requests_per_minute,
        timestamps::now(),
    )
    .await?;
    check_body(route, req)?;
    match account_in {
        AccountIn::Nowhere => {}
        AccountIn::Query { all_allowed } => bind_query(&caller, req, all_allowed)?,
        AccountIn::Body => bind_body(&caller, req)?,
    }
    req.extensions_mut().insert(caller);
    Ok(())
}

fn check_body(route: &Route, req: &Request) -> Result<(), ApiError> {
    let limit = route.body_limit();
    let len = body_len(req);
    if len > limit {
        return Err(ApiError::new(
            ErrorCode::BodyTooLarge,
            format!(
                "the body has {len} bytes; {} takes at most {limit}",
                route.name
            ),
        ));
    }
    Ok(())
}

/// The query's `account_id` becomes the one the caller may act on (absent: every
/// account, for an admin where the route allows it).
fn bind_query(caller: &Caller, req: &mut Request, all_allowed: bool) -> Result<(), ApiError> {
    let params = req.query_string_parameters();
    let named = match params.all("account_id") {
        None => None,
        Some(values) => match values.as_slice() {
            [one] => match fanout::query::parse_uuid(one) {
                Some(id) => Some(id),
                // Not a UUID: the handler's parser answers that (400), and no account is
                // reached with it.
                None => return Ok(()),
            },
            // Repeated: the handler refuses it.
            _ => return Ok(()),
        },
    };
    let bound = caller.bind(named, all_allowed)?;
    if bound == named {
        return Ok(());
    }
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for (key, value) in params.iter() {
        map.entry(key.to_string())
            .or_default()
            .push(value.to_string());
    }
    match bound {
        Some(account_id) => map.insert("account_id".into(), vec![account_id.to_string()]),
        None => map.remove("account_id"),
    };
    let taken = std::mem::take(req);
    *req = taken.with_query_string_parameters(map);
    Ok(())
}

/// The body's top-level `account_id` becomes the one the caller may act on. A body that
/// is not a JSON object is left for the handler to refuse.
fn bind_body(caller: &Caller, req: &mut Request) -> Result<(), ApiError> {
    let bytes: &[u8] = match req.body() {
        Body::Text(text) => text.as_bytes(),
        Body::Binary(bytes) => bytes,
        _ => return Ok(()),
    };
    let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(bytes) else {
        return Ok(());
    };
    let named = match object.get("account_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(raw)) => match fanout::query::parse_uuid(raw) {
            Some(id) => Some(id),
            None => return Ok(()),
        },
        Some(_) => return Ok(()),
    };
    let bound: Option<Uuid> = caller.bind(named, false)?;
    if bound == named {
        return Ok(());
    }
    if let Some(account_id) = bound {
        object.insert("account_id".into(), account_id.to_string().into());
    }
    let text =
        serde_json::to_string(&object).map_err(|e| ApiError::internal("body with account", e))?;
    *req.body_mut() = Body::Text(text);
    Ok(())
}

/// The local gateway's half of the authorizer: checks the `Authorization` header the
/// way API Gateway's Lambda authorizer does. `None` for public routes (API Gateway calls
/// no authorizer for them); an `Err` only when the store fails (API Gateway answers 500
/// when its authorizer fails).
pub async fn authorize_locally(
    svc: &Services,
    route: &Route,
    req: &Request,
) -> Result<Option<Verdict>, ApiError> {
    if route.is_public() {
        return Ok(None);
    }
    let header = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    auth::authorize(svc, header).await.map(Some)
}
