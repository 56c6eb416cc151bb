//! The trust boundary at the API: endpoints are the operator's (`FERRY_ALLOWED_ENDPOINTS`),
//! identity and placement are the pool admin's (a run sets only what the pool lets it), and
//! managed runs fit the executors' memory budget (`FERRY_EXECUTOR_MEMORY_MB`). Each refusal
//! sits beside the request that is accepted.

use serde_json::{json, Value};

use crate::support::{aws_key, run_configured, App, Kind};

fn ecs_template(extra: Value) -> Value {
    let mut t = json!({
        "region": "eu-west-1", "cluster": "flows", "image": "python:3.12",
        "subnets": ["subnet-0abc"], "security_groups": ["sg-0abc"],
    });
    if let (Some(t), Some(extra)) = (t.as_object_mut(), extra.as_object()) {
        t.extend(extra.clone());
    }
    t
}

async fn ecs_pool(app: &App, admin: &str, name: &str, template: Value) -> crate::support::Reply {
    app.post(
        admin,
        "/v1/pools",
        json!({"name": name, "type": "ecs", "credential": "aws", "job_template": template}),
    )
    .await
}

backend_test!(pool_endpoints_are_the_operators_choice);
async fn pool_endpoints_are_the_operators_choice(app: App) {
    let t = app.tenant("acme").await;
    app.post(
        &t.admin,
        "/v1/credentials",
        aws_key(
            "aws",
            "AKIAFERRYTEST0000000",
            "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY",
            None,
        ),
    )
    .await
    .expect(201);
    // The default list: AWS's official endpoints, nothing on this host or the tenant's.
    ecs_pool(
        &app,
        &t.admin,
        "official",
        ecs_template(json!({"endpoint": "https://ecs.eu-west-1.amazonaws.com"})),
    )
    .await
    .expect(201);
    for refused in [
        "http://127.0.0.1:4566",
        "http://127.0.0.1.evil.tld:4566",
        "http://169.254.169.254",
        "https://ecs.eu-west-1.amazonaws.com.evil.tld",
        "https://attacker.example.com",
    ] {
        ecs_pool(
            &app,
            &t.admin,
            "p",
            ecs_template(json!({"endpoint": refused})),
        )
        .await
        .expect_error(422, &["endpoint", "FERRY_ALLOWED_ENDPOINTS"]);
    }
    // A pool cannot be changed to point elsewhere either.
    app.request(
        &t.admin,
        reqwest::Method::PATCH,
        "/v1/pools/official",
        Some(json!({"job_template": ecs_template(json!({"endpoint": "https://attacker.example.com"}))})),
    )
    .await
    .expect_error(422, &["FERRY_ALLOWED_ENDPOINTS"]);
}

backend_test!(runs_set_only_what_their_pool_lets_them);
async fn runs_set_only_what_their_pool_lets_them(app: App) {
    let t = app.tenant("acme").await;
    let runner = app.key(&t, "runner").await;
    app.post(
        &t.admin,
        "/v1/credentials",
        aws_key(
            "aws",
            "AKIAFERRYTEST0000000",
            "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY",
            None,
        ),
    )
    .await
    .expect(201);
    ecs_pool(
        &app,
        &t.admin,
        "ecs",
        ecs_template(json!({
            "task_role_arn": "arn:aws:iam::123456789012:role/flows",
        })),
    )
    .await
    .expect(201);
    let submit = |vars: Value| {
        let (app, runner) = (&app, runner.clone());
        async move {
            app.post(
                &runner,
                "/v1/runs",
                json!({"pool": "ecs", "job_variables": vars}),
            )
            .await
        }
    };
    // Positive control: what the container runs and with how much.
    submit(json!({"image": "python:3.13", "command": ["python", "f.py"], "env": {"A": "1"}, "cpu": 512, "memory": 1024}))
        .await
        .expect(201);
    // Identity, placement and the endpoint: refused, naming the variable.
    for (vars, field) in [
        (
            json!({"task_role_arn": "arn:aws:iam::123456789012:role/admin"}),
            "task_role_arn",
        ),
        (
            json!({"execution_role_arn": "arn:aws:iam::123456789012:role/admin"}),
            "execution_role_arn",
        ),
        (json!({"cluster": "prod"}), "cluster"),
        (json!({"subnets": ["subnet-1"]}), "subnets"),
        (
            json!({"endpoint": "https://ecs.eu-west-1.amazonaws.com"}),
            "endpoint",
        ),
        (json!({"run_variables": ["cluster"]}), "run_variables"),
    ] {
        submit(vars.clone()).await.expect_error(422, &[field]);
    }
    // The pool's admin lists a variable: now runs may set it, and still never the endpoint.
    app.request(
        &t.admin,
        reqwest::Method::PATCH,
        "/v1/pools/ecs",
        Some(json!({"job_template": ecs_template(json!({"run_variables": ["image", "cluster"]}))})),
    )
    .await
    .expect(200);
    submit(json!({"cluster": "other"})).await.expect(201);
    submit(json!({"env": {"A": "1"}}))
        .await
        .expect_error(422, &["env", "run_variables"]);
    app.request(
        &t.admin,
        reqwest::Method::PATCH,
        "/v1/pools/ecs",
        Some(json!({"job_template": ecs_template(json!({"run_variables": ["endpoint"]}))})),
    )
    .await
    .expect_error(422, &["run_variables", "endpoint"]);
}

async fn memory_budget(app: App) {
    let t = app.tenant("acme").await;
    let pool =
        |mb: u32| json!({"name": format!("m{mb}"), "type": "managed", "limits": {"memory_mb": mb}});
    app.post(&t.admin, "/v1/pools", pool(256)).await.expect(201);
    app.post(&t.admin, "/v1/pools", pool(257))
        .await
        .expect_error(422, &["memory_mb 257", "FERRY_EXECUTOR_MEMORY_MB", "256"]);
    app.request(
        &t.admin,
        reqwest::Method::PATCH,
        "/v1/pools/m256",
        Some(json!({"limits": {"memory_mb": 1024}})),
    )
    .await
    .expect_error(422, &["FERRY_EXECUTOR_MEMORY_MB"]);
    // A pool made under a larger budget: its runs are refused at submission, not left
    // waiting for memory that never comes.
    let ws = ferry_core::WorkspaceId(t.id.parse().unwrap());
    app.store()
        .pool_create(
            ws,
            &ferry_store::NewPool {
                name: ferry_core::Name::parse("big").unwrap(),
                pool_type: ferry_core::PoolType::Managed,
                limits: ferry_core::PoolLimits {
                    memory_mb: Some(2048),
                    ..Default::default()
                },
                job_template: json!({}),
                credential: None,
                concurrency_limit: None,
                max_retries: 0,
                paused: false,
            },
        )
        .await
        .unwrap();
    // The smallest preview1 module: `(module (func (export "_start")))`.
    let wasm: &[u8] = &[
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00, 0x03,
        0x02, 0x01, 0x00, 0x07, 0x0a, 0x01, 0x06, b'_', b's', b't', b'a', b'r', b't', 0x00, 0x00,
        0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b,
    ];
    let uploaded: Value = app
        .http
        .post(format!("{}/v1/artifacts", app.url))
        .bearer_auth(&t.admin)
        .header("content-type", "application/wasm")
        .body(wasm.to_vec())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let artifact = uploaded["digest"].as_str().unwrap().to_owned();
    let run =
        |pool: &str, limits: Value| json!({"pool": pool, "artifact": artifact, "limits": limits});
    app.post(&t.admin, "/v1/runs", run("big", json!({})))
        .await
        .expect_error(422, &["memory_mb 2048", "FERRY_EXECUTOR_MEMORY_MB"]);
    // Positive control: a run of the same pool that asks for less is accepted.
    app.post(&t.admin, "/v1/runs", run("big", json!({"memory_mb": 200})))
        .await
        .expect(201);
}

backend_test!(log_caps_stay_within_the_operators_maximum);
async fn log_caps_stay_within_the_operators_maximum(app: App) {
    let t = app.tenant("acme").await;
    let max = app.config.max_log_bytes;
    let pool = |name: &str, bytes: u64| json!({"name": name, "type": "managed", "limits": {"log_bytes": bytes}});
    app.post(&t.admin, "/v1/pools", pool("ok", max))
        .await
        .expect(201);
    app.post(&t.admin, "/v1/pools", pool("big", max + 1))
        .await
        .expect_error(422, &["log_bytes", "FERRY_MAX_LOG_BYTES"]);
    app.request(
        &t.admin,
        reqwest::Method::PATCH,
        "/v1/pools/ok",
        Some(json!({"limits": {"log_bytes": 1u64 << 30}})),
    )
    .await
    .expect_error(422, &["FERRY_MAX_LOG_BYTES"]);
}

mod managed_runs_fit_the_executor_memory_budget {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::run_configured(
            super::Kind::Sqlite,
            |c| c.executor_memory_mb = 256,
            super::memory_budget,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::run_configured(
            super::Kind::Postgres,
            |c| c.executor_memory_mb = 256,
            super::memory_budget,
        )
        .await
    }
}
