//! Google's Security Token Service, as far as workload identity federation with an OIDC
//! provider needs it: `POST /v1/token` (RFC 8693 token exchange) takes a subject token
//! issued by the OIDC issuer a registered provider trusts, verifies it the way Google does —
//! the issuer's JWKS fetched over HTTP from `<iss>/.well-known/openid-configuration`'s
//! `jwks_uri`, the signature (ES256 or RS256) by the key its `kid` names, `aud` (the provider's
//! resource name, with or without `https:`), `exp`, `iat`, `nbf` — and answers a federated
//! access token. The Cloud Run routes of the same fake then accept that token as the
//! principal `principal://iam.googleapis.com/projects/<n>/locations/global/
//! workloadIdentityPools/<pool>/subject/<sub>`.
//!
//! Refusals are Google's shape: 400 `{"error": "invalid_grant" | "invalid_request" |
//! "invalid_target", "error_description"}`.

use std::sync::Arc;

use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::server::Shared;

/// Where google-cloud-auth posts the exchange (Google's `token_url` path).
pub const TOKEN_PATH: &str = "/v1/token";

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT_TYPES: [&str; 2] = [
    "urn:ietf:params:oauth:token-type:jwt",
    "urn:ietf:params:oauth:token-type:id_token",
];
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
/// How long an issued access token lives (Google's default).
const ACCESS_TOKEN_SECS: i64 = 3600;
/// Clock skew allowed on `iat`/`nbf`.
const SKEW_SECS: i64 = 300;
/// Google refuses subject tokens valid for longer than a day.
const MAX_LIFETIME_SECS: i64 = 24 * 3600;

/// An OIDC provider of a workload identity pool: whose tokens it takes.
#[derive(Debug, Clone)]
pub(crate) struct Provider {
    pub issuer: String,
}

/// A federated access token the fake issued.
#[derive(Debug, Clone)]
pub(crate) struct Federated {
    pub principal: String,
    pub expires_at: i64,
}

type Refusal = (StatusCode, Value);
type Object = Map<String, Value>;

fn refuse(error: &str, description: impl Into<String>) -> Refusal {
    (
        StatusCode::BAD_REQUEST,
        json!({"error": error, "error_description": description.into()}),
    )
}

/// `//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/X` →
/// the pool's resource name (`iam.googleapis.com/projects/N/.../workloadIdentityPools/P`).
pub(crate) fn pool_of(audience: &str) -> Option<&str> {
    audience
        .strip_prefix("//")?
        .split_once("/providers/")
        .map(|(pool, _)| pool)
}

/// Handles `POST /v1/token`.
pub(crate) async fn exchange(shared: &Arc<Shared>, body: &[u8]) -> (StatusCode, Value) {
    match exchange_inner(shared, body).await {
        Ok(v) => (StatusCode::OK, v),
        Err(r) => r,
    }
}

async fn exchange_inner(shared: &Arc<Shared>, body: &[u8]) -> Result<Value, Refusal> {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let field = |k: &str| {
        form.iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.as_str())
    };
    if field("grant_type") != Some(GRANT_TYPE) {
        return Err(refuse(
            "invalid_request",
            "grant_type must be token-exchange",
        ));
    }
    if field("requested_token_type") != Some(ACCESS_TOKEN_TYPE) {
        return Err(refuse(
            "invalid_request",
            "requested_token_type must be access_token",
        ));
    }
    if !field("subject_token_type").is_some_and(|t| JWT_TYPES.contains(&t)) {
        return Err(refuse(
            "invalid_request",
            "subject_token_type must be a JWT for an OIDC provider",
        ));
    }
    if !field("scope").is_some_and(|s| s.split(' ').any(|s| s == CLOUD_PLATFORM)) {
        return Err(refuse("invalid_scope", "scope must include cloud-platform"));
    }
    let audience = field("audience").unwrap_or_default();
    let provider = shared
        .state()
        .providers
        .get(audience)
        .cloned()
        .ok_or_else(|| {
            refuse(
                "invalid_target",
                "The target service indicated by the \"audience\" parameters is invalid.",
            )
        })?;
    let token = field("subject_token").unwrap_or_default();
    let (header, claims) = decode(token)?;
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if iss != provider.issuer {
        return Err(refuse(
            "invalid_grant",
            format!(
                "The issuer in ID Token {iss} does not match the expected ones: {}.",
                provider.issuer
            ),
        ));
    }
    let jwks = fetch_jwks(iss).await?;
    verify_signature(token, &header, &jwks)?;
    check_claims(&claims, audience, chrono::Utc::now().timestamp())?;
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && s.len() <= 127)
        .ok_or_else(|| {
            refuse(
                "invalid_grant",
                "The sub claim is missing or longer than 127 bytes.",
            )
        })?;
    let pool = pool_of(audience).unwrap_or_default();
    let principal = format!("principal://{pool}/subject/{sub}");
    let access_token = format!("ya29.fake-sts-{}", uuid::Uuid::new_v4().simple());
    shared.state().federated.insert(
        access_token.clone(),
        Federated {
            principal,
            expires_at: chrono::Utc::now().timestamp() + ACCESS_TOKEN_SECS,
        },
    );
    Ok(json!({
        "access_token": access_token,
        "issued_token_type": ACCESS_TOKEN_TYPE,
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_SECS,
    }))
}

fn decode(token: &str) -> Result<(Object, Object), Refusal> {
    let bad = || refuse("invalid_grant", "Unable to parse the ID Token.");
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let object = |p: &str| match URL_SAFE_NO_PAD
        .decode(p)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
    {
        Some(Value::Object(m)) => Ok(m),
        _ => Err(bad()),
    };
    Ok((object(h)?, object(c)?))
}

/// The issuer's JWKS, as Google gets it: the discovery document, then its `jwks_uri`.
async fn fetch_jwks(iss: &str) -> Result<Value, Refusal> {
    let unreachable = |what: &str| {
        refuse(
            "invalid_grant",
            format!("Could not retrieve the {what} of the issuer {iss}."),
        )
    };
    let get = |url: String| async move {
        let resp = reqwest::get(&url).await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.json::<Value>().await.ok()
    };
    let discovery = get(format!(
        "{}/.well-known/openid-configuration",
        iss.trim_end_matches('/')
    ))
    .await
    .ok_or_else(|| unreachable("OpenID configuration"))?;
    if discovery.get("issuer").and_then(Value::as_str) != Some(iss) {
        return Err(refuse(
            "invalid_grant",
            "The issuer's OpenID configuration names another issuer.",
        ));
    }
    let jwks_uri = discovery
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| unreachable("jwks_uri"))?
        .to_owned();
    get(jwks_uri).await.ok_or_else(|| unreachable("JWKS"))
}

fn verify_signature(token: &str, header: &Map<String, Value>, jwks: &Value) -> Result<(), Refusal> {
    let bad_sig = || refuse("invalid_grant", "Invalid ID Token signature.");
    let kid = header.get("kid").and_then(Value::as_str);
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let key = jwks
        .get("keys")
        .and_then(Value::as_array)
        .and_then(|keys| {
            keys.iter()
                .find(|k| k.get("kid").and_then(Value::as_str) == kid && kid.is_some())
        })
        .ok_or_else(|| {
            refuse(
                "invalid_grant",
                "The ID Token's kid does not match any key of the issuer's JWKS.",
            )
        })?;
    let (input, sig) = token.rsplit_once('.').ok_or_else(bad_sig)?;
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| bad_sig())?;
    let b64 = |k: &str| {
        key.get(k)
            .and_then(Value::as_str)
            .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
            .ok_or_else(bad_sig)
    };
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED, RSA_PKCS1_2048_8192_SHA256};
    let ok = match alg {
        "ES256" => {
            if key.get("crv").and_then(Value::as_str) != Some("P-256") {
                return Err(bad_sig());
            }
            let mut point = vec![4u8];
            point.extend(b64("x")?);
            point.extend(b64("y")?);
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
                .verify(input.as_bytes(), &sig)
                .is_ok()
        }
        "RS256" => ring::signature::RsaPublicKeyComponents {
            n: b64("n")?,
            e: b64("e")?,
        }
        .verify(&RSA_PKCS1_2048_8192_SHA256, input.as_bytes(), &sig)
        .is_ok(),
        _ => {
            return Err(refuse(
                "invalid_grant",
                format!("Unsupported ID Token signing algorithm {alg}."),
            ))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(bad_sig())
    }
}

fn check_claims(claims: &Map<String, Value>, audience: &str, now: i64) -> Result<(), Refusal> {
    let int = |k: &str| claims.get(k).and_then(Value::as_i64);
    let aud_ok = |a: &str| {
        a == audience
            || a.strip_prefix("https:")
                .is_some_and(|rest| rest == audience)
    };
    let audience_matches = match claims.get("aud") {
        Some(Value::String(a)) => aud_ok(a),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(aud_ok),
        _ => false,
    };
    if !audience_matches {
        return Err(refuse(
            "invalid_grant",
            "The audience in ID Token does not match the expected audience.",
        ));
    }
    let (Some(exp), Some(iat)) = (int("exp"), int("iat")) else {
        return Err(refuse("invalid_grant", "The ID Token lacks exp or iat."));
    };
    if exp <= now {
        return Err(refuse("invalid_grant", "The ID Token has expired."));
    }
    if iat > now + SKEW_SECS || int("nbf").is_some_and(|nbf| nbf > now + SKEW_SECS) {
        return Err(refuse("invalid_grant", "The ID Token is not valid yet."));
    }
    if exp - iat > MAX_LIFETIME_SECS {
        return Err(refuse(
            "invalid_grant",
            "The ID Token's lifetime is longer than a day.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_checked_like_googles() {
        let aud =
            "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x";
        let now = 1_000_000;
        let good = json!({"aud": aud, "iat": now, "nbf": now, "exp": now + 600});
        let ok = |v: Value| check_claims(v.as_object().unwrap_or(&Map::new()), aud, now).is_ok();
        assert!(ok(good.clone()));
        let mut https = good.clone();
        https["aud"] = json!(format!("https:{aud}"));
        assert!(ok(https));
        for (k, v) in [
            ("aud", json!("sts.amazonaws.com")),
            ("aud", json!(format!("{aud}x"))),
            ("exp", json!(now)),
            ("iat", json!(now + 3600)),
            ("nbf", json!(now + 3600)),
            ("exp", json!(now + 2 * 24 * 3600)),
        ] {
            let mut bad = good.clone();
            bad[k] = v.clone();
            assert!(!ok(bad), "{k} = {v}");
        }
        assert_eq!(
            pool_of(aud),
            Some("iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p")
        );
    }
}
