//! [`GcpKmsKeyring`]: workspace keys wrapped by Cloud KMS `encrypt` under a CryptoKey, with
//! additional authenticated data naming the workspace.
//!
//! The AAD is `ferry/workspace-key/v1|<workspace id>`: Cloud KMS refuses to decrypt with any
//! other, so a wrapped key copied to another workspace fails. Every request and response
//! carries CRC32C checksums, checked on both sides as Google recommends. `decrypt` names the
//! CryptoKey of the stored root key id; Cloud KMS picks the version from the ciphertext, so
//! wraps under earlier versions (automatic rotation) and earlier keys keep unwrapping.
//!
//! The SDK's own request and response buffers are not zeroized; the copies this module makes
//! are.

use std::time::Duration;

use async_trait::async_trait;
use ferry_core::WorkspaceId;
use ferry_crypto::{Key, Keyring, WrappedKey};
use google_cloud_kms_v1::client::KeyManagementService;
use zeroize::Zeroizing;

use crate::crc32c::crc32c;
use crate::{CryptoKeyName, Error, Options, GCP_PREFIX};

/// Each attempt of a call to Cloud KMS gives up after this long.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// A Cloud KMS root key. Cheap to clone.
#[derive(Clone)]
pub struct GcpKmsKeyring {
    client: KeyManagementService,
    name: CryptoKeyName,
}

impl std::fmt::Debug for GcpKmsKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpKmsKeyring")
            .field("key", &self.name.as_str())
            .finish_non_exhaustive()
    }
}

fn aad(ws: WorkspaceId) -> Vec<u8> {
    format!("ferry/workspace-key/v1|{ws}").into_bytes()
}

impl GcpKmsKeyring {
    /// Builds the client — Application Default Credentials, or the service-account key file
    /// of `options` — and checks the key with an encrypt/decrypt round trip of a probe.
    pub async fn connect(name: &CryptoKeyName, options: &Options) -> Result<GcpKmsKeyring, Error> {
        let credentials = match &options.gcp_credentials_file {
            None => google_cloud_auth::credentials::Builder::default().build(),
            Some(path) => {
                let text = Zeroizing::new(std::fs::read(path).map_err(|source| {
                    Error::CredentialsFile {
                        path: path.clone(),
                        source,
                    }
                })?);
                // The parse error says where, never what: it could quote the private key.
                let json: serde_json::Value = serde_json::from_slice(&text).map_err(|e| {
                    Error::Credentials(format!(
                        "{} is not a JSON key file (line {}, column {})",
                        path.display(),
                        e.line(),
                        e.column()
                    ))
                })?;
                google_cloud_auth::credentials::service_account::Builder::new(json).build()
            }
        }
        .map_err(|e| Error::Credentials(e.to_string()))?;
        let mut builder = KeyManagementService::builder()
            .with_credentials(credentials)
            .with_attempt_timeout(ATTEMPT_TIMEOUT);
        if let Some(url) = &options.endpoint {
            builder = builder.with_endpoint(url);
        }
        let client = builder.build().await.map_err(|e| Error::Config {
            backend: "gcp-kms",
            reason: e.to_string(),
        })?;
        let keyring = GcpKmsKeyring {
            client,
            name: name.clone(),
        };
        probe(&keyring).await.map_err(|source| Error::Probe {
            key: keyring.key_id(),
            source,
        })?;
        tracing::debug!(key = %name, "Cloud KMS root key checked");
        Ok(keyring)
    }

    /// A keyring over a client built elsewhere, without the start-up check.
    pub fn with_client(client: KeyManagementService, name: CryptoKeyName) -> GcpKmsKeyring {
        GcpKmsKeyring { client, name }
    }
}

fn corrupted(what: &str) -> ferry_crypto::Error {
    ferry_crypto::Error::Service(format!(
        "Cloud KMS: the {what} failed its CRC32C check (corrupted in transit?)"
    ))
}

/// Cloud KMS's refusal, by its status code. A ciphertext that does not decrypt under the key
/// and AAD given is [`ferry_crypto::Error::Decrypt`], like the local backend's.
fn service_error(operation: &str, key: &str, e: google_cloud_kms_v1::Error) -> ferry_crypto::Error {
    let Some(status) = e.status() else {
        return ferry_crypto::Error::Service(format!("Cloud KMS {operation} with {key}: {e}"));
    };
    let code = status.code.name();
    let why = match code {
        "INVALID_ARGUMENT" if operation == "decrypt" => return ferry_crypto::Error::Decrypt,
        "NOT_FOUND" => "no such key",
        "PERMISSION_DENIED" => {
            "permission denied (Ferry's account needs roles/cloudkms.cryptoKeyEncrypterDecrypter \
             on the key)"
        }
        "UNAUTHENTICATED" => "the credentials were refused",
        "FAILED_PRECONDITION" => "the key version is not enabled (disabled or destroyed?)",
        _ => "refused",
    };
    ferry_crypto::Error::Service(format!(
        "Cloud KMS {operation} with {key}: {why} ({code}: {})",
        status.message
    ))
}

#[async_trait]
impl Keyring for GcpKmsKeyring {
    fn key_id(&self) -> String {
        format!("{GCP_PREFIX}{}", self.name)
    }

    async fn wrap(&self, ws: WorkspaceId, key: &Key) -> Result<WrappedKey, ferry_crypto::Error> {
        let name = self.name.as_str();
        let aad = aad(ws);
        let out = self
            .client
            .encrypt()
            .set_name(name)
            .set_plaintext(key.bytes().to_vec())
            .set_plaintext_crc32c(crc32c(key.bytes()))
            .set_additional_authenticated_data(aad.clone())
            .set_additional_authenticated_data_crc32c(crc32c(&aad))
            .send()
            .await
            .map_err(|e| service_error("encrypt", name, e))?;
        if !out.verified_plaintext_crc32c || !out.verified_additional_authenticated_data_crc32c {
            return Err(corrupted("encrypt request"));
        }
        if out.ciphertext_crc32c != Some(crc32c(&out.ciphertext)) {
            return Err(corrupted("encrypt response"));
        }
        let version_of_ours = out
            .name
            .strip_prefix(name)
            .is_some_and(|rest| rest.starts_with("/cryptoKeyVersions/"));
        if !version_of_ours {
            return Err(ferry_crypto::Error::Service(format!(
                "Cloud KMS encrypt with {name} used another key, {}",
                out.name
            )));
        }
        Ok(WrappedKey {
            root_key_id: self.key_id(),
            blob: out.ciphertext.to_vec(),
        })
    }

    async fn unwrap(
        &self,
        ws: WorkspaceId,
        wrapped: &WrappedKey,
    ) -> Result<Key, ferry_crypto::Error> {
        // Any CryptoKey: wraps under an earlier key keep unwrapping after a rotation, while
        // Ferry's account may still decrypt with it.
        let name = wrapped
            .root_key_id
            .strip_prefix(GCP_PREFIX)
            .and_then(|n| CryptoKeyName::parse(n).ok())
            .ok_or_else(|| ferry_crypto::Error::UnknownRootKey(wrapped.root_key_id.clone()))?;
        let aad = aad(ws);
        let out = self
            .client
            .decrypt()
            .set_name(name.as_str())
            .set_ciphertext(wrapped.blob.clone())
            .set_ciphertext_crc32c(crc32c(&wrapped.blob))
            .set_additional_authenticated_data(aad.clone())
            .set_additional_authenticated_data_crc32c(crc32c(&aad))
            .send()
            .await
            .map_err(|e| service_error("decrypt", name.as_str(), e))?;
        let plaintext = Zeroizing::new(Vec::<u8>::from(out.plaintext));
        if out.plaintext_crc32c != Some(crc32c(&plaintext)) {
            return Err(corrupted("decrypt response"));
        }
        Key::from_bytes(&plaintext)
    }
}

/// The start-up check: a random key round-trips under `keyring`.
async fn probe(keyring: &GcpKmsKeyring) -> Result<(), ferry_crypto::Error> {
    let ws = WorkspaceId::new();
    let key = Key::generate();
    let wrapped = keyring.wrap(ws, &key).await?;
    let back = keyring.unwrap(ws, &wrapped).await?;
    if back.bytes() != key.bytes() {
        return Err(ferry_crypto::Error::Service(
            "the key service decrypted the probe to another value".to_owned(),
        ));
    }
    Ok(())
}
