//! The route table, defined once: the Lambda binaries, the local gateway, the OpenAPI
//! document and the template drift test all read it.

use std::future::Future;
use std::pin::Pin;

use http::Method;
use lambda_http::{Body, Request, Response};
use utoipa::openapi::schema::{
    AdditionalProperties, KnownFormat, ObjectBuilder, SchemaFormat, Type,
};
use utoipa::openapi::{RefOr, Schema};

use fanout::Services;
use fanout::auth::accounts::{Account, AccountCreated, AccountPage, AccountPatch, NewAccount};
use fanout::auth::tokens::{NewToken, Token, TokenCreated, TokenPage, TokenPatch};
use fanout::auth::{Action, Resource};
use fanout::auth::{Action::*, Resource::*};
use fanout::error::{ApiError, ErrorCode};
use fanout::health::Health;
use fanout::objects::Count;
use fanout::objects::events::{self, Event, EventPage, EventsCreated, NewEvents};
use fanout::objects::faces::{self, Face, FaceCreated, FacePage, FacePatch, NewFace};
use fanout::objects::images;
use fanout::objects::lists::{self, List, ListCreated, ListPage, ListPatch, NewList};
use fanout::objects::uploads::{NewUpload, UploadCreated};
use fanout::orchestrator::api::{
    Claim as UpletClaim, LIST_PARAMS as ORCH_LIST_PARAMS, LearnDone, NewAlgo, NewData,
    NewPrediction, NewProblem, PredDone,
};
use fanout::orchestrator::storage::{BlobDownload, BlobUpload, NewBlob};
use fanout::video::api::{VideoTask, VideoTaskCreated};
use fanout::video::streams::{
    self, AgentPage, NewStream, StreamCreated, StreamLogPage, StreamPage,
};
use fanout::video::task::VideoRequest;

use fanout::tasks::api::{self as tasks, NewTask};
use fanout::tasks::model::{SubtaskPage, Task, TaskCreated, TaskError, TaskErrorPage, TaskPage};

use crate::handlers::video::{
    DELETE_LOGS_PARAMS, GET_STREAM_PARAMS, PATCH_STREAM_PARAMS, StreamLogsDeleted, StreamsPatched,
};
use crate::handlers::{
    auth as auth_handlers, clearml as clearml_handlers, events as event_handlers,
    faces as face_handlers, images as image_handlers, lists as list_handlers,
    orchestrator as orchestrator_handlers, system, tasks as task_handlers,
    uploads as upload_handlers, video as video_handlers,
};

/// What a handler returns: a response, or an error rendered by the dispatcher.
pub type HandlerFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Response<Body>, ApiError>> + Send + 'a>>;

/// A route handler.
pub type Handler = for<'a> fn(&'a Services, Request) -> HandlerFuture<'a>;

/// A schema for the OpenAPI document, with the schemas it refers to.
pub struct NamedSchema {
    /// Component name.
    pub name: String,
    /// The schema itself.
    pub schema: RefOr<Schema>,
    /// Schemas it refers to, by name.
    pub nested: Vec<(String, RefOr<Schema>)>,
    /// Media types the body travels as: JSON, or the image types for raw image bytes.
    pub media_types: &'static [&'static str],
}

/// Produces the schema of one request or response type.
pub type SchemaFn = fn() -> NamedSchema;

/// One API route.
pub struct Route {
    /// Binary and function name (`get_face`).
    pub name: &'static str,
    /// HTTP method.
    pub method: Method,
    /// Path template with `{param}` segments, as API Gateway writes it.
    pub path: &'static str,
    /// The handler.
    pub handler: Handler,
    /// Who may call it.
    pub access: Access,
    /// Documentation for the OpenAPI document.
    pub doc: RouteDoc,
    /// Which API the route belongs to: how it is matched and how it answers errors.
    pub surface: Surface,
}

/// The APIs the table serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// Fanout's own REST API (LUNA's conventions): one method per route, errors as
    /// `{"error_code", "desc", "detail", "link"}`, documented in the OpenAPI document.
    Fanout,
    /// ClearML's RPC API under `/clearml/`: any method (the clients send GET with a
    /// body, or POST; PUT is taken too), every answer in ClearML's envelope, documented
    /// by ClearML's own schema (seeds 002 and 004), not in the OpenAPI document.
    Clearml,
    /// The HTTP API's catch-all (`ANY /{proxy+}`): what API Gateway routes there is a
    /// request no other route takes, answered with Fanout's errors (106). Never matched by
    /// [`find`], whose own verdict is the answer; not an operation of the OpenAPI
    /// document.
    CatchAll,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: no token is asked for.
    Public,
    /// Tokens of admin accounts only.
    Admin,
    /// Tokens allowed `action` on `resource`, acting on the account found in `account`.
    Token {
        /// What the route reads or writes.
        resource: Resource,
        /// What it does with it.
        action: Action,
        /// Where the request names its account.
        account: AccountIn,
    },
}

/// Where a request names the account it acts on; that name is checked against the
/// caller's token before the handler runs (and filled in when left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountIn {
    /// The `account_id` query parameter.
    Query {
        /// Whether an admin's token leaving it out means every account (LUNA's admin
        /// view of tasks and errors) rather than its own.
        all_allowed: bool,
    },
    /// The JSON body's top-level `account_id`.
    Body,
    /// Nowhere: the handler checks ownership of what the path names.
    Nowhere,
}

const PUBLIC: Access = Access::Public;
const ADMIN: Access = Access::Admin;
const QUERY: AccountIn = AccountIn::Query { all_allowed: false };
const QUERY_OR_ALL: AccountIn = AccountIn::Query { all_allowed: true };
const BODY: AccountIn = AccountIn::Body;
const NOWHERE: AccountIn = AccountIn::Nowhere;

const fn token(resource: Resource, action: Action, account: AccountIn) -> Access {
    Access::Token {
        resource,
        action,
        account,
    }
}

/// Largest body of a route that documents none (a stray body is refused past this).
pub const BODY_LIMIT_NONE: usize = 64 * 1024;
/// Largest JSON body of most routes.
pub const BODY_LIMIT_JSON: usize = 1024 * 1024;
/// Largest body of the routes that take many records or raw image bytes: Lambda's own
/// limit on a synchronous request (6 MB), so the route's own checks answer first.
pub const BODY_LIMIT_BULK: usize = 6 * 1000 * 1000;

impl Route {
    /// Whether the route answers without a token.
    pub fn is_public(&self) -> bool {
        self.access == Access::Public
    }

    /// The method of the route's key in API Gateway: `ANY` for the ClearML route.
    pub fn api_method(&self) -> &'static str {
        match self.surface {
            Surface::Clearml | Surface::CatchAll => "ANY",
            Surface::Fanout => match self.method {
                Method::GET => "GET",
                Method::POST => "POST",
                Method::PUT => "PUT",
                Method::PATCH => "PATCH",
                Method::DELETE => "DELETE",
                _ => "OTHER",
            },
        }
    }

    /// Whether the route takes requests of `method`.
    pub fn takes(&self, method: &Method) -> bool {
        self.surface != Surface::Fanout || self.method == method
    }

    /// Most bytes of body the route takes (413 above).
    pub fn body_limit(&self) -> usize {
        match self.surface {
            // events.add_batch carries logs and scalars by the batch.
            Surface::Clearml => return BODY_LIMIT_BULK,
            // Whatever was sent to an unknown path is answered 404, not 413.
            Surface::CatchAll => return BODY_LIMIT_BULK,
            Surface::Fanout => {}
        }
        match (self.name, self.doc.body) {
            ("create_events" | "put_face_avatar" | "put_event_sample", _) => BODY_LIMIT_BULK,
            (_, Some(_)) => BODY_LIMIT_JSON,
            (_, None) => BODY_LIMIT_NONE,
        }
    }
}

/// How a route is documented.
pub struct RouteDoc {
    /// One-line summary.
    pub summary: &'static str,
    /// Query parameters the route accepts.
    pub query: &'static [&'static str],
    /// Request body schema.
    pub body: Option<SchemaFn>,
    /// Success status.
    pub status: u16,
    /// Success body schema (none for 204 or answers of varying type).
    pub response: Option<SchemaFn>,
}

/// Schema of `T` with the schemas it refers to.
pub fn schema_of<T: utoipa::ToSchema>() -> NamedSchema {
    let mut nested = Vec::new();
    T::schemas(&mut nested);
    NamedSchema {
        name: T::name().into_owned(),
        schema: T::schema(),
        nested,
        media_types: &["application/json"],
    }
}

/// Schema of a raw image body: JPEG or PNG bytes, sent and answered as such.
pub fn image_schema() -> NamedSchema {
    let schema = ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
        .description(Some(format!(
            "JPEG or PNG bytes, at most {} bytes (4 MiB)",
            images::IMAGE_MAX_BYTES
        )));
    NamedSchema {
        name: "ImageBytes".into(),
        schema: schema.into(),
        nested: Vec::new(),
        media_types: images::CONTENT_TYPES,
    }
}

/// Schema of the JSON body `{}`: what cancel and delete answer (LUNA's samples).
pub fn empty_object_schema() -> NamedSchema {
    let schema = ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .description(Some("An empty object, `{}`"));
    NamedSchema {
        name: "EmptyObject".into(),
        schema: schema.into(),
        nested: Vec::new(),
        media_types: &["application/json"],
    }
}

macro_rules! route {
    ($name:literal, $method:ident, $path:literal, $handler:path, $access:expr,
     $summary:literal, query: $query:expr, body: $body:expr, $status:literal => $response:expr) => {
        Route {
            name: $name,
            method: Method::$method,
            path: $path,
            handler: |svc, req| Box::pin($handler(svc, req)),
            access: $access,
            doc: RouteDoc {
                summary: $summary,
                query: $query,
                body: $body,
                status: $status,
                response: $response,
            },
            surface: Surface::Fanout,
        }
    };
}

const NONE: &[&str] = &[];
const ACCOUNT: &[&str] = &["account_id"];
const PAGE: &[&str] = &["page", "page_size"];
const HEALTH: &[&str] = &["include_luna_services"];
const TOKEN_LIST_PARAMS: &[&str] = &["account_id", "page", "page_size"];

/// Every route of the API.
pub static ROUTES: &[Route] = &[
    route!("version", GET, "/version", system::version, PUBLIC,
        "Service version", query: NONE, body: None, 200 => Some(schema_of::<system::VersionBody>)),
    route!("healthcheck", GET, "/1/healthcheck", system::healthcheck, PUBLIC,
        "Reachability of DynamoDB, SQS and S3", query: HEALTH, body: None, 200 => Some(schema_of::<Health>)),
    route!("config", GET, "/1/config", system::config, ADMIN,
        "Service configuration, secrets hidden", query: NONE, body: None, 200 => None),
    route!("docs_spec", GET, "/1/docs/spec", system::docs_spec, PUBLIC,
        "This OpenAPI document: YAML for Accept: application/x-yaml, JSON for Accept: application/json, HTML otherwise",
        query: NONE, body: None, 200 => None),
    route!("docs_spec_root", GET, "/docs/spec", system::docs_spec, PUBLIC,
        "This OpenAPI document where LUNA serves it: YAML for Accept: application/x-yaml, JSON for Accept: application/json, HTML otherwise",
        query: NONE, body: None, 200 => None),
    route!("docs_dev", GET, "/docs/dev", system::docs_dev, PUBLIC,
        "The development manual: a redirect to /docs/dev/index.html, as LUNA's",
        query: NONE, body: None, 302 => None),
    route!("docs_dev_page", GET, "/docs/dev/index.html", system::docs_dev_page, PUBLIC,
        "The development manual: this OpenAPI document rendered as one self-contained HTML page",
        query: NONE, body: None, 200 => None),
    route!("create_face", POST, "/1/faces", face_handlers::create, token(Faces, Creation, BODY),
        "Create a face", query: NONE, body: Some(schema_of::<NewFace>), 201 => Some(schema_of::<FaceCreated>)),
    route!("list_faces", GET, "/1/faces", face_handlers::list, token(Faces, View, QUERY),
        "Faces matching filters, newest first", query: faces::LIST_PARAMS, body: None, 200 => Some(schema_of::<FacePage>)),
    route!("count_faces", GET, "/1/faces/count", face_handlers::count, token(Faces, View, QUERY),
        "Number of faces matching filters", query: faces::COUNT_PARAMS, body: None, 200 => Some(schema_of::<Count>)),
    route!("get_face", GET, "/1/faces/{face_id}", face_handlers::get, token(Faces, View, QUERY),
        "One face", query: ACCOUNT, body: None, 200 => Some(schema_of::<Face>)),
    route!("patch_face", PATCH, "/1/faces/{face_id}", face_handlers::patch, token(Faces, Modification, QUERY),
        "Change a face's attributes", query: ACCOUNT, body: Some(schema_of::<FacePatch>), 204 => None),
    route!("delete_face", DELETE, "/1/faces/{face_id}", face_handlers::delete, token(Faces, Deletion, QUERY),
        "Delete a face, its list memberships and its avatar image", query: ACCOUNT, body: None,
        204 => None),
    route!("put_face_avatar", PUT, "/1/faces/{face_id}/avatar", image_handlers::put_face_avatar, token(Images, Creation, QUERY),
        "Upload a face's avatar: raw JPEG or PNG bytes up to 4 MiB (413 above, 415 other formats); the face's avatar becomes this path",
        query: ACCOUNT, body: Some(image_schema), 204 => None),
    route!("get_face_avatar", GET, "/1/faces/{face_id}/avatar", image_handlers::get_face_avatar, token(Images, View, QUERY),
        "A face's avatar image with its content type (40006 when it has none)", query: ACCOUNT,
        body: None, 200 => Some(image_schema)),
    route!("delete_face_avatar", DELETE, "/1/faces/{face_id}/avatar",
        image_handlers::delete_face_avatar, token(Images, Deletion, QUERY), "Delete a face's avatar image (the face stays)",
        query: ACCOUNT, body: None, 204 => None),
    route!("create_list", POST, "/1/lists", list_handlers::create, token(Lists, Creation, BODY),
        "Create a list", query: NONE, body: Some(schema_of::<NewList>), 201 => Some(schema_of::<ListCreated>)),
    route!("list_lists", GET, "/1/lists", list_handlers::list, token(Lists, View, QUERY),
        "Lists matching filters, newest first", query: lists::LIST_PARAMS, body: None, 200 => Some(schema_of::<ListPage>)),
    route!("get_list", GET, "/1/lists/{list_id}", list_handlers::get, token(Lists, View, QUERY),
        "One list with its face count", query: ACCOUNT, body: None, 200 => Some(schema_of::<List>)),
    route!("patch_list", PATCH, "/1/lists/{list_id}", list_handlers::patch, token(Lists, Modification, QUERY),
        "Attach faces to or detach them from a list (up to 1000)", query: ACCOUNT,
        body: Some(schema_of::<ListPatch>), 204 => None),
    route!("delete_list", DELETE, "/1/lists/{list_id}", list_handlers::delete, token(Lists, Deletion, QUERY),
        "Delete a list (its faces stay)", query: ACCOUNT, body: None, 204 => None),
    route!("create_events", POST, "/1/events", event_handlers::create, token(Events, Creation, BODY),
        "Save up to 1000 events. Send an Idempotency-Key header (1 to 255 printable ASCII characters, remembered 24 h) to make the request safe to repeat after any failure: a repeat with the same body stores each event once and answers the same ids; the same key with another body is refused (40010, 422)",
        query: NONE, body: Some(schema_of::<NewEvents>), 201 => Some(schema_of::<EventsCreated>)),
    route!("list_events", GET, "/1/events", event_handlers::list, token(Events, View, QUERY),
        "Events matching filters, newest first", query: events::LIST_PARAMS, body: None, 200 => Some(schema_of::<EventPage>)),
    route!("get_event", GET, "/1/events/{event_id}", event_handlers::get, token(Events, View, QUERY),
        "One event", query: ACCOUNT, body: None, 200 => Some(schema_of::<Event>)),
    route!("put_event_sample", PUT, "/1/events/{event_id}/sample", image_handlers::put_event_sample, token(Images, Creation, QUERY),
        "Upload an event's sample image: raw JPEG or PNG bytes up to 4 MiB (413 above, 415 other formats)",
        query: ACCOUNT, body: Some(image_schema), 204 => None),
    route!("get_event_sample", GET, "/1/events/{event_id}/sample", image_handlers::get_event_sample, token(Images, View, QUERY),
        "An event's sample image with its content type (40006 when it has none)", query: ACCOUNT,
        body: None, 200 => Some(image_schema)),
    route!("create_upload", POST, "/1/uploads", upload_handlers::create, token(Images, Creation, BODY),
        "A presigned PUT URL into the account's upload area (zip archives and images the estimator reads; kept 7 days)",
        query: NONE, body: Some(schema_of::<NewUpload>), 201 => Some(schema_of::<UploadCreated>)),
    route!("create_linker_task", POST, "/1/tasks/linker", task_handlers::create, token(Tasks, Creation, BODY),
        "Create a linker task: link faces or events selected by filters to a list",
        query: NONE, body: Some(schema_of::<NewTask>), 201 => Some(schema_of::<TaskCreated>)),
    route!("create_gc_task", POST, "/1/tasks/gc", task_handlers::create, token(Tasks, Creation, BODY),
        "Create a garbage-collecting task: delete events, or face descriptors of a version",
        query: NONE, body: Some(schema_of::<NewTask>), 201 => Some(schema_of::<TaskCreated>)),
    route!("create_cross_match_task", POST, "/1/tasks/cross_match", task_handlers::create, token(Tasks, Creation, BODY),
        "Create a cross-match task: each reference's most similar candidates (cosine similarity clamped to [0, 1])",
        query: NONE, body: Some(schema_of::<NewTask>), 201 => Some(schema_of::<TaskCreated>)),
    route!("create_roc_task", POST, "/1/tasks/roc", task_handlers::create, token(Tasks, Creation, BODY),
        "Create a ROC task: ROC curve, AUC, EER and top-N hits of labelled objects (cosine similarity clamped to [0, 1])",
        query: NONE, body: Some(schema_of::<NewTask>), 201 => Some(schema_of::<TaskCreated>)),
    route!("create_clustering_task", POST, "/1/tasks/clustering", task_handlers::create, token(Tasks, Creation, BODY),
        "Create a clustering task: connected components of objects joined by similarity >= threshold",
        query: NONE, body: Some(schema_of::<NewTask>), 201 => Some(schema_of::<TaskCreated>)),
    route!("create_exporter_task", POST, "/1/tasks/exporter", task_handlers::create, token(Tasks, Creation, BODY),
        "Create an exporter task: a zip of one CSV row per face or event matching filters, with their images on request",
        query: NONE, body: Some(schema_of::<NewTask>), 201 => Some(schema_of::<TaskCreated>)),
    route!("create_reporter_task", POST, "/1/tasks/reporter", task_handlers::create, token(Tasks, Creation, BODY),
        "Create a reporter task: a zip with a CSV of a done clustering task's clusters and the chosen columns of their objects",
        query: NONE, body: Some(schema_of::<NewTask>), 201 => Some(schema_of::<TaskCreated>)),
    route!("create_additional_extract_task", POST, "/1/tasks/additional_extract", task_handlers::create, token(Tasks, Creation, BODY),
        "Create an additional extract task: descriptors of an extractable version (and basic attributes) for the faces or events with a stored image that lack them",
        query: NONE, body: Some(schema_of::<NewTask>), 201 => Some(schema_of::<TaskCreated>)),
    route!("create_estimator_task", POST, "/1/tasks/estimator", task_handlers::create, token(Tasks, Creation, BODY),
        "Create an estimator task: detect faces and estimate attributes in images (a zip or keys in the upload area, or the stored images of faces or events), optionally creating faces or events",
        query: NONE, body: Some(schema_of::<NewTask>), 201 => Some(schema_of::<TaskCreated>)),
    route!("list_tasks", GET, "/1/tasks", task_handlers::list, token(Tasks, View, QUERY_OR_ALL),
        "Tasks matching filters, newest first (content null when over 16 KiB: read the task)",
        query: tasks::TASK_LIST_PARAMS, body: None,
        200 => Some(schema_of::<TaskPage>)),
    route!("count_tasks", GET, "/1/tasks/count", task_handlers::count, token(Tasks, View, QUERY_OR_ALL),
        "Number of tasks matching filters", query: tasks::TASK_COUNT_PARAMS, body: None,
        200 => Some(schema_of::<Count>)),
    route!("get_task", GET, "/1/tasks/{task_id}", task_handlers::get, token(Tasks, View, QUERY_OR_ALL),
        "One task with its progress", query: ACCOUNT, body: None, 200 => Some(schema_of::<Task>)),
    route!("cancel_task", PATCH, "/1/tasks/{task_id}", task_handlers::cancel, token(Tasks, Modification, QUERY_OR_ALL),
        "Cancel a task that has not ended (body absent or {\"action\": \"cancel\"}); answers {} as LUNA's sample, also for a task cancelled before",
        query: ACCOUNT, body: None, 200 => Some(empty_object_schema)),
    route!("delete_task", DELETE, "/1/tasks/{task_id}", task_handlers::delete, token(Tasks, Deletion, QUERY_OR_ALL),
        "Delete a task, its subtasks, errors and stored objects; answers {} as LUNA's sample", query: ACCOUNT, body: None,
        200 => Some(empty_object_schema)),
    route!("get_task_result", GET, "/1/tasks/{task_id}/result", task_handlers::result, token(Tasks, View, QUERY_OR_ALL),
        "Result of a done task: JSON {\"result\": <the kind's result>, \"errors\": [<the task's errors when the result was written, as GET /1/tasks/{task_id}/errors shows them>]}, or a zip attachment task_<id>.zip; 302 to a presigned S3 URL (the same JSON or zip) above 5 MB of JSON or 4 MiB of zip, or for a Range",
        query: ACCOUNT, body: None, 200 => None),
    route!("list_subtasks", GET, "/1/tasks/{task_id}/subtasks", task_handlers::subtasks, token(Tasks, View, QUERY_OR_ALL),
        "Subtasks of a task in id order, a page at a time (page_size default 100)",
        query: tasks::SUBTASK_LIST_PARAMS, body: None, 200 => Some(schema_of::<SubtaskPage>)),
    route!("list_task_errors", GET, "/1/tasks/{task_id}/errors", task_handlers::task_errors, token(Errors, View, QUERY_OR_ALL),
        "Errors of a task, newest first", query: tasks::TASK_ERROR_LIST_PARAMS, body: None,
        200 => Some(schema_of::<TaskErrorPage>)),
    route!("count_task_errors", GET, "/1/tasks/{task_id}/errors/count",
        task_handlers::count_task_errors, token(Errors, View, QUERY_OR_ALL), "Number of errors of a task",
        query: tasks::TASK_ERROR_COUNT_PARAMS, body: None, 200 => Some(schema_of::<Count>)),
    route!("list_errors", GET, "/1/errors", task_handlers::errors, token(Errors, View, QUERY_OR_ALL),
        "Task errors matching filters, newest first", query: tasks::ERROR_LIST_PARAMS, body: None,
        200 => Some(schema_of::<TaskErrorPage>)),
    route!("count_errors", GET, "/1/errors/count", task_handlers::count_errors, token(Errors, View, QUERY_OR_ALL),
        "Number of task errors matching filters", query: tasks::ERROR_COUNT_PARAMS, body: None,
        200 => Some(schema_of::<Count>)),
    route!("get_error", GET, "/1/errors/{error_id}", task_handlers::error, token(Errors, View, QUERY_OR_ALL),
        "One task error", query: ACCOUNT, body: None, 200 => Some(schema_of::<TaskError>)),
    route!("create_account", POST, "/1/accounts", auth_handlers::create_account, ADMIN,
        "Create an account (admin only)", query: NONE, body: Some(schema_of::<NewAccount>),
        201 => Some(schema_of::<AccountCreated>)),
    route!("list_accounts", GET, "/1/accounts", auth_handlers::list_accounts, ADMIN,
        "Accounts, newest first (admin only)", query: PAGE, body: None,
        200 => Some(schema_of::<AccountPage>)),
    route!("get_account", GET, "/1/accounts/{account_id}", auth_handlers::get_account, ADMIN,
        "One account (admin only)", query: NONE, body: None, 200 => Some(schema_of::<Account>)),
    route!("patch_account", PATCH, "/1/accounts/{account_id}", auth_handlers::patch_account,
        ADMIN, "Change an account's description or type (admin only)", query: NONE,
        body: Some(schema_of::<AccountPatch>), 204 => None),
    route!("delete_account", DELETE, "/1/accounts/{account_id}", auth_handlers::delete_account,
        ADMIN, "Delete an account and revoke its tokens; its records stay for an admin to remove (admin only)",
        query: NONE, body: None, 204 => None),
    route!("create_token", POST, "/1/tokens", auth_handlers::create_token,
        token(Tokens, Creation, BODY),
        "Create a token for the caller's account (an admin: any account). The answer is the only one that shows the token; a user account's token grants at most its own permissions and expiration",
        query: NONE, body: Some(schema_of::<NewToken>), 201 => Some(schema_of::<TokenCreated>)),
    route!("list_tokens", GET, "/1/tokens", auth_handlers::list_tokens,
        token(Tokens, View, QUERY), "The account's tokens, newest first (never their secrets)",
        query: TOKEN_LIST_PARAMS, body: None, 200 => Some(schema_of::<TokenPage>)),
    route!("get_token", GET, "/1/tokens/{token_id}", auth_handlers::get_token,
        token(Tokens, View, NOWHERE), "One token of the account (never its secret)", query: NONE,
        body: None, 200 => Some(schema_of::<Token>)),
    route!("patch_token", PATCH, "/1/tokens/{token_id}", auth_handlers::patch_token,
        token(Tokens, Modification, NOWHERE),
        "Change a token's description, expiration or permissions", query: NONE,
        body: Some(schema_of::<TokenPatch>), 204 => None),
    route!("delete_token", DELETE, "/1/tokens/{token_id}", auth_handlers::delete_token,
        token(Tokens, Deletion, NOWHERE),
        "Revoke a token: refused from the next request the authorizer checks (API Gateway may keep a cached answer up to its cache time, 300 s at most)",
        query: NONE, body: None, 204 => None),
    route!("create_orchestrator_storage", POST, "/orchestrator/storage", orchestrator_handlers::create_storage,
        token(Orchestrator, Creation, QUERY),
        "A presigned PUT URL for a blob of the orchestrator's storage (a workflow, algo or data archive), under a uuid given or new; 40023 when the uuid holds one already",
        query: ACCOUNT, body: Some(schema_of::<NewBlob>), 201 => Some(schema_of::<BlobUpload>)),
    route!("get_orchestrator_storage", GET, "/orchestrator/storage/{uuid}", orchestrator_handlers::get_storage,
        token(Orchestrator, View, QUERY),
        "A presigned GET URL of a stored blob (a model, predictions, or an upload)",
        query: ACCOUNT, body: None, 200 => Some(schema_of::<BlobDownload>)),
    route!("create_orchestrator_problem", POST, "/orchestrator/problem", orchestrator_handlers::create_problem,
        token(Orchestrator, Creation, QUERY),
        "Add a problem: its workflow (stored first), test data and training data per learnuplet; answers {\"new_problem\": ...}",
        query: ACCOUNT, body: Some(schema_of::<NewProblem>), 201 => None),
    route!("create_orchestrator_algo", POST, "/orchestrator/algo", orchestrator_handlers::create_algo,
        token(Orchestrator, Creation, QUERY),
        "Add an algorithm (its archive stored first under its uuid): a chain of learnuplets over the problem's training data; answers {\"new_algo\": ..., \"new_learnuplets\": n}",
        query: ACCOUNT, body: Some(schema_of::<NewAlgo>), 201 => None),
    route!("create_orchestrator_data", POST, "/orchestrator/data", orchestrator_handlers::create_data,
        token(Orchestrator, Creation, QUERY),
        "Add data (stored first under their uuids) to problems: each algorithm's chain grows by the new training data; answers {\"new_datas\": [...], \"new_learnuplets\": n}",
        query: ACCOUNT, body: Some(schema_of::<NewData>), 201 => None),
    route!("create_orchestrator_prediction", POST, "/orchestrator/prediction", orchestrator_handlers::create_prediction,
        token(Orchestrator, Creation, QUERY),
        "Request a prediction on data from the problem's best model so far: a preduplet; answers {\"new_preduplets\": 1, \"preduplet\": uuid}",
        query: ACCOUNT, body: Some(schema_of::<NewPrediction>), 201 => None),
    route!("claim_orchestrator_uplet", POST, "/orchestrator/worker/{uplet_type}/{uuid}", orchestrator_handlers::claim,
        token(Orchestrator, Modification, QUERY),
        "Compute side: claim a runnable learnuplet or preduplet for a worker (todo to pending, a lease of 25 minutes); 40024 when it is not runnable",
        query: ACCOUNT, body: Some(schema_of::<UpletClaim>), 200 => None),
    route!("orchestrator_learndone", POST, "/orchestrator/learndone/{uuid}", orchestrator_handlers::learndone,
        token(Orchestrator, Modification, QUERY),
        "Compute side: report a claimed learnuplet done (with its perfs) or failed; the next rank gets the best model so far",
        query: ACCOUNT, body: Some(schema_of::<LearnDone>), 200 => None),
    route!("orchestrator_preddone", POST, "/orchestrator/preddone/{uuid}", orchestrator_handlers::preddone,
        token(Orchestrator, Modification, QUERY),
        "Compute side: report a claimed preduplet done (with its stored predictions) or failed",
        query: ACCOUNT, body: Some(schema_of::<PredDone>), 200 => None),
    route!("list_orchestrator_documents", GET, "/orchestrator/{collection}", orchestrator_handlers::list,
        token(Orchestrator, View, QUERY),
        "Documents of a collection (problem, algo, data, learnuplet, preduplet) whose fields equal the filters given; answers {\"<collection>s\": [...]}",
        query: ORCH_LIST_PARAMS, body: None, 200 => None),
    route!("get_orchestrator_document", GET, "/orchestrator/{collection}/{uuid}", orchestrator_handlers::get,
        token(Orchestrator, View, QUERY),
        "One document of a collection (problem, algo, data, learnuplet, preduplet)",
        query: ACCOUNT, body: None, 200 => None),
    route!("create_video_task", POST, "/1/videosdk", video_handlers::videosdk,
        token(Video, Creation, QUERY),
        "Analyse a video (people_count, human_tracking): with deferred_task.enable, 201 with a task id to poll at /1/video/tasks/{task_id}; without, 200 with the result once done (videos of at most 30 s; 40025 above)",
        query: ACCOUNT, body: Some(schema_of::<VideoRequest>), 201 => Some(schema_of::<VideoTaskCreated>)),
    route!("get_video_task", GET, "/1/video/tasks/{task_id}", video_handlers::get_task,
        token(Video, View, QUERY),
        "A video task: status (0 pending, 1 in progress, 2 done, 3 failed, 4 cancelled), progress (segments analysed over all) and, once done, result_url",
        query: ACCOUNT, body: None, 200 => Some(schema_of::<VideoTask>)),
    route!("cancel_video_task", DELETE, "/1/video/tasks/{task_id}", video_handlers::cancel_task,
        token(Video, Modification, QUERY),
        "Cancel a video task: its workers stop at their next frame; a done or failed task cannot be cancelled (40002)",
        query: ACCOUNT, body: None, 200 => Some(empty_object_schema)),
    route!("create_stream", POST, "/1/streams", video_handlers::create_stream,
        token(Video, Creation, QUERY),
        "Create a stream: a live URL (http, https, rtsp, rtmp) or a video of the account's upload area, analysed (people_count) by the next agent with room; 201 with its id and path",
        query: ACCOUNT, body: Some(schema_of::<NewStream>), 201 => Some(schema_of::<StreamCreated>)),
    route!("list_streams", GET, "/1/streams", video_handlers::list_streams,
        token(Video, View, QUERY),
        "The account's streams matching filters (status 0 pending, 1 in progress, 3 done, 5 failure, 6 stop), newest first by default, each with the targets asked for",
        query: streams::LIST_PARAMS, body: None, 200 => Some(schema_of::<StreamPage>)),
    route!("list_stream_logs", GET, "/1/streams/logs", video_handlers::list_stream_logs,
        token(Video, View, QUERY),
        "The account's stream log records (each status a stream moved to, with failures' reasons), newest first",
        query: streams::LOG_PARAMS, body: None, 200 => Some(schema_of::<StreamLogPage>)),
    route!("delete_stream_logs", DELETE, "/1/streams/logs", video_handlers::delete_stream_logs,
        token(Video, Deletion, QUERY),
        "Delete the account's stream log records older than log_time__lt (required), keeping each stream's last record; answers {\"deleted_count\": n}",
        query: DELETE_LOGS_PARAMS, body: None, 200 => Some(schema_of::<StreamLogsDeleted>)),
    route!("get_stream", GET, "/1/streams/{stream_id}", video_handlers::get_stream,
        token(Video, View, QUERY),
        "One stream with the targets asked for: status 0 pending, 1 in progress, 3 done, 5 failure, 6 stop",
        query: GET_STREAM_PARAMS, body: None, 200 => None),
    route!("patch_stream", PATCH, "/1/streams/{stream_id}", video_handlers::patch_stream,
        token(Video, Modification, QUERY),
        "Stop a stream (action=stop: status 6, its agent stops at its next feedback) or resume a stopped, failed or done one (action=resume: pending again); answers {\"patched_count\": n}, 0 when it was in that state already",
        query: PATCH_STREAM_PARAMS, body: None, 200 => Some(schema_of::<StreamsPatched>)),
    route!("delete_stream", DELETE, "/1/streams/{stream_id}", video_handlers::delete_stream,
        token(Video, Deletion, QUERY),
        "Delete a stream: its agent stops at its next feedback; its logs stay",
        query: ACCOUNT, body: None, 200 => Some(empty_object_schema)),
    route!("get_agents", GET, "/1/agents", video_handlers::get_agents,
        token(Video, View, QUERY),
        "The agents (every stream worker is one) seen within the last minute: ready, or not_ready when silent for three refresh periods, with the account's streams each processes",
        query: ACCOUNT, body: None, 200 => Some(schema_of::<AgentPage>)),
    // The whole ClearML surface is one route: API Gateway's route keys match whole path
    // segments only and no optional segment, so `/clearml/[v2.23/]tasks.enqueue` cannot
    // be split by service there (README, ClearML). `{proxy+}` takes the rest of the path.
    Route {
        name: "clearml",
        method: Method::POST,
        path: "/clearml/{proxy+}",
        handler: |svc, req| Box::pin(clearml_handlers::call(svc, req)),
        access: token(Clearml, View, NOWHERE),
        doc: RouteDoc {
            summary: "ClearML API 2.31 (clearml-server 2.0.0): /clearml/[v<X.Y>/]<service>.<action> with GET, POST or PUT, answers in ClearML's envelope",
            query: NONE,
            body: None,
            status: 200,
            response: None,
        },
        surface: Surface::Clearml,
    },
    // API Gateway answers a request no route takes with its own {"message":"Not Found"}
    // (and 404 for a wrong method too); this greedy route, the HTTP API's least specific,
    // takes them all instead and answers them as the local gateway does (106, 404 or
    // 405). Public: an unknown path is 404 with or without a token, as locally.
    Route {
        name: "catch_all",
        method: Method::GET,
        path: "/{proxy+}",
        handler: |svc, req| Box::pin(system::catch_all(svc, req)),
        access: PUBLIC,
        doc: RouteDoc {
            summary: "Any request no other route takes: 404 (106) for an unknown path, 405 (106) for a known path with another method",
            query: NONE,
            body: None,
            status: 404,
            response: None,
        },
        surface: Surface::CatchAll,
    },
];

/// The routes of Fanout's own API, which the OpenAPI document describes.
pub fn documented() -> impl Iterator<Item = &'static Route> {
    ROUTES.iter().filter(|r| r.surface == Surface::Fanout)
}

/// The route named `name`.
pub fn by_name(name: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.name == name)
}

/// Result of matching a request line against the table.
pub enum Match {
    /// A route and its path parameters.
    Found(&'static Route, Vec<(String, String)>),
    /// The path exists with other methods.
    MethodNotAllowed,
    /// No route has this path.
    NotFound,
    /// `POST /1/tasks/<kind>` for a kind no route creates (the path would otherwise be a
    /// task id's, which takes other methods: a 405 that says nothing of kinds). Answered
    /// with [`unknown_task_kind`].
    UnknownTaskKind(String),
}

/// The task creation routes' path up to the kind: `POST /1/tasks/<kind>`.
const TASK_CREATION: &str = "/1/tasks/";

/// The task kinds the table has a creation route for, in its order.
pub fn task_kinds() -> impl Iterator<Item = &'static str> {
    ROUTES
        .iter()
        .filter(|r| r.method == Method::POST)
        .filter_map(|r| r.path.strip_prefix(TASK_CREATION))
        .filter(|kind| !kind.contains(['/', '{']))
}

/// The answer to `POST /1/tasks/<kind>` for an unknown kind: 404 (106), naming the kind
/// given and the kinds there are.
pub fn unknown_task_kind(kind: &str) -> ApiError {
    let known: Vec<&str> = task_kinds().collect();
    ApiError::new(
        ErrorCode::BadRoute,
        format!(
            "Unknown task kind '{kind}': POST /1/tasks/<kind> creates one of {}",
            known.join(", ")
        ),
    )
}

/// Finds the route for `method path`; literal segments win over parameters
/// (`/1/faces/count` before `/1/faces/{face_id}`).
pub fn find(method: &Method, path: &str) -> Match {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    // The best match so far: route, its parameters, its number of literal segments.
    type Candidate = (&'static Route, Vec<(String, String)>, usize);
    let mut best: Option<Candidate> = None;
    let mut path_known = false;
    for route in ROUTES.iter().filter(|r| r.surface != Surface::CatchAll) {
        let pattern: Vec<&str> = route.path.split('/').collect();
        let mut params = Vec::new();
        let mut literals = 0;
        // A greedy last segment (`{proxy+}`) takes the rest of the path.
        if let Some((last, head)) = pattern.split_last()
            && let Some(name) = last.strip_prefix('{').and_then(|p| p.strip_suffix("+}"))
        {
            let rest = segments.get(head.len()..).unwrap_or_default();
            let matched = segments.len() > head.len()
                && head.iter().zip(&segments).all(|(p, s)| p == s)
                && !rest.iter().all(|s| s.is_empty());
            if matched {
                path_known = true;
                if route.takes(method) && best.is_none() {
                    params.push((name.to_string(), rest.join("/")));
                    best = Some((route, params, head.len()));
                }
            }
            continue;
        }
        if pattern.len() != segments.len() {
            continue;
        }
        let matched = pattern.iter().zip(&segments).all(|(p, s)| {
            if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                params.push((name.to_string(), s.to_string()));
                !s.is_empty()
            } else {
                literals += 1;
                p == s
            }
        });
        if !matched {
            continue;
        }
        path_known = true;
        if !route.takes(method) {
            continue;
        }
        if best.as_ref().is_none_or(|(_, _, l)| literals > *l) {
            best = Some((route, params, literals));
        }
    }
    match best {
        Some((route, params, _)) => Match::Found(route, params),
        None if *method == Method::POST && is_task_creation(&segments) => {
            Match::UnknownTaskKind(segments[3].to_string())
        }
        None if path_known => Match::MethodNotAllowed,
        None => Match::NotFound,
    }
}

/// Whether the path's segments are `/1/tasks/<kind>` (a kind creation routes have or not).
fn is_task_creation(segments: &[&str]) -> bool {
    let prefix: Vec<&str> = TASK_CREATION.trim_end_matches('/').split('/').collect();
    segments.len() == prefix.len() + 1
        && segments.starts_with(&prefix)
        && !segments[prefix.len()].is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_and_method_paths_are_unique() {
        let names: HashSet<_> = ROUTES.iter().map(|r| r.name).collect();
        let lines: HashSet<_> = ROUTES.iter().map(|r| (r.method.clone(), r.path)).collect();
        assert_eq!(names.len(), ROUTES.len());
        assert_eq!(lines.len(), ROUTES.len());
    }

    #[test]
    fn literal_segments_win_over_parameters() {
        let Match::Found(route, params) = find(&Method::GET, "/1/faces/count") else {
            panic!("no match");
        };
        assert_eq!(route.name, "count_faces");
        assert!(params.is_empty());
        let Match::Found(route, params) = find(&Method::GET, "/1/faces/abc") else {
            panic!("no match");
        };
        assert_eq!(route.name, "get_face");
        assert_eq!(params, vec![("face_id".to_string(), "abc".to_string())]);
    }

    #[test]
    fn stream_logs_win_over_a_stream_id() {
        for (method, name) in [
            (Method::GET, "list_stream_logs"),
            (Method::DELETE, "delete_stream_logs"),
        ] {
            let Match::Found(route, params) = find(&method, "/1/streams/logs") else {
                panic!("{method} /1/streams/logs: no match");
            };
            assert_eq!(route.name, name, "{method}");
            assert!(params.is_empty(), "{method}");
        }
        let id = "5b2a7c4e-0d3f-4b8e-9a61-2f7d8c9e0a1b";
        for (method, name) in [
            (Method::GET, "get_stream"),
            (Method::PATCH, "patch_stream"),
            (Method::DELETE, "delete_stream"),
        ] {
            let Match::Found(route, params) = find(&method, &format!("/1/streams/{id}")) else {
                panic!("{method} /1/streams/<uuid>: no match");
            };
            assert_eq!(route.name, name, "{method}");
            assert_eq!(params, vec![("stream_id".to_string(), id.to_string())]);
        }
        // No literal route takes PATCH: the path is then a stream id's (refused by its
        // UUID check), as `PATCH /1/faces/count` is a face's.
        assert!(matches!(
            find(&Method::PATCH, "/1/streams/logs"),
            Match::Found(route, _) if route.name == "patch_stream"
        ));
    }

    #[test]
    fn image_routes_take_the_object_id() {
        let Match::Found(route, params) = find(&Method::PUT, "/1/faces/abc/avatar") else {
            panic!("no match");
        };
        assert_eq!(route.name, "put_face_avatar");
        assert_eq!(params, vec![("face_id".to_string(), "abc".to_string())]);
        let Match::Found(route, _) = find(&Method::GET, "/1/events/abc/sample") else {
            panic!("no match");
        };
        assert_eq!(route.name, "get_event_sample");
        assert!(matches!(
            find(&Method::POST, "/1/faces/abc/avatar"),
            Match::MethodNotAllowed
        ));
    }

    #[test]
    fn task_kinds_are_those_of_the_registry() {
        let mut routed: Vec<&str> = task_kinds().collect();
        let mut registered: Vec<&str> = fanout::kinds::REGISTRY.iter().map(|k| k.name()).collect();
        routed.sort();
        registered.sort();
        assert_eq!(routed, registered);
    }

    /// Found by a new user: `POST /1/tasks/foo` was a 405 (`/1/tasks/{task_id}` takes
    /// other methods) that said nothing of kinds.
    #[test]
    fn an_unknown_task_kind_is_told_apart_and_named() {
        for (path, kind) in [("/1/tasks/foo", "foo"), ("/1/tasks/count/", "count")] {
            match find(&Method::POST, path) {
                Match::UnknownTaskKind(given) => assert_eq!(given, kind),
                _ => panic!("{path}: not an unknown kind"),
            }
        }
        let err = unknown_task_kind("foo");
        assert_eq!(err.code, ErrorCode::BadRoute);
        assert_eq!(err.status(), 404);
        assert!(err.detail.contains("'foo'"), "{}", err.detail);
        for kind in [
            "linker",
            "gc",
            "clustering",
            "cross_match",
            "roc",
            "exporter",
            "reporter",
        ] {
            assert!(err.detail.contains(kind), "{}", err.detail);
        }
        assert!(matches!(
            find(&Method::POST, "/1/tasks/gc"),
            Match::Found(route, _) if route.name == "create_gc_task"
        ));
        for (method, path) in [
            (Method::PUT, "/1/tasks/foo"),
            (Method::POST, "/1/tasks"),
            (Method::POST, "/1/tasks/1/result"),
        ] {
            assert!(
                matches!(find(&method, path), Match::MethodNotAllowed),
                "{method} {path}"
            );
        }
        assert!(matches!(
            find(&Method::POST, "/1/tasks/foo/bar"),
            Match::NotFound
        ));
    }

    #[test]
    fn the_clearml_route_takes_every_method_and_the_rest_of_the_path() {
        for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE] {
            for path in [
                "/clearml/tasks.enqueue",
                "/clearml/v2.23/tasks.get_all",
                "/clearml/anything/else",
            ] {
                let Match::Found(route, params) = find(&method, path) else {
                    panic!("{method} {path}: no match");
                };
                assert_eq!(route.name, "clearml");
                assert_eq!(route.api_method(), "ANY");
                assert_eq!(params[0].0, "proxy");
                assert_eq!(format!("/clearml/{}", params[0].1), path, "{method} {path}");
            }
        }
        assert!(matches!(find(&Method::GET, "/clearml"), Match::NotFound));
        assert!(matches!(find(&Method::GET, "/clearml/"), Match::NotFound));
        assert_eq!(by_name("clearml").unwrap().body_limit(), BODY_LIMIT_BULK);
        assert!(documented().all(|r| r.surface == Surface::Fanout));
        assert_eq!(
            documented().count(),
            ROUTES.len() - 2,
            "clearml and catch_all"
        );
    }

    /// The catch-all route takes any method on any path on AWS, and is never what the
    /// table finds: an unknown path stays unknown (the catch-all answers that verdict).
    #[test]
    fn the_catch_all_takes_everything_and_is_never_found() {
        let catch_all = by_name("catch_all").unwrap();
        assert_eq!(catch_all.api_method(), "ANY");
        assert_eq!(catch_all.path, "/{proxy+}");
        assert!(catch_all.is_public());
        assert!(catch_all.takes(&Method::DELETE));
        for route in ROUTES {
            assert!(
                route.surface == Surface::CatchAll || !route.path.starts_with("/{"),
                "{}: only the catch-all is greedy at the root",
                route.name
            );
        }
        assert!(matches!(
            find(&Method::GET, "/nothing/here"),
            Match::NotFound
        ));
        assert!(matches!(find(&Method::GET, "/"), Match::NotFound));
        assert!(
            matches!(find(&Method::GET, "/1/faces/count"), Match::Found(r, _) if r.name == "count_faces")
        );
    }

    #[test]
    fn unknown_paths_and_methods_are_told_apart() {
        assert!(matches!(
            find(&Method::PUT, "/1/faces"),
            Match::MethodNotAllowed
        ));
        assert!(matches!(find(&Method::GET, "/1/nothing"), Match::NotFound));
        assert!(matches!(
            find(&Method::GET, "/1/faces/a/b"),
            Match::NotFound
        ));
    }
}
