//! Jobs (`projects.locations.jobs.*`): create, get, list, patch, delete, run.

use serde_json::{json, Value};

use crate::error::ApiError;
use crate::executions;
use crate::operations::{self, JOB_TYPE};
use crate::server::Call;
use crate::state::State;

/// Label namespaces Cloud Run v2 refuses (its `labels` description says so).
const RESERVED_LABEL_PREFIXES: &[&str] = &[
    "run.googleapis.com",
    "cloud.googleapis.com",
    "serving.knative.dev",
    "autoscaling.knative.dev",
];

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub(crate) fn etag() -> String {
    format!("\"{}\"", uuid::Uuid::new_v4().simple())
}

/// `Resource 'j' of kind 'JOB' in region 'l' in project 'p' does not exist.`
pub(crate) fn not_found(kind: &str, name: &str) -> ApiError {
    let parts: Vec<&str> = name.split('/').collect();
    let project = parts.get(1).copied().unwrap_or_default();
    let region = parts.get(3).copied().unwrap_or_default();
    let id = parts.last().copied().unwrap_or_default();
    ApiError::not_found(format!(
        "Resource '{id}' of kind '{kind}' in region '{region}' in project '{project}' does not \
         exist."
    ))
}

fn valid_id(id: &str) -> bool {
    let b = id.as_bytes();
    (1..=63).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && !id.ends_with('-')
}

/// Removes fields the schema marks output-only: Google ignores them on input.
fn strip_output_only(call: &Call<'_>, schema: &str, v: &mut Value) {
    let Some(props) = call
        .discovery
        .schemas
        .get(schema)
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
    else {
        return;
    };
    if let Value::Object(m) = v {
        m.retain(|k, _| {
            props.get(k).is_none_or(|p| {
                !(p.get("readOnly").and_then(Value::as_bool).unwrap_or(false)
                    || p.get("description")
                        .and_then(Value::as_str)
                        .is_some_and(|d| d.starts_with("Output only.")))
            })
        });
    }
}

/// What Google checks beyond the schema, for a job's spec.
fn check_spec(job: &Value) -> Result<(), ApiError> {
    if let Some(labels) = job.get("labels").and_then(Value::as_object) {
        for key in labels.keys() {
            if RESERVED_LABEL_PREFIXES.iter().any(|p| key.starts_with(p)) {
                return Err(ApiError::invalid_field(
                    "job.labels",
                    format!("Label key '{key}' uses a reserved namespace."),
                ));
            }
        }
    }
    let containers = job
        .pointer("/template/template/containers")
        .and_then(Value::as_array);
    let Some(containers) = containers.filter(|c| !c.is_empty()) else {
        return Err(ApiError::invalid_field(
            "job.template.template.containers",
            "Job must have at least one container.",
        ));
    };
    for (i, c) in containers.iter().enumerate() {
        if c.get("image")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(ApiError::invalid_field(
                &format!("job.template.template.containers[{i}].image"),
                "Container image is required.",
            ));
        }
    }
    Ok(())
}

/// Creating a job that runs as a service account needs `iam.serviceAccounts.actAs` on it, as
/// Google checks (also with `validateOnly`); an account granted every permission has it.
fn check_act_as(state: &State, call: &Call<'_>, job: &Value) -> Result<(), ApiError> {
    let granted = state
        .accounts
        .get(&call.account)
        .and_then(|a| a.permissions.as_ref())
        .is_none_or(|p| p.iter().any(|p| p == ACT_AS));
    if granted {
        return Ok(());
    }
    let project = call.name.split('/').nth(1).unwrap_or_default();
    let sa = job
        .pointer("/template/template/serviceAccount")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map_or_else(
            || format!("{project}-compute@developer.gserviceaccount.com"),
            str::to_owned,
        );
    Err(ApiError::permission_denied(format!(
        "Permission 'iam.serviceaccounts.actAs' denied on service account {sa} (or it may not \
         exist)."
    )))
}

/// The permission to run a job as a service account.
pub(crate) const ACT_AS: &str = "iam.serviceAccounts.actAs";

/// The job as Google stores it: the spec with defaults and the output-only fields filled in.
fn materialize(call: &Call<'_>, name: &str, mut job: Value, previous: Option<&Value>) -> Value {
    strip_output_only(call, "GoogleCloudRunV2Job", &mut job);
    let now = now();
    let generation = previous
        .and_then(|p| p.get("generation"))
        .and_then(Value::as_str)
        .and_then(|g| g.parse::<i64>().ok())
        .map_or(1, |g| g + 1);
    let Value::Object(m) = &mut job else {
        return job;
    };
    let keep = |k: &str| previous.and_then(|p| p.get(k)).cloned();
    m.insert("name".into(), json!(name));
    m.insert(
        "uid".into(),
        keep("uid").unwrap_or_else(|| json!(uuid::Uuid::new_v4().to_string())),
    );
    m.insert("generation".into(), json!(generation.to_string()));
    m.insert("observedGeneration".into(), json!(generation.to_string()));
    m.insert(
        "createTime".into(),
        keep("createTime").unwrap_or(json!(now)),
    );
    m.insert("updateTime".into(), json!(now));
    m.insert(
        "creator".into(),
        keep("creator").unwrap_or(json!(call.account)),
    );
    m.insert("lastModifier".into(), json!(call.account));
    m.insert("etag".into(), json!(etag()));
    m.insert("reconciling".into(), json!(false));
    m.insert(
        "executionCount".into(),
        keep("executionCount").unwrap_or(json!(0)),
    );
    if let Some(l) = keep("latestCreatedExecution") {
        m.insert("latestCreatedExecution".into(), l);
    }
    m.entry("launchStage").or_insert(json!("GA"));
    m.insert(
        "terminalCondition".into(),
        json!({"type": "Ready", "state": "CONDITION_SUCCEEDED", "lastTransitionTime": now}),
    );
    m.insert("conditions".into(), json!([]));
    if let Some(Value::Object(t)) = m.get_mut("template") {
        t.entry("taskCount").or_insert(json!(1));
        t.entry("parallelism").or_insert(json!(0));
        if let Some(Value::Object(tt)) = t.get_mut("template") {
            tt.entry("maxRetries").or_insert(json!(3));
            tt.entry("timeout").or_insert(json!("600s"));
        }
    }
    job
}

pub(crate) fn create(state: &mut State, call: &Call<'_>) -> Result<Value, ApiError> {
    let id = call.query("jobId").map_or_else(
        || format!("job-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        str::to_owned,
    );
    if !valid_id(&id) {
        return Err(ApiError::invalid_field(
            "job_id",
            format!(
                "Invalid job id '{id}': must start with a letter, use only lowercase letters, \
                 digits and hyphens, not end with a hyphen, and be at most 63 characters."
            ),
        ));
    }
    let body = if call.body.is_object() {
        call.body.clone()
    } else {
        json!({})
    };
    check_spec(&body)?;
    check_act_as(state, call, &body)?;
    let name = format!("{}/jobs/{id}", call.name);
    if state.jobs.contains_key(&name) {
        return Err(ApiError::already_exists(format!(
            "Resource '{id}' already exists."
        )));
    }
    let job = materialize(call, &name, body, None);
    if call.flag("validateOnly") {
        return Ok(operations::finished(
            state, &call.name, JOB_TYPE, &job, true,
        ));
    }
    state.jobs.insert(name, job.clone());
    Ok(operations::finished(
        state, &call.name, JOB_TYPE, &job, false,
    ))
}

pub(crate) fn patch(state: &mut State, call: &Call<'_>) -> Result<Value, ApiError> {
    let previous = state.jobs.get(&call.name).cloned();
    if previous.is_none() && !call.flag("allowMissing") {
        return Err(not_found("JOB", &call.name));
    }
    check_spec(&call.body)?;
    if let (Some(p), Some(e)) = (&previous, call.body.get("etag").and_then(Value::as_str)) {
        if p.get("etag").and_then(Value::as_str) != Some(e) {
            return Err(ApiError::aborted("The etag does not match the job's."));
        }
    }
    let job = materialize(call, &call.name, call.body.clone(), previous.as_ref());
    let location = operations::location_of(&call.name);
    if !call.flag("validateOnly") {
        state.jobs.insert(call.name.clone(), job.clone());
    }
    Ok(operations::finished(
        state, &location, JOB_TYPE, &job, false,
    ))
}

pub(crate) fn get(state: &mut State, call: &Call<'_>) -> Result<Value, ApiError> {
    state
        .jobs
        .get(&call.name)
        .cloned()
        .ok_or_else(|| not_found("JOB", &call.name))
}

/// A page of `items` per `pageSize` and `pageToken` (an offset, as the fake's own token).
pub(crate) fn page(call: &Call<'_>, items: Vec<Value>, key: &str) -> Result<Value, ApiError> {
    let size = call
        .query("pageSize")
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(100);
    let start = match call.query("pageToken").filter(|t| !t.is_empty()) {
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| ApiError::invalid_field("page_token", "Invalid page token."))?,
        None => 0,
    };
    let end = (start + size).min(items.len());
    let mut v = json!({ key: items.get(start..end).unwrap_or_default() });
    if end < items.len() {
        v["nextPageToken"] = json!(end.to_string());
    }
    Ok(v)
}

pub(crate) fn list(state: &mut State, call: &Call<'_>) -> Result<Value, ApiError> {
    let prefix = format!("{}/jobs/", call.name);
    let jobs: Vec<Value> = state
        .jobs
        .iter()
        .filter(|(n, _)| n.starts_with(&prefix))
        .map(|(_, j)| j.clone())
        .collect();
    page(call, jobs, "jobs")
}

pub(crate) fn delete(state: &mut State, call: &Call<'_>) -> Result<Value, ApiError> {
    let job = state
        .jobs
        .get(&call.name)
        .cloned()
        .ok_or_else(|| not_found("JOB", &call.name))?;
    if let Some(e) = call.query("etag") {
        if job.get("etag").and_then(Value::as_str) != Some(e) {
            return Err(ApiError::aborted("The etag does not match the job's."));
        }
    }
    if !call.flag("validateOnly") {
        state.jobs.remove(&call.name);
        let prefix = format!("{}/executions/", call.name);
        state.executions.retain(|n, _| !n.starts_with(&prefix));
    }
    let location = operations::location_of(&call.name);
    Ok(operations::finished(state, &location, JOB_TYPE, &job, true))
}

pub(crate) fn run(state: &mut State, call: &Call<'_>) -> Result<Value, ApiError> {
    let job = state
        .jobs
        .get(&call.name)
        .cloned()
        .ok_or_else(|| not_found("JOB", &call.name))?;
    if let Some(e) = call.body.get("etag").and_then(Value::as_str) {
        if job.get("etag").and_then(Value::as_str) != Some(e) {
            return Err(ApiError::aborted("The etag does not match the job's."));
        }
    }
    let overrides = call.body.get("overrides").cloned().unwrap_or(Value::Null);
    let validate_only = call.body.get("validateOnly").and_then(Value::as_bool) == Some(true);
    let exec = executions::start(state, call, &job, &overrides, validate_only)?;
    let location = operations::location_of(&call.name);
    if validate_only {
        return Ok(operations::finished(
            state,
            &location,
            operations::EXECUTION_TYPE,
            &exec,
            true,
        ));
    }
    let exec_name = exec
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if let Some(Value::Object(j)) = state.jobs.get_mut(&call.name) {
        let count = j.get("executionCount").and_then(Value::as_i64).unwrap_or(0) + 1;
        j.insert("executionCount".into(), json!(count));
        j.insert(
            "latestCreatedExecution".into(),
            json!({"name": exec_name, "createTime": exec.get("createTime")}),
        );
    }
    Ok(operations::following(state, &location, &exec_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(valid_id("ferry-run-1"));
        assert!(!valid_id("Ferry"));
        assert!(!valid_id("1abc"));
        assert!(!valid_id("abc-"));
        assert!(!valid_id(""));
        assert!(!valid_id(&"a".repeat(64)));
    }
}
