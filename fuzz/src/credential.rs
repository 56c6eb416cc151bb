//! `credential`: `POST`/`PUT /v1/credentials` bodies, `ferry_server::credential::parse`
//! (crates/server/src/credential.rs): a tenant's secret material for each kind, checked,
//! split into the material to seal and the metadata to show.
//!
//! Input: the request body's JSON.
//!
//! Properties:
//! - no secret value (`secret_access_key`, `session_token`, `key.private_key`) appears, in
//!   any escaping, in an error message, in the shown metadata or in `Debug` (text that shows
//!   just as well when the secrets are replaced by others of the same shape does not count:
//!   the message's own words, a field that is not secret);
//! - accepted: the kind and name are the body's; the material is canonical JSON of exactly
//!   what the kind seals (the body's own values), and never holds a `credential_source`;
//!   a workload identity's token exchange URL is on Google's STS or an origin the operator
//!   allows; `external_id` is never accepted;
//! - `parse_role_arn` accepts only ARNs whose account is the 12 digits it returns.

use ferry_core::{canonical_json, AllowedEndpoints, CredentialKind, Origin};
use secrecy::ExposeSecret;
use serde_json::{json, Map, Value};

use super::parsers::credential::{parse, parse_role_arn, Invalid, Parsed};

/// Where the fuzzed operator lets token exchanges go besides Google's STS.
const OPERATOR_ORIGIN: &str = "http://127.0.0.1:8085";

pub fn check(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let allowed = AllowedEndpoints::default()
        .with(OPERATOR_ORIGIN)
        .unwrap_or_else(|e| panic!("{e}"));
    let result = parse(body.clone(), &allowed);
    // A secret shows if the answer holds it, in any escaping, where the same body with other
    // secret values of the same shape does not (so text that is there anyway does not count:
    // a message's own words, a field that is not secret).
    let shown = shown(&result);
    let (other_body, mut secrets) = other_secrets(&body);
    // And a secret the body also carries in a field that is not secret is not one.
    let mut public = Vec::new();
    public_strings(&body, &mut public);
    secrets.retain(|s| !public.iter().any(|p| p.contains(s.as_str())));
    let shown_otherwise = shown_of(parse(other_body, &allowed));
    for secret in &secrets {
        for form in forms(secret) {
            assert!(
                !shown.contains(&form) || shown_otherwise.contains(&form),
                "a secret value is shown: {shown}"
            );
        }
    }
    if let Some(arn) = body.get("role_arn").and_then(Value::as_str) {
        if let Ok(account) = parse_role_arn(arn) {
            assert!(
                account.len() == 12
                    && account.bytes().all(|b| b.is_ascii_digit())
                    && arn.split(':').nth(4) == Some(account.as_str()),
                "{arn:?} gave account {account:?}"
            );
        }
    }
    let Ok(parsed) = result else {
        return;
    };
    let obj = body
        .as_object()
        .unwrap_or_else(|| panic!("accepted a body that is not an object"));
    let kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .and_then(CredentialKind::parse);
    assert_eq!(Some(parsed.kind), kind, "the kind is not the body's");
    assert_eq!(
        parsed.name.as_deref(),
        obj.get("name").and_then(Value::as_str),
        "the name is not the body's"
    );
    assert!(!obj.contains_key("external_id"), "accepted an external_id");
    let material = parsed.material.expose_secret();
    let sealed: Value =
        serde_json::from_str(material).unwrap_or_else(|e| panic!("the material is not JSON: {e}"));
    assert_eq!(
        canonical_json(&sealed),
        material,
        "the material is not canonical JSON"
    );
    let field = |f: &str| obj.get(f).cloned().unwrap_or(Value::Null);
    let want = match parsed.kind {
        CredentialKind::GcpServiceAccountKey => field("key"),
        CredentialKind::GcpWorkloadIdentity => field("config"),
        CredentialKind::AwsAccessKey => {
            let mut m = Map::new();
            for f in [
                "access_key_id",
                "secret_access_key",
                "session_token",
                "region",
            ] {
                if let Some(v) = obj.get(f).filter(|v| !v.is_null()) {
                    m.insert(f.to_owned(), v.clone());
                }
            }
            Value::Object(m)
        }
        CredentialKind::AwsAssumeRole | CredentialKind::AwsWebIdentity => {
            json!({"role_arn": field("role_arn"), "region": field("region")})
        }
    };
    assert_eq!(sealed, want, "the material is not what the kind seals");
    if parsed.kind == CredentialKind::GcpWorkloadIdentity {
        assert!(
            sealed.get("credential_source").is_none(),
            "sealed a credential_source: Ferry's host would be read for the tenant"
        );
        let url = sealed
            .get("token_url")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let origin = Origin::of_url(url).unwrap_or_else(|e| panic!("token_url {url:?}: {e}"));
        let google = Origin::parse("https://sts.googleapis.com").ok();
        assert!(
            Some(&origin) == google.as_ref() || allowed.check_url(url).is_ok(),
            "token_url {url:?} is on neither Google's STS nor an allowed origin"
        );
    }
}

/// The paths of the secret fields.
const SECRET_FIELDS: [&[&str]; 3] = [
    &["secret_access_key"],
    &["session_token"],
    &["key", "private_key"],
];

fn shown(result: &Result<Parsed, Invalid>) -> String {
    match result {
        Ok(parsed) => format!("{parsed:?} {}", parsed.metadata),
        Err(e) => format!("{e} {e:?}"),
    }
}

fn shown_of(result: Result<Parsed, Invalid>) -> String {
    shown(&result)
}

/// `body` with each secret field's string replaced by another of the same length and
/// character classes (letters and digits rotated by one), and the replaced values that are
/// long enough not to turn up by chance (the shortest a secret access key may be).
fn other_secrets(body: &Value) -> (Value, Vec<String>) {
    let mut other = body.clone();
    let mut secrets = Vec::new();
    for path in SECRET_FIELDS {
        let mut v = Some(&mut other);
        for p in path {
            v = v.and_then(|v| v.get_mut(*p));
        }
        if let Some(Value::String(s)) = v {
            if s.len() >= 16 {
                secrets.push(s.clone());
            }
            *s = s.chars().map(rotate).collect();
        }
    }
    (other, secrets)
}

/// Every key of `v`, and every string that is not a secret field's value.
fn public_strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|i| public_strings(i, out)),
        Value::Object(m) => {
            for (k, v) in m {
                out.push(k.clone());
                let secret = SECRET_FIELDS
                    .iter()
                    .any(|path| path.last() == Some(&k.as_str()));
                if !secret {
                    public_strings(v, out);
                }
            }
        }
        _ => {}
    }
}

fn rotate(c: char) -> char {
    let next = |c: char, first: char, last: char| {
        if c == last {
            first
        } else {
            char::from_u32(c as u32 + 1).unwrap_or(c)
        }
    };
    match c {
        'a'..='z' => next(c, 'a', 'z'),
        'A'..='Z' => next(c, 'A', 'Z'),
        '0'..='9' => next(c, '0', '9'),
        other => other,
    }
}

/// `secret` as it may appear in a message: raw, Rust-escaped, JSON-escaped.
fn forms(secret: &str) -> Vec<String> {
    let unquote = |q: String| q[1..q.len() - 1].to_owned();
    let mut forms = vec![secret.to_owned(), unquote(format!("{secret:?}"))];
    if let Ok(json) = serde_json::to_string(secret) {
        forms.push(unquote(json));
    }
    forms
}
