//! The OpenAPI 3 document, generated from the route table and the request and response
//! types, so it covers every route by construction.

use std::collections::BTreeMap;

use http::Method;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::{
    ComponentsBuilder, Content, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder,
    Ref, RefOr, Required, ResponseBuilder, ResponsesBuilder, Schema,
};

use fanout::error::{ApiError, ErrorBody};

use crate::routes::{NamedSchema, ROUTES, schema_of};

/// Builds the document.
pub fn spec() -> OpenApi {
    let mut schemas: BTreeMap<String, RefOr<Schema>> = BTreeMap::new();
    let mut remember = |named: NamedSchema| {
        schemas.insert(named.name.clone(), named.schema);
        schemas.extend(named.nested);
        named.name
    };
    let error_schema = remember(schema_of::<ErrorBody>());
    let mut paths = PathsBuilder::new();
    for route in ROUTES {
        let mut op = OperationBuilder::new()
            .operation_id(Some(route.name))
            .summary(Some(route.doc.summary))
            .parameter(
                ParameterBuilder::new()
                    .name("Luna-Request-Id")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(
                        "`<unix time>,<uuid>`; generated when absent, echoed in the answer",
                    )),
            );
        for segment in route.path.split('/') {
            if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                op = op.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .description(Some("UUID")),
                );
            }
        }
        for name in route.doc.query {
            op = op.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Query)
                    .required(if *name == "account_id" {
                        Required::True
                    } else {
                        Required::False
                    })
                    .description(Some(query_doc(name))),
            );
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
        let mut ok = ResponseBuilder::new().description("success");
        if let Some(response) = route.doc.response {
            let named = response();
            let media_types = named.media_types;
            let name = remember(named);
            for media_type in media_types {
                ok = ok.content(*media_type, content_of(&name));
            }
        }
        let error = ResponseBuilder::new()
            .description("error: `error_code`, `desc`, `detail`, `link`")
            .content("application/json", content_of(&error_schema))
            .build();
        let responses = ResponsesBuilder::new()
            .response(route.doc.status.to_string(), ok.build())
            .response("4XX", error.clone())
            .response("5XX", error)
            .build();
        op = op.responses(responses);
        paths = paths.path(
            route.path,
            PathItem::new(http_method(&route.method), op.build()),
        );
    }
    let mut components = ComponentsBuilder::new();
    for (name, schema) in schemas {
        components = components.schema(name, schema);
    }
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Fanout")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Serverless batch tasks with a LUNA Tasks compatible API. Every object is scoped by account_id.",
                )),
        )
        .paths(paths.build())
        .components(Some(components.build()))
        .build()
}

/// The document as YAML.
pub fn yaml() -> Result<String, ApiError> {
    spec()
        .to_yaml()
        .map_err(|e| ApiError::internal("openapi yaml", e))
}

/// A self-contained HTML page listing the operations, with the JSON document inside.
pub fn html() -> String {
    let spec = spec();
    let mut rows = String::new();
    for route in ROUTES {
        rows.push_str(&format!(
            "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>\n",
            route.method,
            route.path,
            escape(route.doc.summary),
            route.doc.query.join(", ")
        ));
    }
    let json = spec.to_pretty_json().unwrap_or_default();
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Fanout API</title></head><body>\n\
         <h1>Fanout API {}</h1>\n<p>YAML: <code>curl -H 'Accept: application/x-yaml' /1/docs/spec</code></p>\n\
         <table border=\"1\" cellpadding=\"4\"><tr><th>method</th><th>path</th><th>summary</th><th>query</th></tr>\n{rows}</table>\n\
         <h2>OpenAPI document</h2>\n<pre>{}</pre>\n</body></html>\n",
        env!("CARGO_PKG_VERSION"),
        escape(&json)
    )
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
        "account_id" => "owner account (UUID), required",
        "page" => "page number, >= 1, default 1",
        "page_size" => "items per page, 1..100, default 10",
        n if n.ends_with("__gte") => {
            "included lower bound (RFC 3339 date-time, or integer for age)"
        }
        n if n.ends_with("__lt") => "excluded upper bound (RFC 3339 date-time, or integer for age)",
        n if n.ends_with('s') => "comma-separated values (at most 100)",
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
        let table: BTreeSet<_> = ROUTES
            .iter()
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
