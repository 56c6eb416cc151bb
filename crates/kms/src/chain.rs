//! [`Chain`]: the configured keyring first, then earlier ones that may still hold the root key
//! of some stored wraps (the local key file of a server moving to a KMS key).

use std::sync::Arc;

use async_trait::async_trait;
use ferry_core::WorkspaceId;
use ferry_crypto::{Error, Key, Keyring, WrappedKey};

/// Wraps with `current`; unwraps with the first keyring that holds the named root key.
///
/// Every backend answers [`Error::UnknownRootKey`] for a root key id it does not hold (another
/// backend's prefix, a local key file that is gone), and only that answer passes the unwrap on
/// to the next keyring: a wrap that fails to decrypt under its own key fails here too.
#[derive(Debug, Clone)]
pub struct Chain {
    current: Arc<dyn Keyring>,
    earlier: Vec<Arc<dyn Keyring>>,
}

impl Chain {
    pub fn new(current: Arc<dyn Keyring>, earlier: Vec<Arc<dyn Keyring>>) -> Chain {
        Chain { current, earlier }
    }
}

#[async_trait]
impl Keyring for Chain {
    fn key_id(&self) -> String {
        self.current.key_id()
    }

    async fn wrap(&self, ws: WorkspaceId, key: &Key) -> Result<WrappedKey, Error> {
        self.current.wrap(ws, key).await
    }

    async fn unwrap(&self, ws: WorkspaceId, wrapped: &WrappedKey) -> Result<Key, Error> {
        let mut result = self.current.unwrap(ws, wrapped).await;
        for keyring in &self.earlier {
            match result {
                Err(Error::UnknownRootKey(_)) => result = keyring.unwrap(ws, wrapped).await,
                _ => break,
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_crypto::LocalKeyring;

    fn local(dir: &std::path::Path) -> Arc<dyn Keyring> {
        Arc::new(LocalKeyring::open(dir).unwrap_or_else(|e| panic!("{e}")))
    }

    #[tokio::test]
    async fn wraps_with_the_current_and_unwraps_with_whichever_holds_the_key() {
        let (a, b) = (tempfile::tempdir(), tempfile::tempdir());
        let (a, b) = (
            a.unwrap_or_else(|e| panic!("{e}")),
            b.unwrap_or_else(|e| panic!("{e}")),
        );
        let (old, new) = (local(a.path()), local(b.path()));
        let ws = WorkspaceId::new();
        let key = Key::generate();
        let under_old = old.wrap(ws, &key).await.unwrap_or_else(|e| panic!("{e}"));

        let chain = Chain::new(new.clone(), vec![old.clone()]);
        assert_eq!(chain.key_id(), new.key_id());
        let under_new = chain.wrap(ws, &key).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(under_new.root_key_id, new.key_id());
        for wrapped in [&under_old, &under_new] {
            let back = chain
                .unwrap(ws, wrapped)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(back.bytes(), key.bytes());
        }
        // Another workspace: the holder's answer stands.
        assert!(matches!(
            chain.unwrap(WorkspaceId::new(), &under_old).await,
            Err(Error::Decrypt)
        ));
        // Nobody holds it.
        let alone = Chain::new(new, vec![]);
        assert!(matches!(
            alone.unwrap(ws, &under_old).await,
            Err(Error::UnknownRootKey(_))
        ));
    }
}
