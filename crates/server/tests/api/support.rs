//! Test support: an in-process Ferry per test on SQLite (a temporary data directory) or
//! PostgreSQL (a fresh database, dropped afterwards), workspaces with an admin key, raw JSON
//! requests, and raw SQL on the same database.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;

use futures::FutureExt;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use sqlx::Connection;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// Declares `mod $name { sqlite, postgres }` running `async fn $name(app: App)` on each.
macro_rules! backend_test {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $crate::support::run($crate::support::Kind::Sqlite, super::$name).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $crate::support::run($crate::support::Kind::Postgres, super::$name).await
            }
        }
    };
}

/// One running Ferry.
pub struct App {
    pub server: Option<ferry_server::Server>,
    pub config: ferry_server::Config,
    pub kind: Kind,
    pub url: String,
    pub internal_url: String,
    internal_token: String,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// An answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }

    /// Asserts the status, printing the reply otherwise.
    #[track_caller]
    pub fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "{self:#?}");
        self
    }

    #[track_caller]
    pub fn expect_error(&self, status: u16, mentions: &[&str]) -> &Self {
        self.expect(status);
        for m in mentions {
            assert!(
                self.message().contains(m),
                "{:?} does not mention {m:?}",
                self.message()
            );
        }
        self
    }
}

/// The smallest WASI preview-1 flow (a `_start` that returns); uploaded to every tenant.
pub const NOOP_WASM: [u8; 36] = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00, 0x03, 0x02,
    0x01, 0x00, 0x07, 0x0a, 0x01, 0x06, b'_', b's', b't', b'a', b'r', b't', 0x00, 0x00, 0x0a, 0x04,
    0x01, 0x02, 0x00, 0x0b,
];

/// The digest of [`NOOP_WASM`].
pub const NOOP_DIGEST: &str =
    "sha256:5647c39a1d25d8728350f9619025292a62e78a602068a2ad9b6f075751c93d99";

/// A workspace and its admin key.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    pub admin: String,
}

pub async fn run<F, Fut>(kind: Kind, test: F)
where
    F: FnOnce(App) -> Fut,
    Fut: Future<Output = ()>,
{
    run_configured(kind, |_| {}, test).await
}

/// [`run`], with the configuration changed by `configure` first.
pub async fn run_configured<F, Fut>(
    kind: Kind,
    configure: impl FnOnce(&mut ferry_server::Config),
    test: F,
) where
    F: FnOnce(App) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let mut config = ferry_server::Config::for_tests(dir.path());
    configure(&mut config);
    let mut pg_name = None;
    if kind == Kind::Postgres {
        let (url, name) = ferry_store::testing::create_postgres_database()
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL is unreachable ({e}); these tests need it"));
        config.database_url = Some(SecretString::from(url));
        pg_name = Some(name);
    }
    let app = App::start(config, kind, dir).await;
    let outcome = AssertUnwindSafe(test(app)).catch_unwind().await;
    if let Some(name) = pg_name {
        ferry_store::testing::drop_postgres_database(&name)
            .await
            .unwrap();
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

impl App {
    async fn start(config: ferry_server::Config, kind: Kind, dir: tempfile::TempDir) -> App {
        let server =
            ferry_server::Server::start(config.clone(), ferry_engine::Executors::default())
                .await
                .unwrap();
        App {
            url: server.public_url(),
            internal_url: server.internal_url(),
            internal_token: server.internal_token.expose_secret().to_owned(),
            server: Some(server),
            config,
            kind,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// The internal API's token.
    pub fn internal_token(&self) -> String {
        self.internal_token.clone()
    }

    pub fn store(&self) -> &ferry_store::Store {
        &self.server.as_ref().unwrap().store
    }

    pub fn data_dir(&self) -> PathBuf {
        self.config.data_dir.clone()
    }

    /// A vault of its own over the same database and root key files (as the engine would
    /// have).
    pub fn vault(&self) -> ferry_server::Vault {
        let keyring = ferry_crypto::LocalKeyring::open(&self.config.data_dir).unwrap();
        ferry_server::Vault::new(self.store().clone(), std::sync::Arc::new(keyring))
    }

    /// An OIDC issuer of its own over the same database and root key files, at the
    /// server's issuer URL (as another `ferry serve` process would have).
    pub fn issuer(&self) -> ferry_server::Issuer {
        let keyring = ferry_crypto::LocalKeyring::open(&self.config.data_dir).unwrap();
        ferry_server::Issuer::new(
            self.store().clone(),
            std::sync::Arc::new(keyring),
            Some(self.url.clone()),
            self.config.oidc_key_rotation_days,
        )
    }

    pub async fn request(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let base = if path.starts_with("/internal/") {
            &self.internal_url
        } else {
            &self.url
        };
        let mut req = self
            .http
            .request(method, format!("{base}{path}"))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, body, text }
    }

    pub async fn get(&self, token: &str, path: &str) -> Reply {
        self.request(token, Method::GET, path, None).await
    }

    pub async fn post(&self, token: &str, path: &str, body: Value) -> Reply {
        self.request(token, Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, token: &str, path: &str, body: Value) -> Reply {
        self.request(token, Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, token: &str, path: &str) -> Reply {
        self.request(token, Method::DELETE, path, None).await
    }

    /// A new workspace and an admin key for it.
    pub async fn tenant(&self, name: &str) -> Tenant {
        let t = self.internal_token.clone();
        let ws = self
            .post(&t, "/internal/v1/workspaces", json!({"name": name}))
            .await;
        ws.expect(201);
        let id = ws.body["id"].as_str().unwrap().to_owned();
        let key = self
            .post(
                &t,
                &format!("/internal/v1/workspaces/{id}/api-keys"),
                json!({"role": "admin"}),
            )
            .await;
        key.expect(201);
        let admin = key.body["key"].as_str().unwrap().to_owned();
        // Every workspace has the no-op flow, so tests can submit managed runs of it.
        let uploaded = self
            .http
            .post(format!("{}/v1/artifacts", self.url))
            .bearer_auth(&admin)
            .body(NOOP_WASM.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(uploaded.status().as_u16(), 201, "uploading the no-op flow");
        Tenant { id, admin }
    }

    /// A key of `role` in `tenant`.
    pub async fn key(&self, tenant: &Tenant, role: &str) -> String {
        let r = self
            .post(&tenant.admin, "/v1/api-keys", json!({"role": role}))
            .await;
        r.expect(201);
        r.body["key"].as_str().unwrap().to_owned()
    }

    /// Runs `sql` (no binds) on a connection of its own.
    pub async fn exec(&self, sql: &str) {
        let url = self.config.database_url();
        match self.kind {
            Kind::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
                c.close().await.unwrap();
            }
            Kind::Postgres => {
                let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
                c.close().await.unwrap();
            }
        }
    }

    /// The rows of `SELECT <columns> FROM <table> ORDER BY id`, every column cast to text
    /// (blobs as hex), for comparing raw rows.
    pub async fn raw_rows(&self, table: &str, columns: &[&str]) -> Vec<String> {
        let url = self.config.database_url();
        let cast = |c: &str| {
            match self.kind {
            Kind::Sqlite => format!(
                "COALESCE(CASE typeof({c}) WHEN 'blob' THEN hex({c}) ELSE CAST({c} AS TEXT) END, 'NULL')"
            ),
            Kind::Postgres => format!("COALESCE(CAST({c} AS TEXT), 'NULL')"),
        }
        };
        let select = columns
            .iter()
            .map(|c| cast(c))
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        let sql = format!("SELECT {select} FROM {table} ORDER BY 1");
        match self.kind {
            Kind::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::query_scalar(&sql).fetch_all(&mut c).await.unwrap()
            }
            Kind::Postgres => {
                let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
                sqlx::query_scalar(&sql).fetch_all(&mut c).await.unwrap()
            }
        }
    }

    /// A SQL literal of a uuid for this backend.
    pub fn uuid_sql(&self, id: &str) -> String {
        match self.kind {
            Kind::Sqlite => format!("X'{}'", id.replace('-', "")),
            Kind::Postgres => format!("'{id}'"),
        }
    }

    /// Stops the server; the data directory stays until the test ends.
    #[allow(dead_code)] // Used by the canaries binary.
    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }
}

/// The test-only RSA key of `tests/fixtures`.
pub const SA_PEM: &str = include_str!("../fixtures/gcp-sa-key.pem");

/// A service-account key file.
pub fn sa_key(private_key_id: &str, email: &str) -> Value {
    json!({
        "type": "service_account",
        "project_id": "proj",
        "private_key_id": private_key_id,
        "private_key": SA_PEM,
        "client_email": email,
        "client_id": "1234567890",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": "https://oauth2.googleapis.com/token",
        "universe_domain": "googleapis.com",
    })
}

/// A workload-identity (external_account) configuration in the form Ferry takes (no
/// `credential_source`: Ferry presents its own token), carrying `canary` in its sealed
/// material (`quota_project_id`, never shown).
pub fn wif_config(canary: &str) -> Value {
    json!({
        "type": "external_account",
        "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/ferry/providers/ferry-oidc",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": "https://sts.googleapis.com/v1/token",
        "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/run@proj.iam.gserviceaccount.com:generateAccessToken",
        "quota_project_id": canary,
    })
}

pub fn aws_key(name: &str, id: &str, secret: &str, token: Option<&str>) -> Value {
    let mut v = json!({"name": name, "kind": "aws-access-key", "access_key_id": id,
        "secret_access_key": secret, "region": "us-east-1"});
    if let Some(t) = token {
        v["session_token"] = json!(t);
    }
    v
}

pub fn assume_role(name: &str, account: &str) -> Value {
    json!({"name": name, "kind": "aws-assume-role",
        "role_arn": format!("arn:aws:iam::{account}:role/ferry-runner"), "region": "us-east-1"})
}
