//! What every command opens first: the store (migrated), the generated secrets in the data
//! directory, and the root keyring (a local key file or a KMS key).

use std::sync::Arc;

use anyhow::Context;
use ferry_crypto::{
    generate_token, load_or_create_secret_file, Keyring, LocalKeyring, Pepper, ROOT_KEY_FILE,
};
use ferry_store::Store;
use secrecy::SecretString;

use crate::Config;

pub(crate) async fn open_store(config: &Config) -> anyhow::Result<Store> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let store = Store::connect(&config.database_url())
        .await
        .context("opening the database")?;
    store
        .migrate()
        .await
        .context("applying database migrations")?;
    Ok(store)
}

/// [`open_store`] with the audit log's key unwrapped by `keyring` and given to the store (made
/// on the first start, see `audit_key.rs`): what every command that writes or verifies audit
/// entries opens, so none writes an entry without it.
pub(crate) async fn open_keyed_store(
    config: &Config,
    keyring: &dyn Keyring,
) -> anyhow::Result<Store> {
    let store = open_store(config).await?;
    if let Err(e) = crate::audit_key::install(&store, keyring).await {
        store.close().await;
        return Err(e);
    }
    Ok(store)
}

pub(crate) fn secret(
    config: &Config,
    given: &Option<SecretString>,
    file: &str,
    kind: &str,
) -> anyhow::Result<SecretString> {
    match given {
        Some(s) => Ok(s.clone()),
        None => {
            let path = config.data_dir.join(file);
            Ok(load_or_create_secret_file(&path, || generate_token(kind))?)
        }
    }
}

pub(crate) fn pepper(config: &Config) -> anyhow::Result<Pepper> {
    Ok(Pepper::new(&secret(
        config,
        &config.api_key_pepper,
        "api-key-pepper",
        "fry_pepper",
    )?))
}

/// The local root key file in the data directory (created 0600 on first start; refused if
/// group or others can read it).
pub(crate) fn local_keyring(config: &Config) -> anyhow::Result<LocalKeyring> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    LocalKeyring::open(&config.data_dir).context("loading the root key")
}

/// The root keyring of `config`: the local key file, or the configured KMS key (checked with
/// a round trip). With a KMS key, a local key file left in the data directory still unwraps
/// the workspace keys it wrapped, until `ferry admin rotate-root-key` re-wraps them.
pub(crate) async fn keyring(config: &Config) -> anyhow::Result<Arc<dyn Keyring>> {
    let Some(spec) = &config.root_key else {
        return Ok(Arc::new(local_keyring(config)?));
    };
    let options = ferry_kms::Options {
        endpoint: config.kms_endpoint.clone(),
        gcp_credentials_file: None,
    };
    let kms = ferry_kms::connect(spec, &options)
        .await
        .with_context(|| format!("FERRY_ROOT_KEY={spec}"))?;
    let mut earlier: Vec<Arc<dyn Keyring>> = Vec::new();
    if config.data_dir.join(ROOT_KEY_FILE).exists() {
        earlier.push(Arc::new(
            LocalKeyring::open(&config.data_dir).context("loading the earlier local root key")?,
        ));
    }
    Ok(Arc::new(ferry_kms::Chain::new(kms, earlier)))
}
