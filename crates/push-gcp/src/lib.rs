//! Ferry's Google Cloud Run push backend: runs of cloud-run pools become executions of reused
//! Cloud Run jobs in the customer's own project, reached only with the run's own workspace's
//! credential. The only crate that talks to Google.
//!
//! - [`spec`]: the job template and variables, checked into a [`CloudRunJobSpec`] (pure).
//! - [`status`]: Cloud Run answers mapped to [`ferry_core::PushStatus`] and typed errors (pure).
//! - `clients`: google-cloud-run-v2 clients per credential, built with google-cloud-auth.
//! - `backend`: [`CloudRunBackend`], the [`ferry_core::PushBackend`], and idle-job cleanup.
//! - [`validate`]: the side-effect-free permission check behind `/v1/credentials/{id}/validate`.
//!
//! Architecture invariant: a job variable that fails [`spec_for`] never reaches Google, and a
//! credential's material appears in no message, log line or `Debug` output.

mod backend;
mod clients;
pub mod spec;
pub mod status;
pub mod validate;

use std::fmt;
use std::sync::Arc;

pub use ferry_core::port::{IdentityTokens, RunTokens};
pub use ferry_core::AllowedEndpoints;

pub use backend::{CloudRunBackend, Infrastructure};
pub use spec::{spec_for, CloudRunJobSpec, FieldError};
pub use validate::{validate, Check};

/// How [`CloudRunBackend`] reaches Google.
#[derive(Clone)]
pub struct GcpConfig {
    /// Sends every Cloud Run call here (the fake in tests, a private endpoint), over the
    /// template's `endpoint` too. `None`: the template's `endpoint`, else
    /// `https://run.googleapis.com`.
    pub endpoint: Option<String>,
    /// The origins a pool's `endpoint` may name (the operator's `FERRY_ALLOWED_ENDPOINTS`);
    /// a template naming another is refused before its credential is opened.
    pub allowed_endpoints: AllowedEndpoints,
    /// Mints each execution's `FERRY_RUN_TOKEN`.
    pub run_tokens: Arc<dyn RunTokens>,
    /// Ferry's OIDC issuer: the tokens a `gcp-workload-identity` credential exchanges at
    /// Google's STS (subject = the run's workspace and pool, audience = the configuration's).
    pub identity_tokens: Arc<dyn IdentityTokens>,
}

impl fmt::Debug for GcpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcpConfig")
            .field("endpoint", &self.endpoint)
            .field("allowed_endpoints", &self.allowed_endpoints.to_string())
            .finish_non_exhaustive()
    }
}
