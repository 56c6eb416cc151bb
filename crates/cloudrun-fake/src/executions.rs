//! Executions (`projects.locations.jobs.executions.*`): started by `jobs.run` with its
//! overrides applied to the template, then progressing per their [`ExecutionPlan`].

use rand::Rng as _;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::jobs::{etag, not_found, now, page};
use crate::operations::{self, EXECUTION_TYPE};
use crate::server::Call;
use crate::state::{Execution, ExecutionPlan, State};

/// How an execution ended.
enum End {
    Succeeded,
    Failed(String),
    Cancelled,
}

/// Applies `jobs.run` overrides to the job's task template, as the execution then reports it:
/// args replaced (or cleared), env merged by name, timeout replaced.
fn apply_overrides(template: &mut Value, overrides: &Value) {
    if let Some(timeout) = overrides.get("timeout").filter(|t| !t.is_null()) {
        template["timeout"] = timeout.clone();
    }
    let Some(list) = overrides
        .get("containerOverrides")
        .and_then(Value::as_array)
    else {
        return;
    };
    let Some(containers) = template.get_mut("containers").and_then(Value::as_array_mut) else {
        return;
    };
    for o in list {
        let target = o
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty());
        let container = match target {
            Some(n) => containers
                .iter_mut()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(n)),
            None => containers.first_mut(),
        };
        let Some(Value::Object(c)) = container else {
            continue;
        };
        let args = o
            .get("args")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty());
        if let Some(args) = args {
            c.insert("args".into(), Value::Array(args.clone()));
        } else if o.get("clearArgs").and_then(Value::as_bool) == Some(true) {
            c.remove("args");
        }
        if let Some(env) = o.get("env").and_then(Value::as_array) {
            let mut merged: Vec<Value> = c
                .get("env")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for e in env {
                let name = e.get("name");
                match merged.iter_mut().find(|m| m.get("name") == name) {
                    Some(m) => *m = e.clone(),
                    None => merged.push(e.clone()),
                }
            }
            c.insert("env".into(), Value::Array(merged));
        }
    }
}

fn suffix() -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..5)
        .map(|_| char::from(CHARS[rng.gen_range(0..CHARS.len())]))
        .collect()
}

/// Makes the execution of `job` for `jobs.run`; stores it unless `validate_only`.
pub(crate) fn start(
    state: &mut State,
    call: &Call<'_>,
    job: &Value,
    overrides: &Value,
    validate_only: bool,
) -> Result<Value, ApiError> {
    let job_id = call.name.rsplit('/').next().unwrap_or_default();
    let mut name = format!("{}/executions/{job_id}-{}", call.name, suffix());
    while state.executions.contains_key(&name) {
        name = format!("{}/executions/{job_id}-{}", call.name, suffix());
    }
    let spec = job.get("template").cloned().unwrap_or_else(|| json!({}));
    let mut template = spec.get("template").cloned().unwrap_or_else(|| json!({}));
    apply_overrides(&mut template, overrides);
    let task_count = overrides
        .get("taskCount")
        .and_then(Value::as_i64)
        .or_else(|| spec.get("taskCount").and_then(Value::as_i64))
        .unwrap_or(1);
    let now = now();
    let parts: Vec<&str> = call.name.split('/').collect();
    let project = parts.get(1).copied().unwrap_or_default();
    let exec_id = name.rsplit('/').next().unwrap_or_default();
    let mut labels = job.get("labels").cloned().unwrap_or_else(|| json!({}));
    if let Value::Object(l) = &mut labels {
        l.insert("run.googleapis.com/job".into(), json!(job_id));
        l.insert("run.googleapis.com/execution".into(), json!(exec_id));
    }
    let value = json!({
        "name": name,
        "uid": uuid::Uuid::new_v4().to_string(),
        "creator": call.account,
        "generation": "1",
        "observedGeneration": "1",
        "labels": labels,
        "annotations": job.get("annotations").cloned().unwrap_or_else(|| json!({})),
        "createTime": now,
        "startTime": now,
        "updateTime": now,
        "launchStage": job.get("launchStage").cloned().unwrap_or_else(|| json!("GA")),
        "job": job_id,
        "parallelism": spec.get("parallelism").cloned().unwrap_or(json!(0)),
        "taskCount": task_count,
        "template": template,
        "reconciling": true,
        "runningCount": task_count,
        "succeededCount": 0,
        "failedCount": 0,
        "cancelledCount": 0,
        "retriedCount": 0,
        "conditions": [
            {"type": "ResourcesAvailable", "state": "CONDITION_SUCCEEDED", "lastTransitionTime": now},
            {"type": "Started", "state": "CONDITION_SUCCEEDED", "lastTransitionTime": now},
            {"type": "Completed", "state": "CONDITION_PENDING", "lastTransitionTime": now},
        ],
        "logUri": format!(
            "https://console.cloud.google.com/logs/viewer?project={project}&resource=cloud_run_job%2Fjob_name%2F{job_id}"
        ),
        "etag": etag(),
    });
    if validate_only {
        return Ok(value);
    }
    let plan = state.next_plan();
    let mut exec = Execution {
        value,
        plan,
        polls: 0,
        done: false,
    };
    progress(&mut exec, false);
    let v = exec.value.clone();
    state.executions.insert(name, exec);
    Ok(v)
}

/// One observation of a running execution (or, with `observed == false`, its creation).
fn progress(exec: &mut Execution, observed: bool) {
    if exec.done {
        return;
    }
    if observed {
        exec.polls = exec.polls.saturating_add(1);
    }
    let end = match &exec.plan {
        ExecutionPlan::Succeed { after_polls } if exec.polls >= *after_polls => End::Succeeded,
        ExecutionPlan::Fail {
            after_polls,
            message,
        } if exec.polls >= *after_polls => End::Failed(message.clone()),
        _ => return,
    };
    finish(exec, end);
}

fn finish(exec: &mut Execution, end: End) {
    let now = now();
    let v = &mut exec.value;
    let tasks = v.get("taskCount").and_then(Value::as_i64).unwrap_or(1);
    v["runningCount"] = json!(0);
    v["completionTime"] = json!(now);
    v["updateTime"] = json!(now);
    v["reconciling"] = json!(false);
    v["etag"] = json!(etag());
    let completed = match end {
        End::Succeeded => {
            v["succeededCount"] = json!(tasks);
            json!({"type": "Completed", "state": "CONDITION_SUCCEEDED",
                   "message": "Execution completed successfully.", "lastTransitionTime": now})
        }
        End::Failed(message) => {
            v["failedCount"] = json!(tasks);
            json!({"type": "Completed", "state": "CONDITION_FAILED",
                   "message": format!("Task {}-0 failed with message: {message}", v["name"].as_str().unwrap_or_default().rsplit('/').next().unwrap_or_default()),
                   "executionReason": "NON_ZERO_EXIT_CODE", "severity": "ERROR",
                   "lastTransitionTime": now})
        }
        End::Cancelled => {
            v["cancelledCount"] = json!(tasks);
            json!({"type": "Completed", "state": "CONDITION_FAILED",
                   "message": "The execution was cancelled.",
                   "executionReason": "CANCELLED", "severity": "ERROR",
                   "lastTransitionTime": now})
        }
    };
    if let Some(conditions) = v.get_mut("conditions").and_then(Value::as_array_mut) {
        conditions.retain(|c| c.get("type").and_then(Value::as_str) != Some("Completed"));
        conditions.push(completed);
    }
    exec.done = true;
}

pub(crate) fn get(state: &mut State, call: &Call<'_>) -> Result<Value, ApiError> {
    let exec = state
        .executions
        .get_mut(&call.name)
        .ok_or_else(|| not_found("EXECUTION", &call.name))?;
    progress(exec, true);
    Ok(exec.value.clone())
}

pub(crate) fn list(state: &mut State, call: &Call<'_>) -> Result<Value, ApiError> {
    // `jobs/-` lists the executions of every job in the location.
    let prefix = match call.name.strip_suffix("/jobs/-") {
        Some(location) => format!("{location}/jobs/"),
        None => format!("{}/executions/", call.name),
    };
    let mut items = Vec::new();
    for (name, exec) in state.executions.iter_mut() {
        if name.starts_with(&prefix) {
            progress(exec, true);
            items.push(exec.value.clone());
        }
    }
    // Newest first, as Cloud Run lists them (RFC 3339 times of one format sort as text).
    items.sort_by(|a, b| {
        let key = |v: &Value| {
            (
                v.get("createTime")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                v.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            )
        };
        key(b).cmp(&key(a))
    });
    page(call, items, "executions")
}

fn check_etag(exec: &Value, etag: Option<&str>) -> Result<(), ApiError> {
    match etag {
        Some(e) if exec.get("etag").and_then(Value::as_str) != Some(e) => Err(ApiError::aborted(
            "The etag does not match the execution's.",
        )),
        _ => Ok(()),
    }
}

pub(crate) fn cancel(state: &mut State, call: &Call<'_>) -> Result<Value, ApiError> {
    let exec = state
        .executions
        .get_mut(&call.name)
        .ok_or_else(|| not_found("EXECUTION", &call.name))?;
    check_etag(&exec.value, call.body.get("etag").and_then(Value::as_str))?;
    if exec.done {
        return Err(ApiError::failed_precondition(format!(
            "Execution '{}' has already completed and cannot be cancelled.",
            call.name.rsplit('/').next().unwrap_or_default()
        )));
    }
    if call.body.get("validateOnly").and_then(Value::as_bool) != Some(true) {
        finish(exec, End::Cancelled);
    }
    let v = exec.value.clone();
    let location = operations::location_of(&call.name);
    Ok(operations::finished(
        state,
        &location,
        EXECUTION_TYPE,
        &v,
        true,
    ))
}

pub(crate) fn delete(state: &mut State, call: &Call<'_>) -> Result<Value, ApiError> {
    let exec = state
        .executions
        .get(&call.name)
        .ok_or_else(|| not_found("EXECUTION", &call.name))?;
    check_etag(&exec.value, call.query("etag"))?;
    let v = exec.value.clone();
    if !call.flag("validateOnly") {
        state.executions.remove(&call.name);
    }
    let location = operations::location_of(&call.name);
    Ok(operations::finished(
        state,
        &location,
        EXECUTION_TYPE,
        &v,
        true,
    ))
}

/// The control API's out-of-band cancellation.
pub(crate) fn cancel_out_of_band(exec: &mut Execution) {
    if !exec.done {
        finish(exec, End::Cancelled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_replace_args_merge_env_and_timeout() {
        let mut t = json!({"containers": [{"image": "i", "args": ["a"],
            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}], "timeout": "600s"});
        apply_overrides(
            &mut t,
            &json!({"containerOverrides": [{"args": ["x", "y"], "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}],
                    "timeout": "60s"}),
        );
        assert_eq!(t["containers"][0]["args"], json!(["x", "y"]));
        assert_eq!(
            t["containers"][0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}])
        );
        assert_eq!(t["timeout"], "60s");
        apply_overrides(
            &mut t,
            &json!({"containerOverrides": [{"clearArgs": true}]}),
        );
        assert!(t["containers"][0].get("args").is_none());
    }
}
