//! Run tokens: what a pushed run's container gets as `FERRY_RUN_TOKEN`. A token names one
//! run, its workspace and one attempt, and an expiry; it is signed with the server's pepper
//! (HMAC-SHA-256 under a domain of its own), so it needs no storage and dies with its attempt.
//! The public API accepts it only on `POST /v1/runs/{its run}/logs` and `.../result`, and
//! only while that attempt is in flight; API-key routes refuse it.
//!
//! Form: `frt_<base64url(run.workspace.attempt.expiry)>.<base64url(signature)>`.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use ferry_core::port::{RunJob, RunTokens};
use ferry_core::{RunId, WorkspaceId};
use ferry_crypto::{constant_time_eq, Pepper};
use secrecy::SecretString;

/// What every run token starts with.
pub const PREFIX: &str = "frt_";
const DOMAIN: &str = "ferry/run-token/v1|";
/// How long a token outlives its run's timeout: time to start (image pulls) and to post.
const ALLOWANCE_S: i64 = 3600;
/// A run without a timeout gets a token for this long.
const DEFAULT_TTL_S: i64 = 24 * 3600;

/// What a valid token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunTokenClaims {
    pub run_id: RunId,
    pub workspace_id: WorkspaceId,
    pub attempt: u32,
    pub expires_at: i64,
}

/// Mints and checks run tokens. Cheap to clone.
#[derive(Clone)]
pub struct RunTokenSigner {
    pepper: Arc<Pepper>,
    api_url: Arc<std::sync::OnceLock<String>>,
}

impl std::fmt::Debug for RunTokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunTokenSigner")
    }
}

impl RunTokenSigner {
    pub fn new(pepper: Arc<Pepper>) -> Self {
        Self {
            pepper,
            api_url: Arc::default(),
        }
    }

    /// The public API as containers reach it, handed to them as `FERRY_API_URL`. Set once
    /// (the first value stays).
    pub fn set_api_url(&self, url: String) {
        let _ = self.api_url.set(url);
    }

    fn sign(&self, payload: &str) -> [u8; 32] {
        self.pepper.hash(&format!("{DOMAIN}{payload}"))
    }

    /// A token for `claims`.
    pub fn mint_claims(&self, claims: &RunTokenClaims) -> SecretString {
        let payload = format!(
            "{}.{}.{}.{}",
            claims.run_id, claims.workspace_id, claims.attempt, claims.expires_at
        );
        let sig = self.sign(&payload);
        SecretString::from(format!(
            "{PREFIX}{}.{}",
            URL_SAFE_NO_PAD.encode(payload.as_bytes()),
            URL_SAFE_NO_PAD.encode(sig)
        ))
    }

    /// The claims of `token` if it is a run token this server signed and it has not expired
    /// at `now`; otherwise why not (safe to show the caller).
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<RunTokenClaims, &'static str> {
        const MALFORMED: &str = "malformed run token";
        let body = token.strip_prefix(PREFIX).ok_or(MALFORMED)?;
        let (payload_b64, sig_b64) = body.split_once('.').ok_or(MALFORMED)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or(MALFORMED)?;
        let sig = URL_SAFE_NO_PAD.decode(sig_b64).map_err(|_| MALFORMED)?;
        if !constant_time_eq(&sig, &self.sign(&payload)) {
            return Err("invalid run token");
        }
        let mut parts = payload.split('.');
        let mut next = || parts.next().ok_or(MALFORMED);
        let run_id = next()?.parse().map_err(|_| MALFORMED)?;
        let workspace_id = next()?.parse().map_err(|_| MALFORMED)?;
        let attempt = next()?.parse().map_err(|_| MALFORMED)?;
        let expires_at: i64 = next()?.parse().map_err(|_| MALFORMED)?;
        if now.timestamp() >= expires_at {
            return Err("this run token has expired");
        }
        Ok(RunTokenClaims {
            run_id,
            workspace_id,
            attempt,
            expires_at,
        })
    }
}

impl RunTokens for RunTokenSigner {
    fn mint(&self, job: &RunJob) -> SecretString {
        let ttl = job
            .limits
            .timeout_s
            .map_or(DEFAULT_TTL_S, |t| i64::from(t) + ALLOWANCE_S);
        self.mint_claims(&RunTokenClaims {
            run_id: job.run_id,
            workspace_id: job.workspace_id,
            attempt: job.attempt,
            expires_at: Utc::now().timestamp() + ttl,
        })
    }

    fn api_url(&self) -> Option<String> {
        self.api_url.get().cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn signer(p: &str) -> RunTokenSigner {
        RunTokenSigner::new(Arc::new(Pepper::new(&SecretString::from(p))))
    }

    fn claims() -> RunTokenClaims {
        RunTokenClaims {
            run_id: RunId::new(),
            workspace_id: WorkspaceId::new(),
            attempt: 2,
            expires_at: Utc::now().timestamp() + 60,
        }
    }

    #[test]
    fn round_trip() {
        let s = signer("pepper");
        let c = claims();
        let token = s.mint_claims(&c);
        assert!(token.expose_secret().starts_with(PREFIX));
        assert_eq!(s.verify(token.expose_secret(), Utc::now()), Ok(c));
    }

    #[test]
    fn refuses_expired_forged_and_foreign_tokens() {
        let s = signer("pepper");
        let c = claims();
        let token = s.mint_claims(&c);
        let t = token.expose_secret();
        let later = Utc::now() + chrono::Duration::seconds(61);
        assert_eq!(s.verify(t, later), Err("this run token has expired"));
        assert_eq!(
            signer("other").verify(t, Utc::now()),
            Err("invalid run token")
        );
        // Another run's id under the first token's signature.
        let (_, sig) = t.split_once('.').unwrap_or_default();
        let other = RunTokenClaims {
            run_id: RunId::new(),
            ..c
        };
        let forged_payload = format!(
            "{}.{}.{}.{}",
            other.run_id, other.workspace_id, other.attempt, other.expires_at
        );
        let forged = format!(
            "{PREFIX}{}.{sig}",
            URL_SAFE_NO_PAD.encode(forged_payload.as_bytes())
        );
        assert_eq!(s.verify(&forged, Utc::now()), Err("invalid run token"));
        for bad in ["", "frt_", "frt_abc", "frt_a.b", "fry_key_x"] {
            assert!(s.verify(bad, Utc::now()).is_err(), "{bad}");
        }
    }
}
