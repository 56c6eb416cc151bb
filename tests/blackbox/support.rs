//! Test support: `spawn_app()` gives each test its own Ferry (in-process, on a fresh temporary
//! data directory, with the fake executors and short scheduler timings) and a workspace with a
//! key of every role; raw HTTP helpers for requests the typed client cannot make; waiting with
//! a deadline; and the `ferry` binary as a child process that is killed even when a test panics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use ferry_client::{ApiKeyCreated, Client, NewPool, NewRun, Pool, Run, RunsQuery};
use ferry_core::port::PushBackend;
use ferry_core::testing::{FakeFlowRunner, FakePushBackend};
use ferry_core::PoolType;
use reqwest::header::HeaderMap;
use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

/// Every role, strongest first.
pub const ROLES: [&str; 4] = ["admin", "developer", "runner", "viewer"];

/// How long any wait for a condition may take before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The smallest WASI preview-1 flow: a core module whose `_start` returns at once. Every
/// test workspace has it uploaded (the fake runner does not run it; the upload checks pass).
pub const NOOP_WASM: [u8; 36] = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // types: () -> ()
    0x03, 0x02, 0x01, 0x00, // functions: one of type 0
    0x07, 0x0a, 0x01, 0x06, b'_', b's', b't', b'a', b'r', b't', 0x00, 0x00, // export _start
    0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // code: an empty body
];

/// [`NOOP_WASM`] with a custom section: another artifact, for tests that need one only one
/// workspace has. Its digest is [`OTHER_ARTIFACT`].
pub fn other_wasm() -> Vec<u8> {
    let mut bytes = NOOP_WASM.to_vec();
    bytes.extend([0x00, 0x03, 0x01, b'a', 0x00]);
    bytes
}

/// The digest of [`other_wasm`] (`sha256sum` of those bytes).
pub const OTHER_ARTIFACT: &str =
    "sha256:22d1fc3a7cdbaba3ef3412c089085f75de1274a3afb3147394c0acdabec47a65";

/// Uploads `bytes` as an artifact with `key` to the server at `url`; returns its digest.
pub async fn upload(url: &str, key: &str, bytes: Vec<u8>) -> String {
    let response = reqwest::Client::new()
        .post(format!("{url}/v1/artifacts"))
        .bearer_auth(key)
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "uploading an artifact: {}",
        response.status()
    );
    let body: Value = response.json().await.unwrap();
    body["digest"].as_str().unwrap().to_owned()
}

/// The digest of [`NOOP_WASM`] (`sha256sum` of those bytes).
pub fn artifact() -> String {
    "sha256:5647c39a1d25d8728350f9619025292a62e78a602068a2ad9b6f075751c93d99".to_owned()
}

/// A managed run of `pool` with these parameters (the fakes' instructions).
pub fn managed_run(pool: &str, parameters: Value) -> NewRun {
    NewRun {
        pool: pool.to_owned(),
        artifact: Some(artifact()),
        parameters: Some(parameters),
        ..Default::default()
    }
}

/// A managed pool with no limits of its own.
pub fn managed_pool(name: &str) -> NewPool {
    NewPool {
        name: name.to_owned(),
        pool_type: "managed".to_owned(),
        ..Default::default()
    }
}

/// The scheduler's timings, shortened so that runs move in milliseconds.
pub fn engine_config() -> ferry_engine::Config {
    ferry_engine::Config {
        poll_interval: Duration::from_millis(20),
        lease_ttl: Duration::from_secs(5),
        renew_interval: Duration::from_millis(500),
        push_poll_interval: Duration::from_millis(30),
        timeout_grace: Duration::from_millis(200),
        ..ferry_engine::Config::with_owner(format!("blackbox-{}", uuid::Uuid::new_v4().simple()))
    }
}

/// A workspace and one API key of each role in it.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub keys: BTreeMap<String, ApiKeyCreated>,
    url: String,
}

impl Tenant {
    /// The secret of this workspace's key of `role`.
    pub fn key(&self, role: &str) -> &str {
        &self.keys[role].key
    }

    /// The id of this workspace's key of `role`.
    pub fn key_id(&self, role: &str) -> &str {
        &self.keys[role].id
    }

    /// A typed client of the public API with this workspace's key of `role`.
    pub fn client(&self, role: &str) -> Client {
        Client::new(&self.url, self.key(role)).unwrap()
    }
}

/// An answer to a raw request.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    /// The body as JSON (`Null` when it is not JSON).
    pub body: Value,
}

impl Reply {
    /// `error.code` of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// `error.message` of an error body.
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }

    /// Asserts the documented error shape: this status and code, a message, and a request
    /// id equal to the `x-request-id` header.
    pub fn assert_error(&self, status: u16, code: &str) -> &Self {
        assert_eq!(
            self.status, status,
            "want HTTP {status} {code}, got {self:#?}"
        );
        assert_eq!(self.code(), code, "{self:#?}");
        assert!(
            !self.message().is_empty(),
            "error without a message: {self:#?}"
        );
        let header = self
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok());
        let in_body = self.body["error"]["request_id"].as_str();
        assert!(
            header.is_some_and(|h| !h.is_empty()),
            "no x-request-id header: {self:#?}"
        );
        assert_eq!(
            in_body, header,
            "error.request_id must equal the x-request-id header"
        );
        self
    }

    /// Asserts the message contains each of `parts` (what to fix).
    pub fn assert_message_mentions(&self, parts: &[&str]) -> &Self {
        for part in parts {
            assert!(
                self.message().contains(part),
                "error message {:?} does not mention {part:?}",
                self.message()
            );
        }
        self
    }
}

/// Sends a raw request to `url`, with `token` as bearer (if any) and `body` as JSON.
pub async fn call(
    http: &reqwest::Client,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Reply {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = http.request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_owned());
    }
    reply(request.send().await.unwrap()).await
}

/// Reads a response whole.
pub async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        text,
        body,
    }
}

/// Calls `check` until it returns `Some`, failing after [`DEADLINE`] with `what` and the last
/// thing seen.
pub async fn wait_until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if tokio::time::Instant::now() > deadline => {
                panic!("gave up after {DEADLINE:?} waiting for {what}; last seen: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
}

/// Waits until run `id` is in `state`.
pub async fn wait_for_state(client: &Client, id: &str, state: &str) -> Run {
    wait_until(&format!("run {id} to be {state}"), || async {
        let run = client.get_run(id).await.map_err(|e| e.to_string())?;
        if run.state == state {
            Ok(run)
        } else {
            Err(format!("state {}", run.state))
        }
    })
    .await
}

/// Every run the client's workspace has matching `query`, following the cursor.
pub async fn all_runs(client: &Client, mut query: RunsQuery) -> Vec<Run> {
    let mut runs = Vec::new();
    query.limit = query.limit.or(Some(500));
    loop {
        let page = client.list_runs(&query).await.unwrap();
        runs.extend(page.items);
        match page.next_cursor {
            Some(c) => query.cursor = Some(c),
            None => return runs,
        }
    }
}

/// An in-process Ferry on its own data directory.
pub struct App {
    server: ferry_server::Server,
    pub url: String,
    pub internal_url: String,
    pub internal_token: String,
    /// The workspace every test starts with, and a key of each role in it.
    pub acme: Tenant,
    pub runner: FakeFlowRunner,
    pub cloud: FakePushBackend,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// Starts a Ferry for one test, with workspace `acme` and a key of every role.
pub async fn spawn_app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let config = ferry_server::Config {
        engine: Some(engine_config()),
        ..ferry_server::Config::for_tests(dir.path())
    };
    let runner = FakeFlowRunner::default();
    let cloud = FakePushBackend::default();
    let push: Arc<dyn PushBackend> = Arc::new(cloud.clone());
    let executors = ferry_engine::Executors {
        managed: Some(Arc::new(runner.clone())),
        push: [(PoolType::Ecs, push.clone()), (PoolType::CloudRun, push)]
            .into_iter()
            .collect(),
    };
    let server = ferry_server::Server::start(config, executors)
        .await
        .unwrap();
    let url = server.public_url();
    let internal_url = server.internal_url();
    let internal_token = server.internal_token.expose_secret().to_owned();
    let acme = make_tenant(&url, &internal_url, &internal_token, "acme").await;
    App {
        server,
        url,
        internal_url,
        internal_token,
        acme,
        runner,
        cloud,
        http: reqwest::Client::new(),
        _dir: dir,
    }
}

pub async fn make_tenant(url: &str, internal_url: &str, token: &str, name: &str) -> Tenant {
    let internal = Client::new(internal_url, token).unwrap();
    let ws = internal.create_workspace(name).await.unwrap();
    let mut keys = BTreeMap::new();
    for role in ROLES {
        keys.insert(
            role.to_owned(),
            internal.create_api_key(&ws.id, role).await.unwrap(),
        );
    }
    let admin = keys["admin"].key.clone();
    let uploaded = reqwest::Client::new()
        .post(format!("{url}/v1/artifacts"))
        .bearer_auth(&admin)
        .body(NOOP_WASM.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), 201, "uploading the no-op flow");
    let body: Value = uploaded.json().await.unwrap();
    assert_eq!(body["digest"], artifact());
    Tenant {
        id: ws.id,
        name: ws.name,
        keys,
        url: url.to_owned(),
    }
}

impl App {
    /// A client of workspace `acme` with its key of `role`.
    pub fn client(&self, role: &str) -> Client {
        self.acme.client(role)
    }

    /// A client of workspace `acme` with its admin key.
    pub fn admin(&self) -> Client {
        self.client("admin")
    }

    /// Creates another workspace with a key of each role.
    pub async fn tenant(&self, name: &str) -> Tenant {
        make_tenant(&self.url, &self.internal_url, &self.internal_token, name).await
    }

    /// A raw request to the public listener.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Reply {
        call(
            &self.http,
            method,
            &format!("{}{path}", self.url),
            token,
            body,
        )
        .await
    }

    /// A raw request to the public listener with acme's admin key.
    pub async fn call_admin(&self, method: &str, path: &str, body: Option<&str>) -> Reply {
        self.call(method, path, Some(self.acme.key("admin")), body)
            .await
    }

    /// Creates a managed pool in acme.
    pub async fn managed_pool(&self, name: &str) -> Pool {
        self.admin().create_pool(&managed_pool(name)).await.unwrap()
    }

    /// Submits a managed run to acme's `pool`.
    pub async fn submit(&self, pool: &str, parameters: Value) -> Run {
        let (run, created) = self
            .admin()
            .create_run(&managed_run(pool, parameters))
            .await
            .unwrap();
        assert!(created);
        run
    }

    /// A run of acme's `pool` that waits an hour before it is due (it stays `scheduled`).
    pub async fn submit_later(&self, pool: &str) -> Run {
        let body = NewRun {
            scheduled_at: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
            ..managed_run(pool, json!({}))
        };
        self.admin().create_run(&body).await.unwrap().0
    }

    /// What acme holds: (pools, runs, keys), for "nothing was written" checks.
    pub async fn counts(&self) -> (usize, usize, usize) {
        let admin = self.admin();
        let pools = admin.list_pools().await.unwrap().len();
        let runs = all_runs(&admin, RunsQuery::default()).await.len();
        let keys = self.call_admin("GET", "/v1/api-keys", None).await.body["items"]
            .as_array()
            .map_or(0, Vec::len);
        (pools, runs, keys)
    }

    /// Stops the server gracefully.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// A `ferry` binary serving on loopback ports the OS picked, with stdout and stderr in files.
/// Dropping it kills the process (SIGKILL) if it still runs.
pub struct FerryProcess {
    child: Child,
    pub public_url: String,
    pub internal_url: String,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

/// The `ferry` binary under test.
pub fn ferry_bin() -> &'static str {
    env!("CARGO_BIN_EXE_ferry")
}

/// A `ferry` command with no `FERRY_*` variable inherited from the environment of the tests.
pub fn ferry_command() -> Command {
    let mut cmd = Command::new(ferry_bin());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("FERRY_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// The text after `start` and before `end` on the first line holding `start`.
fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let rest = &line[line.find(start)? + start.len()..];
        Some(&rest[..rest.find(end)?])
    })
}

impl FerryProcess {
    /// Runs `ferry serve` in `cwd` with `args` added and `env` set; output goes to
    /// `<logs>/<name>.stdout` and `.stderr`. Returns once both listeners are announced.
    pub async fn serve(
        cwd: &Path,
        logs: &Path,
        name: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> FerryProcess {
        let stdout = logs.join(format!("{name}.stdout"));
        let stderr = logs.join(format!("{name}.stderr"));
        let mut cmd = ferry_command();
        cmd.current_dir(cwd)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--internal-listen",
                "127.0.0.1:0",
            ])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap());
        let child = cmd.spawn().unwrap();
        let mut process = FerryProcess {
            child,
            public_url: String::new(),
            internal_url: String::new(),
            stdout,
            stderr,
        };
        let (public, internal) = wait_until(&format!("`ferry serve` ({name}) to announce its listeners"), || {
            let announced = std::fs::read_to_string(&process.stdout).unwrap_or_default();
            let exited = process.child.try_wait().unwrap();
            async move {
                if let Some(status) = exited {
                    panic!("`ferry serve` exited with {status} before listening; stdout: {announced}");
                }
                let public = between(&announced, "is listening on ", " (public API)");
                let internal = between(&announced, "Internal API on ", ";");
                match (public, internal) {
                    (Some(p), Some(i)) => Ok((p.to_owned(), i.to_owned())),
                    _ => Err(announced.clone()),
                }
            }
        })
        .await;
        process.public_url = public;
        process.internal_url = internal;
        process
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, if the process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM failed");
        let child = &mut self.child;
        wait_until("`ferry serve` to exit after SIGTERM", || {
            let status = child.try_wait().unwrap();
            async move { status.ok_or_else(|| "still running".to_owned()) }
        })
        .await
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        let out = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        format!("{out}{err}")
    }
}

impl Drop for FerryProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A ferry CLI invocation's outcome.
#[derive(Debug)]
pub struct CliOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    /// Asserts it exited 0 and printed each of `parts` on stdout.
    pub fn assert_success(&self, parts: &[&str]) -> &Self {
        assert_eq!(self.code, Some(0), "{self:#?}");
        for part in parts {
            assert!(
                self.stdout.contains(part),
                "stdout does not contain {part:?}: {self:#?}"
            );
        }
        self
    }
}

/// Runs a prepared command to its end.
pub async fn run_cli(mut cmd: Command) -> CliOutput {
    let out = tokio::task::spawn_blocking(move || cmd.stdin(Stdio::null()).output())
        .await
        .unwrap()
        .unwrap();
    CliOutput {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every (METHOD, path template) of the public API, as `/openapi.json` lists them, without the
/// internal listener's routes.
pub async fn public_routes(app: &App) -> Vec<(String, String)> {
    let doc = app.call("GET", "/openapi.json", None, None).await.body;
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if path.starts_with("/internal/") {
            continue;
        }
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                routes.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    assert!(
        routes.len() > 10,
        "openapi.json lists too few routes: {routes:?}"
    );
    routes
}

/// The routes a pushed run's container calls with its `FERRY_RUN_TOKEN`: no API key of any
/// role is accepted there (401), so they are outside the role matrix and the isolation table
/// (tests/blackbox/ecs.rs covers them with real tokens).
pub const RUN_TOKEN_ROUTES: &[(&str, &str)] = &[
    ("POST", "/v1/runs/{id}/logs"),
    ("POST", "/v1/runs/{id}/result"),
];

/// Asserts every role's key is refused (401) on the run-token routes, for run `run`.
pub async fn assert_run_token_routes_refuse_keys(app: &App, run: &str) {
    for (method, template) in RUN_TOKEN_ROUTES {
        let path = template.replace("{id}", run);
        for role in ROLES {
            let reply = app
                .call(
                    method,
                    &path,
                    Some(app.acme.key(role)),
                    Some(r#"{"result": 1}"#),
                )
                .await;
            assert_eq!(reply.status, 401, "{role} {method} {path}: {reply:#?}");
        }
    }
}

/// The route template of a concrete test path: its query dropped, and each segment holding a
/// placeholder (`p-{role}`, `{run}`, `{pool}`, ...) turned into the API's parameter name.
pub fn template_of(path: &str) -> String {
    let path = path.split('?').next().unwrap();
    let name_param = path.starts_with("/v1/pools/") || path.starts_with("/v1/secrets/");
    let digest_param = path.starts_with("/v1/artifacts/");
    path.split('/')
        .map(|segment| match segment.contains('{') {
            true if name_param => "{name}",
            true if digest_param => "{digest}",
            true => "{id}",
            false => segment,
        })
        .collect::<Vec<_>>()
        .join("/")
}
