//! Roles of API keys and what each may do. One table, enforced per route by the server.

/// The role an API key is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything in the workspace, including keys, credentials, settings and the audit log.
    Admin,
    /// Builds and operates flows: pools, secrets, artifacts, runs.
    Developer,
    /// A machine that submits and watches runs (a CI system, another scheduler).
    Runner,
    /// Reads everything but secret material and the audit log; changes nothing.
    Viewer,
}

/// Something a caller may try to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    PoolRead,
    PoolWrite,
    RunRead,
    RunSubmit,
    RunCancel,
    ArtifactRead,
    ArtifactWrite,
    CredentialRead,
    CredentialWrite,
    SecretRead,
    SecretWrite,
    AuditRead,
    ApiKeyWrite,
    /// Read the workspace's own settings (log storage, the AWS external id).
    WorkspaceRead,
    /// Change the workspace's settings.
    WorkspaceWrite,
}

impl Action {
    pub const ALL: [Action; 15] = [
        Action::PoolRead,
        Action::PoolWrite,
        Action::RunRead,
        Action::RunSubmit,
        Action::RunCancel,
        Action::ArtifactRead,
        Action::ArtifactWrite,
        Action::CredentialRead,
        Action::CredentialWrite,
        Action::SecretRead,
        Action::SecretWrite,
        Action::AuditRead,
        Action::ApiKeyWrite,
        Action::WorkspaceRead,
        Action::WorkspaceWrite,
    ];
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Developer, Role::Runner, Role::Viewer];

    /// Whether this role may perform `action`. Deny by default: every pair not listed is refused.
    pub fn allows(self, action: Action) -> bool {
        use Action::*;
        match self {
            Role::Admin => true,
            Role::Developer => matches!(
                action,
                PoolRead
                    | PoolWrite
                    | RunRead
                    | RunSubmit
                    | RunCancel
                    | ArtifactRead
                    | ArtifactWrite
                    | CredentialRead
                    | SecretRead
                    | SecretWrite
                    | WorkspaceRead
            ),
            Role::Runner => matches!(
                action,
                PoolRead
                    | RunRead
                    | RunSubmit
                    | RunCancel
                    | ArtifactRead
                    | ArtifactWrite
                    | WorkspaceRead
            ),
            Role::Viewer => matches!(
                action,
                PoolRead | RunRead | ArtifactRead | CredentialRead | SecretRead | WorkspaceRead
            ),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Runner => "runner",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    #[test]
    fn admin_may_do_everything() {
        assert!(Action::ALL.iter().all(|a| Role::Admin.allows(*a)));
    }

    #[test]
    fn only_admin_manages_keys_credentials_and_audit() {
        for role in [Role::Developer, Role::Runner, Role::Viewer] {
            for a in [ApiKeyWrite, CredentialWrite, AuditRead, WorkspaceWrite] {
                assert!(!role.allows(a), "{role} must not {a:?}");
            }
        }
    }

    #[test]
    fn viewer_changes_nothing() {
        for a in [
            PoolWrite,
            RunSubmit,
            RunCancel,
            ArtifactWrite,
            SecretWrite,
            CredentialWrite,
            WorkspaceWrite,
        ] {
            assert!(!Role::Viewer.allows(a), "viewer must not {a:?}");
        }
    }

    #[test]
    fn runner_submits_but_does_not_configure() {
        assert!(Role::Runner.allows(RunSubmit));
        assert!(Role::Runner.allows(RunCancel));
        assert!(!Role::Runner.allows(PoolWrite));
        assert!(!Role::Runner.allows(SecretWrite));
        assert!(Role::Developer.allows(PoolWrite));
    }

    #[test]
    fn roles_parse_from_their_names() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
