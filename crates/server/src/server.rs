//! Start-up: open the store, load or create the generated secrets and the root key, start the
//! scheduler and the listeners, and shut down cleanly on SIGINT/SIGTERM. Also the operator's
//! commands that work on the data directory and database directly: bootstrap, root-key
//! rotation, audit verification.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use ferry_crypto::{
    generate_token, load_or_create_secret_file, Keyring, LocalKeyring, Pepper, WrappedKey,
    ROOT_KEY_FILE,
};
use ferry_engine::{Executors, Scheduler, SchedulerHandle};
use ferry_store::Store;
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{
    MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::push::Backends;
use crate::run_token::RunTokenSigner;
use crate::state::{AppState, Inner};
use crate::vault::Vault;
use crate::{Config, ServerRole};

/// A running Ferry: its listeners and scheduler. Dropping it does not stop it; call
/// [`Server::shutdown`] (graceful) or [`Server::crash`] (no further writes, as a kill would).
pub struct Server {
    pub public_addr: Option<SocketAddr>,
    pub internal_addr: Option<SocketAddr>,
    /// The internal API's token.
    pub internal_token: SecretString,
    pub store: Store,
    shutdown: CancellationToken,
    scheduler: Option<SchedulerHandle>,
    listeners: Vec<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("public", &self.public_addr)
            .field("internal", &self.internal_addr)
            .finish()
    }
}

/// What `ferry admin bootstrap` made.
#[derive(Debug)]
pub struct Bootstrapped {
    pub workspace_id: String,
    pub workspace: String,
    pub api_key: String,
}

async fn open_store(config: &Config) -> anyhow::Result<Store> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let store = Store::connect(&config.database_url())
        .await
        .context("opening the database")?;
    store
        .migrate()
        .await
        .context("applying database migrations")?;
    Ok(store)
}

fn secret(
    config: &Config,
    given: &Option<SecretString>,
    file: &str,
    kind: &str,
) -> anyhow::Result<SecretString> {
    match given {
        Some(s) => Ok(s.clone()),
        None => {
            let path = config.data_dir.join(file);
            Ok(load_or_create_secret_file(&path, || generate_token(kind))?)
        }
    }
}

fn pepper(config: &Config) -> anyhow::Result<Pepper> {
    Ok(Pepper::new(&secret(
        config,
        &config.api_key_pepper,
        "api-key-pepper",
        "fry_pepper",
    )?))
}

/// Applies migrations and exits.
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    tracing::info!(backend = store.backend().as_str(), "Migrations applied");
    store.close().await;
    Ok(())
}

/// Creates a workspace and its first admin key, directly in the configured database.
pub async fn bootstrap(config: &Config, workspace: &str) -> anyhow::Result<Bootstrapped> {
    let name = ferry_core::Name::parse(workspace)
        .map_err(|e| anyhow::anyhow!("workspace name {workspace:?} {e}"))?;
    let store = open_store(config).await?;
    let pepper = pepper(config)?;
    let ws = match store
        .workspace_create_by(&name, ferry_store::Actor::Cli)
        .await
    {
        Ok(ws) => ws,
        Err(ferry_store::Error::Conflict { .. }) => store.workspace_get_by_name(&name).await?,
        Err(e) => return Err(e.into()),
    };
    let (_, key) = crate::keys::api_key_mint(
        &store,
        &pepper,
        ws.id,
        ferry_core::Role::Admin,
        ferry_store::Actor::Cli,
    )
    .await?;
    store.close().await;
    Ok(Bootstrapped {
        workspace_id: ws.id.to_string(),
        workspace: ws.name.to_string(),
        api_key: key.expose_secret().to_owned(),
    })
}

/// What a root-key rotation did.
#[derive(Debug)]
pub struct RootKeyRotation {
    pub old_key_id: String,
    pub new_key_id: String,
    /// Workspace keys re-wrapped under the new root key.
    pub rewrapped: usize,
    /// Retired root keys whose files were removed (no workspace key needs them any more).
    pub retired: Vec<String>,
}

/// The local root key file in the data directory (created 0600 on first start; refused if
/// group or others can read it).
fn local_keyring(config: &Config) -> anyhow::Result<LocalKeyring> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    LocalKeyring::open(&config.data_dir).context("loading the root key")
}

/// The root keyring of `config`: the local key file, or the configured KMS key (checked with
/// a round trip). With a KMS key, a local key file left in the data directory still unwraps
/// the workspace keys it wrapped, until `ferry admin rotate-root-key` re-wraps them.
async fn keyring(config: &Config) -> anyhow::Result<Arc<dyn Keyring>> {
    let Some(spec) = &config.root_key else {
        return Ok(Arc::new(local_keyring(config)?));
    };
    let options = ferry_kms::Options {
        endpoint: config.kms_endpoint.clone(),
        gcp_credentials_file: None,
    };
    let kms = ferry_kms::connect(spec, &options)
        .await
        .with_context(|| format!("FERRY_ROOT_KEY={spec}"))?;
    let mut earlier: Vec<Arc<dyn Keyring>> = Vec::new();
    if config.data_dir.join(ROOT_KEY_FILE).exists() {
        earlier.push(Arc::new(
            LocalKeyring::open(&config.data_dir).context("loading the earlier local root key")?,
        ));
    }
    Ok(Arc::new(ferry_kms::Chain::new(kms, earlier)))
}

/// Rotates the root key. Local: a new root key replaces the current one (kept as
/// `root-key.<id>.retired` meanwhile), every workspace key is re-wrapped under it (recorded
/// in each workspace's audit log), and retired keys no workspace key needs are removed. KMS:
/// the operator has pointed `FERRY_ROOT_KEY` at the new key; every workspace key not yet under
/// it is re-wrapped under it (the earlier key only has to decrypt).
/// Sealed credentials, secrets and parameters are not rewritten: they keep opening, because
/// the workspace keys themselves do not change. Safe to run again after an interruption.
pub async fn root_key_rotate(config: &Config) -> anyhow::Result<RootKeyRotation> {
    let store = open_store(config).await?;
    if config.root_key.is_some() {
        let keyring = keyring(config).await?;
        let new_key_id = keyring.key_id();
        tracing::info!(new_key_id = %new_key_id, "Re-wrapping workspace keys under the KMS root key");
        let (rewrapped, old_ids) = rewrap_all(&store, keyring.as_ref(), &new_key_id).await?;
        crate::issuer::rewrap_all(&store, keyring.as_ref(), &new_key_id).await?;
        store.close().await;
        tracing::info!(new_key_id = %new_key_id, rewrapped, "Root key rotated");
        return Ok(RootKeyRotation {
            old_key_id: if old_ids.is_empty() {
                new_key_id.clone()
            } else {
                old_ids.into_iter().collect::<Vec<_>>().join(", ")
            },
            new_key_id,
            rewrapped,
            retired: Vec::new(),
        });
    }
    let keyring = local_keyring(config)?;
    let (lock, old_key_id, new_key_id) = keyring.rotate().context("rotating the root key")?;
    tracing::info!(old_key_id = %old_key_id, new_key_id = %new_key_id, "Root key replaced; re-wrapping workspace keys");
    let (rewrapped, _) = rewrap_all(&store, &keyring, &new_key_id).await?;
    crate::issuer::rewrap_all(&store, &keyring, &new_key_id).await?;
    let mut in_use = store.workspace_key_root_ids().await?;
    in_use.extend(store.issuer_key_root_ids().await?);
    let retired = keyring
        .retire_unused(&in_use)
        .context("removing retired root keys")?;
    drop(lock);
    store.close().await;
    tracing::info!(new_key_id = %new_key_id, rewrapped, "Root key rotated");
    Ok(RootKeyRotation {
        old_key_id,
        new_key_id,
        rewrapped,
        retired,
    })
}

/// Re-wraps every workspace key not under `new_key_id` with `keyring` (whose wraps must be
/// under `new_key_id`); returns how many it re-wrapped and the root key ids they were under.
async fn rewrap_all(
    store: &Store,
    keyring: &dyn Keyring,
    new_key_id: &str,
) -> anyhow::Result<(usize, std::collections::BTreeSet<String>)> {
    let mut rewrapped = 0;
    let mut old_ids = std::collections::BTreeSet::new();
    loop {
        let batch = store.workspace_keys_not_under(new_key_id, 100).await?;
        if batch.is_empty() {
            break;
        }
        for row in batch {
            let ws = row.workspace_id;
            let wrapped = WrappedKey {
                root_key_id: row.root_key_id.clone(),
                blob: row.wrapped_key,
            };
            let key = keyring
                .unwrap(ws, &wrapped)
                .await
                .with_context(|| format!("unwrapping the key of workspace {ws}"))?;
            let rewrap = keyring
                .wrap(ws, &key)
                .await
                .with_context(|| format!("wrapping the key of workspace {ws}"))?;
            if rewrap.root_key_id != new_key_id {
                anyhow::bail!(
                    "the root key changed to {} during the rotation to {new_key_id}; run the rotation again",
                    rewrap.root_key_id
                );
            }
            match store
                .workspace_key_rewrap(
                    ws,
                    &row.root_key_id,
                    new_key_id,
                    &rewrap.blob,
                    ferry_store::Actor::Cli,
                )
                .await
            {
                Ok(_) => {
                    rewrapped += 1;
                    old_ids.insert(row.root_key_id);
                }
                // Re-wrapped by someone else meanwhile; the next batch shows what is left.
                Err(ferry_store::Error::Changed { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok((rewrapped, old_ids))
}

/// Verifies the audit chain of workspace `workspace` (every workspace when `None`).
pub async fn audit_verify(
    config: &Config,
    workspace: Option<&str>,
) -> anyhow::Result<Vec<(ferry_store::Workspace, ferry_store::AuditReport)>> {
    let store = open_store(config).await?;
    let workspaces = match workspace {
        Some(name) => {
            let name = ferry_core::Name::parse(name)
                .map_err(|e| anyhow::anyhow!("workspace name {name:?} {e}"))?;
            match store.workspace_get_by_name(&name).await {
                Ok(ws) => vec![ws],
                Err(ferry_store::Error::NotFound { .. }) => {
                    anyhow::bail!("there is no workspace named {name:?}")
                }
                Err(e) => return Err(e.into()),
            }
        }
        None => store.workspaces_list().await?,
    };
    let mut reports = Vec::with_capacity(workspaces.len());
    for ws in workspaces {
        let report = store.audit_verify(ws.id).await?;
        reports.push((ws, report));
    }
    store.close().await;
    Ok(reports)
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_env("FERRY_LOG").unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let json = std::env::var("FERRY_LOG_FORMAT").is_ok_and(|v| v == "json");
    // Colours only for a person at a terminal, never into a file or a log collector.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Runs one executor worker on stdin/stdout until its parent (`ferry serve`) closes stdin.
/// Its stdout is the protocol: logs go to stderr. Not async, and to be called before any
/// async runtime exists: the worker confines itself while it has a single thread (see
/// `ferry_wasm_host::worker::serve_confined`), so its two directories are made first.
pub fn executor_worker(
    cache_dir: std::path::PathBuf,
    scratch_dir: std::path::PathBuf,
) -> anyhow::Result<()> {
    init_tracing();
    std::fs::create_dir_all(&cache_dir)
        .with_context(|| format!("creating the compiled-flow cache {}", cache_dir.display()))?;
    std::fs::create_dir_all(&scratch_dir).with_context(|| {
        format!(
            "creating the scratch directory root {}",
            scratch_dir.display()
        )
    })?;
    let mut host = ferry_wasm_host::HostConfig::new(cache_dir);
    host.scratch_root = scratch_dir;
    ferry_wasm_host::worker::serve_confined(host)?;
    Ok(())
}

/// Runs Ferry until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    init_tracing();
    let server = match fake_executors(&config) {
        Some(fakes) => Server::start(config.clone(), fakes).await?,
        None => Server::start_real(config.clone()).await?,
    };
    if let Some(addr) = server.public_addr {
        println!(
            "Ferry {} is listening on http://{addr} (public API)",
            env!("CARGO_PKG_VERSION")
        );
    }
    if let Some(addr) = server.internal_addr {
        println!(
            "Internal API on http://{addr}; its token is in {}",
            config.data_dir.join("internal-token").display()
        );
    }
    println!(
        "Data directory: {} ({} database)",
        config.data_dir.display(),
        server.store.backend().as_str()
    );
    println!(
        "Get an admin key: ferry admin bootstrap --workspace <name> --data-dir {}",
        config.data_dir.display()
    );
    shutdown_signal().await;
    tracing::info!("Shutting down");
    server.shutdown().await;
    Ok(())
}

#[cfg(feature = "testing")]
fn fake_executors(config: &Config) -> Option<Executors> {
    if !config.fake_executors {
        return None;
    }
    tracing::warn!("FERRY_TESTING_FAKE_EXECUTORS=1: runs execute on fake executors (tests only)");
    let push: std::sync::Arc<dyn ferry_core::port::PushBackend> =
        std::sync::Arc::new(ferry_core::testing::FakePushBackend::default());
    Some(Executors {
        managed: Some(std::sync::Arc::new(
            ferry_core::testing::FakeFlowRunner::default(),
        )),
        push: [
            (ferry_core::PoolType::Ecs, push.clone()),
            (ferry_core::PoolType::CloudRun, push),
        ]
        .into_iter()
        .collect(),
    })
}

#[cfg(not(feature = "testing"))]
fn fake_executors(config: &Config) -> Option<Executors> {
    if config.fake_executors {
        tracing::warn!("FERRY_TESTING_FAKE_EXECUTORS is ignored: this build has no fake executors");
    }
    None
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

impl Server {
    /// Starts what `config.role` asks for, with these executors.
    pub async fn start(config: Config, executors: Executors) -> anyhow::Result<Server> {
        Self::start_with(config, |_, _, _| Ok(executors)).await
    }

    /// Starts what `config.role` asks for, with the real executors of that role (managed runs
    /// on supervised executor worker processes).
    pub async fn start_real(config: Config) -> anyhow::Result<Server> {
        let c = config.clone();
        Self::start_with(config, move |store, vault, backends| {
            crate::executors::real(&c, store, vault, backends)
        })
        .await
    }

    async fn start_with(
        config: Config,
        executors: impl FnOnce(&Store, &Vault, &Backends) -> anyhow::Result<Executors>,
    ) -> anyhow::Result<Server> {
        let store = open_store(&config).await?;
        let pepper = std::sync::Arc::new(pepper(&config)?);
        let run_tokens = RunTokenSigner::new(pepper.clone());
        if let Some(url) = &config.public_url {
            run_tokens.set_api_url(url.clone());
        }
        let keyring = keyring(&config).await?;
        tracing::info!(root_key_id = %keyring.key_id(), "Root key loaded");
        let issuer = crate::issuer::Issuer::new(
            store.clone(),
            keyring.clone(),
            config.public_url.clone(),
            config.oidc_key_rotation_days,
        );
        let vault = Vault::new(store.clone(), keyring);
        let internal_token = secret(
            &config,
            &config.internal_token,
            "internal-token",
            "fry_internal",
        )?;
        let internal_token_hash = pepper.hash(internal_token.expose_secret());
        let shutdown = CancellationToken::new();
        let backends = Backends::new(
            &vault,
            &run_tokens,
            &config.allowed_endpoints,
            std::sync::Arc::new(issuer.clone()),
        );
        let executors = if config.role.schedules() {
            executors(&store, &vault, &backends)?
        } else {
            Executors::default()
        };
        let scheduler = config.role.schedules().then(|| {
            let mut engine = config.engine.clone().unwrap_or_else(|| {
                ferry_engine::Config::with_owner(format!(
                    "{}-{}",
                    hostname(),
                    uuid::Uuid::new_v4().simple()
                ))
            });
            engine.managed_memory_mb = engine.managed_memory_mb.or(Some(config.executor_memory_mb));
            if let Err(error) = config.engine_settings.apply(&mut engine) {
                // Checked when the configuration was loaded; a test's own engine config may
                // still disagree with it.
                tracing::warn!(error = %error, "Engine settings not applied");
            }
            Scheduler::new(store.clone(), executors, engine)
        });
        let state = AppState::new(Inner {
            store: store.clone(),
            vault,
            pepper,
            run_tokens,
            push: backends,
            issuer,
            internal_token_hash,
            scheduler: scheduler.clone(),
            metrics: Metrics::default(),
            max_body_bytes: config.max_body_bytes,
            executor_memory_mb: config.executor_memory_mb,
            max_log_bytes: config.max_log_bytes,
            shutdown: shutdown.clone(),
        });
        let mut listeners = Vec::new();
        let (mut public_addr, mut internal_addr) = (None, None);
        if config.role.serves_api() {
            let (addr, task) = listen(
                config.listen,
                app(crate::api::public_router(), &state),
                shutdown.clone(),
            )
            .await?;
            public_addr = Some(addr);
            // Containers of pushed runs post back here unless FERRY_PUBLIC_URL says otherwise.
            state.run_tokens.set_api_url(format!("http://{addr}"));
            // The issuer is FERRY_PUBLIC_URL, else this listener.
            state.issuer.set_default_url(format!("http://{addr}"));
            listeners.push(task);
            let (addr, task) = listen(
                config.internal_listen,
                app(crate::api::internal_router(), &state),
                shutdown.clone(),
            )
            .await?;
            internal_addr = Some(addr);
            listeners.push(task);
        }
        // A process without the public listener signs as the one configured to listen.
        state
            .issuer
            .set_default_url(format!("http://{}", config.listen));
        if matches!(config.role, ServerRole::All | ServerRole::Scheduler) {
            state
                .push
                .spawn_idle_job_sweeper(store.clone(), shutdown.clone());
        }
        let scheduler = scheduler.map(|s| s.start());
        Ok(Server {
            public_addr,
            internal_addr,
            internal_token,
            store,
            shutdown,
            scheduler,
            listeners,
        })
    }

    /// The public API's base URL.
    pub fn public_url(&self) -> String {
        self.public_addr
            .map(|a| format!("http://{a}"))
            .unwrap_or_default()
    }

    /// The internal API's base URL.
    pub fn internal_url(&self) -> String {
        self.internal_addr
            .map(|a| format!("http://{a}"))
            .unwrap_or_default()
    }

    /// Stops listening (finishing requests in flight) and stops the scheduler; held runs are
    /// taken over by another scheduler once their leases expire.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        if let Some(s) = self.scheduler.take() {
            s.stop().await;
        }
        // Requests in flight get a bounded time to finish; then they are cut.
        for mut l in self.listeners.drain(..) {
            if tokio::time::timeout(std::time::Duration::from_secs(10), &mut l)
                .await
                .is_err()
            {
                tracing::warn!("Requests still in flight after 10 s; closing them");
                l.abort();
            }
        }
        self.store.close().await;
    }

    /// Stops everything at once with no further writes: what a `kill -9` leaves behind.
    pub async fn crash(mut self) {
        for l in self.listeners.drain(..) {
            l.abort();
        }
        if let Some(s) = self.scheduler.take() {
            s.stop().await;
        }
        self.store.close().await;
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "ferry".to_owned())
}

async fn listen(
    addr: SocketAddr,
    app: Router,
    shutdown: CancellationToken,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let local = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(error) = served {
            tracing::error!(%local, error = %error, "Listener failed");
        }
    });
    Ok((local, task))
}

/// Wraps routes with the body limit, request ids, error bodies, tracing and metrics.
fn app(routes: Router<AppState>, state: &AppState) -> Router {
    let header = axum::http::HeaderName::from_static("x-request-id");
    routes
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
        .layer(axum::extract::DefaultBodyLimit::max(state.max_body_bytes))
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(SetRequestIdLayer::new(header, MakeRequestUuid))
        .with_state(state.clone())
}

/// Logs and counts each request under its route template, and puts the request id into
/// error bodies.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("")
        .to_owned();
    let span = tracing::info_span!("request", %request_id, %method, %route);
    let started = std::time::Instant::now();
    let response = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    let status = response.status();
    state
        .metrics
        .record_request(method.as_str(), &route, status.as_u16());
    span.in_scope(|| {
        tracing::debug!(
            status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Request handled"
        );
    });
    if status.is_client_error() || status.is_server_error() {
        return with_request_id(response, &request_id).await;
    }
    response
}

/// Adds `request_id` to a JSON error body.
async fn with_request_id(response: Response, request_id: &str) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return (parts.status, "").into_response();
    };
    let mut value: serde_json::Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(_) => return Response::from_parts(parts, axum::body::Body::from(bytes)),
    };
    if let Some(err) = value.get_mut("error").and_then(|e| e.as_object_mut()) {
        err.insert(
            "request_id".into(),
            serde_json::Value::String(request_id.to_owned()),
        );
    }
    let body = serde_json::to_vec(&value).unwrap_or_else(|_| bytes.to_vec());
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, axum::body::Body::from(body))
}
