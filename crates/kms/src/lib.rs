//! Ferry's cloud KMS root-key backends: [`ferry_crypto::Keyring`]s whose root key never leaves
//! a key-management service. Each is behind a cargo feature, so a default build carries
//! neither SDK:
//!
//! - `aws`: [`AwsKmsKeyring`] — KMS `Encrypt`/`Decrypt` of the workspace key under a KMS key,
//!   with an encryption context naming the workspace; root key id `aws-kms:<key ARN>`.
//! - `gcp`: [`GcpKmsKeyring`] — Cloud KMS `encrypt`/`decrypt` under a CryptoKey, with
//!   additional authenticated data naming the workspace; root key id
//!   `gcp-kms:projects/…/cryptoKeys/…`.
//!
//! Without the feature, the key spec still parses (so configuration errors are the same in
//! every build) and [`connect`] says which feature the build lacks.
//!
//! A wrapped key copied to another workspace does not unwrap: the service checks the context
//! (or AAD) that names the workspace. Decrypt needs only the key named in the stored root key
//! id, so wraps under an earlier key keep unwrapping after the operator points Ferry at a new
//! one ("rotation": `ferry admin rotate-root-key` then re-wraps them under the new key).
//! [`Chain`] lets a KMS-configured server still unwrap keys wrapped by the local root key, for
//! moving from one to the other.
//!
//! Errors never carry key material, plaintext or ciphertext: only key names, the service's
//! error code and its message.

#[cfg(feature = "aws")]
mod aws;
mod chain;
#[cfg(feature = "gcp")]
mod crc32c;
#[cfg(feature = "gcp")]
mod gcp;
mod spec;

use std::path::PathBuf;
use std::sync::Arc;

use ferry_crypto::Keyring;

#[cfg(feature = "aws")]
pub use aws::AwsKmsKeyring;
pub use chain::Chain;
#[cfg(feature = "gcp")]
pub use gcp::GcpKmsKeyring;
pub use spec::{AwsKey, CryptoKeyName, KeySpec};

/// The prefix of AWS KMS root key ids.
pub const AWS_PREFIX: &str = "aws-kms:";
/// The prefix of Cloud KMS root key ids.
pub const GCP_PREFIX: &str = "gcp-kms:";

/// How to reach the key service.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Send requests here instead of the service's default endpoint (tests, private
    /// endpoints). AWS also honours `AWS_ENDPOINT_URL`.
    pub endpoint: Option<String>,
    /// Cloud KMS: a service-account key file instead of Application Default Credentials.
    pub gcp_credentials_file: Option<PathBuf>,
}

/// Why a key spec did not parse or a backend could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The root key setting is not one Ferry understands.
    #[error("root key {value:?}: {reason}")]
    Parse { value: String, reason: &'static str },
    /// The configured backend was left out of this build.
    #[error(
        "the {backend} root-key backend is not compiled into this build of Ferry \
         (build it with `--features {feature}`)"
    )]
    NotCompiled {
        backend: &'static str,
        feature: &'static str,
    },
    /// The SDK's configuration is incomplete (e.g. no AWS region).
    #[error("configuring the {backend} client: {reason}")]
    Config {
        backend: &'static str,
        reason: String,
    },
    #[error("reading the service-account key file {path}")]
    CredentialsFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The credentials could not be built (the SDK's message, which names no key material).
    #[error("loading Google Cloud credentials: {0}")]
    Credentials(String),
    /// The start-up round trip (encrypt then decrypt a random probe) under the configured key
    /// failed: the key is unknown, disabled, not usable for encryption, or not ours to use.
    #[error("checking root key {key}")]
    Probe {
        key: String,
        #[source]
        source: ferry_crypto::Error,
    },
}

/// Connects to the key service `spec` names and checks, with a round trip of a random probe,
/// that the key can encrypt and decrypt. The returned keyring's id is that of the key as the
/// service names it (for AWS, the key's ARN even when `spec` gives an alias).
pub async fn connect(spec: &KeySpec, options: &Options) -> Result<Arc<dyn Keyring>, Error> {
    match spec {
        #[cfg(feature = "aws")]
        KeySpec::Aws(key) => Ok(Arc::new(AwsKmsKeyring::connect(key, options).await?)),
        #[cfg(not(feature = "aws"))]
        KeySpec::Aws(_) => {
            let _ = options;
            Err(Error::NotCompiled {
                backend: "aws-kms",
                feature: "aws-kms",
            })
        }
        #[cfg(feature = "gcp")]
        KeySpec::Gcp(name) => Ok(Arc::new(GcpKmsKeyring::connect(name, options).await?)),
        #[cfg(not(feature = "gcp"))]
        KeySpec::Gcp(_) => {
            let _ = options;
            Err(Error::NotCompiled {
                backend: "gcp-kms",
                feature: "gcp-kms",
            })
        }
    }
}
