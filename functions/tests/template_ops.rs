//! Operations in the infrastructure template: alarms on what needs a person (dead
//! letters, stale queues, failing or throttled functions, table throttling), retention on
//! every log group, one reconciler pass at a time, and task routes that reach only the
//! bucket's `tasks/` prefix.

use std::collections::BTreeSet;

use fanout_functions::routes::ROUTES;
use serde_norway::Value;

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml");
    let text = std::fs::read_to_string(path).expect("infra/template.yaml");
    serde_norway::from_str(&text).expect("template is plain YAML")
}

/// A template fragment written as YAML, to compare nodes with.
fn yaml(text: &str) -> Value {
    serde_norway::from_str(text).expect("YAML fragment")
}

/// Resources of one type, as (logical id, resource).
fn resources_of<'a>(template: &'a Value, kind: &str) -> Vec<(&'a str, &'a Value)> {
    template["Resources"]
        .as_mapping()
        .expect("Resources")
        .iter()
        .filter(|(_, resource)| resource["Type"].as_str() == Some(kind))
        .map(|(id, resource)| (id.as_str().expect("logical id"), resource))
        .collect()
}

/// Every `AWS::Serverless::Function` as (logical id, what it serves (its
/// `FANOUT_FUNCTION`: a route name, `control`, `reconcile` or `authorize`), resource).
fn functions(template: &Value) -> Vec<(&str, &str, &Value)> {
    resources_of(template, "AWS::Serverless::Function")
        .into_iter()
        .map(|(id, resource)| {
            let binary = resource["Properties"]["Environment"]["Variables"]["FANOUT_FUNCTION"]
                .as_str()
                .unwrap_or_else(|| panic!("{id} sets no FANOUT_FUNCTION"));
            (id, binary, resource)
        })
        .collect()
}

/// Logical id of the function serving `binary` (a `FANOUT_FUNCTION` value).
fn function_of<'a>(template: &'a Value, binary: &str) -> &'a str {
    functions(template)
        .into_iter()
        .find(|(_, b, _)| *b == binary)
        .unwrap_or_else(|| panic!("no function serves {binary}"))
        .0
}

/// `Ref: <name>` -> name.
fn ref_name(node: &Value) -> Option<&str> {
    node["Ref"].as_str()
}

/// Checks that `group` names (by `Ref`, or `Fn::GetAtt [id, Arn]`) a log group of the
/// template that keeps its events for `LogRetentionDays`; `what` names the user.
fn assert_retained(template: &Value, group: &Value, what: &str) {
    let id = ref_name(group)
        .or_else(|| {
            let att = group["Fn::GetAtt"].as_sequence()?;
            (att.get(1)?.as_str() == Some("Arn"))
                .then(|| att.first()?.as_str())
                .flatten()
        })
        .unwrap_or_else(|| panic!("{what}: log group {group:?} is not one of the template's"));
    let resource = &template["Resources"][id];
    assert_eq!(
        resource["Type"].as_str(),
        Some("AWS::Logs::LogGroup"),
        "{what}: {id} is not a log group"
    );
    assert_eq!(
        ref_name(&resource["Properties"]["RetentionInDays"]),
        Some("LogRetentionDays"),
        "{what}: {id} keeps its events forever"
    );
}

#[test]
fn every_log_group_has_the_retention_parameter() {
    let template = template();
    let days = &template["Parameters"]["LogRetentionDays"];
    assert_eq!(days["Type"].as_str(), Some("Number"));
    assert!(
        days["Default"]
            .as_u64()
            .is_some_and(|d| (1..=3653).contains(&d))
    );
    let groups = resources_of(&template, "AWS::Logs::LogGroup");
    assert!(!groups.is_empty());
    for (id, _) in groups {
        assert_retained(&template, &yaml(&format!("Ref: {id}")), id);
    }
}

/// Every function logs to a group of the template: without `LoggingConfig.LogGroup`,
/// Lambda creates `/aws/lambda/<name>` on first use, which keeps logs forever.
#[test]
fn every_function_logs_to_a_group_with_retention() {
    let template = template();
    let global = &template["Globals"]["Function"]["LoggingConfig"]["LogGroup"];
    let functions = functions(&template);
    assert!(functions.len() > 40, "{} functions", functions.len());
    for (id, _, resource) in functions {
        let own = &resource["Properties"]["LoggingConfig"]["LogGroup"];
        let group = if own.is_null() { global } else { own };
        assert_retained(&template, group, id);
    }
    // Plain Lambda functions would get no Globals: none may slip in unconfigured.
    for (id, resource) in resources_of(&template, "AWS::Lambda::Function") {
        assert_retained(
            &template,
            &resource["Properties"]["LoggingConfig"]["LogGroup"],
            id,
        );
    }
}

#[test]
fn every_container_and_the_api_access_log_go_to_groups_with_retention() {
    let template = template();
    let mut containers = 0;
    for (id, task) in resources_of(&template, "AWS::ECS::TaskDefinition") {
        for container in task["Properties"]["ContainerDefinitions"]
            .as_sequence()
            .expect("ContainerDefinitions")
        {
            containers += 1;
            let name = container["Name"].as_str().unwrap_or("?");
            let logs = &container["LogConfiguration"];
            assert_eq!(
                logs["LogDriver"].as_str(),
                Some("awslogs"),
                "{id}/{name}: logs must go to CloudWatch"
            );
            assert_retained(
                &template,
                &logs["Options"]["awslogs-group"],
                &format!("{id}/{name}"),
            );
        }
    }
    assert!(containers > 0, "no container definitions");
    for (id, api) in resources_of(&template, "AWS::Serverless::HttpApi") {
        assert_retained(
            &template,
            &api["Properties"]["AccessLogSettings"]["DestinationArn"],
            id,
        );
    }
}

/// Only one reconciler pass runs at a time, and ticks that find one running are dropped
/// rather than queued behind it.
#[test]
fn reconciler_passes_never_overlap() {
    let template = template();
    let id = function_of(&template, "reconcile");
    let properties = &template["Resources"][id]["Properties"];
    assert_eq!(properties["ReservedConcurrentExecutions"].as_u64(), Some(1));
    let invoke = &properties["EventInvokeConfig"];
    assert_eq!(invoke["MaximumRetryAttempts"].as_u64(), Some(0));
    let age = invoke["MaximumEventAgeInSeconds"]
        .as_u64()
        .expect("MaximumEventAgeInSeconds");
    assert!(age <= 120, "{age}");
}

/// The reconciler runs the ClearML watchdog with the deployer's threshold, which
/// defaults to clearml-server's two hours and which the configuration accepts.
#[test]
fn the_reconciler_gets_the_clearml_watchdog_threshold() {
    let template = template();
    let id = function_of(&template, "reconcile");
    let variables = &template["Resources"][id]["Properties"]["Environment"]["Variables"];
    assert_eq!(
        variables["FANOUT_CLEARML_WATCHDOG_SECONDS"]["Ref"],
        "ClearmlWatchdogSeconds"
    );
    let parameter = &template["Parameters"]["ClearmlWatchdogSeconds"];
    assert_eq!(parameter["Default"].as_u64(), Some(7200));
    assert_eq!(parameter["MinValue"].as_u64(), Some(1));
    assert_eq!(
        parameter["MaxValue"].as_u64(),
        Some(fanout::config::MAX_WATCHDOG_SECONDS)
    );
}

/// One metric an alarm reads: namespace, name and dimensions (name -> value node).
#[derive(Debug)]
struct Metric<'a> {
    namespace: &'a str,
    name: &'a str,
    dimensions: Vec<(&'a str, &'a Value)>,
}

impl Metric<'_> {
    fn dimension(&self, name: &str) -> Option<&Value> {
        self.dimensions
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| *v)
    }
}

fn metric_of<'a>(node: &'a Value) -> Metric<'a> {
    let dimensions = node["Dimensions"]
        .as_sequence()
        .map(|dims| {
            dims.iter()
                .map(|d| (d["Name"].as_str().expect("dimension name"), &d["Value"]))
                .collect()
        })
        .unwrap_or_default();
    Metric {
        namespace: node["Namespace"].as_str().expect("Namespace"),
        name: node["MetricName"].as_str().expect("MetricName"),
        dimensions,
    }
}

/// The metrics an alarm's properties read: its single metric, or those of its metric math.
fn metrics(alarm: &Value) -> Vec<Metric<'_>> {
    if let Some(queries) = alarm["Metrics"].as_sequence() {
        queries
            .iter()
            .filter(|q| !q["MetricStat"].is_null())
            .map(|q| metric_of(&q["MetricStat"]["Metric"]))
            .collect()
    } else {
        vec![metric_of(alarm)]
    }
}

/// Alarms that drive worker scaling (their actions are scaling policies).
fn scales_workers(alarm: &Value) -> bool {
    alarm["AlarmActions"].as_sequence().is_some_and(|actions| {
        actions
            .iter()
            .any(|a| ref_name(a).is_some_and(|r| r.starts_with("WorkerScale")))
    })
}

/// The operations alarms (every alarm but the scaling ones), as (logical id, properties).
fn ops_alarms(template: &Value) -> Vec<(&str, &Value)> {
    resources_of(template, "AWS::CloudWatch::Alarm")
        .into_iter()
        .map(|(id, alarm)| (id, &alarm["Properties"]))
        .filter(|(_, alarm)| !scales_workers(alarm))
        .collect()
}

/// The operations alarm reading `namespace`/`name` for which `dims` holds; panics with
/// `what` when there is none.
fn find_alarm<'a>(
    template: &'a Value,
    namespace: &str,
    name: &str,
    dims: impl Fn(&Metric) -> bool,
    what: &str,
) -> (&'a str, &'a Value) {
    ops_alarms(template)
        .into_iter()
        .find(|(_, alarm)| {
            metrics(alarm)
                .iter()
                .any(|m| m.namespace == namespace && m.name == name && dims(m))
        })
        .unwrap_or_else(|| panic!("no alarm on {what}"))
}

/// Checks the alarm fires above `threshold` (a number, or the parameter it names).
fn assert_above(id: &str, alarm: &Value, threshold: &Value) {
    assert_eq!(
        alarm["ComparisonOperator"].as_str(),
        Some("GreaterThanThreshold"),
        "{id}"
    );
    assert_eq!(&alarm["Threshold"], threshold, "{id}");
}

#[test]
fn dead_letter_queues_alarm_as_soon_as_they_hold_messages() {
    let template = template();
    let mut dead_letter_queues = BTreeSet::new();
    for (_, queue) in resources_of(&template, "AWS::SQS::Queue") {
        let target = &queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"];
        if let Some(id) = target.as_sequence().and_then(|t| t.first()?.as_str()) {
            dead_letter_queues.insert(id);
        }
    }
    assert_eq!(
        dead_letter_queues,
        BTreeSet::from(["WorkDeadLetterQueue", "ControlDeadLetterQueue"])
    );
    for dlq in dead_letter_queues {
        let queue_name = yaml(&format!("Fn::GetAtt: [{dlq}, QueueName]"));
        let (id, alarm) = find_alarm(
            &template,
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            |m| m.dimension("QueueName") == Some(&queue_name),
            &format!("the depth of {dlq}"),
        );
        assert_above(id, alarm, &yaml("0"));
        assert_eq!(alarm["EvaluationPeriods"].as_u64(), Some(1), "{id}");
    }
}

#[test]
fn work_and_control_queues_alarm_on_the_age_of_their_oldest_message() {
    let template = template();
    for queue in ["WorkQueue", "ControlQueue"] {
        let queue_name = yaml(&format!("Fn::GetAtt: [{queue}, QueueName]"));
        let (id, alarm) = find_alarm(
            &template,
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
            |m| m.dimension("QueueName") == Some(&queue_name),
            &format!("the oldest message of {queue}"),
        );
        let parameter = ref_name(&alarm["Threshold"])
            .unwrap_or_else(|| panic!("{id}: the threshold must be a parameter"));
        let parameter = &template["Parameters"][parameter];
        assert_eq!(parameter["Type"].as_str(), Some("Number"), "{id}");
        assert!(
            parameter["Default"].as_u64().is_some_and(|s| s >= 60),
            "{id}"
        );
        assert_above(id, alarm, &alarm["Threshold"]);
    }
}

/// Function errors and throttles: account-wide (no dimensions) for the ~45 route
/// functions, and dedicated alarms for the two that run the engine.
#[test]
fn lambda_errors_and_throttles_alarm() {
    let template = template();
    for metric in ["Errors", "Throttles"] {
        find_alarm(
            &template,
            "AWS/Lambda",
            metric,
            |m| m.dimensions.is_empty(),
            &format!("{metric} of every function"),
        );
    }
    let function = |binary: &str| yaml(&format!("Ref: {}", function_of(&template, binary)));
    for (binary, metric) in [
        ("reconcile", "Errors"),
        ("control", "Errors"),
        ("control", "Throttles"),
    ] {
        let name = function(binary);
        find_alarm(
            &template,
            "AWS/Lambda",
            metric,
            |m| m.dimension("FunctionName") == Some(&name),
            &format!("{metric} of the {binary} function"),
        );
    }
}

/// Throttle events of the table and of every index it has, reads and writes.
#[test]
fn table_throttling_alarms() {
    let template = template();
    let table = yaml("Ref: FanoutTable");
    let (id, alarm) = find_alarm(
        &template,
        "AWS/DynamoDB",
        "ReadThrottleEvents",
        |m| m.dimension("TableName") == Some(&table),
        "throttled reads of FanoutTable",
    );
    let indexes: Vec<Option<&str>> = std::iter::once(None)
        .chain(
            template["Resources"]["FanoutTable"]["Properties"]["GlobalSecondaryIndexes"]
                .as_sequence()
                .expect("indexes")
                .iter()
                .map(|index| Some(index["IndexName"].as_str().expect("IndexName"))),
        )
        .collect();
    let read = metrics(alarm);
    for index in &indexes {
        for name in ["ReadThrottleEvents", "WriteThrottleEvents"] {
            assert!(
                read.iter().any(|m| m.namespace == "AWS/DynamoDB"
                    && m.name == name
                    && m.dimension("TableName") == Some(&table)
                    && m.dimension("GlobalSecondaryIndexName")
                        .and_then(Value::as_str)
                        == *index),
                "{id} does not read {name} of {index:?}"
            );
        }
    }
    // Metric math: exactly one expression is the alarm's series.
    let returned: Vec<&Value> = alarm["Metrics"]
        .as_sequence()
        .expect("metric math")
        .iter()
        .filter(|q| q["ReturnData"].as_bool() != Some(false))
        .collect();
    assert_eq!(returned.len(), 1, "{id}");
    assert!(returned[0]["Expression"].as_str().is_some(), "{id}");
    assert_above(id, alarm, &yaml("0"));
}

/// Alarm actions go to `AlarmTopicArn` when it is set, to nobody when it is empty.
#[test]
fn operations_alarms_notify_the_optional_topic() {
    let template = template();
    let topic = &template["Parameters"]["AlarmTopicArn"];
    assert_eq!(topic["Type"].as_str(), Some("String"));
    assert_eq!(topic["Default"].as_str(), Some(""));
    assert_eq!(
        template["Conditions"]["HasAlarmTopic"],
        yaml("Fn::Not: [{Fn::Equals: [{Ref: AlarmTopicArn}, \"\"]}]")
    );
    let notify = yaml("Fn::If: [HasAlarmTopic, [{Ref: AlarmTopicArn}], {Ref: AWS::NoValue}]");
    let alarms = ops_alarms(&template);
    assert!(alarms.len() >= 9, "{} operations alarms", alarms.len());
    for (id, alarm) in alarms {
        assert_eq!(alarm["AlarmActions"], notify, "{id} AlarmActions");
        assert_eq!(alarm["OKActions"], notify, "{id} OKActions");
        assert!(
            alarm["AlarmDescription"]
                .as_str()
                .is_some_and(|d| d.len() > 40),
            "{id}: say what to look at"
        );
    }
}

/// The actions of a policy statement.
fn actions(statement: &Value) -> Vec<&str> {
    match &statement["Action"] {
        Value::String(action) => vec![action.as_str()],
        Value::Sequence(list) => list.iter().filter_map(Value::as_str).collect(),
        other => panic!("Action {other:?}"),
    }
}

/// The S3 statements of a function's inline policies; panics on a SAM S3 policy template
/// (they grant the whole bucket).
fn s3_statements<'a>(id: &str, function: &'a Value) -> Vec<&'a Value> {
    let mut out = Vec::new();
    let Some(policies) = function["Properties"]["Policies"].as_sequence() else {
        return out;
    };
    for policy in policies {
        if let Some(map) = policy.as_mapping()
            && let Some(key) = map.keys().filter_map(Value::as_str).next()
        {
            assert!(
                !key.starts_with("S3"),
                "{id}: {key} grants the whole bucket"
            );
        }
        for statement in policy["Statement"].as_sequence().into_iter().flatten() {
            if actions(statement).iter().any(|a| a.starts_with("s3:")) {
                out.push(statement);
            }
        }
    }
    out
}

/// The task routes reach the bucket under `tasks/` only: objects by ARN, listings by
/// prefix. What each needs (shared/src/tasks/api.rs, shared/src/kinds/reporter.rs):
/// creating a task writes `tasks/<id>/content.json` when the content is large (the
/// reporter also reads the head of a clustering result, `tasks/<id>/result`); the result
/// route reads `tasks/<id>/result` (and presigns it); delete lists and removes
/// `tasks/<id>/`; cancel touches no object.
#[test]
fn task_routes_reach_only_the_tasks_prefix() {
    let template = template();
    let objects = yaml(r#"Fn::Sub: "${ResultsBucket.Arn}/tasks/*""#);
    let uploads = yaml(r#"Fn::Sub: "${ResultsBucket.Arn}/uploads/*""#);
    let bucket = yaml("Fn::GetAtt: [ResultsBucket, Arn]");
    let prefix = yaml(r#"StringLike: {"s3:prefix": "tasks/*"}"#);

    let creators: BTreeSet<&str> = ROUTES
        .iter()
        .map(|r| r.name)
        .filter(|name| name.starts_with("create_") && name.ends_with("_task"))
        .collect();
    assert!(creators.len() >= 7, "{creators:?}");
    let needs = |binary: &str| -> &[&str] {
        match binary {
            "create_reporter_task" | "create_estimator_task" | "create_video_task" => {
                &["s3:PutObject", "s3:GetObject"]
            }
            b if creators.contains(b) => &["s3:PutObject"],
            "get_task_result" => &["s3:GetObject"],
            "delete_task" => &["s3:ListBucket", "s3:DeleteObject"],
            "cancel_task" => &[],
            other => panic!("{other}"),
        }
    };

    let mut checked = BTreeSet::new();
    for (id, binary, function) in functions(&template) {
        let scoped = creators.contains(binary)
            || ["get_task_result", "delete_task", "cancel_task"].contains(&binary);
        if !scoped {
            continue;
        }
        checked.insert(binary);
        let mut granted = BTreeSet::new();
        for statement in s3_statements(id, function) {
            let sid = statement["Sid"].as_str().unwrap_or("?");
            for action in actions(statement) {
                granted.insert(action);
                if action == "s3:ListBucket" {
                    assert_eq!(statement["Resource"], bucket, "{id}/{sid}");
                    assert_eq!(
                        statement["Condition"], prefix,
                        "{id}/{sid}: listing must be limited to tasks/"
                    );
                } else if binary == "create_estimator_task" && action == "s3:GetObject" {
                    // The estimator checks its zip source in the upload area.
                    assert_eq!(statement["Resource"], uploads, "{id}/{sid}");
                } else if binary == "create_video_task"
                    && action == "s3:GetObject"
                    && statement["Resource"] == uploads
                {
                    // A video task checks its video's key in the upload area (and reads
                    // its result under tasks/ for a synchronous answer).
                } else {
                    assert!(!action.contains('*'), "{id}/{sid}: {action}");
                    assert_eq!(
                        statement["Resource"], objects,
                        "{id}/{sid}: {action} must be limited to tasks/*"
                    );
                }
            }
        }
        let wanted: BTreeSet<&str> = needs(binary).iter().copied().collect();
        assert_eq!(granted, wanted, "{id}: S3 actions");
    }
    let expected: BTreeSet<&str> = creators
        .iter()
        .copied()
        .chain(["get_task_result", "delete_task", "cancel_task"])
        .collect();
    assert_eq!(checked, expected, "task functions in the template");
}
