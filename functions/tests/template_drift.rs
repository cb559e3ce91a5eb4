//! The infrastructure template and the route table describe the same functions:
//! one `AWS::Serverless::Function` per route, serving that route (its `FANOUT_FUNCTION`
//! names it), triggered by exactly that method and path. The only other functions are
//! the scheduled ones in [`SCHEDULED_FUNCTIONS`], the queue-fed ones in
//! [`QUEUE_FUNCTIONS`] and the HTTP API's Lambda authorizers in [`AUTHORIZER_FUNCTIONS`]
//! (no event: the API's `Auth` names them). Every function builds the one multi-call
//! binary, [`BINARY`], and every `FANOUT_FUNCTION` of the template is a name that binary
//! serves.

use std::collections::BTreeSet;

use fanout_functions::lambda;
use fanout_functions::routes::ROUTES;
use serde_norway::Value;

/// The binary every function builds (`Metadata.BuildProperties.Binary`).
const BINARY: &str = "lambda";

/// The functions triggered by a schedule (one `Schedule` event) instead of a route: not
/// in the route table, but built and deployed like the route functions.
const SCHEDULED_FUNCTIONS: &[&str] = &["reconcile"];

/// The functions fed by a queue (one `SQS` event).
const QUEUE_FUNCTIONS: &[&str] = &["control"];

/// The Lambda authorizers of the HTTP API: no event of their own, API Gateway invokes
/// them before a route (`Auth.Authorizers.<name>.FunctionArn` of the `HttpApi`).
const AUTHORIZER_FUNCTIONS: &[&str] = &["authorize"];

/// The resource names every function and the worker containers get from the template.
const RESOURCE_VARIABLES: &[&str] = &[
    "FANOUT_TABLE",
    "FANOUT_WORK_QUEUE_URL",
    "FANOUT_CONTROL_QUEUE_URL",
    "FANOUT_WORK_DLQ_URL",
    "FANOUT_CONTROL_DLQ_URL",
    "FANOUT_BUCKET",
];

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml");
    let text = std::fs::read_to_string(path).expect("infra/template.yaml");
    serde_norway::from_str(&text).expect("template is plain YAML")
}

/// Every `AWS::Serverless::Function` as (logical id, what it serves (its
/// `FANOUT_FUNCTION`), its single event, or none for an authorizer). Each must build
/// [`BINARY`].
fn functions(template: &Value) -> Vec<(String, String, Option<Value>)> {
    let resources = template["Resources"].as_mapping().expect("Resources");
    let mut out = Vec::new();
    for (id, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let id = id.as_str().expect("logical id").to_string();
        assert_eq!(
            resource["Metadata"]["BuildProperties"]["Binary"].as_str(),
            Some(BINARY),
            "{id:?} must build the {BINARY} binary"
        );
        assert_eq!(
            resource["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{id:?}"
        );
        let function = resource["Properties"]["Environment"]["Variables"]
            [lambda::FUNCTION_VARIABLE]
            .as_str()
            .unwrap_or_else(|| panic!("{id:?} sets no {}", lambda::FUNCTION_VARIABLE));
        let event = match resource["Properties"]["Events"].as_mapping() {
            None => None,
            Some(events) => {
                assert_eq!(events.len(), 1, "{id:?} must have exactly one trigger");
                events.values().next().cloned()
            }
        };
        out.push((id, function.to_string(), event));
    }
    out
}

#[test]
fn template_functions_match_the_route_table() {
    let template = template();
    let mut deployed = BTreeSet::new();
    let mut scheduled = BTreeSet::new();
    let mut queued = BTreeSet::new();
    let mut authorizers = BTreeSet::new();
    let invoked_by_api = authorizer_function_ids(&template);
    for (id, function, event) in functions(&template) {
        let Some(event) = event else {
            assert!(
                invoked_by_api.contains(&id),
                "{id:?} has no event and is no authorizer of an HttpApi"
            );
            authorizers.insert(function);
            continue;
        };
        match event["Type"].as_str() {
            Some("HttpApi") => {
                let method = event["Properties"]["Method"]
                    .as_str()
                    .unwrap()
                    .to_uppercase();
                let path = event["Properties"]["Path"].as_str().unwrap().to_string();
                deployed.insert((function, method, path));
            }
            Some("Schedule") => {
                scheduled.insert(function);
            }
            Some("SQS") => {
                queued.insert(function);
            }
            other => panic!("{id:?}: trigger {other:?} is not HttpApi, Schedule or SQS"),
        }
    }
    let table: BTreeSet<_> = ROUTES
        .iter()
        // ANY for the ClearML route, which takes every method (routes::Surface).
        .map(|r| {
            (
                r.name.to_string(),
                r.api_method().to_string(),
                r.path.to_string(),
            )
        })
        .collect();
    let missing: Vec<_> = table.difference(&deployed).collect();
    let extra: Vec<_> = deployed.difference(&table).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "routes without a function: {missing:?}; functions without a route: {extra:?}"
    );
    let expected: BTreeSet<_> = SCHEDULED_FUNCTIONS.iter().map(|f| f.to_string()).collect();
    assert_eq!(scheduled, expected, "scheduled functions");
    let expected: BTreeSet<_> = QUEUE_FUNCTIONS.iter().map(|f| f.to_string()).collect();
    assert_eq!(queued, expected, "queue-fed functions");
    let expected: BTreeSet<_> = AUTHORIZER_FUNCTIONS.iter().map(|f| f.to_string()).collect();
    assert_eq!(authorizers, expected, "authorizer functions");
}

/// Logical ids of the functions an `AWS::Serverless::HttpApi` of the template names as
/// a Lambda authorizer (`Auth.Authorizers.<name>.FunctionArn: Fn::GetAtt [id, Arn]`).
fn authorizer_function_ids(template: &Value) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    let resources = template["Resources"].as_mapping().expect("Resources");
    for (api, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::Serverless::HttpApi") {
            continue;
        }
        let Some(authorizers) = resource["Properties"]["Auth"]["Authorizers"].as_mapping() else {
            continue;
        };
        for (name, authorizer) in authorizers {
            let id = authorizer["FunctionArn"]["Fn::GetAtt"]
                .as_sequence()
                .and_then(|att| match att.as_slice() {
                    [id, arn] if arn.as_str() == Some("Arn") => id.as_str(),
                    _ => None,
                })
                .unwrap_or_else(|| {
                    panic!("{api:?} authorizer {name:?}: FunctionArn is not Fn::GetAtt [id, Arn]")
                });
            ids.insert(id.to_string());
        }
    }
    ids
}

/// The authorizer is named by the API and deployed as a function serving `authorize`.
#[test]
fn the_api_authorizer_is_a_template_function_serving_authorize() {
    let template = template();
    let ids = authorizer_function_ids(&template);
    assert!(!ids.is_empty(), "no HttpApi names a Lambda authorizer");
    let functions = functions(&template);
    for id in ids {
        let (_, function, event) = functions
            .iter()
            .find(|(f, _, _)| *f == id)
            .unwrap_or_else(|| panic!("authorizer {id:?} is not a function of the template"));
        assert!(
            AUTHORIZER_FUNCTIONS.contains(&function.as_str()),
            "{id:?} serves {function:?}"
        );
        assert!(event.is_none(), "{id:?}: an authorizer has no event");
    }
}

/// The multi-call binary serves every `FANOUT_FUNCTION` of the template (a typo there
/// would only fail at the function's first cold start), each name is deployed once, and
/// it serves nothing the template does not deploy.
#[test]
fn every_function_name_of_the_template_is_served_by_the_binary() {
    let template = template();
    let mut deployed = BTreeSet::new();
    for (id, function, _) in functions(&template) {
        assert!(
            lambda::known(&function),
            "{id}: {}={function:?} is not served by the {BINARY} binary; it serves {:?}",
            lambda::FUNCTION_VARIABLE,
            lambda::function_names()
        );
        assert!(
            deployed.insert(function.clone()),
            "{function} deployed twice"
        );
    }
    let served: BTreeSet<String> = lambda::function_names()
        .into_iter()
        .map(str::to_string)
        .collect();
    assert_eq!(
        deployed, served,
        "names the binary serves, deployed once each"
    );
    let engine: BTreeSet<String> = SCHEDULED_FUNCTIONS
        .iter()
        .chain(QUEUE_FUNCTIONS)
        .map(|f| f.to_string())
        .collect();
    assert_eq!(
        engine,
        BTreeSet::from([lambda::RECONCILE.to_string(), lambda::CONTROL.to_string()])
    );
    assert_eq!(AUTHORIZER_FUNCTIONS, [lambda::AUTHORIZE]);
}

/// `FANOUT_FUNCTION` is set per function only: in Globals it would be a default that
/// hides a function missing its own.
#[test]
fn the_function_variable_is_not_global() {
    let template = template();
    let vars = &template["Globals"]["Function"]["Environment"]["Variables"];
    assert!(vars[lambda::FUNCTION_VARIABLE].is_null());
}

/// Control steps on AWS: a function consumes the control queue, so a task created on a
/// stack with no worker task running (the service starts at 0 and scales on the work
/// queue only) still gets planned; it reports partial batch failures, runs under reserved
/// concurrency, and the queue hides a message for at least six times the function's
/// timeout. The worker containers consume the work queue only, so scaling them in cannot
/// stop a running plan or merge.
#[test]
fn control_steps_run_in_a_queue_fed_function_not_in_the_scaled_workers() {
    let template = template();
    let resources = &template["Resources"];
    let (id, _, event) = functions(&template)
        .into_iter()
        .find(|(_, function, _)| function == lambda::CONTROL)
        .expect("a function serving control");
    let event = event.expect("the control function's event");
    let function = &resources[id.as_str()]["Properties"];
    assert_eq!(event["Type"].as_str(), Some("SQS"));
    assert_eq!(
        event["Properties"]["Queue"]["Fn::GetAtt"],
        serde_norway::from_str::<Value>("[ControlQueue, Arn]").unwrap(),
        "the control function must consume ControlQueue"
    );
    let response_types = event["Properties"]["FunctionResponseTypes"]
        .as_sequence()
        .expect("FunctionResponseTypes");
    assert!(
        response_types
            .iter()
            .any(|t| t.as_str() == Some("ReportBatchItemFailures")),
        "partial batch failures must be reported"
    );
    assert!(
        event["Properties"]["BatchSize"].as_u64().unwrap_or(10) <= 10,
        "a batch must fit in one invocation's time"
    );
    let reserved = function["ReservedConcurrentExecutions"]
        .as_u64()
        .expect("reserved concurrency");
    assert!(reserved >= 2, "{reserved}");
    let timeout = function["Timeout"].as_u64().expect("Timeout");
    let visibility = resources["ControlQueue"]["Properties"]["VisibilityTimeout"]
        .as_u64()
        .expect("ControlQueue VisibilityTimeout");
    assert!(
        visibility >= 6 * timeout,
        "visibility {visibility} s < 6 x timeout {timeout} s"
    );

    let containers = resources["WorkerTaskDefinition"]["Properties"]["ContainerDefinitions"]
        .as_sequence()
        .expect("containers");
    let worker = containers
        .iter()
        .find(|c| c["Name"].as_str() == Some("worker"))
        .expect("a container named worker");
    let command: Vec<&str> = worker["Command"]
        .as_sequence()
        .expect("the worker container's Command names its queues")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(command, ["--queues", "work"]);
    // The service scales on the work queue alone: what it runs is what it scales on.
    let mut scaling_queues = BTreeSet::new();
    for resource in resources.as_mapping().unwrap().values() {
        let scales_workers = resource["Type"].as_str() == Some("AWS::CloudWatch::Alarm")
            && resource["Properties"]["AlarmActions"]
                .as_sequence()
                .is_some_and(|actions| {
                    actions.iter().any(|a| {
                        a["Ref"]
                            .as_str()
                            .is_some_and(|r| r.starts_with("WorkerScale"))
                    })
                });
        if scales_workers {
            queue_names(&resource["Properties"], &mut scaling_queues);
        }
    }
    assert_eq!(scaling_queues, BTreeSet::from(["WorkQueue".to_string()]));
}

#[test]
fn the_reconciler_runs_every_minute() {
    let template = template();
    let schedules: Vec<_> = functions(&template)
        .into_iter()
        .filter_map(|(_, function, event)| {
            event
                .filter(|e| e["Type"].as_str() == Some("Schedule"))
                .map(|e| (function, e))
        })
        .map(|(function, event)| {
            let schedule = event["Properties"]["Schedule"]
                .as_str()
                .unwrap_or_else(|| panic!("{function}: no Schedule expression"))
                .to_string();
            (function, schedule)
        })
        .collect();
    assert_eq!(
        schedules,
        [("reconcile".to_string(), "rate(1 minute)".to_string())]
    );
}

/// Logical ids of the queues whose `QueueName` a template node reads (`Fn::GetAtt`).
fn queue_names(node: &Value, out: &mut BTreeSet<String>) {
    match node {
        Value::Mapping(map) => {
            if let Some(Value::Sequence(att)) = map.get("Fn::GetAtt")
                && att.get(1).and_then(Value::as_str) == Some("QueueName")
                && let Some(queue) = att.first().and_then(Value::as_str)
            {
                out.insert(queue.to_string());
            }
            map.values().for_each(|v| queue_names(v, out));
        }
        Value::Sequence(items) => items.iter().for_each(|v| queue_names(v, out)),
        _ => {}
    }
}

/// Names of the `[[bin]]` targets of functions/Cargo.toml (`autobins = false`: a binary
/// not declared there is never built, so never deployed).
fn declared_binaries() -> BTreeSet<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let text = std::fs::read_to_string(path).expect("functions/Cargo.toml");
    let mut names = BTreeSet::new();
    let mut in_bin = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
        } else if in_bin && let Some(value) = line.strip_prefix("name = ") {
            names.insert(value.trim_matches('"').to_string());
        }
    }
    names
}

/// The binary every function builds is declared, and it is the multi-call body: what a
/// function serves is chosen by its environment, not at build time.
#[test]
fn the_function_binary_is_declared_for_the_build_and_dispatches_on_the_variable() {
    let declared = declared_binaries();
    assert!(
        declared.contains(BINARY),
        "functions/Cargo.toml declares no [[bin]] named {BINARY}"
    );
    // A binary named like a function would be built but never deployed.
    let stale: Vec<_> = lambda::function_names()
        .into_iter()
        .filter(|name| declared.contains(*name))
        .collect();
    assert!(stale.is_empty(), "per-function binaries left: {stale:?}");
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/bin/lambda.rs");
    let source = std::fs::read_to_string(path).unwrap_or_else(|_| panic!("{path} missing"));
    assert!(source.contains("lambda::run_from_env()"), "{path}");
}

#[test]
fn functions_get_the_resource_names_from_the_template() {
    let template = template();
    let vars = &template["Globals"]["Function"]["Environment"]["Variables"];
    for name in RESOURCE_VARIABLES {
        assert!(!vars[*name].is_null(), "{name} not exported to functions");
    }
}

#[test]
fn workers_get_the_same_resource_names_as_functions() {
    let template = template();
    let vars = &template["Globals"]["Function"]["Environment"]["Variables"];
    let function_vars: BTreeSet<&str> = vars
        .as_mapping()
        .expect("Globals.Function.Environment.Variables")
        .keys()
        .filter_map(Value::as_str)
        .filter(|name| name.starts_with("FANOUT_"))
        .collect();

    let containers =
        template["Resources"]["WorkerTaskDefinition"]["Properties"]["ContainerDefinitions"]
            .as_sequence()
            .expect("WorkerTaskDefinition containers");
    let worker = containers
        .iter()
        .find(|c| c["Name"].as_str() == Some("worker"))
        .expect("a container named worker");
    let environment = worker["Environment"]
        .as_sequence()
        .expect("worker container Environment");
    let worker_vars: BTreeSet<&str> = environment
        .iter()
        .filter_map(|e| e["Name"].as_str())
        .filter(|name| name.starts_with("FANOUT_"))
        .collect();

    let expected: BTreeSet<&str> = RESOURCE_VARIABLES.iter().copied().collect();
    assert_eq!(
        function_vars, expected,
        "FANOUT_* variables of the functions"
    );
    assert_eq!(
        worker_vars, function_vars,
        "FANOUT_* variables of the worker"
    );
    // Same names, same resources.
    for entry in environment {
        if let Some(name) = entry["Name"].as_str().filter(|n| n.starts_with("FANOUT_")) {
            assert_eq!(
                entry["Value"], vars[name],
                "{name}: worker and functions differ"
            );
        }
    }
}
