//! Black-box tests of the Cloud Run fake over HTTP, with self-signed service-account JWTs.

use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use ferry_cloudrun_fake::{ExecutionPlan, FakeCloudRun, Fault, Options, ServiceAccount};
use serde_json::{json, Value};

const PROJECT: &str = "cust-a";
const OTHER_PROJECT: &str = "cust-b";
const LOCATION: &str = "projects/cust-a/locations/europe-west1";

/// Two accounts, made once and cached on disk: RSA 2048 key generation is slow in debug builds.
fn accounts() -> &'static (ServiceAccount, ServiceAccount) {
    static ACCOUNTS: OnceLock<(ServiceAccount, ServiceAccount)> = OnceLock::new();
    ACCOUNTS.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        let a = std::thread::spawn(|| ServiceAccount::cached("ferry", PROJECT, dir));
        let b = ServiceAccount::cached("ferry", OTHER_PROJECT, dir);
        match (a.join(), b) {
            (Ok(Ok(a)), Ok(b)) => (a, b),
            _ => panic!("generating test keys"),
        }
    })
}

struct Env {
    fake: FakeCloudRun,
    http: reqwest::Client,
    token: String,
}

impl Env {
    async fn start() -> Result<Self> {
        let (a, b) = accounts();
        let fake = FakeCloudRun::start(Options::default()).await?;
        fake.register_project(PROJECT, &a.email, a.public_key_pem())?;
        fake.register_project(OTHER_PROJECT, &b.email, b.public_key_pem())?;
        Ok(Self {
            fake,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()?,
            token: a.token()?,
        })
    }

    async fn send_as(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}/v2/{path}", self.fake.endpoint()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        let v = serde_json::from_str(&text).with_context(|| format!("body: {text}"))?;
        Ok((status, v))
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        self.send_as(Some(&self.token), method, path, body).await
    }

    async fn get(&self, path: &str) -> Result<(u16, Value)> {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Result<(u16, Value)> {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn create_job(&self, id: &str) -> Result<Value> {
        let (status, op) = self
            .post(&format!("{LOCATION}/jobs?jobId={id}"), job())
            .await?;
        ensure!(status == 200, "create {id}: {status} {op}");
        Ok(op)
    }

    /// Runs `job` and returns the execution's name.
    async fn run(&self, job: &str, body: Value) -> Result<String> {
        let (status, op) = self
            .post(&format!("{LOCATION}/jobs/{job}:run"), body)
            .await?;
        ensure!(status == 200, "run: {status} {op}");
        op["metadata"]["name"]
            .as_str()
            .map(str::to_owned)
            .context("no execution name")
    }
}

fn job() -> Value {
    json!({
        "labels": {"ferry-run-id": "r-1", "ferry-workspace-id": "w-1"},
        "template": {
            "taskCount": 1,
            "template": {
                "maxRetries": 0,
                "timeout": "3600s",
                "containers": [{
                    "image": "ghcr.io/ferry/runner:1",
                    "args": ["default"],
                    "env": [{"name": "KEEP", "value": "1"}, {"name": "RUN", "value": "none"}],
                    "resources": {"limits": {"cpu": "1", "memory": "512Mi"}}
                }]
            }
        }
    })
}

fn completed_state(exec: &Value) -> Option<&str> {
    exec["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Completed")?["state"]
        .as_str()
}

#[tokio::test]
async fn create_then_operation_then_get() -> Result<()> {
    let env = Env::start().await?;
    let op = env.create_job("flow-a").await?;
    let op_name = op["name"].as_str().context("op name")?;
    assert!(
        op_name.starts_with(&format!("{LOCATION}/operations/")),
        "{op}"
    );
    assert_eq!(op["done"], false);
    let (status, op) = env.get(op_name).await?;
    assert_eq!(status, 200);
    assert_eq!(op["done"], true);
    assert_eq!(
        op["response"]["@type"],
        "type.googleapis.com/google.cloud.run.v2.Job"
    );
    let (status, j) = env.get(&format!("{LOCATION}/jobs/flow-a")).await?;
    assert_eq!(status, 200, "{j}");
    assert_eq!(j["name"], format!("{LOCATION}/jobs/flow-a"));
    assert_eq!(j["creator"], accounts().0.email);
    assert_eq!(j["labels"]["ferry-run-id"], "r-1");
    // Again: already exists; validateOnly of a new one stores nothing.
    let (status, e) = env
        .post(&format!("{LOCATION}/jobs?jobId=flow-a"), job())
        .await?;
    assert_eq!(
        (status, e["error"]["status"].as_str()),
        (409, Some("ALREADY_EXISTS"))
    );
    let (status, op) = env
        .post(
            &format!("{LOCATION}/jobs?jobId=flow-b&validateOnly=true"),
            job(),
        )
        .await?;
    assert_eq!((status, &op["done"]), (200, &json!(true)));
    assert_eq!(env.get(&format!("{LOCATION}/jobs/flow-b")).await?.0, 404);
    let (_, list) = env.get(&format!("{LOCATION}/jobs")).await?;
    assert_eq!(list["jobs"].as_array().map(Vec::len), Some(1));
    Ok(())
}

#[tokio::test]
async fn run_with_overrides_is_reported_with_labels() -> Result<()> {
    let env = Env::start().await?;
    env.create_job("flow").await?;
    let name = env
        .run(
            "flow",
            json!({"overrides": {"containerOverrides": [{"args": ["run", "r-1"],
                     "env": [{"name": "RUN", "value": "r-1"}]}], "timeout": "120s", "taskCount": 1}}),
        )
        .await?;
    assert!(name.starts_with(&format!("{LOCATION}/jobs/flow/executions/flow-")));
    let (status, exec) = env.get(&name).await?;
    assert_eq!(status, 200);
    let c = &exec["template"]["containers"][0];
    assert_eq!(c["args"], json!(["run", "r-1"]));
    assert_eq!(
        c["env"],
        json!([{"name": "KEEP", "value": "1"}, {"name": "RUN", "value": "r-1"}])
    );
    assert_eq!(exec["template"]["timeout"], "120s");
    assert_eq!(exec["labels"]["ferry-run-id"], "r-1");
    assert_eq!(exec["job"], "flow");
    let (_, list) = env.get(&format!("{LOCATION}/jobs/flow/executions")).await?;
    assert_eq!(list["executions"][0]["name"], name);
    assert_eq!(env.fake.calls("jobs.run"), 1);
    Ok(())
}

#[tokio::test]
async fn executions_succeed_fail_or_are_cancelled() -> Result<()> {
    let env = Env::start().await?;
    env.create_job("flow").await?;

    env.queue_plan(ExecutionPlan::Succeed { after_polls: 2 });
    let ok = env.run("flow", json!({})).await?;
    let (_, e) = env.get(&ok).await?;
    assert_eq!(
        (completed_state(&e), &e["runningCount"]),
        (Some("CONDITION_PENDING"), &json!(1))
    );
    let (_, e) = env.get(&ok).await?;
    assert_eq!(completed_state(&e), Some("CONDITION_SUCCEEDED"));
    assert_eq!(e["succeededCount"], 1);
    assert!(e["completionTime"].is_string());

    env.queue_plan(ExecutionPlan::Fail {
        after_polls: 1,
        message: "exit code 3".into(),
    });
    let failed = env.run("flow", json!({})).await?;
    let (_, e) = env.get(&failed).await?;
    assert_eq!(completed_state(&e), Some("CONDITION_FAILED"));
    assert_eq!(e["failedCount"], 1);
    assert!(e.to_string().contains("exit code 3"));

    env.queue_plan(ExecutionPlan::NeverFinish);
    let stuck = env.run("flow", json!({})).await?;
    for _ in 0..3 {
        let (_, e) = env.get(&stuck).await?;
        assert_eq!(completed_state(&e), Some("CONDITION_PENDING"));
    }
    let (status, op) = env.post(&format!("{stuck}:cancel"), json!({})).await?;
    assert_eq!(status, 200, "{op}");
    let (_, e) = env.get(&stuck).await?;
    assert_eq!(completed_state(&e), Some("CONDITION_FAILED"));
    assert_eq!(e["cancelledCount"], 1);
    // Cancelling a finished execution is refused.
    let (status, _) = env.post(&format!("{stuck}:cancel"), json!({})).await?;
    assert_eq!(status, 400);
    Ok(())
}

impl Env {
    fn queue_plan(&self, plan: ExecutionPlan) {
        self.fake.queue_execution_plan(plan);
    }
}

#[tokio::test]
async fn unknown_body_field_is_400_with_its_path_and_nothing_is_stored() -> Result<()> {
    let env = Env::start().await?;
    let mut body = job();
    body["template"]["template"]["containers"][0]["resources"]["limitz"] = json!({});
    let (status, e) = env
        .post(&format!("{LOCATION}/jobs?jobId=flow"), body)
        .await?;
    assert_eq!(status, 400);
    assert_eq!(e["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(
        e["error"]["details"][0]["fieldViolations"][0]["field"],
        "job.template.template.containers[0].resources"
    );
    assert!(e["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("Unknown name \"limitz\"")));
    assert!(env.fake.job_names().is_empty());
    Ok(())
}

#[tokio::test]
async fn undeclared_query_parameter_is_400() -> Result<()> {
    let env = Env::start().await?;
    let (status, e) = env
        .post(&format!("{LOCATION}/jobs?jobId=flow&dryRun=true"), job())
        .await?;
    assert_eq!(status, 400);
    assert_eq!(
        e["error"]["details"][0]["fieldViolations"][0]["field"],
        "dryRun"
    );
    let (status, _) = env.get(&format!("{LOCATION}/jobs?pageSize=ten")).await?;
    assert_eq!(status, 400);
    assert!(env.fake.job_names().is_empty());
    Ok(())
}

#[tokio::test]
async fn wrong_verb_or_path_is_404() -> Result<()> {
    let env = Env::start().await?;
    let (status, e) = env
        .send(
            reqwest::Method::PUT,
            &format!("{LOCATION}/jobs/x"),
            Some(job()),
        )
        .await?;
    assert_eq!(
        (status, e["error"]["status"].as_str()),
        (404, Some("NOT_FOUND"))
    );
    let (status, _) = env.get(&format!("{LOCATION}/gizmos")).await?;
    assert_eq!(status, 404);
    Ok(())
}

#[tokio::test]
async fn token_checks() -> Result<()> {
    let env = Env::start().await?;
    let (a, b) = accounts();
    let path = format!("{LOCATION}/jobs");
    // No token, a garbled one, an expired one, one signed by the wrong key: 401.
    let (status, e) = env.send_as(None, reqwest::Method::GET, &path, None).await?;
    assert_eq!(
        (status, e["error"]["status"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );
    let (status, _) = env
        .send_as(Some("a.b.c"), reqwest::Method::GET, &path, None)
        .await?;
    assert_eq!(status, 401);
    let mut claims = a.default_claims();
    claims.exp = claims.iat - 1;
    let expired = a.token_with(&claims)?;
    let (status, _) = env
        .send_as(Some(&expired), reqwest::Method::GET, &path, None)
        .await?;
    assert_eq!(status, 401);
    let mut forged = b.default_claims();
    forged.iss = a.email.clone();
    forged.sub = Some(a.email.clone());
    let forged = b.token_with(&forged)?;
    let (status, _) = env
        .send_as(Some(&forged), reqwest::Method::GET, &path, None)
        .await?;
    assert_eq!(status, 401);
    // Another account's valid token, and a project nobody registered: 403.
    let (status, e) = env
        .send_as(Some(&b.token()?), reqwest::Method::GET, &path, None)
        .await?;
    assert_eq!(
        (status, e["error"]["status"].as_str()),
        (403, Some("PERMISSION_DENIED"))
    );
    let (status, _) = env.get("projects/nobody/locations/l/jobs").await?;
    assert_eq!(status, 403);
    // The other account in its own project: fine.
    let (status, _) = env
        .send_as(
            Some(&b.token()?),
            reqwest::Method::GET,
            "projects/cust-b/locations/l/jobs",
            None,
        )
        .await?;
    assert_eq!(status, 200);
    let journal = env.fake.journal();
    assert_eq!(journal.len(), 7);
    assert_eq!(journal[0].account, None);
    assert_eq!(journal[6].account.as_deref(), Some(b.email.as_str()));
    Ok(())
}

#[tokio::test]
async fn test_iam_permissions_reports_what_was_granted() -> Result<()> {
    let env = Env::start().await?;
    let asked = json!({"permissions": ["run.jobs.create", "run.jobs.run", "run.executions.get"]});
    let path = format!("{LOCATION}/jobs/flow:testIamPermissions");
    let (status, r) = env.post(&path, asked.clone()).await?;
    assert_eq!(
        (status, r["permissions"].as_array().map(Vec::len)),
        (200, Some(3))
    );
    env.fake.set_permissions(
        &accounts().0.email,
        Some(vec!["run.jobs.create".into(), "run.executions.get".into()]),
    );
    let (_, r) = env.post(&path, asked).await?;
    assert_eq!(
        r["permissions"],
        json!(["run.jobs.create", "run.executions.get"])
    );
    // Creating a job (even validate-only) also needs actAs on its service account.
    let (status, e) = env
        .post(
            &format!("{LOCATION}/jobs?jobId=flow&validateOnly=true"),
            job(),
        )
        .await?;
    assert_eq!(status, 403, "{e}");
    assert!(
        e["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("iam.serviceaccounts.actAs")),
        "{e}"
    );
    env.fake.set_permissions(
        &accounts().0.email,
        Some(vec![
            "run.jobs.create".into(),
            "run.executions.get".into(),
            "iam.serviceAccounts.actAs".into(),
        ]),
    );
    // And a call needing a permission not granted is refused.
    env.create_job("flow").await?;
    let (status, _) = env
        .post(&format!("{LOCATION}/jobs/flow:run"), json!({}))
        .await?;
    assert_eq!(status, 403);
    assert!(env.fake.executions().is_empty());
    Ok(())
}

#[tokio::test]
async fn injected_503_then_success() -> Result<()> {
    let env = Env::start().await?;
    env.create_job("flow").await?;
    env.fake.inject_fault(Some("jobs.run"), Fault::Status(503));
    env.fake.inject_fault(Some("jobs.run"), Fault::Status(429));
    let (status, e) = env
        .post(&format!("{LOCATION}/jobs/flow:run"), json!({}))
        .await?;
    assert_eq!(
        (status, e["error"]["status"].as_str()),
        (503, Some("UNAVAILABLE"))
    );
    let (status, e) = env
        .post(&format!("{LOCATION}/jobs/flow:run"), json!({}))
        .await?;
    assert_eq!(
        (status, e["error"]["status"].as_str()),
        (429, Some("RESOURCE_EXHAUSTED"))
    );
    assert!(env.fake.executions().is_empty());
    env.run("flow", json!({})).await?;
    assert_eq!(env.fake.executions().len(), 1);
    assert_eq!(env.fake.calls("jobs.run"), 3);
    Ok(())
}

#[tokio::test]
async fn timeout_after_success_has_happened() -> Result<()> {
    let env = Env::start().await?;
    env.create_job("flow").await?;
    env.fake
        .inject_fault(Some("jobs.run"), Fault::TimeoutAfterSuccess);
    let err = env
        .post(&format!("{LOCATION}/jobs/flow:run"), json!({}))
        .await
        .err()
        .context("the call should time out")?;
    assert!(
        err.chain().any(|e| e
            .downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_timeout)),
        "{err:?}"
    );
    // The effect happened: one execution exists; a blind retry makes a second.
    assert_eq!(env.fake.executions().len(), 1);
    let journal = env.fake.journal();
    assert_eq!(journal.last().map(|e| e.status), Some(None));
    env.run("flow", json!({})).await?;
    assert_eq!(env.fake.executions().len(), 2);
    assert_eq!(env.fake.calls("jobs.run"), 2);
    env.fake.stop();
    Ok(())
}

#[tokio::test]
async fn deleted_out_of_band_is_404() -> Result<()> {
    let env = Env::start().await?;
    env.create_job("flow").await?;
    let name = env.run("flow", json!({})).await?;
    assert!(env.fake.delete_execution(&name));
    let (status, e) = env.get(&name).await?;
    assert_eq!(
        (status, e["error"]["status"].as_str()),
        (404, Some("NOT_FOUND"))
    );
    assert!(env.fake.delete_job(&format!("{LOCATION}/jobs/flow")));
    assert_eq!(env.get(&format!("{LOCATION}/jobs/flow")).await?.0, 404);
    Ok(())
}

#[tokio::test]
async fn delete_job_and_execution_over_the_api() -> Result<()> {
    let env = Env::start().await?;
    // As Google's Rust client sends them: every query field, empty ones included, and enums
    // and int64s as numbers and strings.
    let mut body = job();
    body["template"]["template"]["executionEnvironment"] = json!(2);
    body["generation"] = json!("0");
    let (status, op) = env
        .post(
            &format!(
                "{LOCATION}/jobs?jobId=flow&validateOnly=false&%24alt=json%3Benum-encoding%3Dint"
            ),
            body,
        )
        .await?;
    assert_eq!(status, 200, "{op}");
    let name = env.run("flow", json!({})).await?;
    let (status, op) = env
        .send(
            reqwest::Method::DELETE,
            &format!("{name}?etag=&validateOnly=false"),
            None,
        )
        .await?;
    assert_eq!((status, &op["done"]), (200, &json!(true)));
    assert_eq!(env.get(&name).await?.0, 404);
    let (status, _) = env
        .send(
            reqwest::Method::DELETE,
            &format!("{LOCATION}/jobs/flow"),
            None,
        )
        .await?;
    assert_eq!(status, 200);
    assert!(env.fake.job_names().is_empty());
    Ok(())
}
