//! Bearer tokens: the self-signed RS256 JWT that google-cloud-auth makes from a service-account
//! key, verified against the public key registered for that account.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Scopes and audiences a Cloud Run token may carry.
const ACCEPTED_SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/run",
];
const ACCEPTED_AUDIENCE: &str = "https://run.googleapis.com";

/// Tokens issued this far in the future are refused (clock skew allowance, as Google's).
const MAX_SKEW_SECS: i64 = 300;

/// Why a public key could not be used.
#[derive(Debug, thiserror::Error)]
#[error("parsing a public key PEM (SPKI or PKCS#1): {0}")]
pub struct KeyError(String);

/// Parses a PEM public key: SPKI (`BEGIN PUBLIC KEY`) or PKCS#1 (`BEGIN RSA PUBLIC KEY`).
pub fn parse_public_key(pem: &str) -> Result<RsaPublicKey, KeyError> {
    RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
        .map_err(|e| KeyError(e.to_string()))
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
}

/// The claims the fake looks at.
#[derive(Debug, Clone, Deserialize)]
pub struct Claims {
    pub iss: String,
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub aud: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    pub exp: i64,
    pub iat: i64,
}

/// A token split and decoded, not yet verified.
#[derive(Debug)]
pub struct Unverified {
    pub claims: Claims,
    signing_input: String,
    signature: Vec<u8>,
}

/// Splits and decodes a JWT; `Err` says why it is garbled.
pub fn decode(token: &str) -> Result<Unverified, String> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a JWT".into());
    };
    let part = |p: &str| {
        URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|e| format!("bad base64: {e}"))
    };
    let header: Header =
        serde_json::from_slice(&part(h)?).map_err(|e| format!("bad JWT header: {e}"))?;
    if header.alg != "RS256" {
        return Err(format!("unsupported JWT alg {}", header.alg));
    }
    let claims: Claims =
        serde_json::from_slice(&part(c)?).map_err(|e| format!("bad JWT claims: {e}"))?;
    Ok(Unverified {
        claims,
        signing_input: format!("{h}.{c}"),
        signature: part(s)?,
    })
}

impl Unverified {
    /// Checks the signature with `key`, then the times, subject and scope or audience.
    pub fn verify(self, key: &RsaPublicKey, now: i64) -> Result<Claims, String> {
        let digest = Sha256::digest(self.signing_input.as_bytes());
        key.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &self.signature)
            .map_err(|_| "bad JWT signature".to_owned())?;
        let c = self.claims;
        if c.exp <= now {
            return Err("token expired".into());
        }
        if c.iat > now + MAX_SKEW_SECS || c.exp < c.iat {
            return Err("token issued in the future".into());
        }
        if c.sub.as_deref().is_some_and(|s| s != c.iss) {
            return Err("token sub differs from iss".into());
        }
        let scoped = c
            .scope
            .as_deref()
            .is_some_and(|s| s.split(' ').any(|s| ACCEPTED_SCOPES.contains(&s)));
        let audience = c
            .aud
            .as_deref()
            .is_some_and(|a| a.trim_end_matches('/') == ACCEPTED_AUDIENCE);
        if !scoped && !audience {
            return Err("token has neither a Cloud Run scope nor audience".into());
        }
        Ok(c)
    }
}
