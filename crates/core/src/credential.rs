//! Credential kinds: the cloud identities a workspace can register, and which pool types each
//! one can serve.

use std::fmt;

use crate::PoolType;

/// What a credential is. The material of each kind is validated and sealed by the server;
/// this is only the name and what it fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum CredentialKind {
    /// A Google service account's JSON key file.
    #[serde(rename = "gcp-service-account-key")]
    GcpServiceAccountKey,
    /// A Google workload identity federation (`external_account`) configuration.
    #[serde(rename = "gcp-workload-identity")]
    GcpWorkloadIdentity,
    /// An AWS access key (id, secret, optional session token).
    #[serde(rename = "aws-access-key")]
    AwsAccessKey,
    /// An AWS role that Ferry assumes with the workspace's external id.
    #[serde(rename = "aws-assume-role")]
    AwsAssumeRole,
    /// An AWS role assumed with `AssumeRoleWithWebIdentity` and a token of Ferry's own OIDC
    /// issuer (keyless: the token's subject names the workspace and pool).
    #[serde(rename = "aws-web-identity")]
    AwsWebIdentity,
}

impl CredentialKind {
    pub const ALL: [CredentialKind; 5] = [
        CredentialKind::GcpServiceAccountKey,
        CredentialKind::GcpWorkloadIdentity,
        CredentialKind::AwsAccessKey,
        CredentialKind::AwsAssumeRole,
        CredentialKind::AwsWebIdentity,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::GcpServiceAccountKey => "gcp-service-account-key",
            CredentialKind::GcpWorkloadIdentity => "gcp-workload-identity",
            CredentialKind::AwsAccessKey => "aws-access-key",
            CredentialKind::AwsAssumeRole => "aws-assume-role",
            CredentialKind::AwsWebIdentity => "aws-web-identity",
        }
    }

    pub fn parse(s: &str) -> Option<CredentialKind> {
        CredentialKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether a pool of `pool_type` can push runs with a credential of this kind: Cloud Run
    /// takes Google identities, ECS takes AWS ones, managed pools take none.
    pub fn fits(self, pool_type: PoolType) -> bool {
        match pool_type {
            PoolType::Managed => false,
            PoolType::CloudRun => matches!(
                self,
                CredentialKind::GcpServiceAccountKey | CredentialKind::GcpWorkloadIdentity
            ),
            PoolType::Ecs => matches!(
                self,
                CredentialKind::AwsAccessKey
                    | CredentialKind::AwsAssumeRole
                    | CredentialKind::AwsWebIdentity
            ),
        }
    }

    /// The kinds that fit `pool_type`, for messages.
    pub fn fitting(pool_type: PoolType) -> Vec<CredentialKind> {
        CredentialKind::ALL
            .into_iter()
            .filter(|k| k.fits(pool_type))
            .collect()
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for k in CredentialKind::ALL {
            assert_eq!(CredentialKind::parse(k.as_str()), Some(k));
            let json = serde_json::to_string(&k).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        assert_eq!(CredentialKind::parse("azure"), None);
    }

    #[test]
    fn which_kind_fits_which_pool() {
        use CredentialKind::*;
        let cases = [
            (GcpServiceAccountKey, PoolType::CloudRun, true),
            (GcpWorkloadIdentity, PoolType::CloudRun, true),
            (AwsAccessKey, PoolType::CloudRun, false),
            (AwsAssumeRole, PoolType::CloudRun, false),
            (AwsAccessKey, PoolType::Ecs, true),
            (AwsAssumeRole, PoolType::Ecs, true),
            (AwsWebIdentity, PoolType::Ecs, true),
            (AwsWebIdentity, PoolType::CloudRun, false),
            (AwsWebIdentity, PoolType::Managed, false),
            (GcpServiceAccountKey, PoolType::Ecs, false),
            (GcpWorkloadIdentity, PoolType::Ecs, false),
            (AwsAccessKey, PoolType::Managed, false),
            (GcpServiceAccountKey, PoolType::Managed, false),
        ];
        for (kind, pool, fits) in cases {
            assert_eq!(kind.fits(pool), fits, "{kind} for {pool}");
        }
        assert_eq!(
            CredentialKind::fitting(PoolType::Ecs),
            vec![AwsAccessKey, AwsAssumeRole, AwsWebIdentity]
        );
    }
}

/// How one check of a credential came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    /// The permission or property holds.
    Passed,
    /// It does not: the message says what is missing and what to grant.
    Failed,
    /// It works, but something is weaker than it should be (e.g. a trust policy that does
    /// not require the external id).
    Warning,
}

/// One live check of `POST /v1/credentials/{id}/validate`: which permission or property was
/// tried, how it came out, and what the cloud said (never secret material).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CredentialCheck {
    /// e.g. `sts:GetCallerIdentity`, `ecs:DescribeClusters`, `run.jobs.create`.
    pub check: String,
    pub outcome: CheckOutcome,
    pub message: String,
}

impl CredentialCheck {
    pub fn new(
        check: impl Into<String>,
        outcome: CheckOutcome,
        message: impl Into<String>,
    ) -> Self {
        Self {
            check: check.into(),
            outcome,
            // Shown to the tenant: bounded like a run's failure message.
            message: crate::run::tenant_text(message),
        }
    }
}
