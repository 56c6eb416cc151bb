//! [`AwsKmsKeyring`]: workspace keys wrapped by AWS KMS `Encrypt` under a KMS key, with an
//! encryption context naming the workspace.
//!
//! The encryption context is `{"ferry:purpose": "workspace-key", "ferry:workspace": <id>}`:
//! KMS refuses to decrypt with any other, so a wrapped key copied to another workspace fails;
//! and it appears in CloudTrail, so every decrypt is attributable to a workspace. `Decrypt`
//! names the key (the ARN in the stored root key id) so a ciphertext of another key is refused
//! rather than decrypted with whatever key it names.
//!
//! The SDK's own request and response buffers are not zeroized; the copies this module makes
//! are.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_kms::config::timeout::TimeoutConfig;
use aws_sdk_kms::config::Region;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use ferry_core::WorkspaceId;
use ferry_crypto::{Key, Keyring, WrappedKey};
use zeroize::Zeroizing;

use crate::spec::arn_region;
use crate::{AwsKey, Error, Options, AWS_PREFIX};

const PURPOSE: (&str, &str) = ("ferry:purpose", "workspace-key");
const WORKSPACE: &str = "ferry:workspace";

/// Each call to KMS gives up after this long (the SDK retries within it).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// An AWS KMS root key. Cheap to clone.
#[derive(Clone)]
pub struct AwsKmsKeyring {
    client: aws_sdk_kms::Client,
    /// The key's ARN, as KMS reported it for the start-up probe.
    arn: String,
}

impl std::fmt::Debug for AwsKmsKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsKmsKeyring")
            .field("key", &self.arn)
            .finish_non_exhaustive()
    }
}

impl AwsKmsKeyring {
    /// Uses the standard AWS provider chain (environment, profile, web identity, container and
    /// instance credentials; `AWS_REGION`; `AWS_ENDPOINT_URL`), with the region of `key` when
    /// it is an ARN and no region is configured.
    pub async fn connect(key: &AwsKey, options: &Options) -> Result<AwsKmsKeyring, Error> {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .load()
            .await;
        Self::with_sdk_config(key, &sdk, options.endpoint.as_deref()).await
    }

    /// Like [`AwsKmsKeyring::connect`] with a given SDK configuration (tests give static
    /// credentials).
    pub async fn with_sdk_config(
        key: &AwsKey,
        sdk: &aws_config::SdkConfig,
        endpoint: Option<&str>,
    ) -> Result<AwsKmsKeyring, Error> {
        let mut config = aws_sdk_kms::config::Builder::from(sdk).timeout_config(
            TimeoutConfig::builder()
                .operation_timeout(OPERATION_TIMEOUT)
                .build(),
        );
        if sdk.region().is_none() {
            let region = key.region().ok_or_else(|| Error::Config {
                backend: "aws-kms",
                reason: "no AWS region: set AWS_REGION, or give the key as an ARN".to_owned(),
            })?;
            config = config.region(Region::new(region.to_owned()));
        }
        if let Some(url) = endpoint {
            config = config.endpoint_url(url);
        }
        let client = aws_sdk_kms::Client::from_conf(config.build());
        let probe_error = |source| Error::Probe {
            key: format!("{AWS_PREFIX}{key}"),
            source,
        };
        // The probe's encrypt tells the key's ARN (an alias may name it); its decrypt checks
        // the key policy lets Ferry decrypt too, before any workspace depends on it.
        let ws = WorkspaceId::new();
        let probe = Key::generate();
        let (arn, blob) = encrypt(&client, key.as_str(), ws, &probe)
            .await
            .map_err(probe_error)?;
        let keyring = AwsKmsKeyring { client, arn };
        let back = keyring
            .decrypt(&keyring.arn, ws, blob)
            .await
            .map_err(probe_error)?;
        if back.bytes() != probe.bytes() {
            return Err(probe_error(ferry_crypto::Error::Service(
                "AWS KMS decrypted the probe to another value".to_owned(),
            )));
        }
        tracing::debug!(key = %keyring.arn, "AWS KMS root key checked");
        Ok(keyring)
    }

    /// The key's ARN.
    pub fn arn(&self) -> &str {
        &self.arn
    }

    async fn decrypt(
        &self,
        arn: &str,
        ws: WorkspaceId,
        blob: Vec<u8>,
    ) -> Result<Key, ferry_crypto::Error> {
        let out = self
            .client
            .decrypt()
            .key_id(arn)
            .ciphertext_blob(Blob::new(blob))
            .encryption_context(PURPOSE.0, PURPOSE.1)
            .encryption_context(WORKSPACE, ws.to_string())
            .send()
            .await
            .map_err(|e| service_error("Decrypt", arn, e))?;
        let plaintext = Zeroizing::new(out.plaintext.map(Blob::into_inner).ok_or(
            ferry_crypto::Error::Malformed("AWS KMS Decrypt returned no plaintext"),
        )?);
        Key::from_bytes(&plaintext)
    }
}

async fn encrypt(
    client: &aws_sdk_kms::Client,
    key: &str,
    ws: WorkspaceId,
    plaintext: &Key,
) -> Result<(String, Vec<u8>), ferry_crypto::Error> {
    let out = client
        .encrypt()
        .key_id(key)
        .plaintext(Blob::new(plaintext.bytes().to_vec()))
        .encryption_context(PURPOSE.0, PURPOSE.1)
        .encryption_context(WORKSPACE, ws.to_string())
        .send()
        .await
        .map_err(|e| service_error("Encrypt", key, e))?;
    let arn = out.key_id.ok_or(ferry_crypto::Error::Malformed(
        "AWS KMS Encrypt named no key",
    ))?;
    let blob = out
        .ciphertext_blob
        .map(Blob::into_inner)
        .ok_or(ferry_crypto::Error::Malformed(
            "AWS KMS Encrypt returned no ciphertext",
        ))?;
    Ok((arn, blob))
}

/// KMS's refusal, by its error code. A ciphertext that does not decrypt under the given key
/// and context is [`ferry_crypto::Error::Decrypt`], like the local backend's.
fn service_error<E, R>(operation: &str, key: &str, e: SdkError<E, R>) -> ferry_crypto::Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let code = e.code().map(str::to_owned);
    match code.as_deref() {
        Some("InvalidCiphertextException" | "IncorrectKeyException") => {
            ferry_crypto::Error::Decrypt
        }
        Some(code) => {
            let why = match code {
                "DisabledException" => "the key is disabled",
                "NotFoundException" => "no such key",
                "KMSInvalidStateException" => {
                    "the key is not usable in its state (pending deletion or import?)"
                }
                "AccessDeniedException" => "access denied by the key policy or IAM",
                "InvalidKeyUsageException" => "the key is not a symmetric ENCRYPT_DECRYPT key",
                _ => "refused",
            };
            ferry_crypto::Error::Service(format!(
                "AWS KMS {operation} with {key}: {why} ({code}: {})",
                e.message().unwrap_or("no message")
            ))
        }
        None => ferry_crypto::Error::Service(format!(
            "AWS KMS {operation} with {key}: {}",
            DisplayErrorContext(&e)
        )),
    }
}

#[async_trait]
impl Keyring for AwsKmsKeyring {
    fn key_id(&self) -> String {
        format!("{AWS_PREFIX}{}", self.arn)
    }

    async fn wrap(&self, ws: WorkspaceId, key: &Key) -> Result<WrappedKey, ferry_crypto::Error> {
        let (arn, blob) = encrypt(&self.client, &self.arn, ws, key).await?;
        if arn != self.arn {
            return Err(ferry_crypto::Error::Service(format!(
                "AWS KMS Encrypt with {} used another key, {arn}",
                self.arn
            )));
        }
        Ok(WrappedKey {
            root_key_id: self.key_id(),
            blob,
        })
    }

    async fn unwrap(
        &self,
        ws: WorkspaceId,
        wrapped: &WrappedKey,
    ) -> Result<Key, ferry_crypto::Error> {
        // Any KMS key ARN: wraps under an earlier key keep unwrapping after a rotation, if
        // the key policy still lets Ferry decrypt with it. Another region's key needs a client
        // of that region.
        let arn = wrapped
            .root_key_id
            .strip_prefix(AWS_PREFIX)
            .filter(|arn| arn_region(arn).is_some())
            .ok_or_else(|| ferry_crypto::Error::UnknownRootKey(wrapped.root_key_id.clone()))?;
        if arn_region(arn) != arn_region(&self.arn) {
            let client = aws_sdk_kms::Client::from_conf(
                self.client
                    .config()
                    .to_builder()
                    .region(arn_region(arn).map(|r| Region::new(r.to_owned())))
                    .build(),
            );
            let other = AwsKmsKeyring {
                client,
                arn: arn.to_owned(),
            };
            return other.decrypt(arn, ws, wrapped.blob.clone()).await;
        }
        self.decrypt(arn, ws, wrapped.blob.clone()).await
    }
}
