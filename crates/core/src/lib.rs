//! Ferry's domain: typed ids and names, pools, credential kinds, runs and their state machine,
//! the failure taxonomy, roles, canonical JSON, and the ports (traits) through which the
//! engine reaches executors.
//!
//! Architecture invariant: this crate does no I/O and pulls in no heavy dependency. Fakes of
//! the ports live behind the `testing` feature.

pub mod cache;
pub mod credential;
pub mod endpoint;
mod id;
mod json;
mod name;
pub mod net;
pub mod pool;
pub mod port;
pub mod role;
pub mod run;
#[cfg(feature = "testing")]
pub mod testing;
pub mod vars;

pub use credential::{CheckOutcome, CredentialCheck, CredentialKind};
pub use endpoint::{AllowedEndpoints, EndpointError, Origin};
pub use id::{ApiKeyId, CredentialId, PoolId, RunId, SecretId, WorkspaceId};
pub use json::canonical_json;
pub use name::{IdempotencyKey, Name, NameError};
pub use net::{CidrError, Cidrs, IpAllowList};
pub use pool::{FieldError, PoolLimits, PoolType};
pub use role::{Action, Role};
pub use run::{Failure, FailureReason, RunState, TransitionError};
pub use vars::{JobVars, Variables};
