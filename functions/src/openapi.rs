//! The OpenAPI 3 document, generated from the route table and the request and response
//! types, so it covers every route by construction.

use std::collections::BTreeMap;

use http::Method;
use serde_json::Value;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, ParameterStyle, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, Content, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder,
    Ref, RefOr, Required, Response, ResponseBuilder, ResponsesBuilder, Schema,
};

use fanout::error::{ApiError, ErrorBody};
use fanout::health::Health;
use fanout::query::{MAX_IDS_IN_FILTER, PAGE_DEPTH_MAX, PAGE_SIZE_MAX};
use fanout::tasks::api::ResultEnvelope;
use fanout::tasks::model::TaskType;

use crate::routes::{Access, AccountIn, NamedSchema, Route, documented, schema_of};

/// Builds the document.
pub fn spec() -> OpenApi {
    let mut schemas: BTreeMap<String, RefOr<Schema>> = BTreeMap::new();
    let mut remember = |named: NamedSchema| {
        schemas.insert(named.name.clone(), named.schema);
        schemas.extend(named.nested);
        named.name
    };
    let error_schema = remember(schema_of::<ErrorBody>());
    let health_schema = remember(schema_of::<Health>());
    let envelope_schema = remember(schema_of::<ResultEnvelope>());
    let mut paths = PathsBuilder::new();
    for route in documented() {
        let mut op = OperationBuilder::new()
            .operation_id(Some(route.name))
            .summary(Some(route.doc.summary))
            .parameter(
                ParameterBuilder::new()
                    .name("Luna-Request-Id")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .schema(Some(string_with_pattern(REQUEST_ID_PATTERN)))
                    .description(Some(
                        "`<unix time>,<uuid>`; generated when absent, echoed in the answer",
                    )),
            );
        if route.name == "create_events" {
            op = op.parameter(
                ParameterBuilder::new()
                    .name("Idempotency-Key")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .schema(Some(string_with_pattern("^[!-~]{1,255}$")))
                    .description(Some(
                        "1 to 255 printable ASCII characters without spaces; a repeat with the same key and body stores each event once",
                    )),
            );
        }
        if !route.is_public() {
            op = op.security(SecurityRequirement::new(BEARER, Vec::<String>::new()));
        }
        for segment in route.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                let (schema, description) = path_schema(name);
                op = op.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .schema(Some(schema))
                        .description(Some(description)),
                );
            }
        }
        for name in route.doc.query {
            op = op.parameter(query_parameter(route, name));
        }
        if let Some(body) = route.doc.body {
            let named = body();
            let media_types = named.media_types;
            let name = remember(named);
            let mut request = RequestBodyBuilder::new().required(Some(Required::True));
            for media_type in media_types {
                request = request.content(*media_type, content_of(&name));
            }
            op = op.request_body(Some(request.build()));
        }
        let mut ok = ResponseBuilder::new().description(if route.doc.status == 302 {
            "redirect: `Location` names where to go"
        } else {
            "success"
        });
        if let Some(response) = route.doc.response {
            let named = response();
            let media_types = named.media_types;
            let name = remember(named);
            for media_type in media_types {
                ok = ok.content(*media_type, content_of(&name));
            }
        } else {
            if route.name == "get_task_result" {
                ok = ok.content("application/json", content_of(&envelope_schema));
            }
            for (media_type, schema) in untyped_success(route) {
                ok = ok.content(
                    media_type,
                    ContentBuilder::new().schema(Some(schema)).build(),
                );
            }
        }
        let mut responses =
            ResponsesBuilder::new().response(route.doc.status.to_string(), ok.build());
        if route.name == "get_task_result" {
            responses = responses.response(
                "302",
                ResponseBuilder::new()
                    .description("the result is in S3: `Location` is a presigned URL (large results, or a `Range` request)")
                    .build(),
            );
        }
        for (status, description) in error_statuses(route) {
            responses = responses.response(
                status.to_string(),
                error_response(&error_schema, description),
            );
        }
        if route.name == "healthcheck" {
            responses = responses.response(
                "502",
                ResponseBuilder::new()
                    .description("a dependency did not answer: the same body, its failed components carrying an error")
                    .content("application/json", content_of(&health_schema))
                    .build(),
            );
        }
        responses = responses.response(
            "5XX",
            error_response(&error_schema, "internal error or unavailable dependency"),
        );
        op = op.responses(responses.build());
        paths = paths.path(
            route.path,
            PathItem::new(http_method(&route.method), op.build()),
        );
    }
    let mut components = ComponentsBuilder::new().security_scheme(
        BEARER,
        SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
    );
    for (name, schema) in schemas {
        components = components.schema(name, schema);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Fanout")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Serverless batch tasks with a LUNA Tasks compatible API. Every object is scoped by account_id. \
                     Every route but GET /version, GET /1/healthcheck and the documentation (GET /1/docs/spec, GET /docs/spec, GET /docs/dev, GET /docs/dev/index.html) takes `Authorization: Bearer <token>`.",
                )),
        )
        .paths(paths.build())
        .components(Some(components.build()))
        .build()
}

/// Name of the security scheme: `Authorization: Bearer <token>`.
const BEARER: &str = "bearer";

/// `Luna-Request-Id`: ten digits of unix time, a comma, a lower-case hyphenated UUID.
const REQUEST_ID_PATTERN: &str =
    "^[0-9]{10},[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";

/// The error statuses a route can answer with (besides 5xx), each with when.
fn error_statuses(route: &Route) -> Vec<(u16, &'static str)> {
    let mut statuses = vec![(
        400,
        "bad request: unknown or malformed query parameter, bad Luna-Request-Id, body that fails validation",
    )];
    // Routes other than the public ones take a bearer token: without a valid one 401,
    // without the permission (or for another account) 403, past its rate limit 429.
    let public = route.is_public();
    if !public {
        statuses.push((
            401,
            "no bearer token, or an unknown, revoked or expired one",
        ));
        statuses.push((403, "the token may not do this, or not on this account"));
        statuses.push((
            404,
            "the object, or one it names, does not exist in the account",
        ));
    }
    if route.name == "create_account" {
        statuses.push((409, "an account with this id exists already"));
    }
    // Every route has a body limit, also those that take no body (a stray one).
    statuses.push((413, "the body is larger than the route accepts"));
    if route
        .doc
        .body
        .is_some_and(|body| body().name == "ImageBytes")
    {
        statuses.push((
            415,
            "the body is neither JPEG nor PNG, or contradicts its Content-Type",
        ));
    }
    if route.name == "create_events" {
        statuses.push((422, "the Idempotency-Key was used with another body"));
    }
    if !public {
        statuses.push((429, "the token sent more requests this minute than it may"));
    }
    statuses
}

/// A response with the error body.
fn error_response(error_schema: &str, description: &str) -> Response {
    ResponseBuilder::new()
        .description(format!(
            "{description}; body: `error_code`, `desc`, `detail`, `link`"
        ))
        .content("application/json", content_of(error_schema))
        .build()
}

/// Media types (and schemas) of a success answer whose type the route table leaves open.
fn untyped_success(route: &Route) -> Vec<(&'static str, Schema)> {
    let any_object = || Schema::Object(ObjectBuilder::new().schema_type(Type::Object).build());
    let text = || Schema::Object(ObjectBuilder::new().schema_type(Type::String).build());
    let binary = || {
        Schema::Object(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
                .build(),
        )
    };
    match route.name {
        "config" => vec![("application/json", any_object())],
        "docs_dev_page" => vec![("text/html", text())],
        "docs_spec" | "docs_spec_root" => vec![
            ("application/x-yaml", text()),
            ("application/json", any_object()),
            ("text/html", text()),
        ],
        // Its JSON answer is the result envelope (spec).
        "get_task_result" => vec![("application/zip", binary())],
        _ => Vec::new(),
    }
}

/// A string matching `pattern`.
fn string_with_pattern(pattern: &str) -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(pattern))
            .build(),
    )
}

fn uuid_schema() -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
            .build(),
    )
}

fn int_schema(min: u64, max: u64) -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(min as usize))
            .maximum(Some(max as usize))
            .build(),
    )
}

fn date_time_schema() -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .build(),
    )
}

/// A path parameter: integer ids for tasks and their errors, UUIDs otherwise.
fn path_schema(name: &str) -> (Schema, &'static str) {
    match name {
        "task_id" | "error_id" => (int_schema(1, u64::MAX), "integer id, >= 1"),
        _ => (uuid_schema(), "UUID"),
    }
}

/// One query parameter of `route` with the schema of the values the service accepts.
fn query_parameter(route: &Route, name: &str) -> ParameterBuilder {
    // No query parameter is required: an absent `account_id` is the token's account
    // (or every account, for an admin's token where the route allows it).
    let description = match (name, route.access) {
        (
            "account_id",
            Access::Token {
                account: AccountIn::Query { all_allowed: true },
                ..
            },
        ) => {
            "only this account's (UUID); default: the token's account, or every account for an admin's token"
        }
        ("account_id", _) => {
            "the account acted on (UUID); default: the token's account; another than the token's is 403 unless the token is an admin's"
        }
        _ => query_doc(name),
    };
    let mut parameter = ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description));
    if let Some(items) = list_items(name) {
        // `a,b,c`: an array serialized without explode.
        let array = ArrayBuilder::new()
            .items(RefOr::T(items))
            .min_items(Some(1))
            .max_items(Some(MAX_IDS_IN_FILTER));
        parameter = parameter
            .schema(Some(Schema::Array(array.build())))
            .style(Some(ParameterStyle::Form))
            .explode(Some(false));
    } else {
        parameter = parameter.schema(Some(scalar_query_schema(name)));
    }
    parameter
}

/// Items of a comma-separated list parameter; `None` for a single value.
fn list_items(name: &str) -> Option<Schema> {
    match name {
        "face_ids" | "list_ids" | "event_ids" | "handler_ids" | "stream_ids" => Some(uuid_schema()),
        "task_ids" | "error_ids" => Some(int_schema(1, u64::MAX)),
        "sources" | "track_ids" | "tags" | "external_ids" | "emotions" => {
            // Items are trimmed; one with no other character than blanks is refused.
            Some(string_with_pattern("^[^,]*[^,\\s][^,]*$"))
        }
        _ => None,
    }
}

/// The schema of a single-valued query parameter.
fn scalar_query_schema(name: &str) -> Schema {
    match name {
        "account_id" | "list_id" | "result_id" => uuid_schema(),
        // page x page_size may not pass the listing depth: no page above it is valid.
        "page" => int_schema(1, PAGE_DEPTH_MAX),
        "page_size" => int_schema(1, u64::from(PAGE_SIZE_MAX)),
        "gender" | "include_luna_services" => int_schema(0, 1),
        "age__gte" => int_schema(0, 200),
        "age__lt" => int_schema(0, 201),
        "task_type" => Schema::Object(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .enum_values(Some(TaskType::ALL.map(|t| t as u8)))
                .build(),
        ),
        "task_status" => int_schema(0, 5),
        "error_code" => int_schema(0, u64::from(u32::MAX)),
        "status_code" => int_schema(400, 599),
        n if n.ends_with("_time__gte") || n.ends_with("_time__lt") => date_time_schema(),
        _ => Schema::Object(ObjectBuilder::new().schema_type(Type::String).build()),
    }
}

/// The document as YAML.
pub fn yaml() -> Result<String, ApiError> {
    spec()
        .to_yaml()
        .map_err(|e| ApiError::internal("openapi yaml", e))
}

/// The document as JSON.
pub fn json() -> Result<String, ApiError> {
    spec()
        .to_pretty_json()
        .map_err(|e| ApiError::internal("openapi json", e))
}

/// Where the rendered document is served (`GET /docs/dev` redirects here).
pub const HTML_PAGE: &str = "/docs/dev/index.html";

/// The HTTP methods of a path item, in the order the page shows them.
const PAGE_METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The document rendered as one self-contained HTML page: built here from the document
/// itself (no script, no stylesheet or font from elsewhere), every operation with its
/// parameters, request body and answers, then every schema. Each operation is a
/// `section.operation` with `data-method` and `data-path` and the id `op-<operationId>`;
/// each schema a `section.schema` with the id `schema-<name>`.
pub fn html() -> String {
    let doc = serde_json::to_value(spec()).unwrap_or_default();
    let version = doc["info"]["version"].as_str().unwrap_or_default();
    let mut toc = String::new();
    let mut operations = String::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for method in PAGE_METHODS {
            let Some(op) = item.get(method).filter(|op| op.is_object()) else {
                continue;
            };
            let id = op["operationId"].as_str().unwrap_or_default();
            let summary = op["summary"].as_str().unwrap_or_default();
            let upper = method.to_ascii_uppercase();
            toc.push_str(&format!(
                "<li><a href=\"#op-{id}\"><code>{upper} {}</code></a> {}</li>\n",
                escape(path),
                escape(summary)
            ));
            operations.push_str(&operation_html(&upper, path, op));
        }
    }
    let mut schemas = String::new();
    for (name, schema) in doc["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
    {
        schemas.push_str(&schema_html(name, schema));
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Fanout API {version}</title>\n<style>{PAGE_STYLE}</style></head>\n<body>\n\
         <h1>Fanout API {version}</h1>\n<p>{}</p>\n\
         <p>This page is the OpenAPI document of this service, rendered by it. The document \
         itself: <code>GET /docs/spec</code> with <code>Accept: application/x-yaml</code> \
         (YAML) or <code>Accept: application/json</code> (JSON).</p>\n\
         <nav><h2>Operations</h2>\n<ul>\n{toc}</ul></nav>\n\
         <main>\n<h2>Operations</h2>\n{operations}<h2>Schemas</h2>\n{schemas}</main>\n\
         </body></html>\n",
        escape(doc["info"]["description"].as_str().unwrap_or_default()),
    )
}

/// The page's whole styling, inline.
const PAGE_STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;\
padding:0 1em;line-height:1.4}code{font-family:ui-monospace,monospace}\
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.25em .5em;\
text-align:left;vertical-align:top}section{border-top:1px solid #ddd;padding:.5em 0}\
.method{font-weight:bold;text-transform:uppercase}.access{color:#555}";

/// One operation: method, path, summary, who may call it, parameters, body, answers.
fn operation_html(method: &str, path: &str, op: &Value) -> String {
    let id = op["operationId"].as_str().unwrap_or_default();
    let access = if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
        "Needs <code>Authorization: Bearer &lt;token&gt;</code>."
    } else {
        "Public: no token."
    };
    let mut out = format!(
        "<section class=\"operation\" id=\"op-{id}\" data-method=\"{method}\" data-path=\"{}\">\n\
         <h3><span class=\"method\">{method}</span> <code class=\"path\">{}</code></h3>\n\
         <p class=\"summary\">{}</p>\n<p class=\"access\">{access} Operation id: <code>{id}</code>.</p>\n",
        escape(path),
        escape(path),
        escape(op["summary"].as_str().unwrap_or_default()),
    );
    if let Some(parameters) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
        out.push_str(
            "<h4>Parameters</h4>\n<table class=\"parameters\"><tr><th>name</th><th>in</th>\
             <th>required</th><th>type</th><th>description</th></tr>\n",
        );
        for parameter in parameters {
            out.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                escape(parameter["name"].as_str().unwrap_or_default()),
                escape(parameter["in"].as_str().unwrap_or_default()),
                if parameter["required"] == true {
                    "yes"
                } else {
                    "no"
                },
                type_html(&parameter["schema"]),
                escape(parameter["description"].as_str().unwrap_or_default()),
            ));
        }
        out.push_str("</table>\n");
    }
    if let Some(content) = op["requestBody"]["content"].as_object() {
        out.push_str("<h4>Request body</h4>\n<ul class=\"body\">\n");
        for (media_type, body) in content {
            out.push_str(&format!(
                "<li><code>{}</code>: {}</li>\n",
                escape(media_type),
                type_html(&body["schema"])
            ));
        }
        out.push_str("</ul>\n");
    }
    out.push_str(
        "<h4>Answers</h4>\n<table class=\"responses\"><tr><th>status</th><th>description</th>\
         <th>body</th></tr>\n",
    );
    for (status, response) in op["responses"].as_object().into_iter().flatten() {
        let bodies: Vec<String> = response["content"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(media_type, body)| {
                format!(
                    "<code>{}</code>: {}",
                    escape(media_type),
                    type_html(&body["schema"])
                )
            })
            .collect();
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(status),
            escape(response["description"].as_str().unwrap_or_default()),
            bodies.join("<br>")
        ));
    }
    out.push_str("</table>\n</section>\n");
    out
}

/// One component schema: its description and its properties (or its type).
fn schema_html(name: &str, schema: &Value) -> String {
    let mut out = format!(
        "<section class=\"schema\" id=\"schema-{}\">\n<h3>{}</h3>\n",
        escape(name),
        escape(name)
    );
    if let Some(description) = schema["description"].as_str() {
        out.push_str(&format!("<p>{}</p>\n", escape(description)));
    }
    match schema["properties"].as_object() {
        Some(properties) => {
            let required: Vec<&str> = schema["required"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            out.push_str(
                "<table class=\"properties\"><tr><th>field</th><th>type</th><th>required</th>\
                 <th>description</th></tr>\n",
            );
            for (field, property) in properties {
                out.push_str(&format!(
                    "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                    escape(field),
                    type_html(property),
                    if required.contains(&field.as_str()) {
                        "yes"
                    } else {
                        "no"
                    },
                    escape(property["description"].as_str().unwrap_or_default()),
                ));
            }
            out.push_str("</table>\n");
        }
        None => out.push_str(&format!("<p>Type: {}</p>\n", type_html(schema))),
    }
    out.push_str("</section>\n");
    out
}

/// A schema's type in a few words, references as links to their schema.
fn type_html(schema: &Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return format!("<a href=\"#schema-{}\">{}</a>", escape(name), escape(name));
    }
    for combined in ["oneOf", "anyOf", "allOf"] {
        if let Some(choices) = schema[combined].as_array() {
            let shown: Vec<String> = choices.iter().map(type_html).collect();
            let joint = if combined == "allOf" { " and " } else { " or " };
            return shown.join(joint);
        }
    }
    let mut shown = match &schema["type"] {
        Value::String(name) => escape(name),
        Value::Array(names) => names
            .iter()
            .filter_map(Value::as_str)
            .map(escape)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any".to_string(),
    };
    if shown.contains("array") {
        shown = format!("{shown} of {}", type_html(&schema["items"]));
    }
    if let Some(format) = schema["format"].as_str() {
        shown.push_str(&format!(" ({})", escape(format)));
    }
    if let Some(values) = schema["enum"].as_array() {
        let values: Vec<String> = values.iter().map(|v| escape(&v.to_string())).collect();
        shown.push_str(&format!(", one of {}", values.join(", ")));
    }
    for (bound, word) in [("minimum", "≥"), ("maximum", "≤")] {
        if let Some(limit) = schema[bound].as_number() {
            shown.push_str(&format!(" {word} {limit}"));
        }
    }
    shown
}

/// A body of the named component schema.
fn content_of(schema_name: &str) -> Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(schema_name)))
        .build()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn http_method(method: &Method) -> HttpMethod {
    match *method {
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::PATCH => HttpMethod::Patch,
        Method::DELETE => HttpMethod::Delete,
        _ => HttpMethod::Get,
    }
}

fn query_doc(name: &str) -> &'static str {
    match name {
        "page" => "page number, >= 1, default 1; page x page_size at most 10000",
        "page_size" => "items per page, 1..100, default 10",
        "age__gte" => "included lower bound of age",
        "include_luna_services" => {
            "0 (default) or 1; Fanout has no dependent LUNA services, so both check its own dependencies (DynamoDB, SQS, S3)"
        }
        "age__lt" => "excluded upper bound of age",
        n if n.ends_with("__gte") => "included lower bound (RFC 3339 date-time with offset)",
        n if n.ends_with("__lt") => "excluded upper bound (RFC 3339 date-time with offset)",
        n if list_items(n).is_some() => "comma-separated values (at most 100)",
        _ => "exact value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn document_covers_exactly_the_route_table() {
        let spec = spec();
        let mut documented = BTreeSet::new();
        for (path, item) in &spec.paths.paths {
            for (method, op) in [
                ("GET", &item.get),
                ("POST", &item.post),
                ("PATCH", &item.patch),
                ("DELETE", &item.delete),
                ("PUT", &item.put),
            ] {
                if let Some(op) = op {
                    documented.insert((
                        method.to_string(),
                        path.clone(),
                        op.operation_id.clone().unwrap_or_default(),
                    ));
                }
            }
        }
        let table: BTreeSet<_> = crate::routes::documented()
            .map(|r| (r.method.to_string(), r.path.to_string(), r.name.to_string()))
            .collect();
        assert_eq!(documented, table);
    }

    #[test]
    fn image_routes_send_and_answer_image_bytes() {
        let spec = spec();
        let avatar = &spec.paths.paths["/1/faces/{face_id}/avatar"];
        let upload = avatar.put.as_ref().unwrap().request_body.as_ref().unwrap();
        let types: BTreeSet<_> = upload.content.keys().cloned().collect();
        assert_eq!(
            types,
            BTreeSet::from(["image/jpeg".into(), "image/png".into()])
        );
        let RefOr::T(ok) = &avatar.get.as_ref().unwrap().responses.responses["200"] else {
            panic!("200 is a reference");
        };
        assert!(ok.content.contains_key("image/png"));
        assert!(!ok.content.contains_key("application/json"));
        let yaml = yaml().unwrap();
        assert!(yaml.contains("format: binary"));
    }

    /// Found by schemathesis: no parameter had a schema, so no operation could be
    /// generated (an OpenAPI parameter needs `schema` or `content`).
    #[test]
    fn every_parameter_has_a_schema() {
        let spec = serde_json::to_value(spec()).unwrap();
        for (path, item) in spec["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for parameter in op["parameters"].as_array().unwrap() {
                    assert!(
                        parameter["schema"].is_object(),
                        "{method} {path}: {} has no schema",
                        parameter["name"]
                    );
                }
            }
        }
    }

    #[test]
    fn integer_ids_lists_and_optional_account_filters() {
        let spec = serde_json::to_value(spec()).unwrap();
        let parameter = |path: &str, method: &str, name: &str| {
            spec["paths"][path][method]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap_or_else(|| panic!("{method} {path} has no {name}"))
                .clone()
        };
        let task_id = parameter("/1/tasks/{task_id}", "get", "task_id");
        assert_eq!(task_id["schema"]["type"], "integer");
        assert_eq!(
            parameter("/1/faces/{face_id}", "get", "face_id")["schema"]["format"],
            "uuid"
        );
        let face_ids = parameter("/1/faces", "get", "face_ids");
        assert_eq!(face_ids["schema"]["type"], "array");
        assert_eq!(face_ids["explode"], false);
        for path in ["/1/faces", "/1/tasks"] {
            let account = parameter(path, "get", "account_id");
            assert_eq!(account["required"], false, "{path}: the token's by default");
        }
        let status = parameter("/1/tasks", "get", "task_status");
        assert_eq!(status["schema"]["type"], "integer", "a number, not a list");
        let page = parameter("/1/faces", "get", "page");
        assert_eq!(page["schema"]["maximum"], 10_000, "the listing depth");
        let schemas = &spec["components"]["schemas"];
        assert_eq!(
            schemas["NewEvents"]["properties"]["events"]["maxItems"],
            1000
        );
        assert_eq!(
            schemas["ListPatch"]["properties"]["face_ids"]["minItems"],
            1
        );
    }

    #[test]
    fn error_answers_are_listed_with_the_error_body() {
        let spec = spec();
        for route in documented() {
            let item = &spec.paths.paths[route.path];
            let op = match route.method {
                Method::GET => &item.get,
                Method::POST => &item.post,
                Method::PUT => &item.put,
                Method::PATCH => &item.patch,
                _ => &item.delete,
            };
            let responses = &op.as_ref().unwrap().responses.responses;
            assert!(
                !responses.contains_key("4XX"),
                "{}: exact statuses",
                route.name
            );
            for status in ["400", "413", "5XX"] {
                assert!(responses.contains_key(status), "{} {status}", route.name);
            }
            for status in ["401", "403", "429"] {
                assert_eq!(
                    responses.contains_key(status),
                    !route.is_public(),
                    "{} {status}",
                    route.name
                );
            }
            let RefOr::T(bad) = &responses["400"] else {
                panic!("400 is a reference");
            };
            let json = serde_json::to_string(&bad.content["application/json"]).unwrap();
            assert!(json.contains("ErrorBody"), "{}: {json}", route.name);
        }
        let public: Vec<_> = documented()
            .filter(|r| r.is_public())
            .map(|r| r.name)
            .collect();
        assert_eq!(
            public,
            [
                "version",
                "healthcheck",
                "docs_spec",
                "docs_spec_root",
                "docs_dev",
                "docs_dev_page"
            ]
        );
        let avatar = &spec.paths.paths["/1/faces/{face_id}/avatar"];
        let upload = &avatar.put.as_ref().unwrap().responses.responses;
        for status in ["404", "413", "415"] {
            assert!(upload.contains_key(status), "avatar upload {status}");
        }
        let events = &spec.paths.paths["/1/events"]
            .post
            .as_ref()
            .unwrap()
            .responses;
        assert!(events.responses.contains_key("422"));
    }

    /// Seed 000: a result is `{"result", "errors"}` (archives stay files); cancel and
    /// delete answer `{}`.
    #[test]
    fn task_answers_are_documented_as_the_seeds_samples() {
        let spec = serde_json::to_value(spec()).unwrap();
        let result = &spec["paths"]["/1/tasks/{task_id}/result"]["get"]["responses"];
        assert_eq!(
            result["200"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ResultEnvelope"
        );
        assert!(result["200"]["content"]["application/zip"].is_object());
        let envelope = &spec["components"]["schemas"]["ResultEnvelope"];
        let mut fields: Vec<&str> = envelope["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort();
        assert_eq!(fields, ["errors", "result"]);
        assert_eq!(
            envelope["properties"]["errors"]["items"]["$ref"],
            "#/components/schemas/TaskError"
        );
        for method in ["patch", "delete"] {
            let responses = &spec["paths"]["/1/tasks/{task_id}"][method]["responses"];
            assert!(responses["204"].is_null(), "{method}: {responses}");
            assert_eq!(
                responses["200"]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/EmptyObject",
                "{method}"
            );
        }
        let empty = &spec["components"]["schemas"]["EmptyObject"];
        assert_eq!(empty["type"], "object");
        assert_eq!(empty["additionalProperties"], false);
    }

    /// The page at /docs/dev/index.html, read by an HTML5 parser: one `section.operation`
    /// per operation of the document (method and path), every in-page link leads to an
    /// element of the page, and nothing comes from elsewhere (no script, no stylesheet,
    /// no external link or image).
    #[test]
    fn the_rendered_page_lists_exactly_the_documents_operations() {
        use scraper::{Html, Selector};
        let page = Html::parse_document(&html());
        assert!(page.errors.is_empty(), "parse errors: {:?}", page.errors);
        let select = |css: &str| Selector::parse(css).unwrap();
        let mut rendered = BTreeSet::new();
        for section in page.select(&select("section.operation")) {
            let element = section.value();
            let method = element.attr("data-method").unwrap().to_string();
            let path = element.attr("data-path").unwrap().to_string();
            let shown: String = section
                .select(&select("h3 code.path"))
                .next()
                .unwrap()
                .text()
                .collect();
            assert_eq!(shown, path);
            assert!(rendered.insert((method, path)), "an operation twice");
        }
        let document = serde_json::to_value(spec()).unwrap();
        let mut operations = BTreeSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                operations.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
        assert_eq!(rendered, operations);
        assert!(rendered.contains(&("GET".into(), "/docs/dev/index.html".into())));

        let ids: BTreeSet<&str> = page
            .select(&select("[id]"))
            .filter_map(|e| e.value().attr("id"))
            .collect();
        let schemas = document["components"]["schemas"].as_object().unwrap();
        for name in schemas.keys() {
            assert!(ids.contains(format!("schema-{name}").as_str()), "{name}");
        }
        let links: Vec<&str> = page
            .select(&select("a[href]"))
            .filter_map(|a| a.value().attr("href"))
            .collect();
        assert!(
            links.len() > rendered.len(),
            "a contents list and schema links"
        );
        for href in links {
            let target = href.strip_prefix('#').unwrap_or_else(|| panic!("{href}"));
            assert!(ids.contains(target), "{href} leads nowhere");
        }
        for outside in ["script", "link", "img", "iframe", "[src]"] {
            assert_eq!(page.select(&select(outside)).count(), 0, "{outside}");
        }
        let parameters: Vec<String> = page
            .select(&select("#op-list_faces table.parameters td code"))
            .map(|c| c.text().collect())
            .collect();
        assert!(
            parameters.contains(&"face_ids".to_string()),
            "{parameters:?}"
        );
    }

    #[test]
    fn every_referenced_schema_is_defined() {
        let yaml = yaml().unwrap();
        let components = spec().components.unwrap();
        for line in yaml.lines().filter(|l| l.contains("$ref")) {
            let name = line
                .rsplit('/')
                .next()
                .unwrap()
                .trim_matches(|c| c == '\'' || c == '"' || c == ' ');
            assert!(
                components.schemas.contains_key(name),
                "{name} is referenced but not defined"
            );
        }
    }
}
