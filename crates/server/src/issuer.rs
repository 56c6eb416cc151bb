//! Ferry as an OIDC issuer: the tokens with which push backends reach customers' clouds
//! without keys (Google workload identity federation, AWS `AssumeRoleWithWebIdentity`), and
//! never with Ferry's own host identity. The issuer is `FERRY_PUBLIC_URL` (else the public
//! listener's `http://<addr>`); its discovery document and JWKS are public routes
//! (`api/oidc.rs`); each token is an ES256 JWT (see `ferry_crypto::jwt` for why ES256) with
//! `sub` = `workspace:<id>:pool:<name>`, the customer's audience, and a life of
//! [`TOKEN_TTL`].
//!
//! Signing keys live in the database (`issuer_keys`), the private key sealed under a key of
//! its own that the root key wraps (as workspace keys are; root-key rotation re-wraps them).
//! A key signs from `not_before` to `retire_after` (the rotation age, default 30 days) and is
//! published from its creation until `not_after` = `retire_after` + [`TOKEN_TTL`] + [`SKEW`],
//! so every token it signed expires while its key is still served. The next key is made (and
//! published) up to a day before the current one retires, so verifiers that cache the JWKS
//! know it before it signs. Keys are made on first use, by whichever process needs one: each
//! has the next generation number, unique in the table, so processes racing to make one agree
//! on the one stored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use ferry_core::port::{identity_subject, IdentityTokens, SecretsError};
use ferry_core::{Name, WorkspaceId};
use ferry_crypto::jwt::{SigningKey, ALG};
use ferry_crypto::{Binding, Keyring, WorkspaceKey, WrappedKey};
use ferry_store::{IssuerKey, NewIssuerKey, Store};
use secrecy::SecretString;
use serde_json::{json, Value};

/// How long a token lives. Clouds exchange it at once; a short life bounds what a leaked one
/// is worth. (At most 15 minutes, by design.)
pub const TOKEN_TTL: Duration = Duration::minutes(10);

/// Clock difference between Ferry's processes and verifiers that a retired key's publication
/// also covers.
pub const SKEW: Duration = Duration::minutes(5);

/// How long before the current key retires the next one is published, at most (half the
/// rotation age when that is shorter).
pub const PREPUBLISH: Duration = Duration::days(1);

/// The default rotation age (`FERRY_OIDC_KEY_ROTATION_DAYS`).
pub const DEFAULT_ROTATION_DAYS: u32 = 30;

/// The path of the discovery document and of the JWKS, under the issuer URL.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The "workspace" the keyring wraps issuer keys for: none (the nil id), so a wrapped issuer
/// key can never pass for a tenant's workspace key, or the reverse.
const SYSTEM: WorkspaceId = WorkspaceId(uuid::Uuid::nil());

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] ferry_store::Error),
    #[error("issuer key {kid}")]
    Crypto {
        kid: String,
        source: ferry_crypto::Error,
    },
    #[error("issuer key {kid}")]
    Jwt {
        kid: String,
        source: ferry_crypto::jwt::Error,
    },
    /// No key can sign now, even after making one (a concurrent process's key that this one
    /// cannot read yet, or a clock far off).
    #[error("no issuer key can sign now")]
    NoSigner,
}

type Result<T, E = Error> = std::result::Result<T, E>;

/// The times of the key to make next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Planned {
    pub generation: i64,
    pub not_before: DateTime<Utc>,
    pub retire_after: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

fn not_after(retire_after: DateTime<Utc>) -> DateTime<Utc> {
    retire_after + TOKEN_TTL + SKEW
}

/// The key that signs at `now`: the newest whose signing window holds `now`.
pub(crate) fn signer_at(keys: &[IssuerKey], now: DateTime<Utc>) -> Option<&IssuerKey> {
    keys.iter()
        .filter(|k| k.not_before <= now && now < k.retire_after)
        .max_by_key(|k| k.generation)
}

/// The key to make at `now`, if one is due: the first; a successor of the newest key once
/// it is within [`PREPUBLISH`] (at most half of `rotation`) of retiring, signing from its
/// retirement; or, if the newest key has retired already (nobody needed a token for a
/// while), one that signs at once. A key that signs at once does so from [`SKEW`] ago, so a
/// process whose clock is a little behind the one that made it can sign with it too.
pub(crate) fn plan(keys: &[IssuerKey], now: DateTime<Utc>, rotation: Duration) -> Option<Planned> {
    let fresh = |generation, not_before: DateTime<Utc>| {
        let retire_after = not_before + rotation;
        Planned {
            generation,
            not_before,
            retire_after,
            not_after: not_after(retire_after),
        }
    };
    let Some(newest) = keys.iter().max_by_key(|k| k.generation) else {
        return Some(fresh(1, now - SKEW));
    };
    let ahead = std::cmp::min(PREPUBLISH, rotation / 2);
    if newest.retire_after <= now {
        Some(fresh(newest.generation + 1, now - SKEW))
    } else if newest.retire_after - ahead <= now {
        Some(fresh(newest.generation + 1, newest.retire_after))
    } else {
        None
    }
}

struct Inner {
    store: Store,
    keyring: Arc<dyn Keyring>,
    url: RwLock<Option<String>>,
    rotation: Duration,
    /// Opened signing keys by kid (an unwrap is a root-key operation: a KMS call).
    keys: Mutex<HashMap<String, Arc<SigningKey>>>,
    /// One key made at a time in this process (other processes: the generation's uniqueness).
    making: tokio::sync::Mutex<()>,
}

/// Ferry's OIDC issuer. Cheap to clone.
#[derive(Clone)]
pub struct Issuer(Arc<Inner>);

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer")
            .field("url", &self.url())
            .field("rotation", &self.0.rotation)
            .finish_non_exhaustive()
    }
}

impl Issuer {
    /// An issuer at `url` (`None`: set later with [`Issuer::set_default_url`]) whose keys are
    /// wrapped by `keyring` and rotated after `rotation_days`.
    pub fn new(
        store: Store,
        keyring: Arc<dyn Keyring>,
        url: Option<String>,
        rotation_days: u32,
    ) -> Issuer {
        Issuer(Arc::new(Inner {
            store,
            keyring,
            url: RwLock::new(url.map(|u| u.trim_end_matches('/').to_owned())),
            rotation: Duration::days(i64::from(rotation_days.max(1))),
            keys: Mutex::default(),
            making: tokio::sync::Mutex::new(()),
        }))
    }

    /// Sets the issuer URL unless one was configured (the public listener's own address).
    pub fn set_default_url(&self, url: String) {
        let mut u = self.0.url.write().unwrap_or_else(|e| e.into_inner());
        if u.is_none() {
            *u = Some(url.trim_end_matches('/').to_owned());
        }
    }

    /// The issuer (`iss`): `FERRY_PUBLIC_URL` or the public listener's URL.
    pub fn url(&self) -> String {
        self.0
            .url
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned())
    }

    /// The OpenID Provider metadata (only what a token verifier needs).
    pub fn discovery(&self) -> Value {
        let issuer = self.url();
        json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}{JWKS_PATH}"),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALG],
            "claims_supported": ["iss", "sub", "aud", "iat", "nbf", "exp", "jti", "workspace_id", "pool"],
        })
    }

    /// The published keys (`{"keys": [...]}`): the one signing now, the next one once it is
    /// due, and retired ones until their last token has expired. Makes the first key if
    /// there is none yet.
    pub async fn jwks(&self) -> Result<Value> {
        let now = Utc::now();
        let keys = self.keys_with_plan(now).await?;
        let published: Vec<Value> = keys
            .iter()
            .filter(|k| now < k.not_after)
            .filter_map(|k| serde_json::from_str(&k.public_jwk).ok())
            .collect();
        Ok(json!({ "keys": published }))
    }

    /// A token for workspace `ws`'s pool `pool` and `audience`.
    pub async fn mint_token(&self, ws: WorkspaceId, pool: &Name, audience: &str) -> Result<String> {
        let keys = self.keys_with_plan(Utc::now()).await?;
        // Now, after any wait for the key to be made (by this process or another).
        let now = Utc::now();
        let row = signer_at(&keys, now).ok_or(Error::NoSigner)?;
        let key = self.open(row).await?;
        let iat = now.timestamp();
        let claims = json!({
            "iss": self.url(),
            "sub": identity_subject(ws, pool),
            "aud": audience,
            "iat": iat,
            "nbf": iat,
            "exp": (now + TOKEN_TTL).timestamp(),
            "jti": uuid::Uuid::new_v4().to_string(),
            "workspace_id": ws.to_string(),
            "pool": pool.as_str(),
        });
        key.sign(&claims).map_err(|source| Error::Jwt {
            kid: row.kid.clone(),
            source,
        })
    }

    /// The live keys, after making the one [`plan`] says is due (if any).
    async fn keys_with_plan(&self, now: DateTime<Utc>) -> Result<Vec<IssuerKey>> {
        let keys = self.0.store.issuer_keys_live(now).await?;
        if plan(&keys, now, self.0.rotation).is_none() {
            return Ok(keys);
        }
        let _one = self.0.making.lock().await;
        // Another task of this process may have made it meanwhile.
        let keys = self.0.store.issuer_keys_live(now).await?;
        let Some(planned) = plan(&keys, now, self.0.rotation) else {
            return Ok(keys);
        };
        self.make(&planned).await?;
        match self.0.store.issuer_keys_delete_expired(now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "Expired issuer keys deleted"),
            Err(e) => tracing::warn!(error = %e, "Deleting expired issuer keys failed"),
        }
        Ok(self.0.store.issuer_keys_live(now).await?)
    }

    /// Generates and stores a key with `planned`'s times (unless another process stored
    /// that generation first).
    async fn make(&self, planned: &Planned) -> Result<()> {
        let (key, der) = SigningKey::generate().map_err(|source| Error::Jwt {
            kid: String::new(),
            source,
        })?;
        let kid = key.kid().to_owned();
        let crypto = |source| Error::Crypto {
            kid: kid.clone(),
            source,
        };
        let wrapping = WorkspaceKey::new(format!("issuer-{kid}"), ferry_crypto::Key::generate());
        let wrapped = self
            .0
            .keyring
            .wrap(SYSTEM, wrapping.key())
            .await
            .map_err(crypto)?;
        let sealed = wrapping.seal(&binding(&kid), &der).map_err(crypto)?;
        drop(der);
        let stored = self
            .0
            .store
            .issuer_key_create(&NewIssuerKey {
                kid: kid.clone(),
                generation: planned.generation,
                alg: ALG.to_owned(),
                public_jwk: key.public_jwk().to_string(),
                root_key_id: wrapped.root_key_id,
                wrapped_key: wrapped.blob,
                sealed_private_key: sealed,
                not_before: planned.not_before,
                retire_after: planned.retire_after,
                not_after: planned.not_after,
            })
            .await?;
        if stored {
            tracing::info!(%kid, generation = planned.generation, not_before = %planned.not_before, retire_after = %planned.retire_after, "Issuer key created");
            self.remember(kid, key);
        }
        Ok(())
    }

    fn remember(&self, kid: String, key: SigningKey) -> Arc<SigningKey> {
        let key = Arc::new(key);
        let mut keys = self.0.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.insert(kid, key.clone());
        key
    }

    /// The signing key of `row`, opened (once per process).
    async fn open(&self, row: &IssuerKey) -> Result<Arc<SigningKey>> {
        if let Some(k) = self
            .0
            .keys
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&row.kid)
        {
            return Ok(k.clone());
        }
        let crypto = |source| Error::Crypto {
            kid: row.kid.clone(),
            source,
        };
        let wrapped = WrappedKey {
            root_key_id: row.root_key_id.clone(),
            blob: row.wrapped_key.clone(),
        };
        let wrapping = self
            .0
            .keyring
            .unwrap(SYSTEM, &wrapped)
            .await
            .map_err(crypto)?;
        let wrapping = WorkspaceKey::new(format!("issuer-{}", row.kid), wrapping);
        let der = wrapping
            .open(&binding(&row.kid), &row.sealed_private_key)
            .map_err(crypto)?;
        let key = SigningKey::from_pkcs8(secrecy::ExposeSecret::expose_secret(&der)).map_err(
            |source| Error::Jwt {
                kid: row.kid.clone(),
                source,
            },
        )?;
        if key.kid() != row.kid {
            // A row whose sealed key is not the key its kid names (a hand-edited row).
            return Err(Error::Jwt {
                kid: row.kid.clone(),
                source: ferry_crypto::jwt::Error::BadKey,
            });
        }
        Ok(self.remember(row.kid.clone(), key))
    }
}

/// Where an issuer key's sealed private key belongs.
fn binding(kid: &str) -> Binding {
    Binding::new(SYSTEM, kid, format!("issuer-key/{ALG}"), 1)
}

#[async_trait]
impl IdentityTokens for Issuer {
    async fn mint(
        &self,
        ws: WorkspaceId,
        pool: &Name,
        audience: &str,
    ) -> std::result::Result<SecretString, SecretsError> {
        match self.mint_token(ws, pool, audience).await {
            Ok(t) => Ok(SecretString::from(t)),
            Err(e) => {
                tracing::error!(workspace_id = %ws, pool = %pool, error = %e, source = ?std::error::Error::source(&e), "Minting an identity token failed");
                Err(SecretsError(
                    "Ferry could not mint an identity token for now".into(),
                ))
            }
        }
    }
}

/// Re-wraps every issuer key not under `new_key_id` with `keyring` (root-key rotation);
/// returns how many it re-wrapped.
pub(crate) async fn rewrap_all(
    store: &Store,
    keyring: &dyn Keyring,
    new_key_id: &str,
) -> anyhow::Result<usize> {
    let mut rewrapped = 0;
    loop {
        let batch = store.issuer_keys_not_under(new_key_id, 100).await?;
        if batch.is_empty() {
            return Ok(rewrapped);
        }
        for row in batch {
            let wrapped = WrappedKey {
                root_key_id: row.root_key_id.clone(),
                blob: row.wrapped_key,
            };
            let blob = crate::admin::rewrap_key(
                keyring,
                SYSTEM,
                &wrapped,
                new_key_id,
                &format!("issuer key {}", row.kid),
            )
            .await?;
            match store
                .issuer_key_rewrap(&row.kid, &row.root_key_id, new_key_id, &blob)
                .await
            {
                Ok(()) => rewrapped += 1,
                // Re-wrapped or deleted meanwhile; the next batch shows what is left.
                Err(ferry_store::Error::Changed { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::hours(h)
    }

    fn key(generation: i64, not_before: i64, retire_after: i64) -> IssuerKey {
        IssuerKey {
            kid: format!("k{generation}"),
            generation,
            alg: ALG.into(),
            public_jwk: "{}".into(),
            root_key_id: "r".into(),
            wrapped_key: Vec::new(),
            sealed_private_key: Vec::new(),
            created_at: at(not_before),
            not_before: at(not_before),
            retire_after: at(retire_after),
            not_after: not_after(at(retire_after)),
        }
    }

    const DAY: i64 = 24;
    const MONTH: i64 = 30 * DAY;

    #[test]
    fn when_a_key_is_made_and_from_when_it_signs() {
        let rotation = Duration::days(30);
        let planned = |g, nb: i64, ra: i64| {
            Some(Planned {
                generation: g,
                not_before: at(nb),
                retire_after: at(ra),
                not_after: not_after(at(ra)),
            })
        };
        let at_once = |g, h: i64| {
            let not_before = at(h) - SKEW;
            Some(Planned {
                generation: g,
                not_before,
                retire_after: not_before + rotation,
                not_after: not_after(not_before + rotation),
            })
        };
        let one = [key(1, 0, MONTH)];
        let cases: Vec<(&str, Vec<IssuerKey>, i64, Option<Planned>)> = vec![
            ("none yet: the first, at once", vec![], 5, at_once(1, 5)),
            ("young key: nothing", one.to_vec(), 1, None),
            (
                "a day and an hour before: nothing",
                one.to_vec(),
                MONTH - DAY - 1,
                None,
            ),
            (
                "a day before: the next, from its retirement",
                one.to_vec(),
                MONTH - DAY,
                planned(2, MONTH, 2 * MONTH),
            ),
            (
                "retired unseen: the next, at once",
                one.to_vec(),
                MONTH + 50,
                at_once(2, MONTH + 50),
            ),
            (
                "next already made: nothing",
                vec![key(1, 0, MONTH), key(2, MONTH, 2 * MONTH)],
                MONTH - 2,
                None,
            ),
        ];
        for (what, keys, now, want) in cases {
            assert_eq!(plan(&keys, at(now), rotation), want, "{what}");
        }
        // A short rotation pre-publishes half its age ahead.
        assert_eq!(
            plan(&[key(1, 0, 48)], at(24), Duration::days(2)),
            planned(2, 48, 96)
        );
        assert_eq!(plan(&[key(1, 0, 48)], at(23), Duration::days(2)), None);
    }

    #[test]
    fn the_newest_key_in_its_window_signs() {
        let keys = [key(1, 0, MONTH), key(2, MONTH, 2 * MONTH)];
        let kid = |h| signer_at(&keys, at(h)).map(|k| k.kid.clone());
        assert_eq!(kid(-1), None);
        assert_eq!(kid(0).as_deref(), Some("k1"));
        // The pre-published key is not signing yet.
        assert_eq!(kid(MONTH - 1).as_deref(), Some("k1"));
        assert_eq!(kid(MONTH).as_deref(), Some("k2"));
        assert_eq!(kid(2 * MONTH), None);
        // Every token a key signs expires before the key leaves the JWKS.
        let k = &keys[0];
        assert!(k.retire_after + TOKEN_TTL < k.not_after);
        assert!(TOKEN_TTL <= Duration::minutes(15));
    }
}
