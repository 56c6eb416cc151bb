//! Keyless Cloud Run access: a `gcp-workload-identity` credential presents the issuer's token
//! (subject = the run's workspace and pool, audience = the configuration's) to the fake's STS,
//! which verifies it against the issuer's JWKS fetched over HTTP and answers an access token
//! the Cloud Run routes accept as that pool's federated principal. A token signed by a key
//! the issuer does not publish, a `token_url` the operator does not allow, and a stored
//! `credential_source` are refused, each beside a positive control.

use std::sync::Arc;

use ferry_cloudrun_fake::{FakeCloudRun, Options};
use ferry_core::port::{PushBackend, RunJob};
use ferry_core::{CredentialKind, FailureReason, Name, PoolId, WorkspaceId};
use ferry_push_gcp::{AllowedEndpoints, CloudRunBackend, GcpConfig};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::issuer::TestIssuer;
use crate::support::{execution, job, template, Secrets};

const PROJECT_W: &str = "cust-w-flows";
const POOL_PATH: &str =
    "iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/ferry";
const AUDIENCE: &str = "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/ferry/providers/ferry-oidc";

fn principal(ws: WorkspaceId, pool: &str) -> String {
    format!("principal://{POOL_PATH}/subject/workspace:{ws}:pool:{pool}")
}

/// The credential as the API stores it: the programmatic external_account form.
fn config(fake: &FakeCloudRun) -> Value {
    json!({
        "type": "external_account",
        "audience": AUDIENCE,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": fake.sts_token_url(),
    })
}

struct Fed {
    fake: FakeCloudRun,
    issuer: Arc<TestIssuer>,
    secrets: Arc<Secrets>,
    ws: WorkspaceId,
}

impl Fed {
    /// The fake trusting the issuer for workspace `ws`'s pool `cr-pool` in `PROJECT_W`, and
    /// `ws` holding the credential `wif`.
    async fn start() -> Fed {
        let fake = FakeCloudRun::start(Options::default()).await.unwrap();
        let issuer = TestIssuer::start().await;
        fake.register_workload_identity_provider(AUDIENCE, &issuer.url);
        let ws = WorkspaceId::new();
        fake.register_project_principal(PROJECT_W, &principal(ws, "cr-pool"));
        let secrets = Arc::new(Secrets::default());
        secrets.raw(
            ws,
            "wif",
            CredentialKind::GcpWorkloadIdentity,
            &config(&fake).to_string(),
        );
        Fed {
            fake,
            issuer,
            secrets,
            ws,
        }
    }

    /// A backend whose operator allows the fake's origin (its STS) iff `allow_fake`.
    fn backend(&self, allow_fake: bool) -> CloudRunBackend {
        let mut allowed = AllowedEndpoints::default();
        if allow_fake {
            allowed = allowed.with(&self.fake.endpoint()).unwrap();
        }
        CloudRunBackend::new(
            self.secrets.clone(),
            GcpConfig {
                endpoint: Some(self.fake.endpoint()),
                allowed_endpoints: allowed,
                run_tokens: Arc::new(|job: &RunJob| {
                    SecretString::from(format!("token-{}", job.run_id))
                }),
                identity_tokens: self.issuer.clone(),
            },
        )
    }

    /// A run of pool `pool` with the credential `wif`.
    fn job(&self, pool: &str) -> RunJob {
        let mut j = job(self.ws, PoolId::new(), template(PROJECT_W), json!({}));
        j.pool = Name::parse(pool).unwrap();
        j.credential = Some(Name::parse("wif").unwrap());
        j
    }

    fn sts_answers(&self) -> Vec<Option<u16>> {
        self.fake
            .journal()
            .iter()
            .filter(|e| e.is("sts.token"))
            .map(|e| e.status)
            .collect()
    }
}

/// The claims of a compact JWS, unverified (what the issuer handed out).
fn claims(token: &str) -> Value {
    let (_, claims) = ferry_crypto::jwt::decode_unverified(token).unwrap();
    Value::Object(claims)
}

#[tokio::test]
async fn a_workload_identity_runs_as_its_pools_federated_principal() {
    let fed = Fed::start().await;
    let backend = fed.backend(true);
    let run = fed.job("cr-pool");
    let infra = backend.submit(&run).await.unwrap();
    assert!(
        execution(&infra).starts_with(&format!("projects/{PROJECT_W}/")),
        "{infra}"
    );
    // The subject token went through the STS, and every Cloud Run call was made as the
    // pool's federated principal.
    assert_eq!(fed.sts_answers(), [Some(200)]);
    let me = principal(fed.ws, "cr-pool");
    for entry in fed.fake.journal().iter().filter(|e| !e.is("sts.token")) {
        assert_eq!(entry.account.as_deref(), Some(me.as_str()), "{entry:?}");
        assert_eq!(entry.status, Some(200), "{entry:?}");
    }
    assert_eq!(
        fed.fake.job(infra["job"].as_str().unwrap()).unwrap()["creator"],
        me
    );
    // What the issuer was asked for, and what its token says.
    let minted = fed.issuer.minted();
    assert_eq!(minted.len(), 1);
    let (ws, pool, audience, token) = &minted[0];
    assert_eq!(
        (*ws, pool.as_str(), audience.as_str()),
        (fed.ws, "cr-pool", AUDIENCE)
    );
    let c = claims(token);
    assert_eq!(c["sub"], format!("workspace:{}:pool:cr-pool", fed.ws));
    assert_eq!(c["aud"], AUDIENCE);
    assert_eq!(c["iss"], fed.issuer.url);
    // The access token is cached: polling exchanges nothing more.
    let mut polled = run.clone();
    polled.infrastructure = Some(infra);
    backend.poll(&[polled]).await.remove(0).unwrap();
    assert_eq!(fed.sts_answers().len(), 1);

    // Another pool of the same workspace, same credential: its own client and its own
    // subject (the client cache is per pool), which this project does not trust.
    let other = backend.submit(&fed.job("other-pool")).await.unwrap_err();
    assert_eq!(
        other.failure.reason,
        FailureReason::PermissionDenied,
        "{other}"
    );
    let last = fed.issuer.minted().pop().unwrap();
    assert_eq!(
        claims(&last.3)["sub"],
        format!("workspace:{}:pool:other-pool", fed.ws)
    );
    assert_eq!(fed.sts_answers(), [Some(200), Some(200)]);
}

#[tokio::test]
async fn a_token_signed_by_a_key_not_in_the_jwks_is_refused() {
    let fed = Fed::start().await;
    fed.fake
        .register_project_principal("cust-w-other", &principal(fed.ws, "second"));
    let backend = fed.backend(true);
    // Positive control: the published key's token works.
    backend.submit(&fed.job("cr-pool")).await.unwrap();
    assert_eq!(fed.sts_answers(), [Some(200)]);

    fed.issuer.go_rogue();
    let mut run = fed.job("second");
    run.job_template = template("cust-w-other");
    let jobs_before = fed.fake.job_names().len();
    let e = backend.submit(&run).await.unwrap_err();
    assert_eq!(e.failure.reason, FailureReason::InvalidConfig, "{e}");
    assert!(e.failure.message.contains("could not make a token"), "{e}");
    // Refused by the STS (as Google's: 400), so nothing reached Cloud Run.
    assert_eq!(fed.sts_answers(), [Some(200), Some(400)]);
    assert_eq!(fed.fake.job_names().len(), jobs_before);
    assert!(fed.fake.journal().iter().all(|e| e.is("sts.token")
        || e.account.as_deref() == Some(principal(fed.ws, "cr-pool").as_str())));
}

#[tokio::test]
async fn a_token_url_the_operator_does_not_allow_is_refused_before_minting() {
    let fed = Fed::start().await;
    let e = fed
        .backend(false)
        .submit(&fed.job("cr-pool"))
        .await
        .unwrap_err();
    assert_eq!(e.failure.reason, FailureReason::InvalidConfig, "{e}");
    assert!(e.failure.message.contains("FERRY_ALLOWED_ENDPOINTS"), "{e}");
    assert!(fed.issuer.minted().is_empty());
    assert!(fed.fake.journal().is_empty());
    // Positive control: allowed, it runs.
    fed.backend(true).submit(&fed.job("cr-pool")).await.unwrap();
    assert_eq!(fed.issuer.minted().len(), 1);
}

#[tokio::test]
async fn stored_material_with_a_credential_source_is_never_used() {
    let fed = Fed::start().await;
    let mut bad = config(&fed.fake);
    bad["credential_source"] = json!({"url": "http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/identity", "headers": {"Metadata-Flavor": "Google"}});
    fed.secrets.raw(
        fed.ws,
        "wif",
        CredentialKind::GcpWorkloadIdentity,
        &bad.to_string(),
    );
    let backend = fed.backend(true);
    let e = backend.submit(&fed.job("cr-pool")).await.unwrap_err();
    assert_eq!(e.failure.reason, FailureReason::InvalidConfig, "{e}");
    assert!(e.failure.message.contains("credential_source"), "{e}");
    assert!(fed.issuer.minted().is_empty());
    assert!(fed.fake.journal().is_empty());
    // Positive control: the same credential without it.
    fed.secrets.raw(
        fed.ws,
        "wif",
        CredentialKind::GcpWorkloadIdentity,
        &config(&fed.fake).to_string(),
    );
    backend.submit(&fed.job("cr-pool")).await.unwrap();
}

#[tokio::test]
async fn validation_exchanges_the_pools_token_and_names_its_principal() {
    let fed = Fed::start().await;
    let backend = fed.backend(true);
    let wif = Name::parse("wif").unwrap();
    let checks = backend
        .validate(
            fed.ws,
            &Name::parse("cr-pool").unwrap(),
            &wif,
            Some(&template(PROJECT_W)),
        )
        .await;
    assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
    assert_eq!(fed.sts_answers(), [Some(200)]);
    // For a pool the project does not trust, the missing permissions name its principal.
    let checks = backend
        .validate(
            fed.ws,
            &Name::parse("elsewhere").unwrap(),
            &wif,
            Some(&template(PROJECT_W)),
        )
        .await;
    let failed: Vec<_> = checks.iter().filter(|c| !c.ok).collect();
    assert!(!failed.is_empty(), "{checks:#?}");
    assert!(
        failed
            .iter()
            .any(|c| c.detail.contains(&principal(fed.ws, "elsewhere"))),
        "{checks:#?}"
    );
}
