//! A server whose root key is an AWS KMS key (moto): workspace keys are wrapped by KMS and no
//! local key file is made; secrets survive a restart, and a rotation to a second KMS key
//! re-wraps workspace keys only; a server moving from the local key file to KMS keeps its
//! secrets; an unknown KMS key stops the start with a clear error.

use std::sync::{Arc, Once};

use aws_sdk_kms::config::{BehaviorVersion, Credentials, Region};
use ferry_core::{Name, WorkspaceId};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sqlx::Connection;

/// The server takes AWS credentials from the standard provider chain: the environment here.
fn aws_env() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
        std::env::set_var("AWS_REGION", ferry_moto::REGION);
    });
}

/// A new KMS key in moto; its ARN.
async fn kms_key() -> String {
    let conf = aws_sdk_kms::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(ferry_moto::REGION))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .endpoint_url(&ferry_moto::moto().endpoint)
        .build();
    let out = aws_sdk_kms::Client::from_conf(conf)
        .create_key()
        .send()
        .await
        .unwrap();
    out.key_metadata().unwrap().arn().unwrap().to_owned()
}

fn on_kms(config: &ferry_server::Config, arn: &str) -> ferry_server::Config {
    let mut c = config.clone();
    c.root_key = Some(ferry_kms::KeySpec::parse(&format!("aws-kms:{arn}")).unwrap());
    c.kms_endpoint = Some(ferry_moto::moto().endpoint.clone());
    c
}

struct Running {
    server: ferry_server::Server,
    http: reqwest::Client,
}

impl Running {
    async fn start(config: &ferry_server::Config) -> Running {
        let server =
            ferry_server::Server::start(config.clone(), ferry_engine::Executors::default())
                .await
                .unwrap_or_else(|e| panic!("{e:#}"));
        Running {
            server,
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, token: &str, url: String, body: Value) -> Value {
        let r = self
            .http
            .post(url)
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        r.json().await.unwrap()
    }

    /// A workspace and an admin key of it.
    async fn tenant(&self) -> (WorkspaceId, String) {
        let internal = self.server.internal_token.expose_secret().to_owned();
        let base = self.server.internal_url();
        let ws = self
            .post(
                &internal,
                format!("{base}/internal/v1/workspaces"),
                json!({"name": "acme"}),
            )
            .await;
        let id = ws["id"].as_str().unwrap().to_owned();
        let key = self
            .post(
                &internal,
                format!("{base}/internal/v1/workspaces/{id}/api-keys"),
                json!({"role": "admin"}),
            )
            .await;
        (id.parse().unwrap(), key["key"].as_str().unwrap().to_owned())
    }

    async fn put_secret(&self, admin: &str, name: &str, value: &str) {
        let r = self
            .http
            .put(format!("{}/v1/secrets/{name}", self.server.public_url()))
            .bearer_auth(admin)
            .json(&json!({"value": value}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert!(
            status == 201 || status == 200,
            "{status}: {}",
            r.text().await.unwrap()
        );
    }

    async fn stop(self) {
        self.server.shutdown().await;
    }
}

/// The secret's value, opened by a vault of its own on `config`'s root key (as the engine's
/// would be).
async fn reveal(config: &ferry_server::Config, ws: WorkspaceId, name: &str) -> String {
    let store = ferry_store::Store::connect(&config.database_url())
        .await
        .unwrap();
    let keyring: Arc<dyn ferry_crypto::Keyring> = match &config.root_key {
        Some(spec) => {
            let options = ferry_kms::Options {
                endpoint: config.kms_endpoint.clone(),
                ..Default::default()
            };
            ferry_kms::connect(spec, &options).await.unwrap()
        }
        None => Arc::new(ferry_crypto::LocalKeyring::open(&config.data_dir).unwrap()),
    };
    let vault = ferry_server::Vault::new(store.clone(), keyring);
    let value = vault
        .secret_reveal(ws, &Name::parse(name).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap();
    store.close().await;
    value.expose_secret().to_owned()
}

/// `SELECT <column> FROM <table>`, as text, ordered.
async fn column(config: &ferry_server::Config, sql: &str) -> Vec<String> {
    let mut c = sqlx::SqliteConnection::connect(&config.database_url())
        .await
        .unwrap();
    let rows: Vec<String> = sqlx::query_scalar(sql).fetch_all(&mut c).await.unwrap();
    c.close().await.unwrap();
    rows
}

const SECRET_ROWS: &str =
    "SELECT hex(id) || '|' || version || '|' || hex(sealed) FROM secrets ORDER BY id";
const ROOT_KEY_IDS: &str = "SELECT root_key_id FROM workspace_keys ORDER BY workspace_id";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_survive_a_restart_and_a_rotation_to_a_second_kms_key() {
    aws_env();
    let (first, second) = (kms_key().await, kms_key().await);
    let dir = tempfile::tempdir().unwrap();
    let config = on_kms(&ferry_server::Config::for_tests(dir.path()), &first);

    let app = Running::start(&config).await;
    let (ws, admin) = app.tenant().await;
    app.put_secret(&admin, "db-password", "hunter2-but-longer")
        .await;
    app.stop().await;
    assert!(
        !dir.path().join(ferry_crypto::ROOT_KEY_FILE).exists(),
        "a KMS-keyed server made a local root key"
    );
    assert_eq!(
        column(&config, ROOT_KEY_IDS).await,
        [format!("aws-kms:{first}")]
    );

    // Restarted: the server unwraps the workspace key through KMS to seal another secret.
    let app = Running::start(&config).await;
    app.put_secret(&admin, "api-token", "second-value").await;
    app.stop().await;
    assert_eq!(
        reveal(&config, ws, "db-password").await,
        "hunter2-but-longer"
    );

    // The operator points Ferry at the second key and rotates.
    let secrets_before = column(&config, SECRET_ROWS).await;
    let config = on_kms(&config, &second);
    let r = ferry_server::root_key_rotate(&config).await.unwrap();
    assert_eq!(
        (r.old_key_id.as_str(), r.new_key_id.as_str(), r.rewrapped),
        (
            format!("aws-kms:{first}").as_str(),
            format!("aws-kms:{second}").as_str(),
            1
        )
    );
    assert!(r.retired.is_empty());
    assert_eq!(
        column(&config, ROOT_KEY_IDS).await,
        [format!("aws-kms:{second}")]
    );
    assert_eq!(
        column(&config, SECRET_ROWS).await,
        secrets_before,
        "a secret row was rewritten"
    );
    // Again: nothing left to do.
    let again = ferry_server::root_key_rotate(&config).await.unwrap();
    assert_eq!(again.rewrapped, 0);

    let app = Running::start(&config).await;
    app.put_secret(&admin, "third", "third-value").await;
    app.stop().await;
    for (name, value) in [
        ("db-password", "hunter2-but-longer"),
        ("api-token", "second-value"),
        ("third", "third-value"),
    ] {
        assert_eq!(reveal(&config, ws, name).await, value);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_moves_from_the_local_key_file_to_kms() {
    aws_env();
    let dir = tempfile::tempdir().unwrap();
    let local = ferry_server::Config::for_tests(dir.path());
    let app = Running::start(&local).await;
    let (ws, admin) = app.tenant().await;
    app.put_secret(&admin, "kept", "from-the-local-days").await;
    app.stop().await;
    let local_id = column(&local, ROOT_KEY_IDS).await.remove(0);
    assert!(local_id.starts_with("local-"), "{local_id}");

    // On KMS, the local key file still unwraps the workspace key until the rotation.
    let arn = kms_key().await;
    let config = on_kms(&local, &arn);
    let app = Running::start(&config).await;
    app.put_secret(&admin, "new", "from-the-kms-days").await;
    app.stop().await;
    let r = ferry_server::root_key_rotate(&config).await.unwrap();
    assert_eq!((r.old_key_id.as_str(), r.rewrapped), (local_id.as_str(), 1));
    assert_eq!(
        column(&config, ROOT_KEY_IDS).await,
        [format!("aws-kms:{arn}")]
    );

    // The local key file is no longer needed.
    std::fs::remove_file(dir.path().join(ferry_crypto::ROOT_KEY_FILE)).unwrap();
    assert_eq!(reveal(&config, ws, "kept").await, "from-the-local-days");
    assert_eq!(reveal(&config, ws, "new").await, "from-the-kms-days");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_kms_key_stops_the_start_with_a_clear_error() {
    aws_env();
    let dir = tempfile::tempdir().unwrap();
    let missing = format!(
        "arn:aws:kms:{}:123456789012:key/{}",
        ferry_moto::REGION,
        WorkspaceId::new()
    );
    let config = on_kms(&ferry_server::Config::for_tests(dir.path()), &missing);
    let e = ferry_server::Server::start(config, ferry_engine::Executors::default())
        .await
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap();
    assert!(
        e.contains("FERRY_ROOT_KEY") && e.contains(&missing) && e.contains("no such key"),
        "{e}"
    );
}
