//! A push pool's job template with a run's job variables over it, and the typed reads the push
//! backends check them with. Every problem is kept (as a [`FieldError`]) rather than the first
//! ending the check, so a 422 names everything there is to fix.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::FieldError;

/// Merged job variables being checked; see [`JobVars::merge`].
#[derive(Debug)]
pub struct JobVars {
    vars: Map<String, Value>,
    pub errors: Vec<FieldError>,
}

impl JobVars {
    /// `variables` over `template` (each top-level variable replaces the template's). Names
    /// not in `allowed` are refused, saying what a `pool_type` pool takes; either side may be
    /// null (nothing), anything but an object is refused.
    pub fn merge(template: &Value, variables: &Value, allowed: &[&str], pool_type: &str) -> Self {
        let mut errors = Vec::new();
        let mut vars = Map::new();
        for (what, value) in [("job_template", template), ("job_variables", variables)] {
            match value {
                Value::Null => {}
                Value::Object(obj) => {
                    for (k, v) in obj {
                        if allowed.contains(&k.as_str()) {
                            vars.insert(k.clone(), v.clone());
                        } else {
                            errors.push(FieldError::new(
                                k,
                                format!(
                                    "unknown variable in {what}; {pool_type} pools take: {}",
                                    allowed.join(", ")
                                ),
                            ));
                        }
                    }
                }
                _ => errors.push(FieldError::new(what, "must be a JSON object")),
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn variables_replace_the_template_and_unknown_names_are_refused() {
        let mut v = JobVars::merge(
            &json!({"a": "x", "n": 1, "bad": 1}),
            &json!({"a": "y", "worse": 2}),
            &["a", "n", "l", "m"],
            "test",
        );
        assert_eq!(v.opt_str("a").as_deref(), Some("y"));
        assert_eq!(v.opt_u32("n", "units"), Some(1));
        let fields: Vec<&str> = v.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["bad", "worse"]);
        assert!(v.errors[0]
            .message
            .contains("job_template; test pools take: a, n, l, m"));
        assert!(v.errors[1].message.contains("job_variables"));
    }

    #[test]
    fn typed_reads_report_wrong_types() {
        let mut v = JobVars::merge(
            &json!({"a": 1, "n": "x", "l": [1], "m": {"k": 1}}),
            &Value::Null,
            &["a", "n", "l", "m"],
            "test",
        );
        assert_eq!(v.opt_str("a"), None);
        assert_eq!(v.opt_u32("n", "MiB"), None);
        assert_eq!(v.opt_str_list("l", "[\"x\"]"), None);
        assert_eq!(v.opt_str_map("m"), None);
        assert_eq!(v.opt_str("unset"), None);
        let errors = v.finish(()).err().unwrap_or_default();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["a", "n", "l", "m"]);
        assert!(errors[1].message.contains("whole number (MiB)"));
        assert!(errors[2].message.contains("e.g. [\"x\"]"));
        assert!(JobVars::merge(&json!([]), &Value::Null, &[], "t")
            .finish(())
            .is_err());
    }
}
