//! Two workspaces, two AWS accounts: each run lands only in its own workspace's account,
//! with Ferry's overrides and tags; a run can use no other workspace's credential.

use std::sync::Arc;

use ferry_core::port::PushBackend;
use ferry_core::{FailureReason, WorkspaceId};
use serde_json::json;

use crate::support::{arn, backend, ecs_as, job, tasks_in, template, Secrets};
use ferry_moto::moto;

#[tokio::test]
async fn each_workspace_runs_only_in_its_own_account() {
    let (a, b) = (
        moto().account("111111111111"),
        moto().account("222222222222"),
    );
    let secrets = Arc::new(Secrets::default());
    let (ws_a, ws_b) = (WorkspaceId::new(), WorkspaceId::new());
    secrets.assume_role(ws_a, "aws", &a.id);
    secrets.assume_role(ws_b, "aws", &b.id);
    let backend = backend(secrets);

    let job_a = job(ws_a, "aws", template(&a), json!({"env": {"STAGE": "a"}}));
    let job_b = job(ws_b, "aws", template(&b), json!({}));
    let infra_a = backend.submit(&job_a).await.unwrap();
    let infra_b = backend.submit(&job_b).await.unwrap();
    assert_eq!(infra_a["cluster"], "flows");
    assert_eq!(infra_a["region"], "eu-west-1");
    assert!(arn(&infra_a).contains(":111111111111:"), "{infra_a}");
    assert!(arn(&infra_b).contains(":222222222222:"), "{infra_b}");
    assert!(infra_a["task_definition"]
        .as_str()
        .unwrap()
        .contains(":task-definition/ferry-"));

    // Each account sees its own task and not the other's.
    let (ecs_a, ecs_b) = (ecs_as(&a.id).await, ecs_as(&b.id).await);
    assert_eq!(tasks_in(&ecs_a, "flows").await, vec![arn(&infra_a)]);
    assert_eq!(tasks_in(&ecs_b, "flows").await, vec![arn(&infra_b)]);

    // What the task got: startedBy, tags, the per-run overrides.
    let out = ecs_a
        .describe_tasks()
        .cluster("flows")
        .tasks(arn(&infra_a))
        .include(aws_sdk_ecs::types::TaskField::Tags)
        .send()
        .await
        .unwrap();
    let task = &out.tasks()[0];
    assert_eq!(task.started_by(), Some(job_a.run_id.to_string().as_str()));
    let tag = |k: &str| {
        task.tags()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
            .map(str::to_owned)
    };
    assert_eq!(tag("ferry:run-id"), Some(job_a.run_id.to_string()));
    assert_eq!(tag("ferry:workspace-id"), Some(ws_a.to_string()));
    assert_eq!(tag("ferry:attempt").as_deref(), Some("1"));
    assert_eq!(tag("team").as_deref(), Some("data"));
    let container = &task.overrides().unwrap().container_overrides()[0];
    assert_eq!(container.name(), Some("flow"));
    assert_eq!(container.command(), ["python", "-m", "flow"]);
    let env: std::collections::HashMap<&str, &str> = container
        .environment()
        .iter()
        .map(|kv| (kv.name().unwrap(), kv.value().unwrap()))
        .collect();
    assert_eq!(env["FERRY_RUN_ID"], job_a.run_id.to_string());
    assert_eq!(env["FERRY_PARAMETERS"], r#"{"n":3}"#);
    assert_eq!(env["FERRY_RUN_TOKEN"], format!("token-{}", job_a.run_id));
    assert_eq!(env["STAGE"], "a");
}

#[tokio::test]
async fn a_run_cannot_use_another_workspaces_credential() {
    let a = moto().account("111111111111");
    let secrets = Arc::new(Secrets::default());
    let (ws_a, ws_b) = (WorkspaceId::new(), WorkspaceId::new());
    secrets.assume_role(ws_a, "aws", &a.id);
    let backend = backend(secrets);

    // Workspace B names A's credential: it is not B's, so it does not exist for B.
    let stolen = job(ws_b, "aws", template(&a), json!({}));
    let e = backend.submit(&stolen).await.unwrap_err();
    assert_eq!(e.failure.reason, FailureReason::InvalidConfig);
    assert!(e.failure.message.contains("no credential named aws"), "{e}");
    assert!(tasks_in(&ecs_as(&a.id).await, "flows").await.is_empty());
}

#[tokio::test]
async fn assume_role_without_an_external_id_is_refused() {
    struct NoExternalId(Secrets);
    #[async_trait::async_trait]
    impl ferry_core::port::SecretSource for NoExternalId {
        async fn secret(
            &self,
            ws: WorkspaceId,
            n: &ferry_core::Name,
        ) -> Result<Option<secrecy::SecretString>, ferry_core::port::SecretsError> {
            self.0.secret(ws, n).await
        }
        async fn run_sensitive_parameters(
            &self,
            ws: WorkspaceId,
            r: ferry_core::RunId,
        ) -> Result<Option<secrecy::SecretString>, ferry_core::port::SecretsError> {
            self.0.run_sensitive_parameters(ws, r).await
        }
        async fn credential(
            &self,
            ws: WorkspaceId,
            n: &ferry_core::Name,
        ) -> Result<
            Option<(ferry_core::CredentialKind, secrecy::SecretString)>,
            ferry_core::port::SecretsError,
        > {
            self.0.credential(ws, n).await
        }
        // aws_external_id: the trait's default, None.
    }
    let a = moto().account("111111111111");
    let inner = Secrets::default();
    let ws = WorkspaceId::new();
    inner.assume_role(ws, "aws", &a.id);
    let backend = ferry_push_aws::EcsBackend::new(
        Arc::new(NoExternalId(inner)),
        ferry_push_aws::EcsConfig {
            endpoint_url: Some(moto().endpoint.clone()),
            ferry_identity: None,
            allowed_endpoints: ferry_push_aws::AllowedEndpoints::default(),
            run_tokens: Arc::new(|_: &ferry_core::port::RunJob| secrecy::SecretString::from("t")),
            identity_tokens: Arc::new(ferry_core::port::NoIdentityTokens),
        },
    );
    let e = backend
        .submit(&job(ws, "aws", template(&a), json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.failure.reason, FailureReason::PermissionDenied, "{e}");
    assert!(tasks_in(&ecs_as(&a.id).await, "flows").await.is_empty());
}

#[tokio::test]
async fn an_access_key_credential_works_too() {
    let default = moto().account("123456789012");
    let secrets = Arc::new(Secrets::default());
    let ws = WorkspaceId::new();
    secrets.access_key(ws, "keys");
    let backend = backend(secrets);
    let infra = backend
        .submit(&job(ws, "keys", template(&default), json!({})))
        .await
        .unwrap();
    assert!(arn(&infra).contains(":123456789012:"), "{infra}");
}

/// A backend with no operator-wide endpoint: a pool's `endpoint` decides, within `allowed`.
fn backend_allowing(
    secrets: Arc<Secrets>,
    allowed: ferry_push_aws::AllowedEndpoints,
) -> ferry_push_aws::EcsBackend {
    ferry_push_aws::EcsBackend::new(
        secrets,
        ferry_push_aws::EcsConfig {
            endpoint_url: None,
            ferry_identity: Some(crate::support::ferry_identity()),
            allowed_endpoints: allowed,
            run_tokens: Arc::new(|_: &ferry_core::port::RunJob| secrecy::SecretString::from("t")),
            identity_tokens: Arc::new(ferry_core::port::NoIdentityTokens),
        },
    )
}

#[tokio::test]
async fn a_pool_endpoint_must_be_an_origin_the_operator_allows() {
    // An access key: no call of Ferry's own identity (which goes where the operator says).
    let a = moto().account("123456789012");
    let secrets = Arc::new(Secrets::default());
    let ws = WorkspaceId::new();
    secrets.access_key(ws, "aws");
    let moto_url = url::Url::parse(&moto().endpoint).unwrap();
    let port = moto_url.port().unwrap();
    let allowed = ferry_push_aws::AllowedEndpoints::none()
        .with(&format!("http://127.0.0.1:{port}"))
        .unwrap();
    let backend = backend_allowing(secrets, allowed);
    let with_endpoint = |e: &str| {
        let mut t = template(&a);
        t["endpoint"] = json!(e);
        t
    };

    // Positive control: the allowed origin works.
    let ok = job(
        ws,
        "aws",
        with_endpoint(&format!("http://127.0.0.1:{port}")),
        json!({}),
    );
    let infra = backend.submit(&ok).await.unwrap();
    let ecs = ecs_as(&a.id).await;
    assert_eq!(tasks_in(&ecs, "flows").await, vec![arn(&infra)]);

    // The same moto server under names a string prefix would have let through: refused
    // before anything is signed or sent.
    for refused in [
        format!("http://localhost:{port}"),
        format!("http://127.0.0.1.evil.tld:{port}"),
        format!("http://127.0.0.1:{port}@127.0.0.1:{port}"),
        "https://ecs.eu-west-1.amazonaws.com".to_owned(),
    ] {
        let e = backend
            .submit(&job(ws, "aws", with_endpoint(&refused), json!({})))
            .await
            .unwrap_err();
        assert_eq!(
            e.failure.reason,
            FailureReason::InvalidConfig,
            "{refused}: {e}"
        );
        assert!(
            e.failure.message.contains("endpoint")
                || e.failure.message.contains("FERRY_ALLOWED_ENDPOINTS"),
            "{refused}: {e}"
        );
    }
    // A run can never point its pool's calls elsewhere, even at an allowed origin.
    let e = backend
        .submit(&job(
            ws,
            "aws",
            template(&a),
            json!({"endpoint": format!("http://127.0.0.1:{port}")}),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.failure.reason, FailureReason::InvalidConfig, "{e}");
    assert!(e.failure.message.contains("a run can never set it"), "{e}");
    assert_eq!(tasks_in(&ecs, "flows").await, vec![arn(&infra)]);
}
