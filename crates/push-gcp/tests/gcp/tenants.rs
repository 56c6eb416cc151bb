//! Tenancy: each workspace's runs land in its own project under its own service account; a
//! credential never reaches another customer's project; bad input and bad keys stop before
//! Google.

use ferry_core::port::PushBackend;
use ferry_core::{CredentialKind, FailureReason, PoolId};
use serde_json::json;

use crate::support::{accounts, execution, job, template, Env, PROJECT_A, PROJECT_B};

#[tokio::test]
async fn each_run_lands_in_its_own_project_under_its_own_identity() {
    let env = Env::start().await;
    let (a, b) = accounts();
    let job_a = job(env.ws_a, PoolId::new(), template(PROJECT_A), json!({}));
    let job_b = job(env.ws_b, PoolId::new(), template(PROJECT_B), json!({}));
    let infra_a = env.backend.submit(&job_a).await.unwrap();
    let infra_b = env.backend.submit(&job_b).await.unwrap();
    assert!(
        execution(&infra_a).starts_with(&format!(
            "projects/{PROJECT_A}/locations/europe-west1/jobs/ferry-cr-pool-"
        )),
        "{infra_a}"
    );
    assert!(
        execution(&infra_b).starts_with(&format!("projects/{PROJECT_B}/")),
        "{infra_b}"
    );
    assert_eq!(infra_a["project"], PROJECT_A);
    assert_eq!(infra_a["region"], "europe-west1");
    assert!(infra_a["job"]
        .as_str()
        .unwrap()
        .starts_with("projects/cust-a-flows/locations/europe-west1/jobs/"));
    assert!(execution(&infra_a).starts_with(infra_a["job"].as_str().unwrap()));

    // Every call for A was made as A's account, for B as B's.
    for entry in env.fake.journal() {
        let want = if entry.path.contains(PROJECT_A) {
            &a.email
        } else {
            &b.email
        };
        assert_eq!(entry.account.as_ref(), Some(want), "{entry:?}");
        assert_eq!(entry.status, Some(200), "{entry:?}");
    }
    // The jobs carry their workspace and pool.
    let job_a_value = env.fake.job(infra_a["job"].as_str().unwrap()).unwrap();
    assert_eq!(
        job_a_value["labels"]["ferry-workspace"],
        env.ws_a.to_string()
    );
    assert_eq!(
        job_a_value["labels"]["ferry-pool"],
        job_a.pool_id.to_string()
    );
    assert_eq!(job_a_value["labels"]["ferry-managed"], "true");
    assert_eq!(job_a_value["labels"]["team"], "data");
    assert_eq!(job_a_value["creator"], a.email);
}

#[tokio::test]
async fn a_credential_never_acts_in_another_customers_project() {
    let env = Env::start().await;
    let (a, _) = accounts();
    // Workspace A's pool pointed at B's project: A's token is refused there.
    let j = job(env.ws_a, PoolId::new(), template(PROJECT_B), json!({}));
    let e = env.backend.submit(&j).await.unwrap_err();
    assert_eq!(e.failure.reason, FailureReason::PermissionDenied, "{e}");
    assert!(!e.is_transient());
    assert!(env.fake.job_names().is_empty());
    assert!(env.fake.executions().is_empty());
    let journal = env.fake.journal();
    assert!(!journal.is_empty());
    for entry in journal {
        assert_eq!(
            (entry.account.as_deref(), entry.status),
            (Some(a.email.as_str()), Some(403))
        );
    }
    // And a workspace never gets another's credential by name: B's "gcp" is B's.
    let b_job = job(env.ws_b, PoolId::new(), template(PROJECT_A), json!({}));
    let e = env.backend.submit(&b_job).await.unwrap_err();
    assert_eq!(e.failure.reason, FailureReason::PermissionDenied, "{e}");
    // Nor another workspace's credential at all.
    let mut stranger = job(
        ferry_core::WorkspaceId::new(),
        PoolId::new(),
        template(PROJECT_A),
        json!({}),
    );
    stranger.pool_id = PoolId::new();
    let e = env.backend.submit(&stranger).await.unwrap_err();
    assert_eq!(e.failure.reason, FailureReason::InvalidConfig);
    assert!(e.failure.message.contains("no credential named gcp"), "{e}");
    assert!(env.fake.executions().is_empty());
}

#[tokio::test]
async fn bad_job_variables_are_field_errors_and_nothing_is_sent() {
    let env = Env::start().await;
    let vars =
        json!({"cpu": 3, "image": "", "env": {"FERRY_RUN_TOKEN": "mine"}, "privileged": true});
    let errors = ferry_push_gcp::spec_for(&template(PROJECT_A), &vars).unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["privileged", "image", "env", "cpu"]);
    let j = job(env.ws_a, PoolId::new(), template(PROJECT_A), vars);
    let e = env.backend.submit(&j).await.unwrap_err();
    assert_eq!(e.failure.reason, FailureReason::InvalidConfig);
    assert!(
        e.failure.message.contains("cpu: must be 1, 2, 4, 6 or 8"),
        "{e}"
    );
    assert!(env.backend.find(&j).await.is_err());
    assert!(env.fake.journal().is_empty());
    assert_eq!(
        env.secrets.opened.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn a_bad_credential_fails_without_calling_google() {
    let env = Env::start().await;
    let (a, _) = accounts();
    let ws = ferry_core::WorkspaceId::new();
    let mut broken = a.key_json();
    broken["private_key"] = json!("-----BEGIN PRIVATE KEY-----\nTUlJQ2VBSUJBREFOQmdrcWhraUc5dzBCQVFFRkFBU0NBbUl3Z2dKZUFnRUFBb0dCQU1F\n-----END PRIVATE KEY-----\n");
    let cases = [
        (
            CredentialKind::GcpServiceAccountKey,
            broken.to_string(),
            "private_key",
        ),
        (
            CredentialKind::GcpServiceAccountKey,
            "not json".to_owned(),
            "not a JSON object",
        ),
        (
            CredentialKind::GcpServiceAccountKey,
            json!({"type": "service_account", "client_email": a.email}).to_string(),
            "is missing",
        ),
        (
            CredentialKind::AwsAccessKey,
            json!({"access_key_id": "x"}).to_string(),
            "cloud-run pools take",
        ),
    ];
    for (kind, material, want) in cases {
        env.secrets.raw(ws, "gcp", kind, &material);
        let j = job(ws, PoolId::new(), template(PROJECT_A), json!({}));
        let e = env.backend.submit(&j).await.unwrap_err();
        assert_eq!(e.failure.reason, FailureReason::InvalidConfig, "{e}");
        assert!(!e.is_transient());
        assert!(e.failure.message.contains(want), "{e} lacks {want}");
        assert!(!e.failure.message.contains("TUlJQ2VB"), "{e}");
        assert!(!e.failure.message.contains("BEGIN"), "{e}");
    }
    assert!(env.fake.journal().is_empty(), "{:?}", env.fake.journal());
    // The backend's Debug shows no secret either.
    assert!(!format!("{:?}", env.backend).contains("PRIVATE"));
}
