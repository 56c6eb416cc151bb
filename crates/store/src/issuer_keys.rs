//! The signing keys of Ferry's OIDC issuer: system-level (no workspace), stored with the
//! private key sealed (ferry-crypto's envelope format under a key of its own, wrapped by the
//! root key). The store never sees a private key in the clear; which key signs and when a new
//! one is made is the server's issuer's business, the store only keeps the rows consistent:
//! each key has the next `generation`, unique, so two processes making the same next key at
//! once insert one row and both go on with it.

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::store::{micros, now, on_pool, Store};

/// A signing key as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuerKey {
    /// The key's id (its JWK thumbprint), the JWT header's `kid`.
    pub kid: String,
    /// 1 for the first key; each later key has the next number.
    pub generation: i64,
    /// `ES256`.
    pub alg: String,
    /// The public key as a JWK (JSON text).
    pub public_jwk: String,
    /// The root key that wrapped `wrapped_key`.
    pub root_key_id: String,
    /// The key that seals the private key, wrapped by the root key.
    pub wrapped_key: Vec<u8>,
    pub sealed_private_key: Vec<u8>,
    pub created_at: DateTime<Utc>,
    /// Signs from here ...
    pub not_before: DateTime<Utc>,
    /// ... until here ...
    pub retire_after: DateTime<Utc>,
    /// ... and is published in the JWKS until here (after its last token expired).
    pub not_after: DateTime<Utc>,
}

/// A signing key to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewIssuerKey {
    pub kid: String,
    pub generation: i64,
    pub alg: String,
    pub public_jwk: String,
    pub root_key_id: String,
    pub wrapped_key: Vec<u8>,
    pub sealed_private_key: Vec<u8>,
    pub not_before: DateTime<Utc>,
    pub retire_after: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct Row {
    kid: String,
    generation: i64,
    alg: String,
    public_jwk: String,
    root_key_id: String,
    wrapped_key: Vec<u8>,
    sealed_private_key: Vec<u8>,
    created_at: DateTime<Utc>,
    not_before: DateTime<Utc>,
    retire_after: DateTime<Utc>,
    not_after: DateTime<Utc>,
}

impl From<Row> for IssuerKey {
    fn from(r: Row) -> Self {
        IssuerKey {
            kid: r.kid,
            generation: r.generation,
            alg: r.alg,
            public_jwk: r.public_jwk,
            root_key_id: r.root_key_id,
            wrapped_key: r.wrapped_key,
            sealed_private_key: r.sealed_private_key,
            created_at: r.created_at,
            not_before: r.not_before,
            retire_after: r.retire_after,
            not_after: r.not_after,
        }
    }
}

macro_rules! columns {
    () => {
        "kid, generation, alg, public_jwk, root_key_id, wrapped_key, sealed_private_key, \
         created_at, not_before, retire_after, not_after"
    };
}

impl Store {
    /// The keys still published at `at` (`not_after` later than `at`), oldest generation
    /// first, and the newest key even if it is not (its generation is the last one used).
    pub async fn issuer_keys_live(&self, at: DateTime<Utc>) -> Result<Vec<IssuerKey>> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM issuer_keys WHERE not_after > $1 ",
            "OR generation = (SELECT MAX(generation) FROM issuer_keys) ORDER BY generation"
        );
        Ok(on_pool!(self, |p| sqlx::query_as::<_, Row>(SQL)
            .bind(micros(at))
            .fetch_all(p)
            .await)?
        .into_iter()
        .map(Into::into)
        .collect())
    }

    /// Stores `key` unless a key of its generation (or kid) exists already; returns whether
    /// it was stored. Either way the caller reads the keys again and uses what is there, so
    /// two processes making the same generation at once end up using the same key.
    pub async fn issuer_key_create(&self, key: &NewIssuerKey) -> Result<bool> {
        const SQL: &str = concat!(
            "INSERT INTO issuer_keys (",
            columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING"
        );
        if key.generation < 1 {
            return Err(Error::Invalid(
                "an issuer key's generation starts at 1".into(),
            ));
        }
        let inserted = on_pool!(self, |p| sqlx::query(SQL)
            .bind(&key.kid)
            .bind(key.generation)
            .bind(&key.alg)
            .bind(&key.public_jwk)
            .bind(&key.root_key_id)
            .bind(&key.wrapped_key)
            .bind(&key.sealed_private_key)
            .bind(now())
            .bind(micros(key.not_before))
            .bind(micros(key.retire_after))
            .bind(micros(key.not_after))
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(inserted == 1)
    }

    /// Deletes the keys no longer published at `at` (their sealed private keys with them),
    /// except the newest; returns how many.
    pub async fn issuer_keys_delete_expired(&self, at: DateTime<Utc>) -> Result<u64> {
        const SQL: &str = "DELETE FROM issuer_keys WHERE not_after <= $1 \
                           AND generation < (SELECT MAX(generation) FROM issuer_keys)";
        Ok(on_pool!(self, |p| sqlx::query(SQL)
            .bind(micros(at))
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?)
    }

    /// The keys not wrapped by root key `root_key_id` (those a rotation to it still has to
    /// re-wrap), at most `limit`.
    pub async fn issuer_keys_not_under(
        &self,
        root_key_id: &str,
        limit: u32,
    ) -> Result<Vec<IssuerKey>> {
        const SQL: &str = concat!(
            "SELECT ",
            columns!(),
            " FROM issuer_keys WHERE root_key_id <> $1 ORDER BY generation LIMIT $2"
        );
        Ok(on_pool!(self, |p| sqlx::query_as::<_, Row>(SQL)
            .bind(root_key_id)
            .bind(i64::from(limit.max(1)))
            .fetch_all(p)
            .await)?
        .into_iter()
        .map(Into::into)
        .collect())
    }

    /// The distinct root key ids that stored issuer keys name.
    pub async fn issuer_key_root_ids(&self) -> Result<Vec<String>> {
        const SQL: &str = "SELECT DISTINCT root_key_id FROM issuer_keys ORDER BY root_key_id";
        Ok(on_pool!(self, |p| sqlx::query_scalar::<_, String>(SQL)
            .fetch_all(p)
            .await)?)
    }

    /// Replaces key `kid`'s wrapped key with the same key wrapped by another root key, if it
    /// is still wrapped by `from_root_key_id` (`Changed` otherwise: re-wrapped or deleted
    /// meanwhile).
    /// The sealed private key is unchanged.
    pub async fn issuer_key_rewrap(
        &self,
        kid: &str,
        from_root_key_id: &str,
        to_root_key_id: &str,
        wrapped_key: &[u8],
    ) -> Result<()> {
        const SQL: &str = "UPDATE issuer_keys SET root_key_id = $1, wrapped_key = $2 \
                           WHERE kid = $3 AND root_key_id = $4";
        let changed = on_pool!(self, |p| sqlx::query(SQL)
            .bind(to_root_key_id)
            .bind(wrapped_key)
            .bind(kid)
            .bind(from_root_key_id)
            .execute(p)
            .await
            .map(|r| r.rows_affected()))?;
        if changed == 1 {
            Ok(())
        } else {
            Err(Error::Changed { kind: "issuer key" })
        }
    }
}
