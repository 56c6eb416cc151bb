//! A running Ferry: start what the configured role asks for (the scheduler, the listeners),
//! run until SIGINT/SIGTERM, and shut down cleanly.

use std::net::SocketAddr;

use anyhow::Context;
use ferry_engine::{Executors, Scheduler, SchedulerHandle};
use ferry_store::Store;
use secrecy::{ExposeSecret, SecretString};
use tokio_util::sync::CancellationToken;

use crate::boot::{keyring, open_keyed_store, pepper, secret};
use crate::edge::listener::{listen, Listening};
use crate::edge::Edge;
use crate::http::app;
use crate::metrics::Metrics;
use crate::push::Backends;
use crate::run_token::RunTokenSigner;
use crate::state::{AppState, Inner};
use crate::telemetry::init_tracing;
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
    /// `https` when the public listener serves TLS, else `http`.
    scheme: &'static str,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("public", &self.public_addr)
            .field("internal", &self.internal_addr)
            .finish()
    }
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
    // SIGHUP asks for the TLS certificate to be re-read; it must never stop the server, with
    // or without TLS, so it is handled for the whole life of the process.
    #[cfg(unix)]
    let _hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("handling SIGHUP")?;
    if server.public_addr.is_some() {
        println!(
            "Ferry {} is listening on {} (public API)",
            env!("CARGO_PKG_VERSION"),
            server.public_url()
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
        if config.role.serves_api() {
            config.edge.check_listener(config.listen)?;
        }
        let certificate = match &config.edge.tls {
            Some((cert, key)) if config.role.serves_api() => {
                Some(crate::edge::tls::Certificate::load(cert, key)?)
            }
            _ => None,
        };
        let keyring = keyring(&config).await?;
        tracing::info!(root_key_id = %keyring.key_id(), "Root key loaded");
        let store = open_keyed_store(&config, keyring.as_ref()).await?;
        let pepper = std::sync::Arc::new(pepper(&config)?);
        let run_tokens = RunTokenSigner::new(pepper.clone());
        if let Some(url) = &config.public_url {
            run_tokens.set_api_url(url.clone());
        }
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
        // Counted as things happen in this process: by the API's handlers, and by the
        // scheduler as it changes runs' states.
        let metrics = Metrics::default();
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
            Scheduler::with_observer(
                store.clone(),
                executors,
                engine,
                std::sync::Arc::new(metrics.clone()),
            )
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
            metrics,
            metrics_token: config
                .metrics_token
                .as_ref()
                .and_then(|t| crate::metrics::MetricsToken::new(t.expose_secret())),
            edge: Edge::new(config.edge.clone()),
            max_body_bytes: config.max_body_bytes,
            executor_memory_mb: config.executor_memory_mb,
            max_log_bytes: config.max_log_bytes,
            shutdown: shutdown.clone(),
        });
        let mut listeners = Vec::new();
        let (mut public_addr, mut internal_addr) = (None, None);
        let scheme = if certificate.is_some() {
            "https"
        } else {
            "http"
        };
        if config.role.serves_api() {
            let tls = match &certificate {
                Some(c) => {
                    c.watch(shutdown.clone());
                    Some(c.server_config()?)
                }
                None => None,
            };
            state.edge.limits.spawn_pruner(shutdown.clone());
            let (addr, task) = listen(
                config.listen,
                app(crate::api::public_router(), &state),
                Listening::new(&config.edge, tls),
                shutdown.clone(),
            )
            .await?;
            public_addr = Some(addr);
            // Containers of pushed runs post back here unless FERRY_PUBLIC_URL says otherwise.
            state.run_tokens.set_api_url(format!("{scheme}://{addr}"));
            // The issuer is FERRY_PUBLIC_URL, else this listener.
            state.issuer.set_default_url(format!("{scheme}://{addr}"));
            listeners.push(task);
            // The internal listener is for the control plane inside the cluster (its network
            // policy admits only the control plane's namespace): timeouts and caps, no TLS.
            let (addr, task) = listen(
                config.internal_listen,
                app(crate::api::internal_router(), &state),
                Listening::new(&config.edge, None),
                shutdown.clone(),
            )
            .await?;
            internal_addr = Some(addr);
            listeners.push(task);
        }
        // A process without the public listener signs as the one configured to listen.
        state
            .issuer
            .set_default_url(format!("{scheme}://{}", config.listen));
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
            scheme,
        })
    }

    /// The public API's base URL (`https://` when it serves TLS).
    pub fn public_url(&self) -> String {
        self.public_addr
            .map(|a| format!("{}://{a}", self.scheme))
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
