//! ClearML projects: a name (unique in the account), a description, tags.

use serde_json::{Map, Value, json};

use crate::Services;
use crate::store::keys;

use super::args::{self, Args};
use super::docs::{self, Change};
use super::error::{ClearmlError, Result};
use super::{Ctx, tasks};

/// Listing partition kind of projects.
pub const KIND: &str = "CMPROJECT";
/// Name-marker kind of projects.
const NAME_KIND: &str = "PROJECT";

/// Partition key of a project.
pub fn pk(project_id: &str) -> String {
    keys::clearml_project_pk(project_id)
}

/// A project of the caller's account, or 400/201.
pub async fn load(svc: &Services, ctx: &Ctx, project_id: &str) -> Result<Map<String, Value>> {
    if !docs::is_id(project_id) {
        return Err(ClearmlError::invalid_project_id(project_id));
    }
    match docs::get(svc, &pk(project_id), ctx.account()).await? {
        Some(doc) => Ok(doc.body),
        None => Err(ClearmlError::invalid_project_id(project_id)),
    }
}

/// `projects.create`: `{id}`; a taken name is refused.
pub async fn create(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let name = args::required(&args, "name")?;
    let id = docs::new_id();
    if !docs::take_name(svc, ctx.account(), NAME_KIND, &name, &id, pk).await? {
        return Err(ClearmlError::name_taken("Project", &name));
    }
    let now = ctx.now_text();
    let basename = name.rsplit('/').next().unwrap_or(&name).to_string();
    let body = json!({
        "id": id,
        "name": name,
        "basename": basename,
        "description": args::optional(&args, "description").unwrap_or_default(),
        "user": ctx.user(),
        "company": ctx.account().simple().to_string(),
        "created": now,
        "last_update": now,
        "tags": args.get("tags").cloned().unwrap_or_else(|| json!([])),
        "system_tags": args.get("system_tags").cloned().unwrap_or_else(|| json!([])),
        "default_output_destination": args.get("default_output_destination").cloned().unwrap_or(Value::Null),
    });
    let body = body.as_object().expect("an object");
    docs::create(svc, pk(&id), ctx.account(), KIND, &now, &id, body).await?;
    Ok(json!({"id": id}))
}

/// `projects.get_by_id`.
pub async fn get_by_id(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let id = args::required(&args, "project")?;
    Ok(json!({"project": load(svc, ctx, &id).await?}))
}

/// `projects.get_all` (and `get_all_ex`): by `id`, `name` (regex), tags; ordered,
/// paged, projected.
pub async fn get_all(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let by_id = args::strings(&args, "id").is_some_and(|ids| !ids.is_empty());
    let search_hidden = args::flag(&args, "search_hidden", false);
    let found: Vec<Map<String, Value>> = tasks::select_named(svc, ctx, &args, KIND, pk)
        .await?
        .into_iter()
        .filter(|p| {
            by_id || search_hidden || !tasks::tags_match(p, "system_tags", &["hidden".into()])
        })
        .collect();
    Ok(json!({"projects": tasks::order_page_project(found, &args)}))
}

/// `projects.update`: description, tags, default output destination.
pub async fn update(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let id = args::required(&args, "project")?;
    load(svc, ctx, &id).await?;
    let now = ctx.now_text();
    let outcome = docs::update(svc, &pk(&id), ctx.account(), |body, _| {
        let before = body.clone();
        for field in [
            "description",
            "tags",
            "system_tags",
            "default_output_destination",
        ] {
            if let Some(value) = args.get(field) {
                body.insert(field.into(), value.clone());
            }
        }
        if before == *body {
            return Ok(Change::Keep(0));
        }
        body.insert("last_update".into(), now.clone().into());
        Ok(Change::Write(1))
    })
    .await?;
    Ok(json!({"updated": outcome.map(|(u, _)| u).unwrap_or(0), "fields": {}}))
}

/// `projects.delete`: a project without tasks (or with `force`, its tasks stay,
/// without a project).
pub async fn delete(svc: &Services, ctx: &Ctx, args: Args) -> Result<Value> {
    let id = args::required(&args, "project")?;
    let force = args::flag(&args, "force", false);
    let body = load(svc, ctx, &id).await?;
    let mut query = Args::new();
    query.insert("project".into(), json!([id]));
    query.insert("only_fields".into(), json!(["id"]));
    query.insert("search_hidden".into(), true.into());
    let held = tasks::get_all(svc, ctx, query).await?;
    let count = held["tasks"].as_array().map_or(0, Vec::len);
    if count > 0 && !force {
        return Err(ClearmlError::new(
            400,
            202,
            format!("Project has associated tasks: id={id}, tasks={count}"),
        ));
    }
    docs::delete(svc, &pk(&id)).await?;
    if let Some(name) = body.get("name").and_then(Value::as_str) {
        docs::release_name(svc, ctx.account(), NAME_KIND, name).await?;
    }
    Ok(json!({"deleted": 1, "disassociated_tasks": count}))
}
