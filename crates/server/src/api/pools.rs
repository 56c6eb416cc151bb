//! `/v1/pools`: where runs go.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use ferry_core::{Action, CredentialKind, PoolLimits, PoolType};
use ferry_store::{Actor, NewPool, Pool, PoolPatch};
use serde_json::Value;

use super::schemas::NamePath;
use super::{parse_name, ApiJson, ApiPath};
use crate::auth::Caller;
use crate::error::responses::{ApiKeyAuth, JsonBody, PathNotFound, RoleForbidden};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Most infrastructure retries a pool or run may ask for.
pub const MAX_RETRIES_CEILING: u32 = 10;

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePool {
    /// 1-63 characters of a-z, 0-9 and '-'.
    #[schema(schema_with = super::schemas::name)]
    pub name: String,
    /// `managed`, `cloud-run` or `ecs`.
    #[serde(rename = "type")]
    #[schema(schema_with = super::schemas::pool_type)]
    pub pool_type: String,
    /// Ceilings for each run (memory_mb, timeout_s, cpu_fuel_m, log_bytes, scratch_bytes).
    #[schema(schema_with = super::schemas::limits_or_null)]
    #[serde(default, deserialize_with = "super::object_only")]
    pub limits: Option<PoolLimits>,
    /// The base job template of a push pool (a JSON object).
    #[schema(value_type = Option<Object>)]
    pub job_template: Option<Value>,
    /// The workspace credential a push pool uses: an existing credential of this workspace
    /// whose kind fits the pool (ecs: aws-*, cloud-run: gcp-*).
    #[schema(schema_with = super::schemas::name_or_null)]
    pub credential: Option<String>,
    /// Most runs of this pool in flight at once.
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 4_294_967_295_i64)]
    pub concurrency_limit: Option<u32>,
    /// Infrastructure retries per run (0-10); default 0.
    #[schema(maximum = 10)]
    pub max_retries: Option<u32>,
    /// A paused pool accepts runs but starts none.
    pub paused: Option<bool>,
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePool {
    #[schema(schema_with = super::schemas::limits_or_null)]
    #[serde(default, deserialize_with = "super::object_only")]
    pub limits: Option<PoolLimits>,
    #[schema(value_type = Option<Object>)]
    pub job_template: Option<Value>,
    /// A number, or null to remove the limit.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 4_294_967_295_i64)]
    pub concurrency_limit: Option<Option<u32>>,
    /// Infrastructure retries per run (0-10).
    #[schema(maximum = 10)]
    pub max_retries: Option<u32>,
    pub paused: Option<bool>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PoolView {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub pool_type: String,
    #[schema(value_type = Object)]
    pub limits: PoolLimits,
    #[schema(value_type = Object)]
    pub job_template: Value,
    pub credential: Option<String>,
    pub concurrency_limit: Option<u32>,
    pub max_retries: u32,
    pub paused: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Pool> for PoolView {
    fn from(p: Pool) -> Self {
        PoolView {
            id: p.id.to_string(),
            name: p.name.to_string(),
            pool_type: p.pool_type.as_str().to_owned(),
            limits: p.limits,
            job_template: p.job_template,
            credential: p.credential.map(|c| c.to_string()),
            concurrency_limit: p.concurrency_limit,
            max_retries: p.max_retries,
            paused: p.paused,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PoolList {
    pub items: Vec<PoolView>,
}

fn check_limits(
    state: &AppState,
    pool_type: PoolType,
    limits: &PoolLimits,
) -> Result<(), ApiError> {
    limits
        .validate()
        .map_err(|e| ApiError::invalid(format!("limits.{e}")))?;
    if pool_type == PoolType::Managed {
        check_memory_budget(state, &limits.effective())?;
    }
    check_log_bytes(state, &limits.effective())
}

/// A pool's or run's log cap must be within the operator's maximum.
pub(crate) fn check_log_bytes(state: &AppState, limits: &PoolLimits) -> Result<(), ApiError> {
    let max = state.max_log_bytes;
    match limits.log_bytes {
        Some(bytes) if bytes > max => Err(ApiError::invalid(format!(
            "limits.log_bytes {bytes} exceeds the {max} bytes of log this Ferry keeps per run \
             (FERRY_MAX_LOG_BYTES); ask for at most {max}"
        ))),
        _ => Ok(()),
    }
}

/// A managed pool's or run's memory limit must fit in the executor memory budget: more could
/// never start.
pub(crate) fn check_memory_budget(state: &AppState, limits: &PoolLimits) -> Result<(), ApiError> {
    let budget = state.executor_memory_mb;
    match limits.memory_mb {
        Some(mb) if u64::from(mb) > budget => Err(ApiError::invalid(format!(
            "limits.memory_mb {mb} exceeds the {budget} MiB this Ferry gives managed runs in all \
             (FERRY_EXECUTOR_MEMORY_MB); ask for at most {budget}"
        ))),
        _ => Ok(()),
    }
}

fn check_template(state: &AppState, template: &Value, pool_type: PoolType) -> Result<(), ApiError> {
    if !template.is_object() {
        return Err(ApiError::invalid("job_template must be a JSON object"));
    }
    if pool_type == PoolType::Managed {
        crate::executors::managed_grants(template).map_err(ApiError::invalid)?;
    }
    state.push.check_template(pool_type, template)
}

fn check_retries(n: u32) -> Result<(), ApiError> {
    if n > MAX_RETRIES_CEILING {
        return Err(ApiError::invalid(format!(
            "max_retries must be at most {MAX_RETRIES_CEILING} (got {n})"
        )));
    }
    Ok(())
}

fn check_concurrency(n: u32) -> Result<(), ApiError> {
    if n == 0 {
        return Err(ApiError::invalid(
            "concurrency_limit must be at least 1 (pause the pool to stop it)",
        ));
    }
    Ok(())
}

/// Create a pool.
#[utoipa::path(post, path = "/v1/pools", tag = "pools", operation_id = "create_pool", request_body = CreatePool,
    responses((status = 201, body = PoolView, links(
            ("GetPoolByName" = (operation_id = "show_pool", parameters(("name" = "$response.body#/name")))),
            ("UpdatePoolByName" = (operation_id = "update_pool", parameters(("name" = "$response.body#/name")))),
            ("DeletePoolByName" = (operation_id = "delete_pool", parameters(("name" = "$response.body#/name")))),
        )),
        (status = 409, body = ErrorBody, description = "A pool of this name exists (`conflict`)"),
        JsonBody, ApiKeyAuth, RoleForbidden),
    security(("api_key" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreatePool>,
) -> Result<(StatusCode, Json<PoolView>), ApiError> {
    caller.require(Action::PoolWrite)?;
    let name = parse_name("name", &body.name)?;
    let pool_type = PoolType::parse(&body.pool_type).ok_or_else(|| {
        ApiError::invalid(format!(
            "type {:?} is not one of managed, cloud-run, ecs",
            body.pool_type
        ))
    })?;
    let limits = body.limits.unwrap_or_default();
    check_limits(&state, pool_type, &limits)?;
    let job_template = body.job_template.unwrap_or_else(|| serde_json::json!({}));
    check_template(&state, &job_template, pool_type)?;
    let credential = body
        .credential
        .as_deref()
        .map(|c| parse_name("credential", c))
        .transpose()?;
    match (pool_type.is_push(), &credential) {
        (true, None) => {
            let fitting = CredentialKind::fitting(pool_type)
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(" or ");
            return Err(ApiError::invalid(format!(
                "a {pool_type} pool needs a credential: name one of this workspace's {fitting} \
                 credentials (register one with POST /v1/credentials)"
            )));
        }
        (false, Some(_)) => return Err(ApiError::invalid("a managed pool takes no credential")),
        _ => {}
    }
    let max_retries = body.max_retries.unwrap_or(0);
    check_retries(max_retries)?;
    if let Some(n) = body.concurrency_limit {
        check_concurrency(n)?;
    }
    let new = NewPool {
        name,
        pool_type,
        limits,
        job_template,
        credential,
        concurrency_limit: body.concurrency_limit,
        max_retries,
        paused: body.paused.unwrap_or(false),
    };
    let pool = match state
        .store
        .pool_create_by(caller.workspace_id, &new, Actor::Key(caller.key_id))
        .await
    {
        Ok(p) => p,
        Err(ferry_store::Error::NotFound { kind: "credential" }) => {
            let fitting = CredentialKind::fitting(pool_type)
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(" or ");
            return Err(ApiError::invalid(format!(
                "credential {:?} does not exist in this workspace; register a credential of kind \
                 {fitting} with POST /v1/credentials first, then name it here",
                body.credential.as_deref().unwrap_or_default()
            )));
        }
        Err(e) => return Err(e.into()),
    };
    tracing::info!(workspace_id = %caller.workspace_id, key_id = %caller.key_id, pool = %pool.name, pool_type = %pool.pool_type, "Pool created");
    Ok((StatusCode::CREATED, Json(pool.into())))
}

/// List the workspace's pools.
#[utoipa::path(get, path = "/v1/pools", tag = "pools", operation_id = "list_pools",
    responses((status = 200, body = PoolList), ApiKeyAuth), security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<PoolList>, ApiError> {
    caller.require(Action::PoolRead)?;
    let pools = state.store.pools_list(caller.workspace_id).await?;
    Ok(Json(PoolList {
        items: pools.into_iter().map(Into::into).collect(),
    }))
}

/// Show a pool.
#[utoipa::path(get, path = "/v1/pools/{name}", tag = "pools", operation_id = "show_pool", params(NamePath),
    responses((status = 200, body = PoolView), PathNotFound, ApiKeyAuth), security(("api_key" = [])))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
) -> Result<Json<PoolView>, ApiError> {
    caller.require(Action::PoolRead)?;
    let name = ferry_core::Name::parse(&name).map_err(|_| ApiError::not_found("pool"))?;
    Ok(Json(
        state
            .store
            .pool_get(caller.workspace_id, &name)
            .await?
            .into(),
    ))
}

/// Change a pool's limits, template, concurrency, retries or pause.
#[utoipa::path(patch, path = "/v1/pools/{name}", tag = "pools", operation_id = "update_pool", params(NamePath), request_body = UpdatePool,
    responses((status = 200, body = PoolView), PathNotFound,
        (status = 409, body = ErrorBody, description = "The pool changed while this request was handled; retry (`conflict`)"),
        JsonBody, ApiKeyAuth, RoleForbidden),
    security(("api_key" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
    ApiJson(body): ApiJson<UpdatePool>,
) -> Result<Json<PoolView>, ApiError> {
    caller.require(Action::PoolWrite)?;
    let name = ferry_core::Name::parse(&name).map_err(|_| ApiError::not_found("pool"))?;
    let current = if body.limits.is_some() || body.job_template.is_some() {
        Some(state.store.pool_get(caller.workspace_id, &name).await?)
    } else {
        None
    };
    if let (Some(l), Some(pool)) = (&body.limits, &current) {
        check_limits(&state, pool.pool_type, l)?;
    }
    let before = match (&body.job_template, current) {
        (Some(t), Some(pool)) => {
            check_template(&state, t, pool.pool_type)?;
            Some(pool)
        }
        _ => None,
    };
    if let Some(n) = body.max_retries {
        check_retries(n)?;
    }
    if let Some(Some(n)) = body.concurrency_limit {
        check_concurrency(n)?;
    }
    let patch = PoolPatch {
        limits: body.limits,
        job_template: body.job_template,
        concurrency_limit: body.concurrency_limit,
        max_retries: body.max_retries,
        paused: body.paused,
    };
    let pool = state
        .store
        .pool_update_by(
            caller.workspace_id,
            &name,
            &patch,
            Actor::Key(caller.key_id),
        )
        .await?;
    if let Some(s) = &state.scheduler {
        s.notify_submitted();
    }
    if let Some(before) = before.filter(|b| b.job_template != pool.job_template) {
        state
            .push
            .tidy_after_pool_change(state.store.clone(), before);
    }
    Ok(Json(pool.into()))
}

/// Delete a pool that has no unfinished runs.
#[utoipa::path(delete, path = "/v1/pools/{name}", tag = "pools", operation_id = "delete_pool", params(NamePath),
    responses((status = 204, description = "Deleted"), PathNotFound,
        (status = 409, body = ErrorBody, description = "The pool has unfinished runs (`conflict`)"),
        ApiKeyAuth, RoleForbidden),
    security(("api_key" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(NamePath { name }): ApiPath<NamePath>,
) -> Result<StatusCode, ApiError> {
    caller.require(Action::PoolWrite)?;
    let name = ferry_core::Name::parse(&name).map_err(|_| ApiError::not_found("pool"))?;
    let before = state.store.pool_get(caller.workspace_id, &name).await?;
    state
        .store
        .pool_delete_by(caller.workspace_id, &name, Actor::Key(caller.key_id))
        .await?;
    state
        .push
        .tidy_after_pool_change(state.store.clone(), before);
    tracing::info!(workspace_id = %caller.workspace_id, pool = %name, "Pool deleted");
    Ok(StatusCode::NO_CONTENT)
}
