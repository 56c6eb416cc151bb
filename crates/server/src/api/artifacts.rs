//! `/v1/artifacts`: uploaded flows. The body of a POST is the `.wasm` file itself; it is
//! inspected (is it wasm, is it one of the three flow kinds, does it import only what Ferry
//! provides) before anything is stored, and stored content-addressed by its sha256.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use ferry_core::Action;
use ferry_store::Artifact;

use super::{ApiBytes, ApiPath};
use crate::auth::Caller;
use crate::error::responses::{ApiKeyAuth, PathNotFound, RoleForbidden};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// Largest artifact accepted.
pub const MAX_ARTIFACT_BYTES: usize = 50 * 1024 * 1024;

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ArtifactView {
    /// `sha256:<hex>` of the bytes: what a run names in `artifact`.
    pub digest: String,
    pub size: u64,
    /// `component` (a ferry:flow component), `command` (a WASI 0.2 command) or `preview1`.
    pub kind: String,
    pub created_at: DateTime<Utc>,
}

impl From<Artifact> for ArtifactView {
    fn from(a: Artifact) -> Self {
        ArtifactView {
            digest: a.digest,
            size: a.size,
            kind: a.kind,
            created_at: a.created_at,
        }
    }
}

/// The request body of an upload: the `.wasm` file's bytes (binary, not JSON).
pub struct WasmFile;

impl utoipa::PartialSchema for WasmFile {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .content_media_type("application/wasm")
            .description(Some("A WebAssembly module or component, as bytes"))
            .into()
    }
}

impl utoipa::ToSchema for WasmFile {}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ArtifactList {
    pub items: Vec<ArtifactView>,
}

/// Upload a flow (the body is the `.wasm` file).
#[utoipa::path(post, path = "/v1/artifacts", tag = "artifacts", operation_id = "upload_artifact",
    request_body(content = WasmFile, content_type = "application/wasm"),
    responses((status = 201, body = ArtifactView, description = "Stored", links(
            ("GetArtifactByDigest" = (operation_id = "show_artifact", parameters(("digest" = "$response.body#/digest")))),
        )),
        (status = 200, body = ArtifactView, description = "Already stored"),
        (status = 413, body = ErrorBody, description = "The file is larger than 50 MiB (`body_too_large`)"),
        (status = 422, body = ErrorBody, description = "Not a flow Ferry can run: not WebAssembly, or it imports what Ferry does not provide (`invalid_artifact`)"),
        ApiKeyAuth, RoleForbidden),
    security(("api_key" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    ApiBytes(body): ApiBytes,
) -> Result<Response, ApiError> {
    caller.require(Action::ArtifactWrite)?;
    let bytes = body.clone();
    // Parsing a large module is CPU work: keep it off the async workers.
    let info = tokio::task::spawn_blocking(move || {
        ferry_wasm_host::inspect(&bytes, MAX_ARTIFACT_BYTES as u64)
    })
    .await
    .map_err(|_| ApiError::internal())?
    .map_err(|e| match e {
        ferry_wasm_host::ArtifactError::TooLarge { .. } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            e.to_string(),
        ),
        e if e.is_caller_error() => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_artifact",
            e.to_string(),
        ),
        e => {
            tracing::error!(error = %e, "Artifact inspection failed");
            ApiError::internal()
        }
    })?;
    let (artifact, created) = state
        .store
        .artifact_put(caller.workspace_id, &info.digest, info.kind.as_str(), &body)
        .await?;
    tracing::info!(workspace_id = %caller.workspace_id, key_id = %caller.key_id, digest = %artifact.digest, kind = %artifact.kind, size = artifact.size, created, "Artifact uploaded");
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(ArtifactView::from(artifact))).into_response())
}

/// List the workspace's artifacts.
#[utoipa::path(get, path = "/v1/artifacts", tag = "artifacts", operation_id = "list_artifacts",
    responses((status = 200, body = ArtifactList), ApiKeyAuth), security(("api_key" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ArtifactList>, ApiError> {
    caller.require(Action::ArtifactRead)?;
    let items = state
        .store
        .artifacts_list(caller.workspace_id)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(Json(ArtifactList { items }))
}

/// Show an artifact's metadata.
#[utoipa::path(get, path = "/v1/artifacts/{digest}", tag = "artifacts", operation_id = "show_artifact", params(("digest" = String, Path)),
    responses((status = 200, body = ArtifactView), PathNotFound, ApiKeyAuth), security(("api_key" = [])))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(digest): ApiPath<String>,
) -> Result<Json<ArtifactView>, ApiError> {
    caller.require(Action::ArtifactRead)?;
    Ok(Json(
        state
            .store
            .artifact_get(caller.workspace_id, &digest)
            .await?
            .into(),
    ))
}
