//! The rules `/openapi.json` keeps, so that a client generator (and schemathesis,
//! `scripts/schemathesis`) can trust it: parameters where they are sent, every status the
//! shared extractors answer documented with the error schema, unique operation ids, links that
//! resolve, and binary bodies described as binary.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::support::spawn_app;

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

/// Every operation: (`METHOD path`, path template, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                out.push((
                    format!("{} {path}", method.to_uppercase()),
                    path.clone(),
                    op.clone(),
                ));
            }
        }
    }
    assert!(out.len() > 30, "too few operations: {}", out.len());
    out
}

/// The `{names}` of a path template.
fn template_names(path: &str) -> BTreeSet<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(str::to_owned)
        .collect()
}

fn params_in<'a>(op: &'a Value, location: &str) -> Vec<&'a Value> {
    op["parameters"]
        .as_array()
        .map(|ps| ps.iter().filter(|p| p["in"] == location).collect())
        .unwrap_or_default()
}

/// The problems of one operation's answers to the shared extractors: each of `statuses` must
/// be documented, with the API's error body.
fn missing_errors(name: &str, op: &Value, statuses: &[&str], why: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for status in statuses {
        let response = &op["responses"][*status];
        if response.is_null() {
            problems.push(format!("{name}: no {status} ({why})"));
        } else if response["content"]["application/json"]["schema"]["$ref"]
            != "#/components/schemas/ErrorBody"
        {
            problems.push(format!(
                "{name}: its {status} is not the error body: {response}"
            ));
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_keeps_its_rules() {
    let app = spawn_app().await;
    let doc = app.call("GET", "/openapi.json", None, None).await.body;
    let ops = operations(&doc);
    let mut problems = Vec::new();
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    for (name, path, op) in &ops {
        // Parameters are declared where they are sent: each `{name}` of the path, and nothing
        // else, as a required path parameter.
        let declared: BTreeSet<String> = params_in(op, "path")
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect();
        let wanted = template_names(path);
        if declared != wanted {
            problems.push(format!(
                "{name}: path parameters {declared:?}, but the path names {wanted:?}"
            ));
        }
        for p in params_in(op, "path") {
            if p["required"] != true {
                problems.push(format!(
                    "{name}: path parameter {} is not required",
                    p["name"]
                ));
            }
        }
        // What every authenticated route's extractor answers.
        if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
            problems.extend(missing_errors(
                name,
                op,
                &["401", "500", "503"],
                "an authenticated route",
            ));
        }
        // What a JSON body's extractor answers.
        if !op["requestBody"]["content"]["application/json"].is_null() {
            problems.extend(missing_errors(
                name,
                op,
                &["400", "413", "415", "422"],
                "a JSON body",
            ));
        }
        if !params_in(op, "query").is_empty() {
            problems.extend(missing_errors(name, op, &["400"], "a query string"));
        }
        if !wanted.is_empty() {
            problems.extend(missing_errors(name, op, &["404"], "a path parameter"));
        }
        // A body of bytes is binary, not an array of numbers.
        for (media, content) in op["requestBody"]["content"]
            .as_object()
            .into_iter()
            .flatten()
        {
            if media != "application/json" && content["schema"]["type"] == "array" {
                problems.push(format!("{name}: its {media} body is an array: {content}"));
            }
        }
        match op["operationId"].as_str() {
            None => problems.push(format!("{name}: no operationId")),
            Some(id) => {
                if let Some(other) = ids.insert(id.to_owned(), name.clone()) {
                    problems.push(format!("{name}: operationId {id:?} is also {other}'s"));
                }
            }
        }
    }
    // Links name an operation that exists and only parameters it has.
    let by_id: BTreeMap<&str, &Value> = ops
        .iter()
        .map(|(_, _, op)| (op["operationId"].as_str().unwrap_or(""), op))
        .collect();
    let mut links = 0;
    for (name, _, op) in &ops {
        for (status, response) in op["responses"].as_object().unwrap() {
            for (link_name, link) in response["links"].as_object().into_iter().flatten() {
                links += 1;
                let Some(target) = link["operationId"].as_str().and_then(|id| by_id.get(id)) else {
                    problems.push(format!(
                        "{name} {status} link {link_name}: no operation {}",
                        link["operationId"]
                    ));
                    continue;
                };
                let known: BTreeSet<&str> = target["parameters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["name"].as_str())
                    .collect();
                for param in link["parameters"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|p| p.0)
                {
                    if !known.contains(param.as_str()) {
                        problems.push(format!(
                            "{name} {status} link {link_name}: {} has no parameter {param}",
                            link["operationId"]
                        ));
                    }
                }
            }
        }
    }
    assert!(links >= 5, "too few links: {links}");
    assert!(
        problems.is_empty(),
        "openapi.json breaks its rules:\n{}",
        problems.join("\n")
    );
    // The first two findings of schemathesis, named.
    let query = |path: &str, param: &str| {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == param)
            .map(|p| p["in"].clone())
    };
    for (path, params) in [
        ("/v1/runs", &["cursor", "limit", "pool", "state"][..]),
        ("/v1/audit", &["after", "limit"][..]),
        ("/v1/runs/{id}/logs", &["after", "follow", "limit"][..]),
    ] {
        for param in params {
            assert_eq!(query(path, param), Some("query".into()), "{path} {param}");
        }
    }
    let upload = &doc["paths"]["/v1/artifacts"]["post"]["requestBody"]["content"]
        ["application/wasm"]["schema"];
    let upload = match upload["$ref"].as_str() {
        Some(r) => &doc["components"]["schemas"][r.rsplit('/').next().unwrap()],
        None => upload,
    };
    assert_eq!(
        (upload["type"].as_str(), upload["format"].as_str()),
        (Some("string"), Some("binary")),
        "{upload}"
    );
    app.shutdown().await;
}

/// The document's rules are checked on the document; these check that the server answers as
/// it says: one request of each kind the shared extractors refuse, on a route of each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_extractor_errors_are_what_the_server_answers() {
    let app = spawn_app().await;
    let doc = app.call("GET", "/openapi.json", None, None).await.body;
    let documented = |method: &str, path: &str, status: u16| {
        !doc["paths"][path][method]["responses"][status.to_string()].is_null()
    };
    // No key: 401 on every authenticated public route.
    for (name, path, op) in operations(&doc) {
        if path.starts_with("/internal/") || op["security"].is_null() {
            continue;
        }
        let method = name.split(' ').next().unwrap();
        let concrete = path
            .replace("{id}", "00000000-0000-0000-0000-000000000000")
            .replace("{name}", "x")
            .replace("{digest}", "sha256:0");
        let reply = app.call(method, &concrete, None, None).await;
        assert_eq!(reply.status, 401, "{name} without a key: {reply:#?}");
        assert!(documented(&method.to_lowercase(), &path, 401), "{name}");
    }
    app.shutdown().await;
}
