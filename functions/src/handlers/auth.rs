//! `/1/accounts` and `/1/tokens` routes.

use lambda_http::{Body, Request, Response};

use fanout::Services;
use fanout::auth::accounts::{self, AccountPatch, NewAccount};
use fanout::auth::tokens::{self, NewToken, TokenPatch};
use fanout::error::ApiError;

use crate::access::caller;
use crate::request::{json, json_body, no_content, path_uuid, query_of};

const PAGE: &[&str] = &["page", "page_size"];

/// `POST /1/accounts`.
pub async fn create_account(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    query_of(&req, &[])?;
    let new: NewAccount = json_body(&req)?;
    Ok(json(201, &accounts::create(svc, new).await?))
}

/// `GET /1/accounts`.
pub async fn list_accounts(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let page = query_of(&req, PAGE)?.page()?;
    Ok(json(200, &accounts::list(svc, page).await?))
}

/// `GET /1/accounts/{account_id}`.
pub async fn get_account(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    query_of(&req, &[])?;
    let account_id = path_uuid(&req, "account_id")?;
    Ok(json(200, &accounts::get(svc, account_id).await?))
}

/// `PATCH /1/accounts/{account_id}`.
pub async fn patch_account(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    query_of(&req, &[])?;
    let account_id = path_uuid(&req, "account_id")?;
    let patch: AccountPatch = json_body(&req)?;
    accounts::patch(svc, account_id, patch).await?;
    Ok(no_content())
}

/// `DELETE /1/accounts/{account_id}`.
pub async fn delete_account(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    query_of(&req, &[])?;
    let account_id = path_uuid(&req, "account_id")?;
    accounts::delete(svc, account_id).await?;
    Ok(no_content())
}

/// `POST /1/tokens`: the body's `account_id` is the caller's (or, for an admin, the one
/// it names), checked before the handler runs.
pub async fn create_token(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    query_of(&req, &[])?;
    let caller = caller(&req)?;
    let new: NewToken = json_body(&req)?;
    let account_id = new.account_id.unwrap_or(caller.account_id);
    Ok(json(
        201,
        &tokens::create(svc, caller, account_id, new).await?,
    ))
}

/// `GET /1/tokens`.
pub async fn list_tokens(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let query = query_of(&req, &["account_id", "page", "page_size"])?;
    let account_id = query.account_id()?;
    Ok(json(
        200,
        &tokens::list(svc, account_id, query.page()?).await?,
    ))
}

/// `GET /1/tokens/{token_id}`.
pub async fn get_token(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    query_of(&req, &[])?;
    let token_id = path_uuid(&req, "token_id")?;
    Ok(json(200, &tokens::get(svc, caller(&req)?, token_id).await?))
}

/// `PATCH /1/tokens/{token_id}`.
pub async fn patch_token(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    query_of(&req, &[])?;
    let token_id = path_uuid(&req, "token_id")?;
    let patch: TokenPatch = json_body(&req)?;
    tokens::patch(svc, caller(&req)?, token_id, patch).await?;
    Ok(no_content())
}

/// `DELETE /1/tokens/{token_id}`.
pub async fn delete_token(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    query_of(&req, &[])?;
    let token_id = path_uuid(&req, "token_id")?;
    tokens::delete(svc, caller(&req)?, token_id).await?;
    Ok(no_content())
}
