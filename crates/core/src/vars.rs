//! A push pool's job template with a run's job variables over it, and the typed reads the push
//! backends check them with. Every problem is kept (as a [`FieldError`]) rather than the first
//! ending the check, so a 422 names everything there is to fix.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::FieldError;

/// Variables only a pool's template may set, never a run: where Ferry sends the workspace's
/// signed calls, and the list of what runs may set.
pub const TEMPLATE_ONLY: [&str; 2] = ["endpoint", RUN_VARIABLES];

/// The template key listing the variables a pool's runs may set.
pub const RUN_VARIABLES: &str = "run_variables";

/// What a push pool type takes (each push crate has one).
#[derive(Debug)]
pub struct Variables {
    /// `ecs`, `cloud-run`: for messages.
    pub pool_type: &'static str,
    /// Every variable a template may set (besides `run_variables`).
    pub known: &'static [&'static str],
    /// What a run may set when the template has no `run_variables`: what the container runs
    /// and with how much, never identity or placement.
    pub run_default: &'static [&'static str],
}

/// Merged job variables being checked; see [`JobVars::merge`].
#[derive(Debug)]
pub struct JobVars {
    vars: Map<String, Value>,
    pub errors: Vec<FieldError>,
}

impl JobVars {
    /// `variables` (a run's) over `template` (its pool's): each top-level variable replaces the
    /// template's. Names a pool type does not know are refused, saying what it takes; a run
    /// may set only what the template's `run_variables` lists (default
    /// [`Variables::run_default`]), and never a [`TEMPLATE_ONLY`] one. Either side may be null
    /// (nothing); anything but an object is refused.
    pub fn merge(template: &Value, variables: &Value, kind: &Variables) -> Self {
        let mut errors = Vec::new();
        let mut vars = Map::new();
        let pool_type = kind.pool_type;
        let unknown = |what: &str, k: &str| {
            FieldError::new(
                k,
                format!(
                    "unknown variable in {what}; {pool_type} pools take: {}",
                    kind.known.join(", ")
                ),
            )
        };
        let mut run_may_set: Vec<String> =
            kind.run_default.iter().map(|s| (*s).to_owned()).collect();
        match template {
            Value::Null => {}
            Value::Object(obj) => {
                for (k, v) in obj {
                    if k == RUN_VARIABLES {
                        match run_variables(v, kind) {
                            Ok(list) => run_may_set = list,
                            Err(e) => errors.push(e),
                        }
                    } else if kind.known.contains(&k.as_str()) {
                        vars.insert(k.clone(), v.clone());
                    } else {
                        errors.push(unknown("job_template", k));
                    }
                }
            }
            _ => errors.push(FieldError::new("job_template", "must be a JSON object")),
        }
        match variables {
            Value::Null => {}
            Value::Object(obj) => {
                for (k, v) in obj {
                    if TEMPLATE_ONLY.contains(&k.as_str()) {
                        errors.push(FieldError::new(
                            k,
                            "is the pool's alone: a run can never set it (job_variables)",
                        ));
                    } else if !kind.known.contains(&k.as_str()) {
                        errors.push(unknown("job_variables", k));
                    } else if !run_may_set.iter().any(|a| a == k) {
                        errors.push(FieldError::new(
                            k,
                            format!(
                                "this pool does not let runs set {k} (job_variables); runs may \
                                 set: {}. The pool's admin may list it in the job template's \
                                 run_variables",
                                run_may_set.join(", ")
                            ),
                        ));
                    } else {
                        vars.insert(k.clone(), v.clone());
                    }
                }
            }
            _ => errors.push(FieldError::new("job_variables", "must be a JSON object")),
        }
        Self { vars, errors }
    }

    /// The merged value of `field`, if set (null counts as set: the typed reads treat it as
    /// unset).
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.vars.get(field)
    }

    pub fn err(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    /// The result: `spec` if nothing was wrong, else every problem.
    pub fn finish<T>(self, spec: T) -> Result<T, Vec<FieldError>> {
        if self.errors.is_empty() {
            Ok(spec)
        } else {
            Err(self.errors)
        }
    }

    pub fn opt_str(&mut self, field: &str) -> Option<String> {
        match self.vars.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.err(field, "must be a string");
                None
            }
        }
    }

    /// A whole number (or a string of one); `what` says what it counts, for the message.
    pub fn opt_u32(&mut self, field: &str, what: &str) -> Option<u32> {
        let parsed = match self.vars.get(field) {
            None | Some(Value::Null) => return None,
            Some(Value::Number(n)) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
            Some(Value::String(s)) => s.trim().parse().ok(),
            Some(_) => None,
        };
        if parsed.is_none() {
            self.err(field, format!("must be a whole number ({what})"));
        }
        parsed
    }

    /// A list of strings; `example` (e.g. `["python", "-m", "flow"]`) goes in the message.
    pub fn opt_str_list(&mut self, field: &str, example: &str) -> Option<Vec<String>> {
        match self.vars.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => Some(
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
            ),
            Some(_) => {
                self.err(field, format!("must be a list of strings, e.g. {example}"));
                None
            }
        }
    }

    pub fn opt_str_map(&mut self, field: &str) -> Option<BTreeMap<String, String>> {
        match self.vars.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::Object(obj)) if obj.values().all(Value::is_string) => Some(
                obj.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect(),
            ),
            Some(_) => {
                self.err(field, "must be an object of string values");
                None
            }
        }
    }
}

/// A template's `run_variables`: names the pool type knows, none of them template-only.
fn run_variables(v: &Value, kind: &Variables) -> Result<Vec<String>, FieldError> {
    let bad = |m: String| FieldError::new(RUN_VARIABLES, m);
    let Some(items) = v.as_array() else {
        return Err(bad(format!(
            "must be a list of the variables runs may set, e.g. [\"image\", \"env\"]; default: {}",
            kind.run_default.join(", ")
        )));
    };
    let mut list = Vec::new();
    for item in items {
        let Some(name) = item.as_str() else {
            return Err(bad("must be a list of variable names (strings)".into()));
        };
        if TEMPLATE_ONLY.contains(&name) {
            return Err(bad(format!(
                "{name} can never be set by a run; leave it out"
            )));
        }
        if !kind.known.contains(&name) {
            return Err(bad(format!(
                "{name} is not a variable of {} pools; they take: {}",
                kind.pool_type,
                kind.known.join(", ")
            )));
        }
        list.push(name.to_owned());
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TEST: Variables = Variables {
        pool_type: "test",
        known: &["a", "n", "l", "m", "endpoint", "role"],
        run_default: &["a", "n", "l", "m"],
    };

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn variables_replace_the_template_and_unknown_names_are_refused() {
        let mut v = JobVars::merge(
            &json!({"a": "x", "n": 1, "bad": 1}),
            &json!({"a": "y", "worse": 2}),
            &TEST,
        );
        assert_eq!(v.opt_str("a").as_deref(), Some("y"));
        assert_eq!(v.opt_u32("n", "units"), Some(1));
        assert_eq!(fields(&v.errors), ["bad", "worse"]);
        assert!(v.errors[0]
            .message
            .contains("job_template; test pools take: a, n, l, m, endpoint, role"));
        assert!(v.errors[1].message.contains("job_variables"));
    }

    #[test]
    fn runs_set_only_what_the_pool_lets_them_and_never_the_endpoint() {
        // Positive control: the template may set identity and the endpoint.
        let v = JobVars::merge(
            &json!({"endpoint": "https://x.example.com", "role": "r"}),
            &json!({"a": "run's"}),
            &TEST,
        );
        assert!(v.errors.is_empty(), "{:?}", v.errors);
        // A run may not, by default.
        let v = JobVars::merge(
            &json!({}),
            &json!({"endpoint": "http://evil.example.com", "role": "other"}),
            &TEST,
        );
        assert_eq!(fields(&v.errors), ["endpoint", "role"]);
        assert!(v.errors[0].message.contains("a run can never set it"));
        assert!(v.errors[1].message.contains("does not let runs set role"));
        assert!(v.errors[1].message.contains("run_variables"));
        assert_eq!(v.get("role"), None);
        // The pool's admin lists it: now a run may set it, and only what is listed.
        let mut v = JobVars::merge(
            &json!({"run_variables": ["role"], "role": "r"}),
            &json!({"role": "other", "a": "x"}),
            &TEST,
        );
        assert_eq!(fields(&v.errors), ["a"]);
        assert_eq!(v.opt_str("role").as_deref(), Some("other"));
        // Never the endpoint or the list itself, even when the template lists them.
        for listed in [
            json!(["endpoint"]),
            json!(["run_variables"]),
            json!(["nope"]),
            json!("a"),
            json!([1]),
        ] {
            let v = JobVars::merge(&json!({"run_variables": listed}), &Value::Null, &TEST);
            assert_eq!(fields(&v.errors), ["run_variables"], "{listed}");
        }
        let v = JobVars::merge(&json!({}), &json!({"run_variables": ["role"]}), &TEST);
        assert_eq!(fields(&v.errors), ["run_variables"]);
    }

    #[test]
    fn typed_reads_report_wrong_types() {
        let mut v = JobVars::merge(
            &json!({"a": 1, "n": "x", "l": [1], "m": {"k": 1}}),
            &Value::Null,
            &TEST,
        );
        assert_eq!(v.opt_str("a"), None);
        assert_eq!(v.opt_u32("n", "MiB"), None);
        assert_eq!(v.opt_str_list("l", "[\"x\"]"), None);
        assert_eq!(v.opt_str_map("m"), None);
        assert_eq!(v.opt_str("unset"), None);
        let errors = v.finish(()).err().unwrap_or_default();
        assert_eq!(fields(&errors), ["a", "n", "l", "m"]);
        assert!(errors[1].message.contains("whole number (MiB)"));
        assert!(errors[2].message.contains("e.g. [\"x\"]"));
        assert!(JobVars::merge(&json!([]), &Value::Null, &TEST)
            .finish(())
            .is_err());
    }
}
