//! Ferry's OIDC identity tokens: ES256 signing keys (ECDSA over P-256 with SHA-256), their
//! public JWKs, and compact JWS tokens. No I/O: the server's issuer stores the keys (sealed)
//! and decides which one signs; this module only generates, loads, signs and verifies.
//!
//! Why ES256 rather than RS256: both AWS IAM OIDC providers and Google workload identity
//! pools accept either, but the RSA implementation in the tree (`rsa` 0.9) carries
//! RUSTSEC-2023-0071, a timing side channel on private-key operations — and signing is
//! exactly what an issuer does all day. ES256 here is `ring`'s constant-time P-256 (already in
//! the tree through rustls), keys are small (a 32-byte scalar), and signing is fast.
//!
//! A key's id (`kid`) is its RFC 7638 JWK thumbprint: derived from the public key, so a
//! published kid cannot name another key.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The JWS algorithm of every token Ferry signs.
pub const ALG: &str = "ES256";

/// Why a key could not be made or used, or a token did not verify. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("generating a signing key failed")]
    Generate,
    #[error("the stored signing key is not a P-256 PKCS#8 key")]
    BadKey,
    #[error("signing failed")]
    Sign,
    /// The token is not a compact JWS Ferry could have made, or its signature is wrong.
    #[error("the token does not verify: {0}")]
    Invalid(&'static str),
}

/// An ES256 signing key. `Debug` shows only its kid.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    kid: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key, and its PKCS#8 document (the private key: seal it, never store it bare).
    pub fn generate() -> Result<(SigningKey, Zeroizing<Vec<u8>>), Error> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| Error::Generate)?;
        let der = Zeroizing::new(doc.as_ref().to_vec());
        let key = Self::from_pkcs8(&der)?;
        Ok((key, der))
    }

    /// Loads a key from the PKCS#8 document [`SigningKey::generate`] returned.
    pub fn from_pkcs8(der: &[u8]) -> Result<SigningKey, Error> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|_| Error::BadKey)?;
        let (x, y) = coordinates(pair.public_key().as_ref()).ok_or(Error::BadKey)?;
        let kid = thumbprint(&x, &y);
        Ok(SigningKey { pair, kid, rng })
    }

    /// The key's id: its RFC 7638 JWK thumbprint (base64url of a SHA-256).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK, as the JWKS publishes it.
    pub fn public_jwk(&self) -> Value {
        let point = self.pair.public_key().as_ref();
        let (x, y) = coordinates(point).unwrap_or_default();
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": x,
            "y": y,
            "use": "sig",
            "alg": ALG,
            "kid": self.kid,
        })
    }

    /// A compact JWS of `claims` (a JSON object) with header `{"alg": "ES256", "typ": "JWT",
    /// "kid"}`.
    pub fn sign(&self, claims: &Value) -> Result<String, Error> {
        let header = json!({"alg": ALG, "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .pair
            .sign(&self.rng, input.as_bytes())
            .map_err(|_| Error::Sign)?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())))
    }
}

/// The base64url X and Y of an uncompressed P-256 point (`04 || X || Y`).
fn coordinates(point: &[u8]) -> Option<(String, String)> {
    if point.len() != 65 || point[0] != 4 {
        return None;
    }
    Some((
        URL_SAFE_NO_PAD.encode(&point[1..33]),
        URL_SAFE_NO_PAD.encode(&point[33..]),
    ))
}

/// RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace.
fn thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// A JSON object: a JWT's header or claims.
pub type Object = Map<String, Value>;

/// The header and claims of `token`, without verifying anything (to pick the key by `kid`).
pub fn decode_unverified(token: &str) -> Result<(Object, Object), Error> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::Invalid("not a compact JWS"));
    };
    let object = |p: &str| -> Result<Object, Error> {
        let bytes = URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|_| Error::Invalid("bad base64url"))?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(Error::Invalid("a part is not a JSON object")),
        }
    };
    Ok((object(h)?, object(c)?))
}

/// Verifies `token`'s ES256 signature with the key of `jwks` (`{"keys": [...]}`) its header's
/// `kid` names, and returns its claims. Checks no claim: the caller checks `iss`, `aud`, the
/// times.
pub fn verify(token: &str, jwks: &Value) -> Result<Object, Error> {
    let (header, claims) = decode_unverified(token)?;
    if header.get("alg").and_then(Value::as_str) != Some(ALG) {
        return Err(Error::Invalid("alg is not ES256"));
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or(Error::Invalid("no kid"))?;
    let jwk = jwks
        .get("keys")
        .and_then(Value::as_array)
        .and_then(|keys| {
            keys.iter()
                .find(|k| k.get("kid").and_then(Value::as_str) == Some(kid))
        })
        .ok_or(Error::Invalid("no published key has the token's kid"))?;
    let coordinate = |name: &str| {
        jwk.get(name)
            .and_then(Value::as_str)
            .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
            .filter(|b| b.len() == 32)
            .ok_or(Error::Invalid("the key is not a P-256 JWK"))
    };
    let mut point = vec![4u8];
    point.extend(coordinate("x")?);
    point.extend(coordinate("y")?);
    let (input, sig) = token
        .rsplit_once('.')
        .ok_or(Error::Invalid("not a compact JWS"))?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| Error::Invalid("bad base64url"))?;
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
        .verify(input.as_bytes(), &sig)
        .map_err(|_| Error::Invalid("bad signature"))?;
    Ok(claims)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn jwks(keys: &[&SigningKey]) -> Value {
        json!({"keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>()})
    }

    #[test]
    fn a_signed_token_verifies_with_its_key_and_no_other() {
        let (a, der) = SigningKey::generate().unwrap();
        let (b, _) = SigningKey::generate().unwrap();
        let claims = json!({"sub": "workspace:w:pool:p", "aud": "sts.amazonaws.com", "exp": 1});
        let token = a.sign(&claims).unwrap();
        let verified = verify(&token, &jwks(&[&b, &a])).unwrap();
        assert_eq!(Value::Object(verified), claims);
        let (header, _) = decode_unverified(&token).unwrap();
        assert_eq!(header["kid"], a.kid());
        assert_eq!(header["alg"], "ES256");

        // Not published: refused.
        assert!(verify(&token, &jwks(&[&b])).is_err());
        // B's key published under A's kid: the signature is wrong.
        let mut forged = b.public_jwk();
        forged["kid"] = json!(a.kid());
        assert_eq!(
            verify(&token, &json!({"keys": [forged]})),
            Err(Error::Invalid("bad signature"))
        );
        // A changed claim.
        let parts: Vec<&str> = token.split('.').collect();
        let other = URL_SAFE_NO_PAD.encode(json!({"sub": "workspace:x:pool:p"}).to_string());
        let tampered = format!("{}.{other}.{}", parts[0], parts[2]);
        assert!(verify(&tampered, &jwks(&[&a])).is_err());

        // The stored document loads back into the same key.
        let again = SigningKey::from_pkcs8(&der).unwrap();
        assert_eq!(again.kid(), a.kid());
        assert_eq!(again.public_jwk(), a.public_jwk());
        assert!(verify(&again.sign(&claims).unwrap(), &jwks(&[&a])).is_ok());
    }

    #[test]
    fn the_kid_is_the_rfc7638_thumbprint() {
        // RFC 7638 §3.1 uses an RSA key; this is the same construction over the EC members,
        // checked against an independent computation.
        let (k, _) = SigningKey::generate().unwrap();
        let jwk = k.public_jwk();
        let canonical = format!(
            "{{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"{}\",\"y\":\"{}\"}}",
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        assert_eq!(
            k.kid(),
            URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
        );
        assert!(format!("{k:?}").contains(k.kid()));
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(SigningKey::from_pkcs8(b"nope").err(), Some(Error::BadKey));
        for t in ["", "a.b", "a.b.c.d", "e30.e30.", "!!.e30.e30"] {
            assert!(verify(t, &json!({"keys": []})).is_err(), "{t}");
        }
        let hs = format!(
            "{}.{}.sig",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"k"}"#),
            URL_SAFE_NO_PAD.encode("{}")
        );
        assert_eq!(
            verify(&hs, &json!({"keys": []})),
            Err(Error::Invalid("alg is not ES256"))
        );
    }
}
