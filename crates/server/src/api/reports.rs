//! What a pushed run's container posts back with its `FERRY_RUN_TOKEN`: log lines and its
//! result. Only run tokens are accepted here (never API keys), each only for its own run and
//! attempt, and only while that attempt is in flight.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use ferry_core::port::{LogLine, LogStream};
use ferry_core::RunState;
use serde_json::Value;

use super::{ApiJson, ApiPath};
use crate::auth::RunCaller;
use crate::error::responses::{JsonBody, PathNotFound, RunNotInFlight, RunTokenAuth};
use crate::error::ApiError;
use crate::state::AppState;

/// Most lines one request may carry.
pub const MAX_LINES_PER_POST: usize = 1000;
/// Most bytes one line may hold; longer lines are cut (and say so).
pub const MAX_LINE_BYTES: usize = 16 * 1024;

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostLogs {
    /// At most 1000 lines per request.
    pub lines: Vec<PostedLine>,
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostedLine {
    pub line: String,
    /// `stdout` (default) or `stderr`.
    pub stream: Option<String>,
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostResult {
    /// The run's result: any JSON value.
    #[schema(value_type = Value)]
    pub result: Value,
}

/// The run this token may report on: the path's run, in flight on the token's attempt.
async fn reporting_run(
    state: &AppState,
    caller: &RunCaller,
    id: &str,
) -> Result<ferry_store::Run, ApiError> {
    let id = id
        .parse::<ferry_core::RunId>()
        .map_err(|_| ApiError::not_found("run"))?;
    if id != caller.run_id {
        return Err(ApiError::forbidden(
            "this run token may only report on its own run",
        ));
    }
    let run = state.store.run_get(caller.workspace_id, id).await?;
    if run.attempt != caller.attempt {
        return Err(ApiError::conflict(format!(
            "this run token is for attempt {}; the run is on attempt {}",
            caller.attempt, run.attempt
        )));
    }
    if !matches!(
        run.state,
        RunState::Pending | RunState::Running | RunState::Cancelling
    ) {
        return Err(ApiError::conflict(format!(
            "the run is already {}",
            run.state
        )));
    }
    Ok(run)
}

/// Post log lines (run token only).
#[utoipa::path(post, path = "/v1/runs/{id}/logs", tag = "runs", operation_id = "post_run_logs", params(("id" = String, Path)), request_body = PostLogs,
    responses((status = 204, description = "Stored"), PathNotFound, RunNotInFlight, JsonBody, RunTokenAuth),
    security(("run_token" = [])))]
pub async fn post_logs(
    State(state): State<AppState>,
    caller: RunCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<PostLogs>,
) -> Result<StatusCode, ApiError> {
    if body.lines.len() > MAX_LINES_PER_POST {
        return Err(ApiError::invalid(format!(
            "lines: at most {MAX_LINES_PER_POST} lines per request (got {}); send them in batches",
            body.lines.len()
        )));
    }
    let mut lines = Vec::with_capacity(body.lines.len());
    for (i, l) in body.lines.into_iter().enumerate() {
        let stream = match l.stream.as_deref() {
            None | Some("stdout") => LogStream::Stdout,
            Some("stderr") => LogStream::Stderr,
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "lines[{i}].stream: {other:?} is not stdout or stderr"
                )))
            }
        };
        let mut line = l.line;
        if line.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
            line.push_str(" [line cut at 16 KiB]");
        }
        lines.push(LogLine {
            ts: Utc::now(),
            stream,
            line,
        });
    }
    let run = reporting_run(&state, &caller, &id).await?;
    let pool = state
        .store
        .pool_get_by_id(run.workspace_id, run.pool_id)
        .await?;
    let limits = pool
        .limits
        .narrowed_by(&run.limits)
        .unwrap_or_else(|_| pool.limits.effective());
    let cap = limits.log_bytes.unwrap_or(u64::MAX);
    state.store.run_logs_append(run.id, &lines, cap).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Post the run's result (run token only). The run completes when its task or execution
/// ends successfully; a later post replaces an earlier one.
#[utoipa::path(post, path = "/v1/runs/{id}/result", tag = "runs", operation_id = "post_run_result", params(("id" = String, Path)), request_body = PostResult,
    responses((status = 204, description = "Stored"), PathNotFound, RunNotInFlight, JsonBody, RunTokenAuth),
    security(("run_token" = [])))]
pub async fn post_result(
    State(state): State<AppState>,
    caller: RunCaller,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<PostResult>,
) -> Result<StatusCode, ApiError> {
    let run = reporting_run(&state, &caller, &id).await?;
    state
        .store
        .run_post_result(caller.workspace_id, run.id, caller.attempt, &body.result)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
