//! `job_vars`: a push pool's job template with a run's job variables over it,
//! `ferry_core::JobVars::merge`, and its typed reads (crates/core/src/vars.rs): the trust
//! boundary "a run sets only the variables its pool lists; the endpoint never".
//!
//! Input: the template's JSON on the first line, the variables' JSON on the rest (blank: null).
//!
//! Properties, for every variable name:
//! - only names the pool type knows are merged, and never `run_variables`;
//! - a run's value is taken only when the run may set it (the template's valid
//!   `run_variables`, else the default), and never for a template-only variable; whatever a
//!   run sets that it may not is an error naming that variable;
//! - otherwise the template's value stands;
//! - every typed read either returns exactly the merged value or adds one error naming the
//!   field (none for unset or null), and `finish` succeeds exactly when nothing was wrong.

use ferry_core::vars::{JobVars, Variables, RUN_VARIABLES, TEMPLATE_ONLY};
use serde_json::Value;

/// A pool type like the real ones: identity, placement and the endpoint only from the
/// template unless it lists them.
const KIND: Variables = Variables {
    pool_type: "fuzz",
    known: &[
        "image", "command", "env", "cpu", "role", "subnets", "endpoint",
    ],
    run_default: &["image", "command", "env", "cpu"],
};

/// Names the input may use besides the known ones.
const OTHERS: [&str; 3] = [RUN_VARIABLES, "privileged", ""];

pub fn check(data: &[u8]) {
    let Some((template, variables)) = super::corpus::two_json(data) else {
        return;
    };
    let merged = JobVars::merge(&template, &variables, &KIND);
    let errors: Vec<&str> = merged.errors.iter().map(|e| e.field.as_str()).collect();
    let run_may_set = run_may_set(&template);
    let names = KIND
        .known
        .iter()
        .chain(OTHERS.iter())
        .copied()
        .chain(keys(&template))
        .chain(keys(&variables));
    for name in names {
        let got = merged.get(name);
        let from_template = template.get(name).filter(|_| name != RUN_VARIABLES);
        let from_run = variables.get(name);
        if got.is_some() {
            assert!(
                KIND.known.contains(&name),
                "merged {name:?}, which the pool type does not know"
            );
        }
        let run_allowed = KIND.known.contains(&name)
            && !TEMPLATE_ONLY.contains(&name)
            && run_may_set.iter().any(|n| n == name);
        match from_run {
            Some(v) if run_allowed => assert_eq!(got, Some(v), "{name}: the run's value"),
            Some(_) => {
                assert!(
                    errors.contains(&name),
                    "{name}: a run set it without an error naming it ({errors:?})"
                );
                let want = from_template.filter(|_| KIND.known.contains(&name));
                assert_eq!(got, want, "{name}: a refused run value changed the merge");
            }
            None => {
                let want = from_template.filter(|_| KIND.known.contains(&name));
                assert_eq!(got, want, "{name}: the template's value");
            }
        }
    }
    if matches!(template, Value::Null | Value::Object(_))
        && matches!(variables, Value::Null | Value::Object(_))
        && keys(&template).all(|k| k == RUN_VARIABLES || KIND.known.contains(&k))
        && keys(&variables).all(|k| {
            KIND.known.contains(&k)
                && !TEMPLATE_ONLY.contains(&k)
                && run_may_set.iter().any(|n| n == k)
        })
        && run_variables_valid(&template)
    {
        assert!(errors.is_empty(), "a valid merge reported {errors:?}");
    } else {
        assert!(!errors.is_empty(), "an invalid merge reported nothing");
    }
    typed_reads(&template, &variables);
}

/// What runs may set: a valid `run_variables` of the template, else the default.
fn run_may_set(template: &Value) -> Vec<String> {
    match template.get(RUN_VARIABLES) {
        Some(list) if run_variables_valid(template) => list
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        _ => KIND.run_default.iter().map(|s| (*s).to_owned()).collect(),
    }
}

fn run_variables_valid(template: &Value) -> bool {
    match template.get(RUN_VARIABLES) {
        None => true,
        Some(Value::Array(items)) => items.iter().all(|item| {
            item.as_str()
                .is_some_and(|n| KIND.known.contains(&n) && !TEMPLATE_ONLY.contains(&n))
        }),
        Some(_) => false,
    }
}

fn typed_reads(template: &Value, variables: &Value) {
    for &name in KIND.known {
        let mut v = JobVars::merge(template, variables, &KIND);
        let value = v.get(name).cloned();
        let set = value.as_ref().is_some_and(|x| !x.is_null());
        let read = |v: &mut JobVars, which: u8| -> bool {
            match which {
                0 => match v.opt_str(name) {
                    Some(s) => {
                        assert_eq!(value.as_ref().and_then(Value::as_str), Some(s.as_str()));
                        true
                    }
                    None => false,
                },
                1 => match v.opt_u32(name, "units") {
                    Some(n) => {
                        let ok = match &value {
                            Some(Value::Number(x)) => x.as_u64() == Some(u64::from(n)),
                            Some(Value::String(s)) => s.trim().parse::<u32>() == Ok(n),
                            _ => false,
                        };
                        assert!(ok, "{name}: opt_u32 read {n} from {value:?}");
                        true
                    }
                    None => false,
                },
                2 => match v.opt_str_list(name, "[\"x\"]") {
                    Some(list) => {
                        let want: Option<Vec<&str>> = value
                            .as_ref()
                            .and_then(Value::as_array)
                            .and_then(|a| a.iter().map(Value::as_str).collect());
                        let got: Vec<&str> = list.iter().map(String::as_str).collect();
                        assert_eq!(want, Some(got), "{name}: opt_str_list");
                        true
                    }
                    None => false,
                },
                _ => match v.opt_str_map(name) {
                    Some(map) => {
                        let obj = value.as_ref().and_then(Value::as_object);
                        assert!(
                            obj.is_some_and(|o| o.len() == map.len()
                                && map
                                    .iter()
                                    .all(|(k, s)| o.get(k).and_then(Value::as_str) == Some(s))),
                            "{name}: opt_str_map read {map:?} from {value:?}"
                        );
                        true
                    }
                    None => false,
                },
            }
        };
        for which in 0..4u8 {
            let errors = v.errors.len();
            let returned = read(&mut v, which);
            let added = v.errors.len() - errors;
            if returned || !set {
                assert_eq!(added, 0, "{name}: read {which} added an error");
            } else {
                assert_eq!(added, 1, "{name}: read {which} refused without one error");
                assert_eq!(v.errors.last().map(|e| e.field.as_str()), Some(name));
            }
        }
        let clean = v.errors.is_empty();
        assert_eq!(
            v.finish(()).is_ok(),
            clean,
            "finish disagrees with the errors"
        );
    }
}

fn keys(v: &Value) -> impl Iterator<Item = &str> {
    v.as_object()
        .into_iter()
        .flat_map(|o| o.keys().map(String::as_str))
}
