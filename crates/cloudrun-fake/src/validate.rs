//! Checks a request's query parameters and JSON body against the discovery document, and says
//! what is wrong the way Google does (a field path and a description per violation).

use serde_json::Value;

use crate::discovery::{Discovery, Method, Parameter};

/// One thing wrong with a request: `google.rpc.BadRequest.FieldViolation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The field path, e.g. `job.template.template.containers[0].image`, or a query parameter.
    pub field: String,
    pub description: String,
}

/// System parameters every Google API accepts though discovery does not list them; Google's
/// client libraries send `$alt=json;enum-encoding=int`.
const SYSTEM_PARAMETERS: &[&str] = &["$alt", "$fields", "$prettyPrint", "$callback"];

/// Checks the query string: every parameter declared (for the method or globally) as a query
/// parameter, of its type and enum, repeated only if declared so; required ones present.
pub fn query(discovery: &Discovery, method: &Method, pairs: &[(String, String)]) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (name, value) in pairs {
        if SYSTEM_PARAMETERS.contains(&name.as_str()) {
            continue;
        }
        let param = method
            .parameters
            .get(name)
            .or_else(|| discovery.global_parameters.get(name))
            .filter(|p| p.location == "query");
        let Some(param) = param else {
            out.push(Violation {
                field: name.clone(),
                description: format!(
                    "Invalid JSON payload received. Unknown name \"{name}\": Cannot bind query \
                     parameter. Field '{name}' could not be found in request message."
                ),
            });
            continue;
        };
        if seen.contains(&name.as_str()) && !param.repeated {
            out.push(Violation {
                field: name.clone(),
                description: format!(
                    "Invalid JSON payload received. Unknown name \"{name}\": Cannot bind query \
                     parameter. '{name}' is a message field; repeated values are not allowed."
                ),
            });
        }
        seen.push(name);
        if let Some(why) = check_query_value(param, value) {
            out.push(Violation {
                field: name.clone(),
                description: format!("Invalid value at '{name}' ({why}), \"{value}\""),
            });
        }
    }
    for p in method.parameters.values() {
        if p.location == "query" && p.required && !seen.contains(&p.name.as_str()) {
            out.push(Violation {
                field: p.name.clone(),
                description: format!("Required parameter '{}' is missing.", p.name),
            });
        }
    }
    out
}

fn check_query_value(p: &Parameter, value: &str) -> Option<&'static str> {
    if let Some(values) = &p.enumeration {
        return (!values.iter().any(|v| v == value)).then_some("TYPE_ENUM");
    }
    match (p.kind.as_str(), p.format.as_deref()) {
        ("boolean", _) => (!matches!(value, "true" | "false")).then_some("TYPE_BOOL"),
        ("integer", Some("uint32")) => value.parse::<u32>().is_err().then_some("TYPE_UINT32"),
        ("integer", _) => value.parse::<i32>().is_err().then_some("TYPE_INT32"),
        ("string", Some("int64")) => value.parse::<i64>().is_err().then_some("TYPE_INT64"),
        ("number", _) => value.parse::<f64>().is_err().then_some("TYPE_DOUBLE"),
        _ => None,
    }
}

/// Checks a JSON body against schema `schema` (a `$ref` name); `root` names the body in field
/// paths (`job` for `jobs.create`, empty for a `...Request` message).
pub fn body(discovery: &Discovery, schema: &str, root: &str, body: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut v = Validator {
        discovery,
        out: &mut out,
    };
    v.message(schema, root, body);
    out
}

/// The name the body takes in error messages: the resource itself (`job`, `workerPool`) for
/// create and patch, nothing for a `...Request` message whose fields are the request's own.
pub fn body_root(schema: &str) -> String {
    if schema.ends_with("Request") {
        return String::new();
    }
    let short = schema
        .strip_prefix("GoogleCloudRunV2")
        .or_else(|| schema.strip_prefix("GoogleIamV1"))
        .unwrap_or(schema);
    let mut chars = short.chars();
    match chars.next() {
        Some(c) => c.to_ascii_lowercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

struct Validator<'a> {
    discovery: &'a Discovery,
    out: &'a mut Vec<Violation>,
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

fn quoted(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

impl Validator<'_> {
    fn violation(&mut self, field: &str, description: String) {
        self.out.push(Violation {
            field: field.to_owned(),
            description,
        });
    }

    /// A message (a named schema) at `path`.
    fn message(&mut self, schema_name: &str, path: &str, value: &Value) {
        let Some(schema) = self.discovery.schemas.get(schema_name) else {
            // A dangling `$ref` is a broken document, not a broken request.
            return;
        };
        let schema = schema.clone();
        self.object(&schema, path, value);
    }

    fn object(&mut self, schema: &Value, path: &str, value: &Value) {
        let Value::Object(fields) = value else {
            let at = if path.is_empty() { "" } else { path };
            self.violation(
                path,
                format!(
                    "Invalid JSON payload received. Expected an object at '{at}', got {}.",
                    quoted(value)
                ),
            );
            return;
        };
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        for (name, v) in fields {
            if let Some(prop) = properties.and_then(|p| p.get(name)) {
                self.value(prop, &join(path, name), v);
            } else if let Some(additional) = additional {
                // A map: keys are free, values follow `additionalProperties`.
                self.value(additional, &format!("{}[{name:?}]", path), v);
            } else {
                let at = if path.is_empty() {
                    String::new()
                } else {
                    format!(" at '{path}'")
                };
                self.violation(
                    path,
                    format!(
                        "Invalid JSON payload received. Unknown name \"{name}\"{at}: Cannot find \
                         field."
                    ),
                );
            }
        }
    }

    /// Any value at `path` described by the property schema `schema`.
    fn value(&mut self, schema: &Value, path: &str, value: &Value) {
        // proto3 JSON: `null` means the default value, for every field.
        if value.is_null() {
            return;
        }
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            let r = r.to_owned();
            return self.message(&r, path, value);
        }
        let kind = schema.get("type").and_then(Value::as_str).unwrap_or("any");
        let format = schema.get("format").and_then(Value::as_str);
        match kind {
            "object" => self.object(schema, path, value),
            "array" => {
                let Value::Array(items) = value else {
                    return self.violation(
                        path,
                        format!(
                            "Invalid value at '{path}' (repeated field), {}: expected a list.",
                            quoted(value)
                        ),
                    );
                };
                let item_schema = schema.get("items").cloned().unwrap_or(Value::Null);
                for (i, item) in items.iter().enumerate() {
                    self.value(&item_schema, &format!("{path}[{i}]"), item);
                }
            }
            "string" => {
                if let Some(values) = schema.get("enum").and_then(Value::as_array) {
                    return self.enumeration(values, path, value);
                }
                self.string(format, path, value);
            }
            "integer" => {
                let ok = match value {
                    Value::Number(n) => n.as_i64().is_some_and(|i| fits(format, i)),
                    Value::String(s) => s.parse::<i64>().is_ok_and(|i| fits(format, i)),
                    _ => false,
                };
                if !ok {
                    let t = if format == Some("uint32") {
                        "TYPE_UINT32"
                    } else {
                        "TYPE_INT32"
                    };
                    self.violation(
                        path,
                        format!("Invalid value at '{path}' ({t}), {}", quoted(value)),
                    );
                }
            }
            "number" => {
                let ok = match value {
                    Value::Number(_) => true,
                    Value::String(s) => {
                        s.parse::<f64>().is_ok()
                            || matches!(s.as_str(), "NaN" | "Infinity" | "-Infinity")
                    }
                    _ => false,
                };
                if !ok {
                    self.violation(
                        path,
                        format!("Invalid value at '{path}' (TYPE_FLOAT), {}", quoted(value)),
                    );
                }
            }
            "boolean" if !value.is_boolean() => {
                self.violation(
                    path,
                    format!("Invalid value at '{path}' (TYPE_BOOL), {}", quoted(value)),
                );
            }
            // `any`: a `google.protobuf.Any` or `Value`, anything goes.
            _ => {}
        }
    }

    fn enumeration(&mut self, values: &[Value], path: &str, value: &Value) {
        let ok = match value {
            Value::String(s) => values.iter().any(|v| v.as_str() == Some(s)),
            // proto3 JSON accepts an enum's number; Google's Rust client sends numbers
            // (`$alt=json;enum-encoding=int`).
            Value::Number(n) => n
                .as_i64()
                .is_some_and(|i| i >= 0 && i32::try_from(i).is_ok()),
            _ => false,
        };
        if !ok {
            self.violation(
                path,
                format!("Invalid value at '{path}' (TYPE_ENUM), {}", quoted(value)),
            );
        }
    }

    fn string(&mut self, format: Option<&str>, path: &str, value: &Value) {
        let why = match (format, value) {
            (Some("int64"), Value::Number(n)) => n.as_i64().is_none().then_some("TYPE_INT64"),
            (Some("int64"), Value::String(s)) => s.parse::<i64>().is_err().then_some("TYPE_INT64"),
            (Some("uint64"), Value::Number(n)) => n.as_u64().is_none().then_some("TYPE_UINT64"),
            (Some("uint64"), Value::String(s)) => {
                s.parse::<u64>().is_err().then_some("TYPE_UINT64")
            }
            (Some("google-duration"), Value::String(s)) => {
                (!is_duration(s)).then_some("type.googleapis.com/google.protobuf.Duration")
            }
            (Some("google-datetime"), Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
                .is_err()
                .then_some("type.googleapis.com/google.protobuf.Timestamp"),
            (Some("byte"), Value::String(s)) => {
                use base64::Engine as _;
                let std = base64::engine::general_purpose::STANDARD.decode(s).is_ok();
                let url = base64::engine::general_purpose::URL_SAFE.decode(s).is_ok();
                (!(std || url)).then_some("TYPE_BYTES")
            }
            (_, Value::String(_)) => None,
            (Some("int64"), _) => Some("TYPE_INT64"),
            (Some("google-duration"), _) => Some("type.googleapis.com/google.protobuf.Duration"),
            (Some("google-datetime"), _) => Some("type.googleapis.com/google.protobuf.Timestamp"),
            _ => Some("TYPE_STRING"),
        };
        if let Some(why) = why {
            self.violation(
                path,
                format!("Invalid value at '{path}' ({why}), {}", quoted(value)),
            );
        }
    }
}

fn fits(format: Option<&str>, i: i64) -> bool {
    match format {
        Some("uint32") => u32::try_from(i).is_ok(),
        Some("int64") => true,
        _ => i32::try_from(i).is_ok(),
    }
}

/// `google.protobuf.Duration` in JSON: `"3600s"`, `"1.5s"`, `"-0.000000001s"`.
pub fn is_duration(s: &str) -> bool {
    let Some(n) = s.strip_suffix('s') else {
        return false;
    };
    let n = n.strip_prefix('-').unwrap_or(n);
    let (secs, frac) = n.split_once('.').unwrap_or((n, ""));
    !secs.is_empty()
        && secs.bytes().all(|b| b.is_ascii_digit())
        && frac.len() <= 9
        && frac.bytes().all(|b| b.is_ascii_digit())
        && (frac.is_empty() || !n.ends_with('.'))
        && !n.ends_with('.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::OnceLock;

    fn doc() -> &'static Discovery {
        static DOC: OnceLock<Discovery> = OnceLock::new();
        DOC.get_or_init(|| {
            Discovery::load(&crate::discovery::default_path()).unwrap_or_else(|e| panic!("{e:?}"))
        })
    }

    fn job_body(job: &Value) -> Vec<Violation> {
        body(doc(), "GoogleCloudRunV2Job", "job", job)
    }

    fn create_query(pairs: &[(&str, &str)]) -> Vec<Violation> {
        let m = doc()
            .method("projects.locations.jobs.create")
            .unwrap_or_else(|| panic!());
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        query(doc(), m, &pairs)
    }

    fn valid_job() -> Value {
        json!({
            "labels": {"ferry-run": "r1"},
            "launchStage": "GA",
            "template": {
                "taskCount": 1,
                "parallelism": "1",
                "template": {
                    "maxRetries": 0,
                    "timeout": "3600s",
                    "serviceAccount": "runner@p.iam.gserviceaccount.com",
                    "executionEnvironment": 2,
                    "containers": [{
                        "image": "ghcr.io/ferry/runner:1",
                        "command": ["ferry"],
                        "args": ["run"],
                        "env": [{"name": "A", "value": "1"},
                                {"name": "S", "valueSource": {"secretKeyRef": {"secret": "s", "version": "latest"}}}],
                        "resources": {"limits": {"cpu": "1", "memory": "512Mi"}}
                    }],
                    "vpcAccess": {"egress": "PRIVATE_RANGES_ONLY",
                                  "networkInterfaces": [{"network": "n", "subnetwork": "s"}]}
                }
            },
            "createTime": "2026-01-01T00:00:00Z",
            "generation": "3"
        })
    }

    #[test]
    fn valid_job_passes() {
        assert_eq!(job_body(&valid_job()), vec![]);
    }

    #[test]
    fn unknown_field_is_named_with_its_path() {
        let mut j = valid_job();
        j["template"]["template"]["containers"][0]["resources"]["bogus"] = json!(1);
        let v = job_body(&j);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].field, "job.template.template.containers[0].resources");
        assert_eq!(
            v[0].description,
            "Invalid JSON payload received. Unknown name \"bogus\" at \
             'job.template.template.containers[0].resources': Cannot find field."
        );
    }

    #[test]
    fn wrong_types_are_named() {
        let cases = [
            (
                "/template/taskCount",
                json!("many"),
                "job.template.taskCount",
            ),
            ("/template/taskCount", json!(1.5), "job.template.taskCount"),
            (
                "/template/taskCount",
                json!(3_000_000_000_i64),
                "job.template.taskCount",
            ),
            (
                "/template/template/timeout",
                json!("1h"),
                "job.template.template.timeout",
            ),
            (
                "/template/template/containers/0/args",
                json!("run"),
                "job.template.template.containers[0].args",
            ),
            (
                "/template/template/containers/0/image",
                json!(7),
                "job.template.template.containers[0].image",
            ),
            (
                "/template/template/containers/0/env/0",
                json!("A=1"),
                "job.template.template.containers[0].env[0]",
            ),
            ("/labels/ferry-run", json!(1), "job.labels[\"ferry-run\"]"),
            (
                "/template/template/vpcAccess/egress",
                json!("EVERYWHERE"),
                "job.template.template.vpcAccess.egress",
            ),
            ("/launchStage", json!(true), "job.launchStage"),
        ];
        for (pointer, value, field) in cases {
            let mut j = valid_job();
            *j.pointer_mut(pointer)
                .unwrap_or_else(|| panic!("{pointer}")) = value.clone();
            let v = job_body(&j);
            assert_eq!(v.len(), 1, "{pointer} = {value}: {v:?}");
            assert_eq!(v[0].field, field, "{pointer} = {value}");
        }
    }

    #[test]
    fn bad_enum_says_enum() {
        let mut j = valid_job();
        j["launchStage"] = json!("SOMEDAY");
        let v = job_body(&j);
        assert_eq!(
            v[0].description,
            "Invalid value at 'job.launchStage' (TYPE_ENUM), \"SOMEDAY\""
        );
    }

    #[test]
    fn run_request_overrides() {
        let ok = json!({"overrides": {"containerOverrides": [{"args": ["a"], "env": [{"name": "X", "value": "y"}], "clearArgs": false}],
                                      "taskCount": 1, "timeout": "60s"}, "etag": "e"});
        assert_eq!(
            body(doc(), "GoogleCloudRunV2RunJobRequest", "", &ok),
            vec![]
        );
        let bad = json!({"overrides": {"containerOverrides": [{"argz": []}]}});
        let v = body(doc(), "GoogleCloudRunV2RunJobRequest", "", &bad);
        assert_eq!(v[0].field, "overrides.containerOverrides[0]");
    }

    #[test]
    fn query_parameters() {
        assert_eq!(
            create_query(&[
                ("jobId", "j"),
                ("validateOnly", "true"),
                ("$alt", "json;enum-encoding=int")
            ]),
            vec![]
        );
        assert_eq!(
            create_query(&[("prettyPrint", "false"), ("alt", "json")]),
            vec![]
        );
        let v = create_query(&[("jobid", "j")]);
        assert_eq!(v[0].field, "jobid");
        assert!(
            v[0].description.contains("Cannot bind query parameter"),
            "{v:?}"
        );
        assert_eq!(
            create_query(&[("validateOnly", "yes")])[0].field,
            "validateOnly"
        );
        assert_eq!(create_query(&[("alt", "xml")])[0].field, "alt");
        // A path parameter is not a query parameter.
        assert_eq!(
            create_query(&[("parent", "projects/p/locations/l")])[0].field,
            "parent"
        );
        assert_eq!(
            create_query(&[("jobId", "a"), ("jobId", "b")])[0].field,
            "jobId"
        );
    }

    #[test]
    fn routing() {
        let d = doc();
        let r = d
            .route("POST", "/v2/projects/p/locations/l/jobs/j:run")
            .unwrap_or_else(|_| panic!());
        assert_eq!(r.method.id, "projects.locations.jobs.run");
        assert_eq!(
            r.path_param,
            Some(("name".into(), "projects/p/locations/l/jobs/j".into()))
        );
        let r = d
            .route("POST", "/v2/projects/p/locations/l/jobs")
            .unwrap_or_else(|_| panic!());
        assert_eq!(r.method.id, "projects.locations.jobs.create");
        assert_eq!(
            r.path_param,
            Some(("parent".into(), "projects/p/locations/l".into()))
        );
        let r = d
            .route("GET", "/v2/projects/p/locations/l/jobs/j/executions/e")
            .unwrap_or_else(|_| panic!());
        assert_eq!(r.method.id, "projects.locations.jobs.executions.get");
        let r = d
            .route(
                "POST",
                "/v2/projects/p/locations/l/jobs/j:testIamPermissions",
            )
            .unwrap_or_else(|_| panic!());
        assert_eq!(
            r.path_param,
            Some(("resource".into(), "projects/p/locations/l/jobs/j".into()))
        );
        // Wrong verb on a known path; unknown verb; unknown path.
        assert!(matches!(
            d.route("PUT", "/v2/projects/p/locations/l/jobs/j"),
            Err(true)
        ));
        assert!(d
            .route("POST", "/v2/projects/p/locations/l/jobs/j:start")
            .is_err());
        assert!(matches!(
            d.route("GET", "/v2/projects/p/locations/l/gizmos/j"),
            Err(false)
        ));
        assert!(matches!(
            d.route("GET", "/v1/projects/p/locations/l/jobs"),
            Err(false)
        ));
    }

    #[test]
    fn durations() {
        for ok in ["3600s", "0s", "1.5s", "-2s", "0.000000001s"] {
            assert!(is_duration(ok), "{ok}");
        }
        for bad in ["3600", "1h", "s", "1.s", ".5s", "1.0000000001s", "1 s"] {
            assert!(!is_duration(bad), "{bad}");
        }
    }

    #[test]
    fn body_roots() {
        assert_eq!(body_root("GoogleCloudRunV2Job"), "job");
        assert_eq!(body_root("GoogleCloudRunV2WorkerPool"), "workerPool");
        assert_eq!(body_root("GoogleCloudRunV2RunJobRequest"), "");
        assert_eq!(body_root("GoogleIamV1TestIamPermissionsRequest"), "");
    }
}
