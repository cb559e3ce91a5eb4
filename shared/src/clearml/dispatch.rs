//! The ClearML endpoints, `service.action`, each with the permission on the `clearml`
//! resource it needs, and the call that runs one.

use serde_json::{Value, json};

use crate::Services;
use crate::auth::tokens::{self, NewToken};
use crate::auth::{Action, Resource};

use super::args::Args;
use super::envelope::{API_VERSION, SERVER_VERSION};
use super::error::{ClearmlError, Result};
use super::queues::Move;
use super::{Ctx, events, jwt, projects, queues, tasks, workers};

use Action::{Creation as C, Deletion as D, Modification as M, View as V};

/// Every endpoint and the permission it needs.
pub const ENDPOINTS: &[(&str, Action)] = &[
    ("auth.login", V),
    ("auth.create_credentials", C),
    ("server.info", V),
    ("users.get_current_user", V),
    ("projects.create", C),
    ("projects.get_by_id", V),
    ("projects.get_all", V),
    ("projects.get_all_ex", V),
    ("projects.update", M),
    ("projects.delete", D),
    ("tasks.create", C),
    ("tasks.clone", C),
    ("tasks.get_by_id", V),
    ("tasks.get_all", V),
    ("tasks.get_all_ex", V),
    ("tasks.edit", M),
    ("tasks.update", M),
    ("tasks.enqueue", M),
    ("tasks.dequeue", M),
    ("tasks.started", M),
    ("tasks.stop", M),
    ("tasks.stopped", M),
    ("tasks.completed", M),
    ("tasks.failed", M),
    ("tasks.reset", M),
    ("tasks.ping", M),
    ("tasks.close", M),
    ("tasks.publish", M),
    ("tasks.archive", M),
    ("tasks.unarchive", M),
    ("tasks.delete", D),
    ("tasks.get_hyper_params", V),
    ("tasks.edit_hyper_params", M),
    ("tasks.enqueue_many", M),
    ("tasks.dequeue_many", M),
    ("tasks.stop_many", M),
    ("tasks.publish_many", M),
    ("tasks.reset_many", M),
    ("tasks.archive_many", M),
    ("tasks.unarchive_many", M),
    ("tasks.delete_many", D),
    ("queues.create", C),
    ("queues.get_by_id", V),
    ("queues.get_all", V),
    ("queues.get_all_ex", V),
    ("queues.get_default", V),
    ("queues.update", M),
    ("queues.delete", D),
    ("queues.add_task", M),
    ("queues.remove_task", M),
    ("queues.get_next_task", M),
    ("queues.peek_task", V),
    ("queues.get_num_entries", V),
    ("queues.move_task_forward", M),
    ("queues.move_task_backward", M),
    ("queues.move_task_to_front", M),
    ("queues.move_task_to_back", M),
    ("queues.clear_queue", M),
    ("queues.get_queue_metrics", V),
    ("workers.register", M),
    ("workers.unregister", M),
    ("workers.status_report", M),
    ("workers.get_all", V),
    ("workers.get_count", V),
    ("workers.get_runtime_properties", V),
    ("workers.get_stats", V),
    ("workers.get_activity_report", V),
    ("workers.get_metric_keys", V),
    ("events.add_batch", C),
    ("events.get_task_log", V),
    ("events.get_task_events", V),
    ("events.delete_for_task", D),
];

/// The permission `endpoint` needs; `None` for an endpoint there is not.
pub fn permission(endpoint: &str) -> Option<Action> {
    ENDPOINTS
        .iter()
        .find(|(name, _)| *name == endpoint)
        .map(|(_, action)| *action)
}

/// Runs `endpoint` with `args` for `ctx`'s caller: 404 for an unknown endpoint, 403
/// when the token lacks the endpoint's permission on `clearml`.
pub async fn call(svc: &Services, ctx: &Ctx, endpoint: &str, args: Args) -> Result<Value> {
    let action = permission(endpoint).ok_or_else(|| ClearmlError::unknown_endpoint(endpoint))?;
    ctx.caller.require(Resource::Clearml, action)?;
    match endpoint {
        "auth.login" => login(svc, ctx).await,
        "auth.create_credentials" => create_credentials(svc, ctx).await,
        "server.info" => Ok(server_info()),
        "users.get_current_user" => Ok(current_user(ctx)),
        "projects.create" => projects::create(svc, ctx, args).await,
        "projects.get_by_id" => projects::get_by_id(svc, ctx, args).await,
        "projects.get_all" | "projects.get_all_ex" => projects::get_all(svc, ctx, args).await,
        "projects.update" => projects::update(svc, ctx, args).await,
        "projects.delete" => projects::delete(svc, ctx, args).await,
        "tasks.create" => tasks::create(svc, ctx, args).await,
        "tasks.clone" => tasks::clone(svc, ctx, args).await,
        "tasks.get_by_id" => tasks::get_by_id(svc, ctx, args).await,
        "tasks.get_all" | "tasks.get_all_ex" => tasks::get_all(svc, ctx, args).await,
        "tasks.edit" => tasks::edit(svc, ctx, args).await,
        "tasks.update" => tasks::update(svc, ctx, args).await,
        "tasks.enqueue" => tasks::enqueue(svc, ctx, args).await,
        "tasks.dequeue" => tasks::dequeue(svc, ctx, args).await,
        "tasks.started" => tasks::started(svc, ctx, args).await,
        "tasks.stop" => tasks::stop(svc, ctx, args).await,
        "tasks.stopped" => tasks::stopped(svc, ctx, args).await,
        "tasks.completed" => tasks::completed(svc, ctx, args).await,
        "tasks.failed" => tasks::failed(svc, ctx, args).await,
        "tasks.reset" => tasks::reset(svc, ctx, args).await,
        "tasks.ping" => tasks::ping(svc, ctx, args).await,
        "tasks.close" => tasks::close(svc, ctx, args).await,
        "tasks.publish" => tasks::publish(svc, ctx, args).await,
        "tasks.archive" => tasks::archive(svc, ctx, args).await,
        "tasks.unarchive" => tasks::unarchive(svc, ctx, args).await,
        "tasks.delete" => tasks::delete(svc, ctx, args).await,
        "tasks.get_hyper_params" => tasks::get_hyper_params(svc, ctx, args).await,
        "tasks.edit_hyper_params" => tasks::edit_hyper_params(svc, ctx, args).await,
        "tasks.enqueue_many" => tasks::many(args, |a| tasks::enqueue(svc, ctx, a)).await,
        "tasks.dequeue_many" => tasks::many(args, |a| tasks::dequeue(svc, ctx, a)).await,
        "tasks.stop_many" => tasks::many(args, |a| tasks::stop(svc, ctx, a)).await,
        "tasks.publish_many" => tasks::many(args, |a| tasks::publish(svc, ctx, a)).await,
        "tasks.reset_many" => tasks::many(args, |a| tasks::reset(svc, ctx, a)).await,
        "tasks.archive_many" => tasks::many(args, |a| tasks::archive(svc, ctx, a)).await,
        "tasks.unarchive_many" => tasks::many(args, |a| tasks::unarchive(svc, ctx, a)).await,
        "tasks.delete_many" => tasks::many(args, |a| tasks::delete(svc, ctx, a)).await,
        "queues.create" => queues::create(svc, ctx, args).await,
        "queues.get_by_id" => queues::get_by_id(svc, ctx, args).await,
        "queues.get_all" | "queues.get_all_ex" => queues::get_all(svc, ctx, args).await,
        "queues.get_default" => queues::get_default(svc, ctx, args).await,
        "queues.update" => queues::update(svc, ctx, args).await,
        "queues.delete" => queues::delete(svc, ctx, args).await,
        "queues.add_task" => queues::add_task(svc, ctx, args).await,
        "queues.remove_task" => queues::remove_task(svc, ctx, args).await,
        "queues.get_next_task" => queues::get_next_task(svc, ctx, args).await,
        "queues.peek_task" => queues::peek_task(svc, ctx, args).await,
        "queues.get_num_entries" => queues::get_num_entries(svc, ctx, args).await,
        "queues.move_task_forward" => queues::move_task(svc, ctx, args, Move::Forward).await,
        "queues.move_task_backward" => queues::move_task(svc, ctx, args, Move::Backward).await,
        "queues.move_task_to_front" => queues::move_task(svc, ctx, args, |_| Move::Front).await,
        "queues.move_task_to_back" => queues::move_task(svc, ctx, args, |_| Move::Back).await,
        "queues.clear_queue" => queues::clear_queue(svc, ctx, args).await,
        "queues.get_queue_metrics" => queues::get_queue_metrics(svc, ctx, args).await,
        "workers.register" => workers::register(svc, ctx, args).await,
        "workers.unregister" => workers::unregister(svc, ctx, args).await,
        "workers.status_report" => workers::status_report(svc, ctx, args).await,
        "workers.get_all" => workers::get_all(svc, ctx, args).await,
        "workers.get_count" => workers::get_count(svc, ctx, args).await,
        "workers.get_runtime_properties" => workers::get_runtime_properties(svc, ctx, args).await,
        "workers.get_stats" => workers::get_stats(svc, ctx, args).await,
        "workers.get_activity_report" => workers::get_activity_report(svc, ctx, args).await,
        "workers.get_metric_keys" => Ok(super::metrics::get_metric_keys()),
        "events.add_batch" => events::add_batch(svc, ctx, args).await,
        "events.get_task_log" => events::get_task_log(svc, ctx, args).await,
        "events.get_task_events" => events::get_task_events(svc, ctx, args).await,
        "events.delete_for_task" => events::delete_for_task(svc, ctx, args).await,
        other => Err(ClearmlError::unknown_endpoint(other)),
    }
}

/// `auth.login`: a JWT for the caller's credentials.
async fn login(svc: &Services, ctx: &Ctx) -> Result<Value> {
    let key = jwt::signing_key(svc).await?;
    let token_expiry = ctx
        .caller
        .expiration_time
        .as_deref()
        .and_then(crate::timestamps::parse)
        .map(|t| t.timestamp());
    let claims = jwt::Claims::new(
        ctx.caller.account_id,
        ctx.caller.token_id,
        ctx.caller.is_admin(),
        ctx.now.timestamp(),
        token_expiry,
    );
    Ok(json!({"token": jwt::encode(&key, &claims)?}))
}

/// `auth.create_credentials`: a new Fanout token of the caller's account (with the
/// caller's permissions and expiration), as ClearML credentials.
async fn create_credentials(svc: &Services, ctx: &Ctx) -> Result<Value> {
    let made = tokens::create(
        svc,
        &ctx.caller,
        ctx.caller.account_id,
        NewToken {
            description: Some("clearml credentials".into()),
            ..NewToken::default()
        },
    )
    .await?;
    let (access_key, secret_key) = split_token(&made.token)
        .ok_or_else(|| ClearmlError::internal("a new token does not split"))?;
    Ok(json!({"credentials": {
        "access_key": access_key,
        "secret_key": secret_key,
        "label": "clearml credentials",
        "last_used": null,
        "last_used_from": null,
    }}))
}

/// A Fanout token `fo_<id>_<secret>` as ClearML credentials: the id (32 hex characters)
/// is the access key, the secret the secret key.
pub fn split_token(token: &str) -> Option<(String, String)> {
    let (id, secret) = tokens::parse_token(token)?;
    Some((id.simple().to_string(), secret.to_string()))
}

fn server_info() -> Value {
    json!({
        "version": SERVER_VERSION,
        "build": "fanout",
        "commit": "",
        "api_version": API_VERSION,
        "uid": "fanout",
    })
}

fn current_user(ctx: &Ctx) -> Value {
    let company = ctx.account().simple().to_string();
    json!({"user": {
        "id": ctx.user(),
        "name": ctx.user(),
        "company": {"id": company, "name": company},
        "role": if ctx.caller.is_admin() { "admin" } else { "user" },
    }, "getting_started": {}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_names_are_unique_and_service_dot_action() {
        let mut seen = std::collections::HashSet::new();
        for (name, _) in ENDPOINTS {
            assert!(seen.insert(*name), "{name} twice");
            let (service, action) = name.split_once('.').unwrap();
            assert!(!service.is_empty() && !action.is_empty());
        }
        assert_eq!(permission("tasks.delete"), Some(Action::Deletion));
        assert_eq!(permission("tasks.fly"), None);
    }

    #[test]
    fn tokens_split_into_credentials() {
        let id = uuid::Uuid::new_v4();
        let token = format!("fo_{}_abc-DEF_9", id.simple());
        let (access, secret) = split_token(&token).unwrap();
        assert_eq!(access, id.simple().to_string());
        assert_eq!(secret, "abc-DEF_9");
        assert!(split_token("nope").is_none());
    }
}
