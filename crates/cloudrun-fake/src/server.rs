//! The HTTP front: route by the discovery document, authenticate, validate, apply an injected
//! fault, dispatch to the resource, and journal every request.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method as HttpMethod, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::discovery::{matches_pattern, percent_decode, Discovery};
use crate::error::ApiError;
use crate::state::{Fault, JournalEntry, State};
use crate::{auth, executions, jobs, operations, sts, validate};

pub(crate) struct Shared {
    pub discovery: Discovery,
    pub state: Mutex<State>,
    pub shutdown: Notify,
    pub hang: Duration,
}

impl Shared {
    pub fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep serving it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A routed, authenticated, validated call.
pub(crate) struct Call<'a> {
    pub discovery: &'a Discovery,
    /// The path parameter's value: the resource `name`, the `parent`, or the IAM `resource`.
    pub name: String,
    pub query: &'a [(String, String)],
    pub body: Value,
    pub account: String,
}

impl Call<'_> {
    /// A query parameter's value; an empty one is unset, as in proto3 (Google's Rust client
    /// sends `jobId=` and `etag=` when they are not set).
    pub fn query(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    pub fn flag(&self, key: &str) -> bool {
        self.query(key) == Some("true")
    }
}

fn parse_query(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

/// The permission a method needs: `projects.locations.jobs.executions.get` → `run.executions.get`.
fn permission(method_id: &str) -> String {
    let mut parts = method_id.rsplit('.');
    let verb = parts.next().unwrap_or_default();
    let resource = parts.next().unwrap_or_default();
    format!("run.{resource}.{verb}")
}

pub(crate) async fn handle(
    shared: Arc<Shared>,
    method: HttpMethod,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let query = parse_query(&uri);
    if method == HttpMethod::POST && uri.path() == sts::TOKEN_PATH {
        let (status, value) = sts::exchange(&shared, &body).await;
        shared.state().journal.push(JournalEntry {
            method_id: Some("sts.token".into()),
            http_method: method.to_string(),
            path: uri.path().to_owned(),
            query,
            body: None,
            account: None,
            status: Some(status.as_u16()),
        });
        return (status, axum::Json(value)).into_response();
    }
    let body_json: Option<Value> = serde_json::from_slice(&body).ok();
    let mut entry = JournalEntry {
        method_id: None,
        http_method: method.to_string(),
        path: uri.path().to_owned(),
        query: query.clone(),
        body: body_json,
        account: None,
        status: None,
    };
    let outcome = process(&shared, &method, &uri, &headers, &body, &query, &mut entry);
    match outcome {
        Outcome::Answer(status, value) => {
            entry.status = Some(status.as_u16());
            shared.state().journal.push(entry);
            (status, axum::Json(value)).into_response()
        }
        Outcome::Hang => {
            shared.state().journal.push(entry);
            tokio::select! {
                () = tokio::time::sleep(shared.hang) => {}
                () = shared.shutdown.notified() => {}
            }
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "DEADLINE_EXCEEDED",
                "Deadline exceeded (the fake hung up on purpose).",
            )
            .into_response()
        }
    }
}

enum Outcome {
    Answer(StatusCode, Value),
    Hang,
}

impl From<ApiError> for Outcome {
    fn from(e: ApiError) -> Self {
        Self::Answer(e.code, e.body())
    }
}

fn process(
    shared: &Shared,
    method: &HttpMethod,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    query: &[(String, String)],
    entry: &mut JournalEntry,
) -> Outcome {
    let discovery = &shared.discovery;
    let route = match discovery.route(method.as_str(), uri.path()) {
        Ok(r) => r,
        Err(_) => {
            // Google's front end answers an unknown path, or a known path under the wrong
            // verb, with 404.
            return ApiError::not_found(format!(
                "The requested URL {} was not found on this server ({method}).",
                uri.path()
            ))
            .into();
        }
    };
    let m = route.method;
    entry.method_id = Some(m.id.clone());

    // Authentication before anything else, as Google's front end does.
    // The journal names a verified account even when it is then denied.
    let account = match authenticate(shared, headers, uri.path(), &m.id, &mut entry.account) {
        Ok(a) => a,
        Err(e) => return e.into(),
    };

    let Some((param, value)) = route.path_param.clone() else {
        return ApiError::not_found(format!("The requested URL {} was not found.", uri.path()))
            .into();
    };
    if let Some(pattern) = m.parameters.get(&param).and_then(|p| p.pattern.as_deref()) {
        if !matches_pattern(pattern, &value) {
            return ApiError::invalid_field(
                &param,
                format!("Invalid value for '{param}': '{value}' does not match {pattern}."),
            )
            .into();
        }
    }
    let violations = validate::query(discovery, m, query);
    if !violations.is_empty() {
        return ApiError::invalid(&violations).into();
    }
    let body_value = match &m.request {
        Some(schema) => {
            let v = if body.iter().all(u8::is_ascii_whitespace) {
                json!({})
            } else {
                match serde_json::from_slice::<Value>(body) {
                    Ok(v) => v,
                    Err(e) => {
                        return ApiError::invalid_field(
                            "",
                            format!("Invalid JSON payload received. {e}"),
                        )
                        .into()
                    }
                }
            };
            let violations = validate::body(discovery, schema, &validate::body_root(schema), &v);
            if !violations.is_empty() {
                return ApiError::invalid(&violations).into();
            }
            v
        }
        None => Value::Null,
    };

    let fault = shared.state().take_fault(&m.id);
    if let Some(Fault::Status(code)) = fault {
        let code = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return ApiError::injected(code).into();
    }
    let call = Call {
        discovery,
        name: value,
        query,
        body: body_value,
        account,
    };
    let result = dispatch(&mut shared.state(), &m.id, &call);
    if fault == Some(Fault::TimeoutAfterSuccess) {
        return Outcome::Hang;
    }
    match result {
        Ok(v) => Outcome::Answer(StatusCode::OK, v),
        Err(e) => e.into(),
    }
}

fn authenticate(
    shared: &Shared,
    headers: &HeaderMap,
    path: &str,
    method_id: &str,
    verified: &mut Option<String>,
) -> Result<String, ApiError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| ApiError::unauthenticated("no bearer token"))?;
    let token = header
        .strip_prefix("Bearer ")
        .ok_or_else(|| ApiError::unauthenticated("not a bearer token"))?
        .trim();
    let state = shared.state();
    let now = chrono::Utc::now().timestamp();
    let (email, account) = if let Some(f) = state.federated.get(token) {
        // An access token of the STS: its federated principal.
        if f.expires_at <= now {
            return Err(ApiError::unauthenticated("access token expired"));
        }
        let account = state.accounts.get(&f.principal).ok_or_else(|| {
            ApiError::permission_denied(format!(
                "Permission '{}' denied: {} may act in no project.",
                permission(method_id),
                f.principal
            ))
        })?;
        (f.principal.clone(), account)
    } else {
        let unverified = auth::decode(token).map_err(|e| ApiError::unauthenticated(&e))?;
        let email = unverified.claims.iss.clone();
        let account = state
            .accounts
            .get(&email)
            .ok_or_else(|| ApiError::unauthenticated("unknown service account"))?;
        let key = account
            .key
            .as_ref()
            .ok_or_else(|| ApiError::unauthenticated("unknown service account"))?;
        unverified
            .verify(key, now)
            .map_err(|e| ApiError::unauthenticated(&e))?;
        (email, account)
    };
    *verified = Some(email.clone());
    let project = path
        .trim_start_matches('/')
        .split('/')
        .skip_while(|s| *s != "projects")
        .nth(1)
        .unwrap_or_default();
    let needed = permission(method_id);
    let denied = || {
        ApiError::permission_denied(format!(
            "Permission '{needed}' denied on resource '{}' (or it may not exist).",
            path.trim_start_matches("/v2/")
        ))
    };
    if state.projects.get(project) != Some(&email) {
        return Err(denied());
    }
    let granted = match &account.permissions {
        None => true,
        Some(p) => p.contains(&needed),
    };
    // Anyone in the project may ask which permissions they hold.
    if !granted && !method_id.ends_with(".testIamPermissions") {
        return Err(denied());
    }
    Ok(email)
}

fn test_iam_permissions(state: &State, call: &Call<'_>) -> Value {
    let granted = state
        .accounts
        .get(&call.account)
        .and_then(|a| a.permissions.clone());
    let asked: Vec<Value> = call
        .body
        .get("permissions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let held: Vec<Value> = asked
        .into_iter()
        .filter(|p| {
            granted
                .as_ref()
                .is_none_or(|g| p.as_str().is_some_and(|p| g.iter().any(|g| g == p)))
        })
        .collect();
    if held.is_empty() {
        json!({})
    } else {
        json!({ "permissions": held })
    }
}

fn dispatch(state: &mut State, method_id: &str, call: &Call<'_>) -> Result<Value, ApiError> {
    let short = method_id
        .strip_prefix("projects.locations.")
        .unwrap_or(method_id);
    match short {
        "jobs.create" => jobs::create(state, call),
        "jobs.get" => jobs::get(state, call),
        "jobs.list" => jobs::list(state, call),
        "jobs.patch" => jobs::patch(state, call),
        "jobs.delete" => jobs::delete(state, call),
        "jobs.run" => jobs::run(state, call),
        "jobs.executions.get" => executions::get(state, call),
        "jobs.executions.list" => executions::list(state, call),
        "jobs.executions.cancel" => executions::cancel(state, call),
        "jobs.executions.delete" => executions::delete(state, call),
        "operations.get" | "operations.wait" => operations::get(state, call),
        "operations.list" => operations::list(state, call),
        "operations.delete" => operations::delete(state, call),
        s if s.ends_with(".testIamPermissions") => Ok(test_iam_permissions(state, call)),
        _ => Err(ApiError::unimplemented(method_id)),
    }
}

#[cfg(test)]
mod tests {
    use super::permission;

    #[test]
    fn permissions() {
        assert_eq!(permission("projects.locations.jobs.run"), "run.jobs.run");
        assert_eq!(
            permission("projects.locations.jobs.executions.get"),
            "run.executions.get"
        );
        assert_eq!(
            permission("projects.locations.operations.get"),
            "run.operations.get"
        );
    }
}
