//! The live, side-effect-free check behind `POST /v1/credentials/{id}/validate` for Google
//! credentials: the credential makes a token; `testIamPermissions` says which of the Cloud Run
//! permissions a pool needs it holds; and `jobs.create` with `validateOnly` proves it may act
//! as the job's service account (`iam.serviceAccounts.actAs`). Nothing is created.

use ferry_core::CredentialKind;
use google_cloud_run_v2::model::Job;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::backend::job_body;
use crate::clients::{build, ClientKey, Federation, Identity};
use crate::spec::spec_for;
use crate::status::{api_error, code_of};

/// The Cloud Run permissions a cloud-run pool's credential needs.
pub const PERMISSIONS: [&str; 10] = [
    "run.jobs.create",
    "run.jobs.get",
    "run.jobs.list",
    "run.jobs.delete",
    "run.jobs.run",
    "run.jobs.runWithOverrides",
    "run.executions.get",
    "run.executions.list",
    "run.executions.cancel",
    "run.operations.get",
];

/// The check of acting as the job's service account.
pub const ACT_AS: &str = "iam.serviceAccounts.actAs";

/// The predefined roles that grant [`PERMISSIONS`] (on the project) and [`ACT_AS`] (on the
/// runtime service account only): what `ferry pool iam-policy --type cloud-run` prints and the
/// Terraform module in `infra/terraform/gcp-cloud-run` grants.
pub const ROLES: [&str; 2] = ["roles/iam.serviceAccountUser", "roles/run.developer"];

/// The role a workload identity pool's principals need on the service account they act as.
pub const WORKLOAD_IDENTITY_ROLES: [&str; 1] = ["roles/iam.workloadIdentityUser"];

/// The image `jobs.create` is validated with when no template names one (Google's sample job).
const SAMPLE_IMAGE: &str = "us-docker.pkg.dev/cloudrun/container/job:latest";

/// The region checked when no template names one.
const DEFAULT_REGION: &str = "us-central1";

/// One check: a permission (or `credential`, `token`, `project`), whether it passed, and what
/// was seen (what to grant, when it failed).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    pub(crate) fn passed(name: &str, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: true,
            detail: detail.into(),
        }
    }

    pub(crate) fn failed(name: &str, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ok: false,
            detail: detail.into(),
        }
    }
}

/// Checks credential material of `kind` for a cloud-run pool with `template` (its project,
/// region, image and service account; without one: the key's own project and
/// `us-central1`), against `endpoint` (default Google's). Every check is reported; a failed
/// one says what is missing. Creates nothing.
pub async fn validate(
    kind: CredentialKind,
    material: &SecretString,
    template: Option<&Value>,
    endpoint: Option<&str>,
) -> Vec<Check> {
    validate_as(kind, material, template, endpoint, None).await
}

/// [`validate`], for a pool: a workload identity presents Ferry's token for `federation`.
pub(crate) async fn validate_as(
    kind: CredentialKind,
    material: &SecretString,
    template: Option<&Value>,
    endpoint: Option<&str>,
    federation: Option<&Federation>,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let identity = match Identity::parse(kind, material, "credential") {
        Ok(i) => {
            checks.push(Check::passed("credential", format!("a well-formed {kind}")));
            i
        }
        Err(e) => {
            checks.push(Check::failed("credential", e.failure.message));
            return checks;
        }
    };
    let creds = match identity.proved("credential", federation).await {
        Ok(c) => {
            checks.push(Check::passed("token", "the credential makes tokens"));
            c
        }
        Err(e) => {
            checks.push(Check::failed("token", e.failure.message));
            return checks;
        }
    };

    // Where to check: the pool's template, else the key's project.
    let key_project = match &identity {
        Identity::ServiceAccount(v) => v.get("project_id").and_then(Value::as_str),
        Identity::WorkloadIdentity(_) => None,
    };
    let mut target = match template {
        Some(Value::Object(t)) => Value::Object(t.clone()),
        _ => json!({}),
    };
    if target.get("project").is_none() {
        if let Some(p) = key_project {
            target["project"] = json!(p);
        }
    }
    if target.get("region").is_none() {
        target["region"] = json!(DEFAULT_REGION);
    }
    if target.get("image").is_none() {
        target["image"] = json!(SAMPLE_IMAGE);
    }
    let spec = match spec_for(&target, &Value::Null) {
        Ok(s) => s,
        Err(errors) => {
            let text: Vec<String> = errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect();
            checks.push(Check::failed(
                "project",
                format!("cannot tell where to check: {}", text.join("; ")),
            ));
            return checks;
        }
    };
    let key = ClientKey {
        workspace: ferry_core::WorkspaceId::new(),
        credential: String::new(),
        material: [0; 32],
        pool: None,
        endpoint: endpoint
            .map(str::to_owned)
            .or_else(|| spec.endpoint.clone()),
    };
    let client = match build(key, creds, std::time::Duration::from_secs(30)).await {
        Ok(c) => c,
        Err(e) => {
            checks.push(Check::failed("client", e.failure.message));
            return checks;
        }
    };
    let location = spec.location();
    let who = identity
        .principal(federation)
        .unwrap_or_else(|| "the credential's identity".to_owned());

    // testIamPermissions on a job of the location: an existing one if there is one (IAM
    // answers for existing resources), else the name Ferry would use for checks.
    let listed = client
        .jobs
        .list_jobs()
        .set_parent(&location)
        .set_page_size(1)
        .send()
        .await;
    let resource = listed
        .ok()
        .and_then(|l| l.jobs.into_iter().next())
        .map_or_else(
            || format!("{location}/jobs/ferry-permission-check"),
            |j| j.name,
        );
    match client
        .jobs
        .test_iam_permissions()
        .set_resource(&resource)
        .set_permissions(PERMISSIONS)
        .send()
        .await
    {
        Ok(answer) => {
            for p in PERMISSIONS {
                if answer.permissions.iter().any(|h| h == p) {
                    checks.push(Check::passed(p, format!("held in {location}")));
                } else {
                    checks.push(Check::failed(
                        p,
                        format!(
                            "missing in {location}: grant it to {who} (roles/run.developer \
                             holds it)"
                        ),
                    ));
                }
            }
        }
        Err(e) => {
            let e = api_error("testIamPermissions", &e);
            for p in PERMISSIONS {
                checks.push(Check::failed(
                    p,
                    format!("could not be checked: {}", e.failure.message),
                ));
            }
        }
    }

    // actAs: what jobs.create with validateOnly proves.
    let sa = spec
        .service_account
        .clone()
        .unwrap_or_else(|| "the project's default compute service account".to_owned());
    let body = job_body(&spec, "validation", "validation");
    let check = match serde_json::from_value::<Job>(body) {
        Err(e) => Check::failed(ACT_AS, format!("could not build the check: {e}")),
        Ok(job) => match client
            .jobs
            .create_job()
            .set_parent(&location)
            .set_job_id("ferry-permission-check")
            .set_job(job)
            .set_validate_only(true)
            .send()
            .await
        {
            Ok(_) => Check::passed(
                ACT_AS,
                format!("jobs.create (validate only) accepted a job running as {sa}"),
            ),
            Err(e) if code_of(&e) == Some("ALREADY_EXISTS") => Check::passed(
                ACT_AS,
                format!("jobs.create (validate only) got past the permission checks for {sa}"),
            ),
            Err(e) => {
                let e = api_error("jobs.create (validate only)", &e);
                let m = e.failure.message;
                if m.to_ascii_lowercase().contains("actas") {
                    Check::failed(
                        ACT_AS,
                        format!(
                            "missing on {sa}: grant {who} roles/iam.serviceAccountUser on \
                             it ({m})"
                        ),
                    )
                } else {
                    Check::failed(ACT_AS, format!("could not be checked: {m}"))
                }
            }
        },
    };
    checks.push(check);
    checks
}
