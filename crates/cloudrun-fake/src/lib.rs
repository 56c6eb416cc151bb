//! Test support: an in-process fake of Google's Cloud Run Admin API v2 (jobs, executions,
//! long-running operations, testIamPermissions) for `ferry-push-gcp`'s tests.
//!
//! Every request is routed, and its query and JSON body validated, by the API's discovery
//! document (`crates/cloudrun-fake/spec/run.v2.json`, loaded at run time); a wrong request gets
//! Google's 400 naming the field. Bearer tokens are the self-signed RS256 JWTs google-cloud-auth
//! makes from a service-account key: the signature is checked against the public key
//! registered for the project, and another account's token is refused with 403. Executions
//! succeed, fail or never finish as told; faults (429/503, timeout after success) can be
//! injected; and a journal records every request for assertions.
//!
//! It also plays Google's STS for workload identity federation (`POST /v1/token`, see
//! `sts.rs`): a subject token of a registered provider's OIDC issuer is verified against the
//! issuer's JWKS, fetched over HTTP as Google does, and exchanged for an access token that the
//! Cloud Run routes accept as the federated principal of the token's subject.
//!
//! Architecture invariant: no request mutates state before it is authenticated and validated,
//! and a `Fault::Status` call has no effect.

mod auth;
mod discovery;
mod error;
mod executions;
mod jobs;
pub mod keys;
mod operations;
mod server;
mod state;
mod sts;
pub mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::Notify;

pub use discovery::{default_path as default_discovery_path, Discovery, DISCOVERY_ENV};
pub use error::ApiError;
pub use keys::ServiceAccount;
pub use state::{ExecutionPlan, Fault, JournalEntry};

use server::Shared;

/// Why the fake could not start or be configured.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("loading the discovery document")]
    Discovery(#[from] discovery::Error),
    #[error("binding the fake's listener")]
    Bind(#[source] std::io::Error),
    #[error(transparent)]
    Key(#[from] auth::KeyError),
}

/// How to start the fake.
#[derive(Debug, Clone)]
pub struct Options {
    /// The discovery document; default [`default_discovery_path`] (`FERRY_CLOUDRUN_DISCOVERY`
    /// or this crate's `spec/run.v2.json`).
    pub discovery_path: PathBuf,
    /// How long a `Fault::TimeoutAfterSuccess` call hangs before answering 504; default one
    /// hour (the client's timeout is what ends it; dropping the fake ends it too).
    pub hang: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            discovery_path: default_discovery_path(),
            hang: Duration::from_secs(3600),
        }
    }
}

/// A running fake; a cheap-to-clone handle. It serves until [`FakeCloudRun::stop`] or until its
/// Tokio runtime ends (a `#[tokio::test]`'s end).
#[derive(Clone)]
pub struct FakeCloudRun {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl std::fmt::Debug for FakeCloudRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeCloudRun")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl FakeCloudRun {
    /// Loads the discovery document and serves on `127.0.0.1:0`.
    pub async fn start(opts: Options) -> Result<Self, Error> {
        let discovery = Discovery::load(&opts.discovery_path)?;
        let shared = Arc::new(Shared {
            discovery,
            state: Mutex::new(state::State::default()),
            shutdown: Notify::new(),
            hang: opts.hang,
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(Error::Bind)?;
        let addr = listener.local_addr().map_err(Error::Bind)?;
        let s = shared.clone();
        let app =
            axum::Router::new().fallback(move |method, uri, headers, body: axum::body::Bytes| {
                server::handle(s.clone(), method, uri, headers, body)
            });
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "Cloud Run fake stopped");
            }
        });
        Ok(Self {
            shared,
            addr,
            task: Arc::new(task),
        })
    }

    /// `http://127.0.0.1:PORT`: the endpoint override for a client.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The loaded discovery document.
    pub fn discovery(&self) -> &Discovery {
        &self.shared.discovery
    }

    /// Stops serving and releases every hanging call.
    pub fn stop(&self) {
        self.shared.shutdown.notify_waiters();
        self.task.abort();
    }

    /// Lets `service_account_email` (whose key is `public_key_pem`, SPKI or PKCS#1 PEM) act in
    /// `project_id`, and only there; any other account's token is refused there with 403.
    pub fn register_project(
        &self,
        project_id: &str,
        service_account_email: &str,
        public_key_pem: &str,
    ) -> Result<(), Error> {
        let key = auth::parse_public_key(public_key_pem)?;
        let mut st = self.shared.state();
        let permissions = st
            .accounts
            .get(service_account_email)
            .and_then(|a| a.permissions.clone());
        st.accounts.insert(
            service_account_email.to_owned(),
            state::Account {
                key: Some(key),
                permissions,
            },
        );
        st.projects
            .insert(project_id.to_owned(), service_account_email.to_owned());
        Ok(())
    }

    /// Registers a workload identity pool provider: `audience` is its full resource name
    /// (`//iam.googleapis.com/projects/<n>/locations/global/workloadIdentityPools/<pool>/providers/<id>`),
    /// and it takes subject tokens of the OIDC issuer `issuer` (whose JWKS the STS fetches
    /// from `<issuer>/.well-known/openid-configuration` at every exchange).
    pub fn register_workload_identity_provider(&self, audience: &str, issuer: &str) {
        self.shared.state().providers.insert(
            audience.to_owned(),
            sts::Provider {
                issuer: issuer.to_owned(),
            },
        );
    }

    /// Lets the federated principal `principal` (`principal://iam.googleapis.com/projects/
    /// <n>/locations/global/workloadIdentityPools/<pool>/subject/<sub>`) act in
    /// `project_id`, and only there, with every permission (see [`Self::set_permissions`]).
    pub fn register_project_principal(&self, project_id: &str, principal: &str) {
        let mut st = self.shared.state();
        st.accounts
            .entry(principal.to_owned())
            .or_insert(state::Account {
                key: None,
                permissions: None,
            });
        st.projects
            .insert(project_id.to_owned(), principal.to_owned());
    }

    /// The STS token exchange URL (a workload identity configuration's `token_url`).
    pub fn sts_token_url(&self) -> String {
        format!("{}{}", self.endpoint(), sts::TOKEN_PATH)
    }

    /// Grants `email` only these permissions (`run.jobs.create`, ...); `None` grants all (the
    /// default). A call needing another permission gets 403, and `testIamPermissions` reports
    /// just these. `jobs.create` (validate-only too) also needs `iam.serviceAccounts.actAs`
    /// among them, as Google's needs it on the job's service account.
    pub fn set_permissions(&self, email: &str, permissions: Option<Vec<String>>) {
        if let Some(a) = self.shared.state().accounts.get_mut(email) {
            a.permissions = permissions;
        }
    }

    /// What every later execution does, unless one is queued (default: succeed at the first
    /// observation).
    pub fn set_execution_plan(&self, plan: ExecutionPlan) {
        self.shared.state().default_plan = plan;
    }

    /// What the next execution does (queued, one per execution, before the default applies).
    pub fn queue_execution_plan(&self, plan: ExecutionPlan) {
        self.shared.state().queued_plans.push_back(plan);
    }

    /// Injects `fault` on the next call of `method` (`"jobs.run"`, `"jobs.executions.get"`,
    /// matched at the end of the discovery id), or of any method if `None`. Faults queue.
    pub fn inject_fault(&self, method: Option<&str>, fault: Fault) {
        self.shared
            .state()
            .faults
            .push_back((method.map(str::to_owned), fault));
    }

    /// Deletes an execution out of band (as someone in the console would); true if it existed.
    pub fn delete_execution(&self, name: &str) -> bool {
        self.shared.state().executions.remove(name).is_some()
    }

    /// Cancels an execution out of band; true if it existed.
    pub fn cancel_execution(&self, name: &str) -> bool {
        match self.shared.state().executions.get_mut(name) {
            Some(e) => {
                executions::cancel_out_of_band(e);
                true
            }
            None => false,
        }
    }

    /// Deletes a job (and its executions) out of band; true if it existed.
    pub fn delete_job(&self, name: &str) -> bool {
        let mut st = self.shared.state();
        let prefix = format!("{name}/executions/");
        st.executions.retain(|n, _| !n.starts_with(&prefix));
        st.jobs.remove(name).is_some()
    }

    /// A job as stored, by full name.
    pub fn job(&self, name: &str) -> Option<Value> {
        self.shared.state().jobs.get(name).cloned()
    }

    /// Every job's name.
    pub fn job_names(&self) -> Vec<String> {
        self.shared.state().jobs.keys().cloned().collect()
    }

    /// An execution as stored (without counting as an observation).
    pub fn execution(&self, name: &str) -> Option<Value> {
        self.shared
            .state()
            .executions
            .get(name)
            .map(|e| e.value.clone())
    }

    /// Every execution (as stored), oldest name first.
    pub fn executions(&self) -> Vec<Value> {
        self.shared
            .state()
            .executions
            .values()
            .map(|e| e.value.clone())
            .collect()
    }

    /// Every request received so far, in order.
    pub fn journal(&self) -> Vec<JournalEntry> {
        self.shared.state().journal.clone()
    }

    /// How many calls of `method` (see [`JournalEntry::is`]) were received.
    pub fn calls(&self, method: &str) -> usize {
        self.shared
            .state()
            .journal
            .iter()
            .filter(|e| e.is(method))
            .count()
    }

    /// Empties the journal.
    pub fn clear_journal(&self) {
        self.shared.state().journal.clear();
    }
}
