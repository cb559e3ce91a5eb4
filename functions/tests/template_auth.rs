//! Authentication and throttling in the infrastructure template: every route but the
//! public ones is behind the HTTP API's Lambda authorizer, which only reads the table;
//! every authenticated route may count its request (the per-token rate limit) but read
//! routes may write nothing else; the template holds no secret; the account, token and
//! task-creation routes are throttled more tightly than the rest.
//!
//! The checks run over the route table, so a new route is covered without a change here.

use std::collections::BTreeSet;

use fanout::store::keys;
use fanout_functions::routes::{ROUTES, Route};
use serde_norway::Value;
use uuid::Uuid;

/// What the authorizer function serves (`FANOUT_FUNCTION`).
const AUTHORIZER: &str = "authorize";

/// API Gateway waits this long for a Lambda authorizer of an HTTP API (quota, seconds).
const AUTHORIZER_WAIT_SECONDS: u64 = 10;

/// Longest caching of an authorizer's answer API Gateway allows (seconds).
const MAX_AUTHORIZER_CACHE_SECONDS: u64 = 300;

/// Partition-key pattern of the per-token request counters (`keys::rate_pk`), the only
/// items a read route may update.
const COUNTER_KEYS: &str = "RATE#*";

/// Routes anyone may call without a token (their HttpApi event says
/// `Auth: Authorizer: NONE`).
fn is_public(route: &Route) -> bool {
    route.is_public()
}

/// Account and token administration.
fn is_account_or_token_route(route: &Route) -> bool {
    ["/1/accounts", "/1/tokens"]
        .iter()
        .any(|base| route.path == *base || route.path.starts_with(&format!("{base}/")))
}

fn is_task_creation_route(route: &Route) -> bool {
    route.name.starts_with("create_") && route.name.ends_with("_task")
}

/// `METHOD /path`, as API Gateway keys routes.
fn route_key(route: &Route) -> String {
    format!("{} {}", route.api_method(), route.path)
}

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml");
    let text = std::fs::read_to_string(path).expect("infra/template.yaml");
    serde_norway::from_str(&text).expect("template is plain YAML")
}

/// A template fragment written as YAML, to compare nodes with.
fn yaml(text: &str) -> Value {
    serde_norway::from_str(text).expect("YAML fragment")
}

/// The one HTTP API's logical id and properties.
fn http_api(template: &Value) -> (&str, &Value) {
    let apis: Vec<_> = template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::HttpApi"))
        .map(|(id, r)| (id.as_str().expect("logical id"), &r["Properties"]))
        .collect();
    assert_eq!(apis.len(), 1, "one HttpApi");
    apis[0]
}

/// The function serving `name` (its `FANOUT_FUNCTION`), as (logical id, resource).
fn function<'a>(template: &'a Value, name: &str) -> (&'a str, &'a Value) {
    template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some("AWS::Serverless::Function"))
        .find(|(_, r)| {
            r["Properties"]["Environment"]["Variables"]["FANOUT_FUNCTION"].as_str() == Some(name)
        })
        .map(|(id, r)| (id.as_str().expect("logical id"), r))
        .unwrap_or_else(|| panic!("no function serves {name}"))
}

/// The single HttpApi event of a route's function.
fn route_event<'a>(template: &'a Value, route: &Route) -> &'a Value {
    let (id, resource) = function(template, route.name);
    let events = resource["Properties"]["Events"]
        .as_mapping()
        .unwrap_or_else(|| panic!("{id} has no event"));
    let event = events.values().next().expect("one event");
    assert_eq!(event["Type"].as_str(), Some("HttpApi"), "{id}");
    event
}

/// A number, or the `Default` of the Number parameter it names by `Ref` (with the
/// parameter, for its bounds).
fn number_or_parameter<'a>(template: &'a Value, node: &'a Value) -> (f64, Option<&'a Value>) {
    if let Some(name) = node["Ref"].as_str() {
        let parameter = &template["Parameters"][name];
        assert_eq!(parameter["Type"].as_str(), Some("Number"), "{name}");
        let default = parameter["Default"]
            .as_f64()
            .unwrap_or_else(|| panic!("{name} has no numeric Default"));
        (default, Some(parameter))
    } else {
        let value = node.as_f64().unwrap_or_else(|| panic!("{node:?}"));
        (value, None)
    }
}

#[test]
fn the_default_authorizer_is_the_lambda_authorizer() {
    let template = template();
    let (api, properties) = http_api(&template);
    let auth = &properties["Auth"];
    let name = auth["DefaultAuthorizer"]
        .as_str()
        .unwrap_or_else(|| panic!("{api} has no DefaultAuthorizer"));
    let authorizer = &auth["Authorizers"][name];
    assert!(authorizer.is_mapping(), "{api}: no authorizer {name}");

    let (function_id, _) = function(&template, AUTHORIZER);
    assert_eq!(
        authorizer["FunctionArn"],
        yaml(&format!("Fn::GetAtt: [{function_id}, Arn]")),
        "{name}: a Lambda (REQUEST) authorizer running {function_id}"
    );
    assert!(authorizer["JwtConfiguration"].is_null(), "{name}");
    let version = &authorizer["AuthorizerPayloadFormatVersion"];
    assert!(
        version.as_str() == Some("2.0") || version.as_f64() == Some(2.0),
        "{name}: payload format {version:?}"
    );
    assert_eq!(authorizer["EnableSimpleResponses"].as_bool(), Some(true));
    // SAM grants API Gateway the invoke permission; no invoke role of our own.
    assert_eq!(
        authorizer["EnableFunctionDefaultPermissions"].as_bool(),
        Some(true)
    );
    assert!(authorizer["FunctionInvokeRole"].is_null(), "{name}");

    let identity = &authorizer["Identity"];
    assert_eq!(identity["Headers"], yaml("[Authorization]"), "{name}");
    for other in ["QueryStrings", "StageVariables", "Context"] {
        assert!(identity[other].is_null(), "{name}: identity source {other}");
    }
    let (cache, parameter) = number_or_parameter(&template, &identity["ReauthorizeEvery"]);
    let max = MAX_AUTHORIZER_CACHE_SECONDS as f64;
    assert!((0.0..=max).contains(&cache), "{name}: cached {cache} s");
    if let Some(parameter) = parameter {
        assert!(
            parameter["MinValue"].as_f64().is_some_and(|v| v >= 0.0),
            "{name}: cache parameter MinValue"
        );
        assert!(
            parameter["MaxValue"].as_f64().is_some_and(|v| v <= max),
            "{name}: cache parameter MaxValue"
        );
    }
}

/// Every route is behind the default authorizer except the public ones, which opt out;
/// no route names another authorizer.
#[test]
fn exactly_the_public_routes_opt_out_of_the_authorizer() {
    let template = template();
    let (_, api) = http_api(&template);
    let default = api["Auth"]["DefaultAuthorizer"]
        .as_str()
        .expect("DefaultAuthorizer");
    let mut public = BTreeSet::new();
    for route in ROUTES {
        let auth = &route_event(&template, route)["Properties"]["Auth"];
        let authorizer = auth["Authorizer"].as_str();
        if authorizer == Some("NONE") {
            assert_eq!(auth, &yaml("Authorizer: NONE"), "{}", route.name);
            public.insert(route.name);
        } else {
            assert!(
                authorizer.is_none() || authorizer == Some(default),
                "{}: authorizer {authorizer:?}",
                route.name
            );
            assert!(
                auth.is_null() || auth == &yaml(&format!("Authorizer: {default}")),
                "{}: Auth {auth:?}",
                route.name
            );
        }
    }
    let expected: BTreeSet<&str> = ROUTES
        .iter()
        .filter(|r| is_public(r))
        .map(|r| r.name)
        .collect();
    assert_eq!(public, expected, "routes without the authorizer");
}

#[test]
fn the_authorizer_reads_the_table_and_nothing_else() {
    let template = template();
    let (id, resource) = function(&template, AUTHORIZER);
    let properties = &resource["Properties"];
    assert_eq!(
        properties["Policies"],
        yaml("[{DynamoDBReadPolicy: {TableName: {Ref: FanoutTable}}}]"),
        "{id}: read-only table access"
    );
    for other in ["Role", "Events", "ReservedConcurrentExecutions"] {
        assert!(properties[other].is_null(), "{id}: {other}");
    }
    let timeout = properties["Timeout"].as_u64().expect("its own Timeout");
    assert!(
        timeout < AUTHORIZER_WAIT_SECONDS,
        "{id}: Timeout {timeout} s, API Gateway waits {AUTHORIZER_WAIT_SECONDS} s"
    );
    let memory = properties["MemorySize"]
        .as_u64()
        .expect("its own MemorySize");
    let global = template["Globals"]["Function"]["MemorySize"]
        .as_u64()
        .expect("global MemorySize");
    assert!(memory <= global, "{id}: MemorySize {memory}");
}

/// The policies of a function, split into SAM policy templates (name -> table) and
/// inline statements.
fn policies(resource: &Value) -> (Vec<(&str, &Value)>, Vec<&Value>) {
    let mut templates = Vec::new();
    let mut statements = Vec::new();
    for policy in resource["Properties"]["Policies"]
        .as_sequence()
        .into_iter()
        .flatten()
    {
        if let Some(list) = policy["Statement"].as_sequence() {
            statements.extend(list);
        } else if let Some(map) = policy.as_mapping() {
            for (name, value) in map {
                templates.push((name.as_str().expect("policy template name"), value));
            }
        } else {
            panic!("policy {policy:?}");
        }
    }
    (templates, statements)
}

/// The actions of a policy statement.
fn actions(statement: &Value) -> Vec<&str> {
    match &statement["Action"] {
        Value::String(action) => vec![action.as_str()],
        Value::Sequence(list) => list.iter().filter_map(Value::as_str).collect(),
        other => panic!("Action {other:?}"),
    }
}

/// Every authenticated route can count its request (functions/src/access.rs `admit`):
/// with `DynamoDBCrudPolicy`, or with an inline `dynamodb:UpdateItem` limited to the
/// counter items. No inline statement grants any other item access, and the public routes
/// write nothing to the table.
#[test]
fn authenticated_routes_may_update_only_their_request_counters() {
    let template = template();
    let table = yaml("{Ref: FanoutTable}");
    let table_arn = yaml("Fn::GetAtt: [FanoutTable, Arn]");
    let counters = yaml(&format!(
        r#"ForAllValues:StringLike: {{"dynamodb:LeadingKeys": ["{COUNTER_KEYS}"]}}"#
    ));
    let counter = keys::rate_pk(Uuid::nil());
    assert!(
        counter.starts_with(COUNTER_KEYS.trim_end_matches('*')),
        "{counter} does not match {COUNTER_KEYS}"
    );
    for route in ROUTES {
        let (id, resource) = function(&template, route.name);
        let (templates, statements) = policies(resource);
        let crud = templates
            .iter()
            .any(|(name, value)| *name == "DynamoDBCrudPolicy" && value["TableName"] == table);
        let mut counts = false;
        for statement in &statements {
            let sid = statement["Sid"].as_str().unwrap_or("?");
            // Table access beyond describing it (the healthcheck's).
            let uses_items = actions(statement)
                .into_iter()
                .any(|a| a.starts_with("dynamodb:") && a != "dynamodb:DescribeTable");
            if !uses_items {
                continue;
            }
            assert_eq!(
                actions(statement),
                ["dynamodb:UpdateItem"],
                "{id}/{sid}: table access beyond the request counter"
            );
            assert_eq!(statement["Effect"].as_str(), Some("Allow"), "{id}/{sid}");
            assert_eq!(statement["Resource"], table_arn, "{id}/{sid}");
            assert_eq!(
                statement["Condition"], counters,
                "{id}/{sid}: UpdateItem must be limited to the counter items"
            );
            counts = true;
        }
        if is_public(route) {
            assert!(!crud && !counts, "{id}: a public route writes to the table");
            assert!(
                !templates
                    .iter()
                    .any(|(name, _)| name.starts_with("DynamoDB")),
                "{id}: a public route needs no table policy"
            );
        } else {
            assert!(
                crud || counts,
                "{id}: {} cannot update its request counter",
                route.name
            );
            assert!(
                !(crud && counts),
                "{id}: CountRequests is redundant with CRUD"
            );
        }
    }
}

/// Account and token routes read and write account and token items, and reach nothing
/// else (no queue, no bucket).
#[test]
fn account_and_token_routes_use_the_table_only() {
    let template = template();
    let routes: Vec<&Route> = ROUTES
        .iter()
        .filter(|r| is_account_or_token_route(r))
        .collect();
    assert_eq!(routes.len(), 10, "create, list, get, patch, delete x 2");
    for route in routes {
        assert!(!is_public(route), "{}", route.name);
        let (id, resource) = function(&template, route.name);
        assert_eq!(
            resource["Properties"]["Policies"],
            yaml("[{DynamoDBCrudPolicy: {TableName: {Ref: FanoutTable}}}]"),
            "{id}"
        );
    }
}

/// Names that, with a literal value, would put a credential in the template.
fn secret_name(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    [
        "SECRET",
        "PASSWORD",
        "TOKEN",
        "PRIVATE_KEY",
        "API_KEY",
        "APIKEY",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// A Fanout token (`fo_<token_id>_<secret>`) in a string.
fn holds_token(text: &str) -> bool {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .any(|word| word.len() > "fo_".len() && word.to_ascii_lowercase().starts_with("fo_"))
}

/// Secrets in a template node: strings that hold a token, and literal values of keys
/// (mapping keys, or `Name` of a `Name`/`Value` pair as in container environments)
/// named like a secret. `at` is the node's path.
fn secrets(node: &Value, at: &str, out: &mut Vec<String>) {
    let literal = |v: &Value| match v {
        Value::String(s) => !s.is_empty(),
        Value::Number(_) | Value::Bool(_) => true,
        _ => false,
    };
    match node {
        Value::String(s) if holds_token(s) => out.push(format!("{at}: a token")),
        Value::Mapping(map) => {
            if let Some(name) = map.get("Name").and_then(Value::as_str)
                && secret_name(name)
                && map.get("Value").is_some_and(literal)
            {
                out.push(format!("{at}: {name} has a literal Value"));
            }
            for (key, value) in map {
                let key = key.as_str().unwrap_or("?");
                if secret_name(key) && literal(value) {
                    out.push(format!("{at}.{key}: literal value"));
                }
                secrets(value, &format!("{at}.{key}"), out);
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                secrets(item, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Parameters named like a secret: no default, and hidden from the console.
fn secret_parameters(template: &Value, out: &mut Vec<String>) {
    for (name, parameter) in template["Parameters"].as_mapping().into_iter().flatten() {
        let name = name.as_str().unwrap_or("?");
        if !secret_name(name) {
            continue;
        }
        let has_default = match &parameter["Default"] {
            Value::Null => false,
            Value::String(s) => !s.is_empty(),
            _ => true,
        };
        if has_default {
            out.push(format!("Parameters.{name}: a default"));
        }
        let no_echo = &parameter["NoEcho"];
        if no_echo.as_bool() != Some(true) && no_echo.as_str() != Some("true") {
            out.push(format!("Parameters.{name}: NoEcho is not true"));
        }
    }
}

/// The template holds no credential: the first admin token is made after the deploy
/// (`fanout-admin bootstrap`) and lives in the table only.
#[test]
fn the_template_holds_no_secret() {
    let template = template();
    let mut found = Vec::new();
    secrets(&template, "", &mut found);
    secret_parameters(&template, &mut found);
    assert!(found.is_empty(), "{found:#?}");
}

/// The secret check finds what it looks for.
#[test]
fn the_secret_check_finds_tokens_and_literal_secrets() {
    let bad = yaml(
        r#"
Parameters:
  AdminToken:
    Type: String
    Default: anything
  Other:
    Type: String
    Default: "fo_0123456789abcdef0123456789abcdef_s3cr3t"
Resources:
  F:
    Properties:
      Environment:
        Variables:
          FANOUT_ADMIN_TOKEN: abc
          FANOUT_DB_PASSWORD: {Ref: Other}
  T:
    Properties:
      ContainerDefinitions:
        - Environment:
            - Name: API_SECRET
              Value: xyz
"#,
    );
    let mut found = Vec::new();
    secrets(&bad, "", &mut found);
    secret_parameters(&bad, &mut found);
    let found = found.join("\n");
    for expected in [
        "Parameters.AdminToken: a default",
        "Parameters.AdminToken: NoEcho",
        "Parameters.Other.Default: a token",
        "FANOUT_ADMIN_TOKEN: literal value",
        "API_SECRET has a literal Value",
    ] {
        assert!(found.contains(expected), "{expected} not in:\n{found}");
    }
    assert!(!found.contains("FANOUT_DB_PASSWORD"), "{found}");
    assert!(!holds_token("info_text, FOO_BAR and fo_"));
}

#[test]
fn api_throttling_defaults_come_from_parameters() {
    let template = template();
    let (api, properties) = http_api(&template);
    let defaults = &properties["DefaultRouteSettings"];
    for (setting, parameter, default) in [
        ("ThrottlingRateLimit", "ApiThrottlingRateLimit", 100),
        ("ThrottlingBurstLimit", "ApiThrottlingBurstLimit", 200),
    ] {
        assert_eq!(
            defaults[setting]["Ref"].as_str(),
            Some(parameter),
            "{api} {setting}"
        );
        let parameter = &template["Parameters"][parameter];
        assert_eq!(parameter["Type"].as_str(), Some("Number"));
        assert_eq!(parameter["Default"].as_u64(), Some(default));
    }
}

/// The account, token and task-creation routes have route settings of their own, tighter
/// than the defaults; every route setting names a route of the table (API Gateway refuses
/// a stage whose settings name an unknown route).
#[test]
fn account_token_and_task_creation_routes_are_throttled_tighter() {
    let template = template();
    let (api, properties) = http_api(&template);
    let defaults = &properties["DefaultRouteSettings"];
    let (default_rate, _) = number_or_parameter(&template, &defaults["ThrottlingRateLimit"]);
    let (default_burst, _) = number_or_parameter(&template, &defaults["ThrottlingBurstLimit"]);
    let settings = properties["RouteSettings"]
        .as_mapping()
        .unwrap_or_else(|| panic!("{api} has no RouteSettings"));

    let keys: BTreeSet<String> = ROUTES.iter().map(route_key).collect();
    for key in settings.keys() {
        let key = key.as_str().expect("route key");
        assert!(keys.contains(key), "RouteSettings {key:?}: no such route");
    }

    let mut tight = 0;
    for route in ROUTES {
        if !(is_account_or_token_route(route) || is_task_creation_route(route)) {
            continue;
        }
        tight += 1;
        let key = route_key(route);
        let setting = settings
            .get(key.as_str())
            .unwrap_or_else(|| panic!("{key}: no route settings"));
        let rate = setting["ThrottlingRateLimit"]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}: ThrottlingRateLimit"));
        let burst = setting["ThrottlingBurstLimit"]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}: ThrottlingBurstLimit"));
        assert!(rate > 0.0 && rate < default_rate, "{key}: rate {rate}");
        assert!(
            burst >= rate && burst < default_burst,
            "{key}: burst {burst}"
        );
    }
    assert!(tight >= 17, "{tight} routes throttled tighter");
}
