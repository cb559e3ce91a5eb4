//! The infrastructure template and the route table describe the same functions:
//! one `AWS::Serverless::Function` per route, building that route's binary, triggered by
//! exactly that method and path.

use std::collections::BTreeSet;

use fanout_functions::routes::ROUTES;
use serde_norway::Value;

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml");
    let text = std::fs::read_to_string(path).expect("infra/template.yaml");
    serde_norway::from_str(&text).expect("template is plain YAML")
}

#[test]
fn template_functions_match_the_route_table() {
    let template = template();
    let resources = template["Resources"].as_mapping().expect("Resources");
    let mut deployed = BTreeSet::new();
    for (id, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{id:?} names no binary"));
        assert_eq!(
            resource["Metadata"]["BuildMethod"].as_str(),
            Some("rust-cargolambda"),
            "{id:?}"
        );
        let events = resource["Properties"]["Events"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{id:?} has no events"));
        assert_eq!(events.len(), 1, "{id:?} must have exactly one trigger");
        for event in events.values() {
            assert_eq!(event["Type"].as_str(), Some("HttpApi"), "{id:?}");
            let method = event["Properties"]["Method"]
                .as_str()
                .unwrap()
                .to_uppercase();
            let path = event["Properties"]["Path"].as_str().unwrap().to_string();
            deployed.insert((binary.to_string(), method, path));
        }
    }
    let table: BTreeSet<_> = ROUTES
        .iter()
        .map(|r| (r.name.to_string(), r.method.to_string(), r.path.to_string()))
        .collect();
    let missing: Vec<_> = table.difference(&deployed).collect();
    let extra: Vec<_> = deployed.difference(&table).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "routes without a function: {missing:?}; functions without a route: {extra:?}"
    );
}

#[test]
fn every_route_binary_exists() {
    let bin_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/bin");
    for route in ROUTES {
        let path = format!("{bin_dir}/{}.rs", route.name);
        let source = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{path} missing"));
        assert!(
            source.contains(&format!("lambda::run(\"{}\")", route.name)),
            "{path} serves another route"
        );
    }
}

#[test]
fn functions_get_the_resource_names_from_the_template() {
    let template = template();
    let vars = &template["Globals"]["Function"]["Environment"]["Variables"];
    for name in [
        "FANOUT_TABLE",
        "FANOUT_WORK_QUEUE_URL",
        "FANOUT_CONTROL_QUEUE_URL",
        "FANOUT_BUCKET",
    ] {
        assert!(!vars[name].is_null(), "{name} not exported to functions");
    }
}
