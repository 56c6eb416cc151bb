//! Long-running operations (`projects.locations.operations.*`) and the helpers every resource
//! uses to answer with one.

use serde_json::{json, Value};

use crate::error::ApiError;
use crate::server::Call;
use crate::state::{Operation, OperationKind, State};

pub(crate) const JOB_TYPE: &str = "type.googleapis.com/google.cloud.run.v2.Job";
pub(crate) const EXECUTION_TYPE: &str = "type.googleapis.com/google.cloud.run.v2.Execution";

/// `value` packed as a `google.protobuf.Any`.
pub(crate) fn any(type_url: &str, value: &Value) -> Value {
    let mut v = value.clone();
    if let Value::Object(m) = &mut v {
        m.insert("@type".into(), json!(type_url));
    }
    v
}

/// `projects/P/locations/L` of a resource name.
pub(crate) fn location_of(name: &str) -> String {
    name.split('/').take(4).collect::<Vec<_>>().join("/")
}

/// Stores and returns a finished operation; its first answer says `done: first_done`.
pub(crate) fn finished(
    state: &mut State,
    location: &str,
    type_url: &str,
    resource: &Value,
    first_done: bool,
) -> Value {
    let name = format!("{location}/operations/{}", uuid::Uuid::new_v4());
    let response = any(type_url, resource);
    let op = Operation {
        name: name.clone(),
        kind: OperationKind::Done { response },
        observed: first_done,
    };
    let v = render(state, &op);
    state.operations.insert(name, op);
    v
}

/// Stores and returns an operation that is done when the execution `execution` is.
pub(crate) fn following(state: &mut State, location: &str, execution: &str) -> Value {
    let name = format!("{location}/operations/{}", uuid::Uuid::new_v4());
    let last = state
        .executions
        .get(execution)
        .map(|e| e.value.clone())
        .unwrap_or_default();
    let op = Operation {
        name: name.clone(),
        kind: OperationKind::Execution {
            name: execution.to_owned(),
            last,
        },
        observed: true,
    };
    let v = render(state, &op);
    state.operations.insert(name, op);
    v
}

/// The operation as JSON.
fn render(state: &State, op: &Operation) -> Value {
    match &op.kind {
        OperationKind::Done { response } => {
            let mut v = json!({"name": op.name, "metadata": response, "done": op.observed});
            if op.observed {
                v["response"] = response.clone();
            }
            v
        }
        OperationKind::Execution { name, last } => {
            let (exec, done) = match state.executions.get(name) {
                Some(e) => (e.value.clone(), e.done),
                None => (last.clone(), true),
            };
            let packed = any(EXECUTION_TYPE, &exec);
            let mut v = json!({"name": op.name, "metadata": packed, "done": done});
            if done {
                v["response"] = packed;
            }
            v
        }
    }
}

fn observe(state: &mut State, name: &str) -> Result<Value, ApiError> {
    let op = state
        .operations
        .get_mut(name)
        .ok_or_else(|| ApiError::not_found(format!("Operation '{name}' was not found.")))?;
    op.observed = true;
    if let OperationKind::Execution { name: exec, last } = &mut op.kind {
        if let Some(e) = state.executions.get(exec.as_str()) {
            *last = e.value.clone();
        }
    }
    let op = state
        .operations
        .get(name)
        .ok_or_else(|| ApiError::not_found(name))?;
    Ok(render(state, op))
}

/// `operations.get` and `operations.wait` (which answers at once with the current state).
pub(crate) fn get(state: &mut State, call: &Call<'_>) -> Result<Value, ApiError> {
    observe(state, &call.name)
}

pub(crate) fn delete(state: &mut State, call: &Call<'_>) -> Result<Value, ApiError> {
    state
        .operations
        .remove(&call.name)
        .ok_or_else(|| ApiError::not_found(format!("Operation '{}' was not found.", call.name)))?;
    Ok(json!({}))
}

pub(crate) fn list(state: &mut State, call: &Call<'_>) -> Result<Value, ApiError> {
    let prefix = format!("{}/operations/", call.name);
    let names: Vec<String> = state
        .operations
        .keys()
        .filter(|n| n.starts_with(&prefix))
        .cloned()
        .collect();
    let ops: Vec<Value> = names
        .iter()
        .filter_map(|n| state.operations.get(n).map(|op| render(state, op)))
        .collect();
    Ok(json!({ "operations": ops }))
}
