//! `POST /v1/credentials/{id}/validate` for AWS credentials: live and side-effect free.
//! Each check is a read-only call whose answer proves (or disproves) one thing an ecs pool
//! needs, and a failed check names what to grant:
//!
//! - `sts:GetCallerIdentity` as the customer's identity (the access key, or the assumed role);
//! - assume-role only: `sts:AssumeRole` with the workspace's external id (must succeed), and
//!   without it (must be refused; if it is not, the trust policy does not require the
//!   external id: a warning, as anyone who learns the role ARN could then use Ferry to reach it);
//! - web-identity only: `sts:AssumeRoleWithWebIdentity` with Ferry's token for the pool (the
//!   role's trust policy must trust Ferry's OIDC provider for that subject);
//! - the pool's cluster (when a template names one or the default): `ecs:DescribeClusters`
//!   (exists and is ACTIVE), `ecs:ListTasks` and `ecs:ListTaskDefinitions`.

use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_ecs::config::http::HttpResponse;
use aws_sdk_ecs::error::{ProvideErrorMetadata, SdkError};
use ferry_core::port::{identity_subject, RunJob};
use ferry_core::{CheckOutcome, CredentialCheck};

use crate::backend::EcsBackend;
use crate::spec::spec_for;

fn passed(check: &str, message: impl Into<String>) -> CredentialCheck {
    CredentialCheck::new(check, CheckOutcome::Passed, message)
}

fn failed(check: &str, message: impl Into<String>) -> CredentialCheck {
    CredentialCheck::new(check, CheckOutcome::Failed, message)
}

/// What AWS said, without the request id noise; never holds the credential.
fn said<E>(e: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match e {
        SdkError::ServiceError(se) => format!(
            "{}: {}",
            se.err().code().unwrap_or("error"),
            se.err().message().unwrap_or_default()
        ),
        other => crate::status::sdk_error("call", other).failure.message,
    }
}

/// Whether an error is AWS refusing the caller (rather than the call failing).
fn is_denied<E>(e: &SdkError<E, HttpResponse>) -> bool
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match e {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or_default();
            code.contains("AccessDenied")
                || code.contains("Unauthorized")
                || code.contains("NotAuthorized")
                || se.raw().status().as_u16() == 403
        }
        _ => false,
    }
}

impl EcsBackend {
    /// Checks `job`'s credential (its workspace's, by name) against AWS, and the cluster its
    /// template names. `job.job_template` may be a pool's template or empty.
    pub async fn validate(&self, job: &RunJob) -> Vec<CredentialCheck> {
        // A template with errors still has a region, endpoint and cluster worth checking.
        let spec = spec_for(&job.job_template, &serde_json::Value::Null).ok();
        let (region, endpoint, cluster) = match &spec {
            Some(s) => (
                s.region.clone(),
                s.endpoint.clone(),
                Some(s.cluster.clone()),
            ),
            None => (
                job.job_template
                    .get("region")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
                job.job_template
                    .get("endpoint")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
                job.job_template
                    .get("cluster")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned),
            ),
        };
        let clients = match self
            .clients
            .for_validation(job, region.as_deref(), endpoint.as_deref())
            .await
        {
            Ok(c) => c,
            Err(e) => return vec![failed("credential", e.failure.message)],
        };
        let mut checks = Vec::new();
        if let Some((role_arn, external_id)) = &clients.assumed {
            let with = clients
                .ferry_sts
                .assume_role()
                .role_arn(role_arn)
                .role_session_name("ferry-validate")
                .external_id(external_id)
                .duration_seconds(900)
                .send()
                .await;
            checks.push(match with {
                Ok(_) => passed(
                    "sts:AssumeRole",
                    format!("Ferry assumed {role_arn} with the workspace's external id"),
                ),
                Err(e) => failed(
                    "sts:AssumeRole",
                    format!(
                        "Ferry could not assume {role_arn} with external id {external_id}: {}. \
                         The role's trust policy must allow Ferry's principal with \
                         sts:ExternalId = {external_id}",
                        said(&e)
                    ),
                ),
            });
            let without = clients
                .ferry_sts
                .assume_role()
                .role_arn(role_arn)
                .role_session_name("ferry-validate")
                .duration_seconds(900)
                .send()
                .await;
            checks.push(match without {
                Err(e) if is_denied(&e) => passed(
                    "sts:ExternalId required",
                    "assuming the role without the external id is refused, as it should be",
                ),
                // Not proven: a failed check, since a role assumable without the external
                // id lets any other customer of Ferry's principal act in this account.
                Err(e) => failed(
                    "sts:ExternalId required",
                    format!(
                        "could not prove that assuming {role_arn} needs the external id: {}",
                        said(&e)
                    ),
                ),
                Ok(_) => failed(
                    "sts:ExternalId required",
                    format!(
                        "{role_arn} can be assumed without the external id (a confused deputy: \
                         anyone using Ferry's principal could assume it): add the condition \
                         sts:ExternalId = {external_id} to its trust policy"
                    ),
                ),
            });
        }
        if let Some(w) = &clients.web_identity {
            let subject = identity_subject(job.workspace_id, &job.pool);
            match w.provide_credentials().await {
                Ok(_) => checks.push(passed(
                    "sts:AssumeRoleWithWebIdentity",
                    format!("Ferry's token (sub {subject}) assumed {}", w.role_arn),
                )),
                Err(e) => {
                    checks.push(failed(
                        "sts:AssumeRoleWithWebIdentity",
                        format!(
                            "Ferry's token could not assume {}: {}. The role's trust policy must \
                             allow sts:AssumeRoleWithWebIdentity to the IAM OIDC provider of \
                             Ferry's issuer, with conditions <provider>:aud = {} and \
                             <provider>:sub = {subject}",
                            w.role_arn,
                            aws_sdk_ecs::error::DisplayErrorContext(&e),
                            crate::STS_AUDIENCE,
                        ),
                    ));
                    return checks;
                }
            }
        }
        match clients.customer_sts.get_caller_identity().send().await {
            Ok(out) => checks.push(passed(
                "sts:GetCallerIdentity",
                format!(
                    "authenticated as {} (account {})",
                    out.arn().unwrap_or("?"),
                    out.account().unwrap_or("?")
                ),
            )),
            Err(e) => {
                checks.push(failed(
                    "sts:GetCallerIdentity",
                    format!("the credential does not authenticate: {}", said(&e)),
                ));
                // Nothing else can work as this identity.
                return checks;
            }
        }
        let Some(cluster) = cluster else {
            return checks;
        };
        let region = &clients.region;
        match clients
            .ecs
            .describe_clusters()
            .clusters(&cluster)
            .send()
            .await
        {
            Ok(out) => {
                let found = out.clusters().iter().find(|c| {
                    c.cluster_name() == Some(&cluster) || c.cluster_arn() == Some(&cluster)
                });
                checks.push(match found.and_then(|c| c.status()) {
                    Some("ACTIVE") => passed(
                        "ecs:DescribeClusters",
                        format!("cluster {cluster} is ACTIVE in {region}"),
                    ),
                    Some(other) => failed(
                        "ecs:DescribeClusters",
                        format!("cluster {cluster} in {region} is {other}, not ACTIVE"),
                    ),
                    None => failed(
                        "ecs:DescribeClusters",
                        format!("cluster {cluster} does not exist in {region} for this account"),
                    ),
                });
            }
            Err(e) => checks.push(failed(
                "ecs:DescribeClusters",
                format!("grant ecs:DescribeClusters: {}", said(&e)),
            )),
        }
        checks.push(
            match clients
                .ecs
                .list_tasks()
                .cluster(&cluster)
                .max_results(1)
                .send()
                .await
            {
                Ok(_) => passed("ecs:ListTasks", format!("can list tasks of {cluster}")),
                Err(e) => failed(
                    "ecs:ListTasks",
                    format!("grant ecs:ListTasks on {cluster}: {}", said(&e)),
                ),
            },
        );
        checks.push(
            match clients
                .ecs
                .list_task_definitions()
                .max_results(1)
                .send()
                .await
            {
                Ok(_) => passed("ecs:ListTaskDefinitions", "can list task definitions"),
                Err(e) => failed(
                    "ecs:ListTaskDefinitions",
                    format!("grant ecs:ListTaskDefinitions: {}", said(&e)),
                ),
            },
        );
        checks
    }
}
