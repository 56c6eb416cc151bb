//! Credential validation: live and side-effect free, naming what is missing.

use ferry_core::CredentialKind;
use ferry_push_gcp::validate::{ACT_AS, PERMISSIONS};
use ferry_push_gcp::{validate, Check};
use secrecy::SecretString;
use serde_json::json;

use crate::support::{accounts, template, Env, PROJECT_A};

fn by_name<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}: {checks:?}"))
}

#[tokio::test]
async fn a_fully_granted_key_passes_every_check() {
    let env = Env::start().await;
    let checks = env
        .backend
        .validate(
            env.ws_a,
            &ferry_core::Name::parse("cr-pool").unwrap(),
            &ferry_core::Name::parse("gcp").unwrap(),
            Some(&template(PROJECT_A)),
        )
        .await;
    assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
    assert_eq!(checks.len(), 2 + PERMISSIONS.len() + 1, "{checks:#?}");
    by_name(&checks, ACT_AS);
    // Side-effect free.
    assert!(env.fake.job_names().is_empty());
    assert!(env.fake.executions().is_empty());
}

#[tokio::test]
async fn missing_permissions_are_named() {
    let env = Env::start().await;
    let (a, _) = accounts();
    env.fake.set_permissions(
        &a.email,
        Some(vec![
            "run.jobs.create".into(),
            "run.executions.get".into(),
            "run.jobs.list".into(),
        ]),
    );
    let material = SecretString::from(a.key_json().to_string());
    let mut t = template(PROJECT_A);
    t["service_account"] = json!("flows@cust-a-flows.iam.gserviceaccount.com");
    let checks = validate(
        CredentialKind::GcpServiceAccountKey,
        &material,
        Some(&t),
        Some(&env.fake.endpoint()),
    )
    .await;
    assert!(by_name(&checks, "token").ok);
    assert!(by_name(&checks, "run.jobs.create").ok);
    assert!(by_name(&checks, "run.executions.get").ok);
    let run = by_name(&checks, "run.jobs.run");
    assert!(
        !run.ok && run.detail.contains("missing") && run.detail.contains(&a.email),
        "{run:?}"
    );
    assert!(!by_name(&checks, "run.executions.cancel").ok);
    let act_as = by_name(&checks, ACT_AS);
    assert!(!act_as.ok, "{act_as:?}");
    assert!(
        act_as
            .detail
            .contains("flows@cust-a-flows.iam.gserviceaccount.com"),
        "{act_as:?}"
    );
    assert!(
        act_as.detail.contains("roles/iam.serviceAccountUser"),
        "{act_as:?}"
    );
    // Granting actAs fixes that check.
    env.fake.set_permissions(
        &a.email,
        Some(vec![
            "run.jobs.create".into(),
            "iam.serviceAccounts.actAs".into(),
        ]),
    );
    let checks = validate(
        CredentialKind::GcpServiceAccountKey,
        &material,
        Some(&t),
        Some(&env.fake.endpoint()),
    )
    .await;
    assert!(by_name(&checks, ACT_AS).ok, "{checks:#?}");
    assert!(env.fake.job_names().is_empty());
    // Without a template: the key's own project.
    let checks = validate(
        CredentialKind::GcpServiceAccountKey,
        &material,
        None,
        Some(&env.fake.endpoint()),
    )
    .await;
    assert!(by_name(&checks, "run.jobs.create").ok, "{checks:#?}");
}

#[tokio::test]
async fn a_malformed_key_fails_validation_without_calling_google() {
    let env = Env::start().await;
    let mut key = accounts().0.key_json();
    key["private_key"] = json!("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
    let checks = validate(
        CredentialKind::GcpServiceAccountKey,
        &SecretString::from(key.to_string()),
        Some(&template(PROJECT_A)),
        Some(&env.fake.endpoint()),
    )
    .await;
    let token = by_name(&checks, "token");
    assert!(
        !token.ok && token.detail.contains("cannot make a token"),
        "{checks:?}"
    );
    assert!(!token.detail.contains("AAAA"));
    let checks = validate(
        CredentialKind::GcpServiceAccountKey,
        &SecretString::from("{}".to_owned()),
        None,
        Some(&env.fake.endpoint()),
    )
    .await;
    assert_eq!(checks.len(), 1);
    assert!(
        !checks[0].ok && checks[0].name == "credential",
        "{checks:?}"
    );
    assert!(env.fake.journal().is_empty());
}
