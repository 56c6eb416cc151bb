//! Keyless ECS access: an `aws-web-identity` credential is assumed with
//! `AssumeRoleWithWebIdentity` and a token minted for the run's workspace and pool with
//! audience `sts.amazonaws.com` — with no identity of Ferry's own at all. moto does not check
//! the token, so what was minted (and sent) is recorded here and decoded.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ferry_core::port::{identity_subject, IdentityTokens, PushBackend, RunJob, SecretsError};
use ferry_core::{CheckOutcome, Name, WorkspaceId};
use ferry_crypto::jwt::SigningKey;
use ferry_moto::moto;
use ferry_push_aws::{EcsBackend, EcsConfig, STS_AUDIENCE};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::support::{arn, ecs_as, job, tasks_in, template, Secrets};

/// Signs real ES256 tokens with the issuer's claims and records each.
struct Recorder {
    key: SigningKey,
    minted: Mutex<Vec<(WorkspaceId, Name, String, String)>>,
}

impl Recorder {
    fn new() -> Arc<Recorder> {
        Arc::new(Recorder {
            key: SigningKey::generate().unwrap().0,
            minted: Mutex::default(),
        })
    }

    fn minted(&self) -> Vec<(WorkspaceId, Name, String, String)> {
        self.minted.lock().unwrap().clone()
    }
}

#[async_trait]
impl IdentityTokens for Recorder {
    async fn mint(
        &self,
        ws: WorkspaceId,
        pool: &Name,
        audience: &str,
    ) -> Result<SecretString, SecretsError> {
        let now = chrono::Utc::now().timestamp();
        let token = self
            .key
            .sign(&json!({
                "iss": "https://ferry.example.com",
                "sub": identity_subject(ws, pool),
                "aud": audience,
                "iat": now, "nbf": now, "exp": now + 600,
            }))
            .unwrap();
        self.minted
            .lock()
            .unwrap()
            .push((ws, pool.clone(), audience.to_owned(), token.clone()));
        Ok(SecretString::from(token))
    }
}

/// A backend against moto with no identity of Ferry's own (`ferry_identity: None` and no
/// AWS credentials in the environment): only the web identity can act.
fn backend(secrets: Arc<Secrets>, tokens: Arc<dyn IdentityTokens>) -> EcsBackend {
    EcsBackend::new(
        secrets,
        EcsConfig {
            endpoint_url: Some(moto().endpoint.clone()),
            ferry_identity: None,
            allowed_endpoints: ferry_push_aws::AllowedEndpoints::default(),
            run_tokens: Arc::new(|_: &RunJob| SecretString::from("t")),
            identity_tokens: tokens,
        },
    )
}

fn claims(token: &str) -> Value {
    Value::Object(ferry_crypto::jwt::decode_unverified(token).unwrap().1)
}

fn pool_job(ws: WorkspaceId, pool: &str, template: Value) -> RunJob {
    let mut j = job(ws, "keyless", template, json!({}));
    j.pool = Name::parse(pool).unwrap();
    j
}

#[tokio::test]
async fn a_web_identity_role_is_assumed_with_the_pools_token() {
    let a = moto().account("111111111111");
    let secrets = Arc::new(Secrets::default());
    let ws = WorkspaceId::new();
    secrets.web_identity(ws, "keyless", &a.id);
    let recorder = Recorder::new();
    let backend = backend(secrets, recorder.clone());

    let infra = backend
        .submit(&pool_job(ws, "ecs-pool", template(&a)))
        .await
        .unwrap();
    assert!(arn(&infra).contains(":111111111111:"), "{infra}");
    let ecs = ecs_as(&a.id).await;
    assert_eq!(tasks_in(&ecs, "flows").await, vec![arn(&infra)]);

    // One token, for this workspace's pool and AWS STS; its claims say so.
    let minted = recorder.minted();
    assert_eq!(minted.len(), 1, "{minted:?}");
    let (m_ws, m_pool, m_aud, token) = &minted[0];
    assert_eq!(
        (*m_ws, m_pool.as_str(), m_aud.as_str()),
        (ws, "ecs-pool", STS_AUDIENCE)
    );
    let c = claims(token);
    assert_eq!(c["sub"], format!("workspace:{ws}:pool:ecs-pool"));
    assert_eq!(c["aud"], "sts.amazonaws.com");
    assert!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap() <= 15 * 60);

    // The session is cached: a second run of the pool mints nothing.
    backend
        .submit(&pool_job(ws, "ecs-pool", template(&a)))
        .await
        .unwrap();
    assert_eq!(recorder.minted().len(), 1);
    // Another pool with the same credential gets its own session, with its own subject.
    backend
        .submit(&pool_job(ws, "nightly", template(&a)))
        .await
        .unwrap();
    let last = recorder.minted().pop().unwrap();
    assert_eq!(
        claims(&last.3)["sub"],
        format!("workspace:{ws}:pool:nightly")
    );
}

#[tokio::test]
async fn without_an_issuer_a_web_identity_cannot_act() {
    let a = moto().account("333333333333");
    let secrets = Arc::new(Secrets::default());
    let ws = WorkspaceId::new();
    secrets.web_identity(ws, "keyless", &a.id);
    let refused = backend(
        secrets.clone(),
        Arc::new(ferry_core::port::NoIdentityTokens),
    );
    let e = refused
        .submit(&pool_job(ws, "ecs-pool", template(&a)))
        .await
        .unwrap_err();
    let ecs = ecs_as(&a.id).await;
    assert!(tasks_in(&ecs, "flows").await.is_empty(), "{e}");
    // Positive control: with the issuer, the same credential runs.
    let ok = backend(secrets, Recorder::new());
    ok.submit(&pool_job(ws, "ecs-pool", template(&a)))
        .await
        .unwrap();
    assert_eq!(tasks_in(&ecs, "flows").await.len(), 1);
}

#[tokio::test]
async fn validation_assumes_the_role_with_the_pools_token() {
    let a = moto().account("111111111111");
    let secrets = Arc::new(Secrets::default());
    let ws = WorkspaceId::new();
    secrets.web_identity(ws, "keyless", &a.id);
    let recorder = Recorder::new();
    let checks = backend(secrets, recorder.clone())
        .validate(&pool_job(ws, "ecs-pool", template(&a)))
        .await;
    let check = checks
        .iter()
        .find(|c| c.check == "sts:AssumeRoleWithWebIdentity")
        .unwrap_or_else(|| panic!("{checks:#?}"));
    assert_eq!(check.outcome, CheckOutcome::Passed, "{checks:#?}");
    assert!(
        check
            .message
            .contains(&format!("workspace:{ws}:pool:ecs-pool")),
        "{check:?}"
    );
    assert!(
        checks.iter().all(|c| c.outcome != CheckOutcome::Failed),
        "{checks:#?}"
    );
    assert!(recorder
        .minted()
        .iter()
        .all(|(_, p, aud, _)| p.as_str() == "ecs-pool" && aud == STS_AUDIENCE));
}
