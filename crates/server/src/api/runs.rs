//! `/v1/runs`: submit, read, list, cancel, and a run's events and logs (optionally followed
//! as server-sent events).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use ferry_core::{Action, IdempotencyKey, PoolLimits, PoolType, RunId, RunState};
use ferry_store::{NewRun, Run, RunEvent, RunFilter, StoredLogLine};
use serde_json::Value;

use super::pools::MAX_RETRIES_CEILING;
use super::{parse_name, ApiJson, ApiPath, ApiQuery};
use crate::auth::Caller;
use crate::error::responses::{ApiKeyAuth, JsonBody, PathNotFound, Query, RoleForbidden};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    /// The pool's name.
    #[schema(schema_with = super::schemas::name)]
    pub pool: String,
    /// `sha256:<64 hex>` of the flow (managed pools only).
    #[schema(schema_with = super::schemas::digest_or_null)]
    pub artifact: Option<String>,
    /// The flow's parameters (a JSON object).
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<Value>,
    /// Overrides of the pool's job template (push pools; a JSON object).
    #[schema(value_type = Option<Object>)]
    pub job_variables: Option<Value>,
    /// Wall-clock limit in seconds; at most the pool's.
    #[schema(minimum = 1, maximum = 604_800)]
    pub timeout_s: Option<u32>,
    /// Lower limits than the pool's.
    #[schema(schema_with = super::schemas::limits_or_null)]
    #[serde(default, deserialize_with = "super::object_only")]
    pub limits: Option<PoolLimits>,
    /// Infrastructure retries (0-10); default the pool's.
    #[schema(maximum = 10)]
    pub max_retries: Option<u32>,
    /// The same key again returns the run it created (200) instead of a new one.
    #[schema(schema_with = super::schemas::idempotency_key_or_null)]
    pub idempotency_key: Option<String>,
    /// When to start; default now.
    pub scheduled_at: Option<DateTime<Utc>>,
    /// Parameters too sensitive to store in the clear (a JSON object): sealed under the
    /// workspace's key, never returned by the API, handed to the executor with the run.
    #[schema(value_type = Option<Object>)]
    pub sensitive_parameters: Option<Redacted<Value>>,
}

/// A request value kept out of `Debug` output.
#[derive(serde::Deserialize)]
#[serde(transparent)]
pub struct Redacted<T>(pub T);

impl<T> std::fmt::Debug for Redacted<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RunView {
    pub id: String,
    pub pool: String,
    pub pool_type: String,
    /// scheduled, pending, running, cancelling, completed, failed, crashed, cancelled.
    pub state: String,
    /// The typed reason of a failure, crash or retry (`timeout`, `oom`, `exit_code`, ...).
    pub state_reason: Option<String>,
    pub state_message: Option<String>,
    pub attempt: u32,
    pub max_retries: u32,
    #[schema(value_type = Object)]
    pub parameters: Value,
    #[schema(value_type = Object)]
    pub job_variables: Value,
    pub artifact: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    pub idempotency_key: Option<String>,
    /// Where it runs: task ARN, execution name, worker.
    #[schema(value_type = Option<Object>)]
    pub infrastructure: Option<Value>,
    pub log_truncated: bool,
    /// Whether the run carries sealed sensitive parameters (their values are never shown).
    pub has_sensitive_parameters: bool,
    pub scheduled_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

impl From<Run> for RunView {
    fn from(r: Run) -> Self {
        RunView {
            id: r.id.to_string(),
            pool: r.pool_name.to_string(),
            pool_type: r.pool_type.as_str().to_owned(),
            state: r.state.as_str().to_owned(),
            state_reason: r.state_reason.map(|x| x.as_str().to_owned()),
            state_message: r.state_message,
            attempt: r.attempt,
            max_retries: r.max_retries,
            parameters: r.parameters,
            job_variables: r.job_variables,
            artifact: r.artifact,
            result: r.result,
            idempotency_key: r.idempotency_key,
            infrastructure: r.infrastructure,
            log_truncated: r.log_truncated,
            has_sensitive_parameters: r.has_sensitive_parameters,
            scheduled_at: r.scheduled_at,
            created_at: r.created_at,
            started_at: r.started_at,
            ended_at: r.ended_at,
        }
    }
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RunList {
    pub items: Vec<RunView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only runs of this pool.
    #[param(
        pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
        min_length = 1,
        max_length = 63
    )]
    pub pool: Option<String>,
    /// Only runs in this state.
    #[param(schema_with = super::schemas::run_state)]
    pub state: Option<String>,
    /// Page size, 1-500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// From the previous page's `next_cursor`.
    pub cursor: Option<String>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct EventView {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub from: Option<String>,
    pub to: String,
    pub cause: String,
    pub reason: Option<String>,
    pub message: Option<String>,
    pub attempt: u32,
}

impl From<RunEvent> for EventView {
    fn from(e: RunEvent) -> Self {
        EventView {
            seq: e.seq,
            at: e.at,
            from: e.from_state.map(|s| s.as_str().to_owned()),
            to: e.to_state.as_str().to_owned(),
            cause: e.cause,
            reason: e.reason.map(|r| r.as_str().to_owned()),
            message: e.message,
            attempt: e.attempt,
        }
    }
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct EventList {
    pub items: Vec<EventView>,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct LogLineView {
    pub seq: i64,
    pub ts: DateTime<Utc>,
    /// stdout, stderr, flow or ferry.
    pub stream: String,
    pub line: String,
}

impl From<StoredLogLine> for LogLineView {
    fn from(l: StoredLogLine) -> Self {
        LogLineView {
            seq: l.seq,
            ts: l.line.ts,
            stream: l.line.stream.as_str().to_owned(),
            line: l.line.line,
        }
    }
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct LogsView {
    pub lines: Vec<LogLineView>,
    /// Output past the run's log limit was discarded.
    pub truncated: bool,
}

/// One server-sent event of a followed log (`follow=true`): `line` events, then one `end` (or
/// one `error` if the caller's key is revoked meanwhile).
pub struct LogEvent;

impl utoipa::PartialSchema for LogEvent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let string = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(description))
        };
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "event",
                string(
                    "`line`; `end` once the run has ended and every line was sent; `error` \
                     (then the stream closes: do not resume) once the API key it was opened \
                     with is revoked",
                )
                .enum_values(Some(["line", "end", "error"])),
            )
            .property(
                "data",
                string(
                    "JSON: a `line` event's is a LogLineView; the `end` event's is \
                     `{\"state\": <the run's final state>, \"truncated\": <bool>}`; the \
                     `error` event's is an error body (`{\"error\": {\"code\": \"unauthorized\", ...}}`)",
                ),
            )
            .required("event")
            .required("data")
            .into()
    }
}

impl utoipa::ToSchema for LogEvent {}

#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogsQuery {
    /// Only lines after this sequence number.
    pub after: Option<i64>,
    /// Most lines in the answer, 1-10000 (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
    /// Stream lines as server-sent events until the run ends.
    pub follow: Option<bool>,
}

fn parse_run_id(s: &str) -> Result<RunId, ApiError> {
    s.parse().map_err(|_| ApiError::not_found("run"))
}

fn check_artifact(pool_type: PoolType, artifact: Option<&str>) -> Result<(), ApiError> {
    match (pool_type, artifact) {
        (PoolType::Managed, None) => Err(ApiError::invalid(
            "a run of a managed pool needs an artifact: \"sha256:<hex>\" of an uploaded flow",
        )),
        (PoolType::Managed, Some(a)) => {
            let ok = a.strip_prefix("sha256:").is_some_and(|h| {
                h.len() == 64
                    && h.bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            });
            if ok {
                Ok(())
            } else {
                Err(ApiError::invalid(format!(
                    "artifact {a:?} must look like \"sha256:<64 lowercase hex digits>\""
                )))
            }
        }
        (_, Some(_)) => Err(ApiError::invalid(format!(
            "a run of a {pool_type} pool takes no artifact; say what to run in job_variables"
        ))),
        (_, None) => Ok(()),
    }
}

fn object_or_empty(field: &str, v: Option<Value>) -> Result<Value, ApiError> {
    match v {
        None => Ok(serde_json::json!({})),
        Some(v @ Value::Object(_)) => Ok(v),
        Some(_) => Err(ApiError::invalid(format!("{field} must be a JSON object"))),
    }
}

/// Submit a run.
#[utoipa::path(post, path = "/v1/runs", tag = "runs", operation_id = "submit_run", request_body = CreateRun,
    responses(
        (status = 201, body = RunView, description = "Created", links(
            ("GetRunById" = (operation_id = "show_run", parameters(("id" = "$response.body#/id")))),
            ("CancelRunById" = (operation_id = "cancel_run", parameters(("id" = "$response.body#/id")))),
            ("GetRunEventsById" = (operation_id = "run_events", parameters(("id" = "$response.body#/id")))),
            ("GetRunLogsById" = (operation_id = "run_logs", parameters(("id" = "$response.body#/id")))),
        )),
        (status = 200, body = RunView, description = "The run this idempotency key already created"),
        (status = 409, body = ErrorBody, description = "The idempotency key was used for a different submission (`conflict`)"),
        JsonBody, ApiKeyAuth, RoleForbidden),
    security(("api_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreateRun>,
) -> Result<Response, ApiError> {
    caller.require(Action::RunSubmit)?;
    let pool_name = parse_name("pool", &body.pool)?;
    let pool = match state.store.pool_get(caller.workspace_id, &pool_name).await {
        Ok(p) => p,
        Err(ferry_store::Error::NotFound { .. }) => {
            return Err(ApiError::invalid(format!(
                "pool {:?} does not exist in this workspace",
                body.pool
            )));
        }
        Err(e) => return Err(e.into()),
    };
    check_artifact(pool.pool_type, body.artifact.as_deref())?;
    if let Some(digest) = body.artifact.as_deref() {
        match state.store.artifact_get(caller.workspace_id, digest).await {
            Ok(_) => {}
            Err(ferry_store::Error::NotFound { .. }) => {
                return Err(ApiError::invalid(format!(
                    "artifact {digest} has not been uploaded to this workspace; upload the .wasm file with POST /v1/artifacts first"
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let parameters = object_or_empty("parameters", body.parameters)?;
    let job_variables = object_or_empty("job_variables", body.job_variables)?;
    if pool.pool_type == PoolType::Managed
        && job_variables.as_object().is_some_and(|o| !o.is_empty())
    {
        return Err(ApiError::invalid(
            "a run of a managed pool takes no job_variables; use limits or parameters",
        ));
    }
    state
        .push
        .check_run(pool.pool_type, &pool.job_template, &job_variables)?;
    let mut limits = body.limits.unwrap_or_default();
    limits
        .validate()
        .map_err(|e| ApiError::invalid(format!("limits.{e}")))?;
    if let Some(t) = body.timeout_s {
        if limits.timeout_s.is_some_and(|lt| lt != t) {
            return Err(ApiError::invalid(
                "timeout_s and limits.timeout_s disagree; give one",
            ));
        }
        limits.timeout_s = Some(t);
        limits
            .validate()
            .map_err(|e| ApiError::invalid(e.to_string()))?;
    }
    let effective = pool
        .limits
        .narrowed_by(&limits)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    if pool.pool_type == PoolType::Managed {
        crate::api::pools::check_memory_budget(&state, &effective)?;
    }
    crate::api::pools::check_log_bytes(&state, &effective)?;
    let max_retries = body.max_retries.unwrap_or(pool.max_retries);
    if max_retries > MAX_RETRIES_CEILING {
        return Err(ApiError::invalid(format!(
            "max_retries must be at most {MAX_RETRIES_CEILING} (got {max_retries})"
        )));
    }
    let idempotency_key = body
        .idempotency_key
        .as_deref()
        .map(IdempotencyKey::parse)
        .transpose()
        .map_err(|e| ApiError::invalid(format!("idempotency_key {e}")))?;
    let new = NewRun {
        workspace_id: caller.workspace_id,
        pool_id: pool.id,
        artifact: body.artifact,
        parameters,
        job_variables,
        limits,
        max_retries,
        idempotency_key,
        scheduled_at: body.scheduled_at.unwrap_or_else(Utc::now),
    };
    if pool.pool_type.is_push() && body.sensitive_parameters.is_some() {
        return Err(ApiError::invalid(format!(
            "a run of a {} pool takes no sensitive_parameters: its container would receive them \
             in the clear; give it secrets by reference in the pool's job template instead",
            pool.pool_type
        )));
    }
    let (run, created) = match body.sensitive_parameters.map(|r| r.0) {
        None => state.store.run_create(&new).await?,
        Some(Value::Object(map)) => {
            let mut sensitive = Value::Object(map);
            let text = crate::credential::seal_form(&sensitive);
            crate::credential::scrub(&mut sensitive);
            let id = RunId::new();
            let sealed = state
                .vault
                .run_parameters_seal(caller.workspace_id, id, &text)
                .await?;
            state.store.run_create_sealed(&new, id, &sealed).await?
        }
        Some(mut other) => {
            crate::credential::scrub(&mut other);
            return Err(ApiError::invalid(
                "sensitive_parameters must be a JSON object",
            ));
        }
    };
    if !created {
        let same = run.pool_id == new.pool_id
            && run.parameters == new.parameters
            && run.job_variables == new.job_variables
            && run.artifact == new.artifact
            && run.limits == new.limits
            && run.max_retries == new.max_retries;
        if !same {
            return Err(ApiError::conflict(format!(
                "idempotency key already used for a different submission (run {}); use a new key",
                run.id
            )));
        }
        return Ok((StatusCode::OK, Json(RunView::from(run))).into_response());
    }
    tracing::info!(run_id = %run.id, workspace_id = %caller.workspace_id, key_id = %caller.key_id, pool = %run.pool_name, "Run submitted");
    state.metrics.run_submitted(run.pool_type);
    if let Some(s) = &state.scheduler {
        s.notify_submitted();
    }
    Ok((StatusCode::CREATED, Json(RunView::from(run))).into_response())
}

/// List runs, newest first.
#[utoipa::path(get, path = "/v1/runs", tag = "runs", operation_id = "list_runs", params(ListQuery),
    responses((status = 200, body = RunList), Query, ApiKeyAuth), security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<RunList>, ApiError> {
    caller.require(Action::RunRead)?;
    let pool = q
        .pool
        .as_deref()
        .map(|p| {
            ferry_core::Name::parse(p)
                .map_err(|e| ApiError::bad_request("invalid_query", format!("pool {p:?} {e}")))
        })
        .transpose()?;
    let run_state = q
        .state
        .as_deref()
        .map(|s| {
            RunState::parse(s).ok_or_else(|| {
                ApiError::bad_request("invalid_query", format!("state {s:?} is not a run state (scheduled, pending, running, cancelling, completed, failed, crashed, cancelled)"))
            })
        })
        .transpose()?;
    if let Some(l) = q.limit {
        if !(1..=500).contains(&l) {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("limit must be between 1 and 500 (got {l})"),
            ));
        }
    }
    let filter = RunFilter {
        pool,
        state: run_state,
        limit: q.limit.unwrap_or(50),
        cursor: q.cursor,
    };
    let page = state.store.runs_list(caller.workspace_id, &filter).await?;
    Ok(Json(RunList {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Show a run.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs", operation_id = "show_run", params(("id" = String, Path)),
    responses((status = 200, body = RunView), PathNotFound, ApiKeyAuth), security(("api_key" = [])))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RunView>, ApiError> {
    caller.require(Action::RunRead)?;
    let id = parse_run_id(&id)?;
    Ok(Json(
        state.store.run_get(caller.workspace_id, id).await?.into(),
    ))
}

/// Cancel a run: a scheduled run is cancelled at once; a started one is stopped, then
/// `cancelled` once its infrastructure confirms.
#[utoipa::path(post, path = "/v1/runs/{id}/cancel", tag = "runs", operation_id = "cancel_run", params(("id" = String, Path)),
    responses((status = 202, body = RunView, description = "Cancelled, or being stopped"), PathNotFound,
        (status = 409, body = ErrorBody, description = "The run has already ended (`conflict`)"),
        ApiKeyAuth, RoleForbidden),
    security(("api_key" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<(StatusCode, Json<RunView>), ApiError> {
    caller.require(Action::RunCancel)?;
    let id = parse_run_id(&id)?;
    let run = state
        .store
        .run_request_cancel(caller.workspace_id, id)
        .await?;
    tracing::info!(run_id = %id, state = %run.state, "Run cancel requested");
    if run.state == RunState::Cancelled {
        // It had not started: this request ended it (a finished run is a 409 above).
        state.metrics.run_finished(run.pool_type, run.state);
    }
    if let Some(s) = &state.scheduler {
        s.notify_cancel_requested();
    }
    Ok((StatusCode::ACCEPTED, Json(run.into())))
}

/// A run's history of state changes.
#[utoipa::path(get, path = "/v1/runs/{id}/events", tag = "runs", operation_id = "run_events", params(("id" = String, Path)),
    responses((status = 200, body = EventList), PathNotFound, ApiKeyAuth), security(("api_key" = [])))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<EventList>, ApiError> {
    caller.require(Action::RunRead)?;
    let id = parse_run_id(&id)?;
    let events = state.store.run_events(caller.workspace_id, id).await?;
    Ok(Json(EventList {
        items: events.into_iter().map(Into::into).collect(),
    }))
}

/// A run's log; with `follow=true`, server-sent events (`line`, then one `end`).
#[utoipa::path(get, path = "/v1/runs/{id}/logs", tag = "runs", operation_id = "run_logs", params(("id" = String, Path), LogsQuery),
    responses((status = 200, description = "The lines (JSON), or with `follow=true` a stream of `line` events and one `end` event",
            content((LogsView = "application/json"), (LogEvent = "text/event-stream"))),
        PathNotFound, Query, ApiKeyAuth),
    security(("api_key" = [])))]
pub async fn logs(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<LogsQuery>,
) -> Result<Response, ApiError> {
    caller.require(Action::RunRead)?;
    let id = parse_run_id(&id)?;
    let after = q.after.unwrap_or(0);
    let limit = q.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit must be between 1 and 10000 (got {limit})"),
        ));
    }
    // Checks the run exists in this workspace before anything streams.
    let page = state
        .store
        .run_logs(caller.workspace_id, id, after, limit)
        .await?;
    if q.follow != Some(true) {
        let lines = page.lines.into_iter().map(Into::into).collect();
        return Ok(Json(LogsView {
            lines,
            truncated: page.truncated,
        })
        .into_response());
    }
    let stream = follow(state, caller, id, after);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// Streams a run's log lines until the run has ended and every line was sent, or until the
/// caller's key is revoked (see `streams.rs`: then a last `error` event).
fn follow(
    state: AppState,
    caller: Caller,
    id: RunId,
    mut after: i64,
) -> impl futures::Stream<Item = Result<Event, Infallible>> {
    let shutdown = state.shutdown.clone();
    let authority = super::streams::Authority::of(&caller);
    async_stream(move |tx| async move {
        let store = state.store.clone();
        let produce = async {
            loop {
                if shutdown.is_cancelled() {
                    // The server is stopping: end the stream; the client resumes with `after`.
                    return;
                }
                // Read the state first: lines written before it ended are then all visible below.
                let run = match state.store.run_get(caller.workspace_id, id).await {
                    Ok(r) => r,
                    Err(_) => return,
                };
                let page = match state
                    .store
                    .run_logs(caller.workspace_id, id, after, 1000)
                    .await
                {
                    Ok(p) => p,
                    Err(_) => return,
                };
                let full = page.lines.len() == 1000;
                for line in page.lines {
                    after = line.seq;
                    let view = LogLineView::from(line);
                    let data = serde_json::to_string(&view).unwrap_or_default();
                    if tx
                        .send(Event::default().event("line").data(data))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                if run.state.is_terminal() && !full {
                    let end = serde_json::json!({"state": run.state.as_str(), "truncated": page.truncated});
                    let _ = tx
                        .send(Event::default().event("end").data(end.to_string()))
                        .await;
                    return;
                }
                if !full {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
            }
        };
        super::streams::guarded(authority, &store, &tx, produce).await;
    })
}

/// A stream fed by a task through a small channel; dropping the stream ends the task.
fn async_stream<F, Fut>(f: F) -> impl futures::Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Event>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(f(tx));
    futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
    )
}
