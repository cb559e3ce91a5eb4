//! `/orchestrator/` routes: the ML orchestrator of seed 003 and its storage. The account
//! is the caller's (the `account_id` query parameter, bound to the token, filled in when
//! left out).

use lambda_http::{Body, Request, Response};
use serde_json::Value;
use uuid::Uuid;

use fanout::Services;
use fanout::error::{ApiError, ErrorCode};
use fanout::orchestrator::Collection;
use fanout::orchestrator::api::{
    self, Claim, LIST_PARAMS, LearnDone, NewAlgo, NewData, NewPrediction, NewProblem, PredDone,
};
use fanout::orchestrator::storage::{self, NewBlob};

use crate::request::{json, json_body, path_param, path_uuid, query_of};

const ACCOUNT: &[&str] = &["account_id"];

fn account(req: &Request) -> Result<Uuid, ApiError> {
    query_of(req, ACCOUNT)?.account_id()
}

/// The JSON body, or `T`'s default when the request has none.
fn optional_body<T: serde::de::DeserializeOwned + Default>(req: &Request) -> Result<T, ApiError> {
    match json_body(req) {
        Err(err) if err.code == ErrorCode::NoData => Ok(T::default()),
        other => other,
    }
}

/// `POST /orchestrator/storage`: a presigned upload.
pub async fn create_storage(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = account(&req)?;
    let new: NewBlob = optional_body(&req)?;
    Ok(json(201, &storage::upload(svc, account_id, new).await?))
}

/// `GET /orchestrator/storage/{uuid}`: a presigned download.
pub async fn get_storage(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = account(&req)?;
    let uuid = path_uuid(&req, "uuid")?;
    Ok(json(200, &storage::download(svc, account_id, uuid).await?))
}

/// `POST /orchestrator/problem`.
pub async fn create_problem(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = account(&req)?;
    let new: NewProblem = json_body(&req)?;
    Ok(json(201, &api::post_problem(svc, account_id, new).await?))
}

/// `POST /orchestrator/algo`.
pub async fn create_algo(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = account(&req)?;
    let new: NewAlgo = json_body(&req)?;
    Ok(json(201, &api::post_algo(svc, account_id, new).await?))
}

/// `POST /orchestrator/data`.
pub async fn create_data(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = account(&req)?;
    let new: NewData = json_body(&req)?;
    Ok(json(201, &api::post_data(svc, account_id, new).await?))
}

/// `POST /orchestrator/prediction`.
pub async fn create_prediction(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = account(&req)?;
    let new: NewPrediction = json_body(&req)?;
    Ok(json(
        201,
        &api::post_prediction(svc, account_id, new).await?,
    ))
}

/// `POST /orchestrator/worker/{uplet_type}/{uuid}`.
pub async fn claim(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = account(&req)?;
    let uuid = path_uuid(&req, "uuid")?;
    let kind = path_param(&req, "uplet_type")?;
    let request: Claim = json_body(&req)?;
    let answer: Value = match kind {
        "learnuplet" => api::claim_learnuplet(svc, account_id, uuid, request).await?,
        "preduplet" => api::claim_preduplet(svc, account_id, uuid, request).await?,
        other => {
            return Err(ApiError::new(
                ErrorCode::BadRoute,
                format!("Unknown uplet type '{other}': learnuplet or preduplet"),
            ));
        }
    };
    Ok(json(200, &answer))
}

/// `POST /orchestrator/learndone/{uuid}`.
pub async fn learndone(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = account(&req)?;
    let uuid = path_uuid(&req, "uuid")?;
    let report: LearnDone = json_body(&req)?;
    Ok(json(
        200,
        &api::learndone(svc, account_id, uuid, report).await?,
    ))
}

/// `POST /orchestrator/preddone/{uuid}`.
pub async fn preddone(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = account(&req)?;
    let uuid = path_uuid(&req, "uuid")?;
    let report: PredDone = json_body(&req)?;
    Ok(json(
        200,
        &api::preddone(svc, account_id, uuid, report).await?,
    ))
}

fn collection(req: &Request) -> Result<Collection, ApiError> {
    let name = path_param(req, "collection")?;
    Collection::from_name(name).ok_or_else(|| {
        let known: Vec<&str> = Collection::ALL.iter().map(|c| c.name()).collect();
        ApiError::new(
            ErrorCode::BadRoute,
            format!("Unknown collection '{name}': one of {}", known.join(", ")),
        )
    })
}

/// `GET /orchestrator/{collection}`: the documents whose fields equal the filters.
pub async fn list(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let query = query_of(&req, LIST_PARAMS)?;
    let account_id = query.account_id()?;
    let collection = collection(&req)?;
    let mut filters = Vec::new();
    for name in LIST_PARAMS.iter().filter(|n| **n != "account_id") {
        if let Some(value) = query.single(name)? {
            filters.push((name.to_string(), value.to_string()));
        }
    }
    Ok(json(
        200,
        &api::list(svc, account_id, collection, &filters).await?,
    ))
}

/// `GET /orchestrator/{collection}/{uuid}`.
pub async fn get(svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let account_id = account(&req)?;
    let collection = collection(&req)?;
    let uuid = path_uuid(&req, "uuid")?;
    Ok(json(
        200,
        &api::get(svc, account_id, collection, uuid).await?,
    ))
}
