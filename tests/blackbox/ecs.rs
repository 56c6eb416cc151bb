//! An ecs pool through `ferry serve` and the CLI, against moto: a credential registered and
//! validated, bad job variables refused before AWS, a run submitted and shown with its task,
//! the task's `FERRY_RUN_TOKEN` posting the run's logs and result (and refused anywhere else),
//! and the run completing with that result when the task stops.

use std::path::Path;
use std::process::Command;

use ferry_moto::{moto, REGION};
use serde_json::{json, Value};

use crate::support::{ferry_command, run_cli, wait_until, CliOutput, FerryProcess};

const ACCOUNT: &str = "222233334444";

pub async fn ferry(dir: &Path, url: &str, key: &str, args: &[&str]) -> CliOutput {
    let mut cmd: Command = ferry_command();
    cmd.current_dir(dir)
        .env("FERRY_URL", url)
        .env("FERRY_API_KEY", key)
        .args(args);
    run_cli(cmd).await
}

/// `ferry admin bootstrap --workspace acme` in `dir` (beside its `ferry serve`): the admin key.
pub async fn bootstrap(dir: &Path) -> String {
    let mut cmd = ferry_command();
    cmd.current_dir(dir)
        .args(["admin", "bootstrap", "--workspace", "acme"]);
    let boot = run_cli(cmd).await;
    boot.assert_success(&["export FERRY_API_KEY="]);
    boot.stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("export FERRY_API_KEY="))
        .unwrap()
        .to_owned()
}

/// The run id `ferry run submit` printed.
pub fn submitted_id(out: &CliOutput) -> String {
    out.assert_success(&["Submitted run "]);
    let rest = out.stdout.split("Submitted run ").nth(1).unwrap();
    rest.split(' ').next().unwrap().to_owned()
}

/// Waits until `ferry run show <id>` says `state`; returns its output.
pub async fn shown_in(
    dir: &Path,
    url: &str,
    key: &str,
    id: &str,
    state: &str,
    also: &str,
) -> String {
    wait_until(&format!("run {id} to be {state}"), || async move {
        let out = ferry(dir, url, key, &["run", "show", id]).await;
        if field(&out.stdout, "State") == Some(state) && out.stdout.contains(also) {
            Ok(out.stdout)
        } else {
            Err(format!("{out:#?}"))
        }
    })
    .await
}

/// The value of `label` in `ferry run show`'s output.
fn field<'a>(show: &'a str, label: &str) -> Option<&'a str> {
    show.lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .map(str::trim)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ecs_run_from_submit_to_its_posted_result() {
    let moto = moto();
    let account = moto.account(ACCOUNT);
    // Tasks stay RUNNING however often they are described, until told otherwise below.
    moto.set_task_transition(json!({"progression": "manual", "times": 1_000_000}));
    let dir = tempfile::tempdir().unwrap();
    let mut server = FerryProcess::serve(
        dir.path(),
        dir.path(),
        "ecs",
        &[],
        &[
            ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", REGION),
            ("FERRY_EXECUTOR_WORKERS", "1"),
        ],
    )
    .await;
    let url = server.public_url.clone();
    let key = bootstrap(dir.path()).await;

    // The credential: read from a file, never from the command line.
    let cred_file = dir.path().join("prod-aws.json");
    std::fs::write(
        &cred_file,
        json!({
            "name": "prod-aws", "kind": "aws-assume-role",
            "role_arn": format!("arn:aws:iam::{ACCOUNT}:role/ferry-runs"), "region": REGION,
        })
        .to_string(),
    )
    .unwrap();
    ferry(
        dir.path(),
        &url,
        &key,
        &[
            "credential",
            "create",
            "--from",
            cred_file.to_str().unwrap(),
        ],
    )
    .await
    .assert_success(&["prod-aws", "aws-assume-role", "EXTERNAL ID"]);

    let template = json!({
        "cluster": account.cluster, "image": "public.ecr.aws/docker/library/python:3.12",
        "subnets": [account.subnet], "security_groups": [account.security_group],
    });
    // A template with a Fargate size that does not exist is refused at creation.
    let mut bad = template.clone();
    bad["cpu"] = json!(256);
    bad["memory"] = json!(4096);
    let refused = ferry(
        dir.path(),
        &url,
        &key,
        &[
            "pool",
            "create",
            "ecs",
            "--type",
            "ecs",
            "--credential",
            "prod-aws",
            "--job-template",
            &bad.to_string(),
        ],
    )
    .await;
    assert_ne!(refused.code, Some(0), "{refused:#?}");
    assert!(refused.stderr.contains("memory"), "{refused:#?}");
    ferry(
        dir.path(),
        &url,
        &key,
        &[
            "pool",
            "create",
            "ecs",
            "--type",
            "ecs",
            "--credential",
            "prod-aws",
            "--job-template",
            &template.to_string(),
        ],
    )
    .await
    .assert_success(&["Created pool ecs"]);

    // Validation against the pool's cluster: every permission passes; moto does not enforce
    // the external id in trust policies, so the role can be assumed without it, which Ferry
    // reports as a failed check (the push-aws tests show it passing behind a strict STS).
    let validated = ferry(
        dir.path(),
        &url,
        &key,
        &["credential", "validate", "prod-aws", "--pool", "ecs"],
    )
    .await;
    assert_ne!(validated.code, Some(0), "{validated:#?}");
    for expected in [
        "passed",
        "sts:AssumeRole",
        "sts:GetCallerIdentity",
        "ecs:DescribeClusters",
        &format!("cluster {} is ACTIVE", account.cluster),
        "FAILED",
        "can be assumed without the external id",
    ] {
        assert!(
            validated.stdout.contains(expected),
            "{expected}: {validated:#?}"
        );
    }

    // A pool whose cluster does not exist in the account: validation fails, saying so.
    let mut ghost = template.clone();
    ghost["cluster"] = json!("no-such-cluster");
    ferry(
        dir.path(),
        &url,
        &key,
        &[
            "pool",
            "create",
            "ghost",
            "--type",
            "ecs",
            "--credential",
            "prod-aws",
            "--job-template",
            &ghost.to_string(),
        ],
    )
    .await
    .assert_success(&["Created pool ghost"]);
    let failed = ferry(
        dir.path(),
        &url,
        &key,
        &["credential", "validate", "prod-aws", "--pool", "ghost"],
    )
    .await;
    assert_ne!(failed.code, Some(0), "{failed:#?}");
    assert!(
        failed.stdout.contains("FAILED")
            && failed
                .stdout
                .contains("cluster no-such-cluster does not exist"),
        "{failed:#?}"
    );

    // Bad job variables: 422 naming the field; nothing is created.
    let bad_run = ferry(
        dir.path(),
        &url,
        &key,
        &[
            "run",
            "submit",
            "--pool",
            "ecs",
            "--var",
            "assign_public_ip=maybe",
        ],
    )
    .await;
    assert_ne!(bad_run.code, Some(0), "{bad_run:#?}");
    assert!(bad_run.stderr.contains("assign_public_ip"), "{bad_run:#?}");

    let submitted = ferry(
        dir.path(),
        &url,
        &key,
        &[
            "run",
            "submit",
            "--pool",
            "ecs",
            "--param",
            "n=3",
            "--var",
            r#"command=["python","-c","print(1)"]"#,
        ],
    )
    .await;
    let run_id = submitted_id(&submitted);

    let show = shown_in(dir.path(), &url, &key, &run_id, "running", "task_arn").await;
    let task_arn = show
        .lines()
        .find_map(|l| l.split("task_arn: ").nth(1))
        .unwrap()
        .trim()
        .to_owned();
    assert!(
        task_arn.starts_with(&format!("arn:aws:ecs:{REGION}:{ACCOUNT}:task/")),
        "the task is in the customer's account: {task_arn}"
    );

    // What the task received: its run id, parameters, API URL and run token, as overrides.
    let task = moto.describe_task(ACCOUNT, &account.cluster, &task_arn);
    let env: Vec<Value> = task["overrides"]["containerOverrides"][0]["environment"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let var = |name: &str| {
        env.iter()
            .find(|e| e["name"] == name)
            .and_then(|e| e["value"].as_str())
            .unwrap_or_else(|| panic!("{name} not in the task's environment: {env:?}"))
            .to_owned()
    };
    assert_eq!(var("FERRY_RUN_ID"), run_id);
    assert_eq!(
        serde_json::from_str::<Value>(&var("FERRY_PARAMETERS")).unwrap(),
        json!({"n": 3})
    );
    assert_eq!(var("FERRY_API_URL"), url);
    let token = var("FERRY_RUN_TOKEN");
    assert!(token.starts_with("frt_"), "{token}");
    assert!(!token.contains(&key), "the run token is not the API key");

    // The container posts its logs and result with the token.
    let http = reqwest::Client::new();
    let post = |path: String, auth: String, body: Value| {
        let http = http.clone();
        async move {
            http.post(path)
                .bearer_auth(auth)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let logs = post(
        format!("{url}/v1/runs/{run_id}/logs"),
        token.clone(),
        json!({"lines": [{"line": "hello from the task"}, {"line": "a warning", "stream": "stderr"}]}),
    )
    .await;
    assert_eq!(logs.status().as_u16(), 204);
    let posted = post(
        format!("{url}/v1/runs/{run_id}/result"),
        token.clone(),
        json!({"result": {"answer": 42}}),
    )
    .await;
    assert_eq!(posted.status().as_u16(), 204);

    // The token is refused for any other run and on every other route; an API key is refused
    // on the report routes.
    let other = ferry(
        dir.path(),
        &url,
        &key,
        &[
            "run",
            "submit",
            "--pool",
            "ecs",
            "--var",
            r#"command=["true"]"#,
        ],
    )
    .await;
    let other_id = submitted_id(&other);
    let foreign = post(
        format!("{url}/v1/runs/{other_id}/result"),
        token.clone(),
        json!({"result": "forged"}),
    )
    .await;
    assert_eq!(foreign.status().as_u16(), 403);
    for (method, path) in [
        (reqwest::Method::GET, format!("/v1/runs/{run_id}")),
        (reqwest::Method::GET, format!("/v1/runs/{run_id}/logs")),
        (reqwest::Method::POST, format!("/v1/runs/{run_id}/cancel")),
        (reqwest::Method::GET, "/v1/credentials".to_owned()),
        (reqwest::Method::GET, "/v1/runs".to_owned()),
    ] {
        let r = http
            .request(method.clone(), format!("{url}{path}"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{method} {path} took a run token");
    }
    let with_key = post(
        format!("{url}/v1/runs/{run_id}/result"),
        key.clone(),
        json!({"result": "from an API key"}),
    )
    .await;
    assert_eq!(with_key.status().as_u16(), 401);

    // The other run's task is stopped by someone else: crashed, with the typed reason.
    let other_show = shown_in(dir.path(), &url, &key, &other_id, "running", "task_arn").await;
    let other_arn = other_show
        .lines()
        .find_map(|l| l.split("task_arn: ").nth(1))
        .unwrap()
        .trim()
        .to_owned();
    moto.stop_task(ACCOUNT, &account.cluster, &other_arn);
    let crashed = shown_in(dir.path(), &url, &key, &other_id, "crashed", "Reason").await;
    assert!(crashed.contains("stopped_externally"), "{crashed}");
    assert!(crashed.contains(&other_arn), "{crashed}");

    // The task ends (exit 0): the run completes with the posted result.
    moto.set_task_transition(json!({"progression": "immediate"}));
    let done = shown_in(dir.path(), &url, &key, &run_id, "completed", "").await;
    assert!(done.contains("\"answer\": 42"), "{done}");
    assert!(done.contains(&task_arn), "{done}");
    let logs = ferry(dir.path(), &url, &key, &["run", "logs", &run_id]).await;
    logs.assert_success(&["hello from the task"]);
    assert!(logs.stderr.contains("a warning"), "{logs:#?}");
    // After the end, the token posts nothing more.
    let late = post(
        format!("{url}/v1/runs/{run_id}/result"),
        token,
        json!({"result": "late"}),
    )
    .await;
    assert_eq!(late.status().as_u16(), 409);
    server.terminate().await;
}
