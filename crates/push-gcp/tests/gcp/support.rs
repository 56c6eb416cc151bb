//! What the Cloud Run tests share: two customers (each a project with its own service
//! account, keys made once and cached on disk), an in-test [`SecretSource`] serving each
//! workspace's credential, a backend pointed at the fake, and jobs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use ferry_cloudrun_fake::{FakeCloudRun, Options, ServiceAccount};
use ferry_core::port::{RunJob, SecretSource, SecretsError};
use ferry_core::{CredentialKind, Name, PoolId, PoolLimits, PoolType, RunId, WorkspaceId};
use ferry_push_gcp::{CloudRunBackend, GcpConfig};
use secrecy::SecretString;
use serde_json::{json, Value};

pub const PROJECT_A: &str = "cust-a-flows";
pub const PROJECT_B: &str = "cust-b-flows";
pub const REGION: &str = "europe-west1";

/// The two customers' service accounts, made once per machine (RSA key generation is slow in
/// debug builds).
pub fn accounts() -> &'static (ServiceAccount, ServiceAccount) {
    static ACCOUNTS: OnceLock<(ServiceAccount, ServiceAccount)> = OnceLock::new();
    ACCOUNTS.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        let a = std::thread::spawn(|| ServiceAccount::cached("ferry-runs", PROJECT_A, dir));
        let b = ServiceAccount::cached("ferry-runs", PROJECT_B, dir);
        match (a.join(), b) {
            (Ok(Ok(a)), Ok(b)) => (a, b),
            _ => panic!("generating test keys"),
        }
    })
}

/// Credentials per workspace; counts how often a credential was opened.
#[derive(Default)]
pub struct Secrets {
    creds: Mutex<HashMap<(WorkspaceId, String), (CredentialKind, String)>>,
    pub opened: AtomicUsize,
}

impl Secrets {
    /// Gives `ws` a `gcp-service-account-key` credential `name` holding `key` (canonical
    /// material: the key file's JSON object).
    pub fn key(&self, ws: WorkspaceId, name: &str, key: &Value) {
        self.raw(
            ws,
            name,
            CredentialKind::GcpServiceAccountKey,
            &key.to_string(),
        );
    }

    pub fn raw(&self, ws: WorkspaceId, name: &str, kind: CredentialKind, material: &str) {
        self.creds
            .lock()
            .unwrap()
            .insert((ws, name.to_owned()), (kind, material.to_owned()));
    }
}

#[async_trait]
impl SecretSource for Secrets {
    async fn secret(&self, _: WorkspaceId, _: &Name) -> Result<Option<SecretString>, SecretsError> {
        Ok(None)
    }

    async fn run_sensitive_parameters(
        &self,
        _: WorkspaceId,
        _: RunId,
    ) -> Result<Option<SecretString>, SecretsError> {
        Ok(None)
    }

    async fn credential(
        &self,
        ws: WorkspaceId,
        name: &Name,
    ) -> Result<Option<(CredentialKind, SecretString)>, SecretsError> {
        self.opened.fetch_add(1, Ordering::SeqCst);
        Ok(self
            .creds
            .lock()
            .unwrap()
            .get(&(ws, name.to_string()))
            .map(|(k, m)| (*k, SecretString::from(m.clone()))))
    }
}

/// The fake with both customers' projects, two workspaces holding their credential `gcp`,
/// and a backend against the fake.
pub struct Env {
    pub fake: FakeCloudRun,
    pub secrets: Arc<Secrets>,
    pub backend: Arc<CloudRunBackend>,
    pub ws_a: WorkspaceId,
    pub ws_b: WorkspaceId,
}

impl Env {
    pub async fn start() -> Self {
        let (a, b) = accounts();
        let fake = FakeCloudRun::start(Options::default()).await.unwrap();
        fake.register_project(PROJECT_A, &a.email, a.public_key_pem())
            .unwrap();
        fake.register_project(PROJECT_B, &b.email, b.public_key_pem())
            .unwrap();
        let secrets = Arc::new(Secrets::default());
        let (ws_a, ws_b) = (WorkspaceId::new(), WorkspaceId::new());
        secrets.key(ws_a, "gcp", &a.key_json());
        secrets.key(ws_b, "gcp", &b.key_json());
        let backend = Arc::new(backend(&fake, secrets.clone()));
        Self {
            fake,
            secrets,
            backend,
            ws_a,
            ws_b,
        }
    }
}

/// A backend against `fake`, minting `token-<run id>` as each run's token.
pub fn backend(fake: &FakeCloudRun, secrets: Arc<Secrets>) -> CloudRunBackend {
    backend_at(fake.endpoint(), secrets)
}

/// A backend sending every Cloud Run call to `endpoint`.
pub fn backend_at(endpoint: String, secrets: Arc<Secrets>) -> CloudRunBackend {
    CloudRunBackend::new(
        secrets,
        GcpConfig {
            endpoint: Some(endpoint),
            allowed_endpoints: ferry_push_gcp::AllowedEndpoints::default(),
            run_tokens: Arc::new(|job: &RunJob| {
                SecretString::from(format!("token-{}", job.run_id))
            }),
            identity_tokens: Arc::new(ferry_core::port::NoIdentityTokens),
        },
    )
}

/// A pool template in `project`.
pub fn template(project: &str) -> Value {
    json!({
        "project": project,
        "region": REGION,
        "image": "europe-docker.pkg.dev/acme/flows/runner:1",
        "command": ["python", "-m", "flow"],
        "args": ["--stage", "test"],
        "cpu": 1,
        "memory": "512Mi",
        "env": {"STAGE": "test"},
        "env_from_secrets": {"DB_PASSWORD": format!("projects/{project}/secrets/db-password/versions/latest")},
        "labels": {"team": "data"},
    })
}

/// Attempt 1 of a fresh run of workspace `ws`'s pool `pool`, with credential `gcp`.
pub fn job(ws: WorkspaceId, pool: PoolId, template: Value, variables: Value) -> RunJob {
    RunJob {
        run_id: RunId::new(),
        workspace_id: ws,
        pool_id: pool,
        pool: Name::parse("cr-pool").unwrap(),
        pool_type: PoolType::CloudRun,
        attempt: 1,
        artifact: None,
        parameters: json!({"n": 3}),
        job_template: template,
        job_variables: variables,
        credential: Some(Name::parse("gcp").unwrap()),
        limits: PoolLimits::default(),
        has_sensitive_parameters: false,
        infrastructure: None,
    }
}

/// The `execution` of an infrastructure value.
pub fn execution(infra: &Value) -> String {
    infra["execution"].as_str().unwrap().to_owned()
}

/// An execution's env (as the fake reports it, overrides applied) as a map.
pub fn env_of(execution: &Value) -> HashMap<String, Value> {
    execution["template"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let value = e
                .get("value")
                .cloned()
                .unwrap_or_else(|| e["valueSource"].clone());
            (e["name"].as_str().unwrap().to_owned(), value)
        })
        .collect()
}
