//! Ferry's AWS ECS push backend: runs of ecs pools become ECS tasks in the customer's own
//! account, reached only with the run's own workspace's credential. The only crate that talks
//! to AWS.
//!
//! - [`spec`]: the job template and variables, checked into an [`EcsJobSpec`] (pure).
//! - [`status`]: ECS answers mapped to [`ferry_core::PushStatus`] and typed errors (pure).
//! - `clients`: SDK clients per credential and region, assumed-role sessions cached.
//! - `limiter`: a token bucket per account and region before every ECS call.
//! - `backend`: [`EcsBackend`], the [`ferry_core::PushBackend`].

mod backend;
mod clients;
mod limiter;
pub mod permissions;
pub mod spec;
pub mod status;
mod validate;

use std::fmt;
use std::sync::Arc;

use aws_credential_types::provider::SharedCredentialsProvider;
pub use ferry_core::port::{IdentityTokens, RunTokens};
pub use ferry_core::AllowedEndpoints;

pub use backend::EcsBackend;
pub use clients::STS_AUDIENCE;
pub use spec::{spec_for, EcsJobSpec, FieldError};

/// How [`EcsBackend`] reaches AWS.
#[derive(Clone)]
pub struct EcsConfig {
    /// Sends every ECS and STS call here (moto, VPC endpoints), over the template's
    /// `endpoint` too. `None`: the template's `endpoint`, else wherever the SDK would go
    /// (it honours `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_ECS`).
    pub endpoint_url: Option<String>,
    /// Ferry's own identity, which assumes customers' roles. `None`: the SDK's standard
    /// provider chain (environment, web identity, ECS container, instance metadata).
    pub ferry_identity: Option<SharedCredentialsProvider>,
    /// The origins a pool's `endpoint` may name (the operator's `FERRY_ALLOWED_ENDPOINTS`);
    /// a template naming another is refused before its credential is opened.
    pub allowed_endpoints: AllowedEndpoints,
    /// Mints each task's `FERRY_RUN_TOKEN`.
    pub run_tokens: Arc<dyn RunTokens>,
    /// Ferry's OIDC issuer: the tokens an `aws-web-identity` credential presents to
    /// `AssumeRoleWithWebIdentity` (subject = the run's workspace and pool, audience
    /// `sts.amazonaws.com`).
    pub identity_tokens: Arc<dyn IdentityTokens>,
}

impl fmt::Debug for EcsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EcsConfig")
            .field("endpoint_url", &self.endpoint_url)
            .field("ferry_identity", &self.ferry_identity.is_some())
            .field("allowed_endpoints", &self.allowed_endpoints.to_string())
            .finish_non_exhaustive()
    }
}
