//! Credential material: what a request for each kind must carry, checked here once ("parse,
//! don't validate") and split into the secret material (sealed, never shown) and the metadata
//! (shown). No message built here ever quotes a secret field's value.
//!
//! The sealed material is canonical JSON, the contract with the push backends that will open
//! it:
//! - `gcp-service-account-key`: the key file's JSON object, as given;
//! - `gcp-workload-identity`: the `external_account` configuration object, as given;
//! - `aws-access-key`: `{"access_key_id", "secret_access_key", "session_token"?, "region"}`;
//! - `aws-assume-role`: `{"role_arn", "region"}` (the external id is the workspace's);
//! - `aws-web-identity`: `{"role_arn", "region"}` (assumed with Ferry's own OIDC token).
//!
//! Keyless kinds (`gcp-workload-identity`, `aws-web-identity`) present a token of Ferry's own
//! OIDC issuer whose subject names the workspace and pool; a configuration that would read a
//! subject token from Ferry's host (a `credential_source`) is refused.

use ferry_core::{canonical_json, AllowedEndpoints, CredentialKind, Origin};
use secrecy::SecretString;
use serde_json::{json, Map, Value};
use url::Url;
use zeroize::Zeroize;

/// Google's OAuth 2.0 token endpoint, the only `token_uri` a service-account key may name.
pub const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// Why a credential request was refused: a message for the caller, free of secret values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid(msg: impl Into<String>) -> Invalid {
    Invalid(msg.into())
}

/// A checked credential request.
pub struct Parsed {
    pub name: Option<String>,
    pub kind: CredentialKind,
    /// The canonical JSON to seal.
    pub material: SecretString,
    /// What is shown (never secret).
    pub metadata: Value,
}

impl std::fmt::Debug for Parsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parsed")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("material", &"[REDACTED]")
            .field("metadata", &self.metadata)
            .finish()
    }
}

/// Parses a `POST`/`PUT /v1/credentials` body: `{"name", "kind", ...the kind's fields}`;
/// `allowed` is the operator's list of endpoints a token exchange URL may also be on. The
/// body's string values are zeroized before this returns, whatever the outcome.
pub fn parse(mut body: Value, allowed: &AllowedEndpoints) -> Result<Parsed, Invalid> {
    let parsed = parse_inner(&body, allowed);
    scrub(&mut body);
    parsed
}

fn parse_inner(body: &Value, endpoints: &AllowedEndpoints) -> Result<Parsed, Invalid> {
    let obj = body.as_object().ok_or_else(|| {
        invalid("the body must be a JSON object with name, kind and the kind's fields")
    })?;
    let kind_text = match obj.get("kind") {
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(invalid("kind must be a string")),
        None => return Err(invalid(format!("kind is missing: give one of {}", kinds()))),
    };
    let kind = CredentialKind::parse(kind_text)
        .ok_or_else(|| invalid(format!("kind {kind_text:?} is not one of {}", kinds())))?;
    let name = match obj.get("name") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(invalid("name must be a string")),
    };
    if kind == CredentialKind::AwsWebIdentity && obj.contains_key("external_id") {
        return Err(invalid(
            "external_id is not accepted for aws-web-identity: the token's subject              (workspace:<workspace id>:pool:<pool name>) binds the role to this workspace;              condition your role's trust policy on it",
        ));
    }
    if kind == CredentialKind::AwsAssumeRole && obj.contains_key("external_id") {
        return Err(invalid(
            "external_id is not accepted: Ferry generates the external id for this workspace \
             and uses it on every assume-role call. Leave external_id out, and put the \
             external_id shown in this credential (and in GET /v1/workspace) in your role's \
             trust policy",
        ));
    }
    let allowed: &[&str] = match kind {
        CredentialKind::GcpServiceAccountKey => &["name", "kind", "key"],
        CredentialKind::GcpWorkloadIdentity => &["name", "kind", "config"],
        CredentialKind::AwsAccessKey => &[
            "name",
            "kind",
            "access_key_id",
            "secret_access_key",
            "session_token",
            "region",
        ],
        CredentialKind::AwsAssumeRole | CredentialKind::AwsWebIdentity => {
            &["name", "kind", "role_arn", "region"]
        }
    };
    only_fields(obj, allowed, &format!("a {kind} credential"))?;
    let (material, metadata) = match kind {
        CredentialKind::GcpServiceAccountKey => gcp_service_account_key(obj)?,
        CredentialKind::GcpWorkloadIdentity => gcp_workload_identity(obj, endpoints)?,
        CredentialKind::AwsAccessKey => aws_access_key(obj)?,
        CredentialKind::AwsAssumeRole => aws_assume_role(obj)?,
        CredentialKind::AwsWebIdentity => aws_web_identity(obj)?,
    };
    Ok(Parsed {
        name,
        kind,
        material,
        metadata,
    })
}

fn kinds() -> String {
    CredentialKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Zeroizes every string in `v` (the body's copies of the secrets).
pub(crate) fn scrub(v: &mut Value) {
    match v {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(scrub),
        Value::Object(map) => map.values_mut().for_each(scrub),
        _ => {}
    }
}

/// Canonical JSON of `v` as a secret, written into a buffer reserved up front so that no
/// reallocation leaves a copy behind.
pub(crate) fn seal_form(v: &Value) -> SecretString {
    fn bound(v: &Value) -> usize {
        match v {
            // Each byte escapes to at most 6 (\u00XX), plus quotes.
            Value::String(s) => s.len() * 6 + 2,
            Value::Array(items) => items.iter().map(bound).sum::<usize>() + items.len() + 2,
            Value::Object(m) => {
                m.iter()
                    .map(|(k, v)| k.len() * 6 + 3 + bound(v))
                    .sum::<usize>()
                    + m.len()
                    + 2
            }
            _ => 32,
        }
    }
    let mut out = String::with_capacity(bound(v));
    out.push_str(&canonical_json(v));
    SecretString::from(out)
}

fn only_fields(obj: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), Invalid> {
    if let Some(extra) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(invalid(format!(
            "unknown field {extra:?}: {what} takes only {}",
            allowed.join(", ")
        )));
    }
    Ok(())
}

/// A string field; the message names the field, never its value.
fn string<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    path: &str,
) -> Result<Option<&'a str>, Invalid> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(invalid(format!("{path}{field} must be a string"))),
    }
}

fn required<'a>(obj: &'a Map<String, Value>, field: &str, path: &str) -> Result<&'a str, Invalid> {
    match string(obj, field, path)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(invalid(format!("{path}{field} is required"))),
    }
}

/// An AWS region name such as `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`.
fn aws_region(obj: &Map<String, Value>) -> Result<String, Invalid> {
    let region = required(obj, "region", "")?;
    let parts: Vec<&str> = region.split('-').collect();
    let ok = parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|n| (1..=2).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()));
    if !ok {
        return Err(invalid(format!(
            "region {region:?} is not an AWS region name like \"us-east-1\""
        )));
    }
    Ok(region.to_owned())
}

fn aws_access_key(obj: &Map<String, Value>) -> Result<(SecretString, Value), Invalid> {
    let id = required(obj, "access_key_id", "")?;
    if !(16..=128).contains(&id.len())
        || !id
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Err(invalid(
            "access_key_id must be 16 to 128 characters of A-Z and 0-9 (like AKIAIOSFODNN7EXAMPLE)",
        ));
    }
    let secret = required(obj, "secret_access_key", "")?;
    if !(16..=128).contains(&secret.len()) || !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "secret_access_key must be 16 to 128 printable characters without spaces",
        ));
    }
    let token = string(obj, "session_token", "")?;
    if let Some(t) = token {
        if t.is_empty() || t.len() > 8192 || !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "session_token must be 1 to 8192 printable characters without spaces",
            ));
        }
    }
    let region = aws_region(obj)?;
    let mut material = json!({
        "access_key_id": id,
        "secret_access_key": secret,
        "region": region,
    });
    if let (Some(t), Some(m)) = (token, material.as_object_mut()) {
        m.insert("session_token".into(), Value::String(t.to_owned()));
    }
    let sealed = seal_form(&material);
    scrub(&mut material);
    let last4 = &id[id.len() - 4..];
    Ok((
        sealed,
        json!({
            "region": region,
            "access_key_id_last4": last4,
            "session_token": token.is_some(),
        }),
    ))
}

/// `arn:<partition>:iam::<12 digits>:role/<path/>name`; returns the account id.
pub fn parse_role_arn(arn: &str) -> Result<String, Invalid> {
    let bad = |why: &str| {
        invalid(format!(
            "role_arn {arn:?} {why}; expected arn:aws:iam::<12-digit account>:role/<name>"
        ))
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" {
        return Err(bad("is not an ARN"));
    }
    let partition = parts[1];
    let partition_ok = partition == "aws"
        || partition.strip_prefix("aws-").is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .split('-')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        });
    if !partition_ok {
        return Err(bad("has an unknown partition"));
    }
    if parts[2] != "iam" {
        return Err(bad("is not an IAM ARN"));
    }
    if !parts[3].is_empty() {
        return Err(bad("has a region (IAM ARNs have none)"));
    }
    let account = parts[4];
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("does not have a 12-digit account id"));
    }
    let Some(path) = parts[5].strip_prefix("role/") else {
        return Err(bad("is not a role"));
    };
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b);
    let segments: Vec<&str> = path.split('/').collect();
    let name = segments.last().copied().unwrap_or("");
    if path.len() > 512
        || segments
            .iter()
            .any(|s| s.is_empty() || !s.bytes().all(allowed))
        || name.len() > 64
    {
        return Err(bad("has an invalid role path or name"));
    }
    Ok(account.to_owned())
}

fn aws_assume_role(obj: &Map<String, Value>) -> Result<(SecretString, Value), Invalid> {
    let arn = required(obj, "role_arn", "")?;
    let account = parse_role_arn(arn)?;
    let region = aws_region(obj)?;
    let material = json!({"role_arn": arn, "region": region});
    Ok((
        seal_form(&material),
        json!({"role_arn": arn, "region": region, "account_id": account}),
    ))
}

/// The `rsaEncryption` algorithm of PKCS#1.
const RSA_ENCRYPTION: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// Checks a PEM-encoded PKCS#8 RSA private key of at least 2048 bits. Parsing only: the key
/// is never used here, so the RSA arithmetic (and its side channels) stays out of Ferry.
pub fn check_rsa_private_key(pem: &str) -> Result<(), Invalid> {
    let what = "key.private_key";
    let (label, doc) = pkcs8::SecretDocument::from_pem(pem).map_err(|_| {
        invalid(format!(
            "{what} is not a PEM-encoded private key (-----BEGIN PRIVATE KEY-----): copy it from the key file unchanged"
        ))
    })?;
    if label != "PRIVATE KEY" {
        return Err(invalid(format!(
            "{what} must be a PKCS#8 key (-----BEGIN PRIVATE KEY-----), as in Google's key files"
        )));
    }
    let info = pkcs8::PrivateKeyInfo::try_from(doc.as_bytes())
        .map_err(|_| invalid(format!("{what} is not a valid PKCS#8 private key")))?;
    if info.algorithm.oid != RSA_ENCRYPTION {
        return Err(invalid(format!(
            "{what} is not an RSA key; Google service-account keys are RSA"
        )));
    }
    let rsa = pkcs1::RsaPrivateKey::try_from(info.private_key)
        .map_err(|_| invalid(format!("{what} is not a valid RSA private key")))?;
    let bits = rsa.modulus.as_bytes().len() * 8;
    if bits < 2048 {
        return Err(invalid(format!(
            "{what} is an RSA key of {bits} bits; at least 2048 are required"
        )));
    }
    Ok(())
}

fn gcp_service_account_key(obj: &Map<String, Value>) -> Result<(SecretString, Value), Invalid> {
    let key = match obj.get("key") {
        Some(Value::Object(k)) => k,
        Some(Value::String(_)) => {
            return Err(invalid(
                "key must be the key file's JSON object, not a string: send {\"key\": <the file's contents>}",
            ))
        }
        Some(_) => return Err(invalid("key must be the key file's JSON object")),
        None => return Err(invalid("key is required: the service account's JSON key file")),
    };
    let p = "key.";
    match string(key, "type", p)? {
        Some("service_account") => {}
        Some(other) => {
            return Err(invalid(format!(
                "key.type must be \"service_account\" (got {other:?}); download a key of the service account"
            )))
        }
        None => return Err(invalid("key.type is required (\"service_account\")")),
    }
    let token_uri = required(key, "token_uri", p)?;
    if token_uri != GOOGLE_TOKEN_URI {
        return Err(invalid(format!(
            "key.token_uri must be {GOOGLE_TOKEN_URI:?} (got {token_uri:?}): Ferry sends keys only to Google"
        )));
    }
    if let Some(u) = string(key, "universe_domain", p)? {
        if u != "googleapis.com" {
            return Err(invalid(format!(
                "key.universe_domain must be \"googleapis.com\" (got {u:?})"
            )));
        }
    }
    let email = required(key, "client_email", p)?;
    if !email.contains('@') || email.chars().any(char::is_whitespace) {
        return Err(invalid(format!(
            "key.client_email {email:?} is not an email address"
        )));
    }
    let pem = required(key, "private_key", p)?;
    check_rsa_private_key(pem)?;
    for field in [
        "private_key_id",
        "project_id",
        "client_id",
        "auth_uri",
        "auth_provider_x509_cert_url",
        "client_x509_cert_url",
    ] {
        string(key, field, p)?;
    }
    let project = string(key, "project_id", p)?;
    let sealed = seal_form(&Value::Object(key.clone()));
    Ok((
        sealed,
        json!({"client_email": email, "project_id": project}),
    ))
}

/// The origin of Google's Security Token Service, where workload identity tokens are exchanged.
const GOOGLE_STS: &str = "https://sts.googleapis.com";
/// The origin of Google's IAM Credentials API, where a federated identity impersonates a
/// service account.
const GOOGLE_IAM_CREDENTIALS: &str = "https://iamcredentials.googleapis.com";
/// The only subject token types a workload identity pool's OIDC provider takes.
const OIDC_TOKEN_TYPES: [&str; 2] = [
    "urn:ietf:params:oauth:token-type:jwt",
    "urn:ietf:params:oauth:token-type:id_token",
];

/// What to do instead of a `credential_source`: the message of every refusal of one.
const USE_FERRY_ISSUER: &str = "leave credential_source out: Ferry presents its own OIDC token \
     (sub workspace:<workspace id>:pool:<pool name>, aud = this config's audience, issuer = \
     this Ferry's public URL, see GET /.well-known/openid-configuration); trust Ferry's issuer \
     in your workload identity pool (an OIDC provider with that issuer URI) and grant the \
     principal of that subject";

/// Whether `url` is on `origin` (compared after parsing, never as a string prefix).
fn on_origin(url: &str, origin: &str) -> bool {
    match (Origin::of_url(url), Origin::parse(origin)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Checks that `url` (the config's `field`) is on `google` or an origin the operator allows.
fn google_or_allowed(
    url: &str,
    field: &str,
    google: &str,
    allowed: &AllowedEndpoints,
) -> Result<(), Invalid> {
    let parsed = Url::parse(url).ok();
    let bare = parsed.as_ref().is_some_and(|u| {
        u.username().is_empty() && u.password().is_none() && u.fragment().is_none()
    });
    if bare && (on_origin(url, google) || allowed.check_url(url).is_ok()) {
        return Ok(());
    }
    Err(invalid(format!(
        "config.{field} must be on {google}/ or on an origin the operator allows \
         (FERRY_ALLOWED_ENDPOINTS) (got {url:?}): Ferry sends its identity tokens nowhere else"
    )))
}

/// `//iam.googleapis.com/projects/<number>/locations/global/workloadIdentityPools/<pool>/providers/<provider>`.
fn workload_identity_audience(audience: &str) -> bool {
    let Some(rest) = audience.strip_prefix("//iam.googleapis.com/projects/") else {
        return false;
    };
    let parts: Vec<&str> = rest.split('/').collect();
    let id = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    matches!(
        parts.as_slice(),
        [project, "locations", "global", "workloadIdentityPools", pool, "providers", provider]
            if !project.is_empty() && project.bytes().all(|b| b.is_ascii_digit())
                && id(pool) && id(provider)
    )
}

/// The service account of an impersonation URL
/// (`.../v1/projects/-/serviceAccounts/<email>:generateAccessToken`).
pub fn impersonated_account(url: &str) -> Option<String> {
    let u = Url::parse(url).ok()?;
    let email = u
        .path()
        .strip_prefix("/v1/projects/-/serviceAccounts/")?
        .strip_suffix(":generateAccessToken")?;
    let ok =
        email.contains('@') && !email.contains('/') && email.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| email.to_owned())
}

fn gcp_workload_identity(
    obj: &Map<String, Value>,
    allowed: &AllowedEndpoints,
) -> Result<(SecretString, Value), Invalid> {
    let config = match obj.get("config") {
        Some(Value::Object(c)) => c,
        Some(_) => return Err(invalid("config must be the external_account configuration's JSON object")),
        None => return Err(invalid("config is required: {\"type\": \"external_account\", \"audience\": <your workload identity pool provider>, \"subject_token_type\": \"urn:ietf:params:oauth:token-type:jwt\", \"token_url\": \"https://sts.googleapis.com/v1/token\"}")),
    };
    // Refused first, whatever else is wrong: the confused deputy this kind must never be.
    if let Some(source) = config.get("credential_source") {
        let forms: Vec<&str> = match source {
            Value::Object(s) => s.keys().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        let what = if forms.is_empty() {
            String::new()
        } else {
            format!(" ({})", forms.join(", "))
        };
        return Err(invalid(format!(
            "config.credential_source{what} is refused: it would read a subject token from \
             Ferry's own host (its instance metadata, files, programs or cloud identity) and \
             present Ferry's identity for this workspace; {USE_FERRY_ISSUER}"
        )));
    }
    only_fields(
        config,
        &[
            "type",
            "audience",
            "subject_token_type",
            "token_url",
            "service_account_impersonation_url",
            "quota_project_id",
            "universe_domain",
        ],
        "config",
    )?;
    let p = "config.";
    match string(config, "type", p)? {
        Some("external_account") => {}
        Some(other) => {
            return Err(invalid(format!(
                "config.type must be \"external_account\" (got {other:?})"
            )))
        }
        None => return Err(invalid("config.type is required (\"external_account\")")),
    }
    let audience = required(config, "audience", p)?;
    if !workload_identity_audience(audience) {
        return Err(invalid(format!(
            "config.audience must name a workload identity pool provider: \
             //iam.googleapis.com/projects/<project number>/locations/global/workloadIdentityPools/<pool>/providers/<provider> (got {audience:?})"
        )));
    }
    let token_type = required(config, "subject_token_type", p)?;
    if !OIDC_TOKEN_TYPES.contains(&token_type) {
        return Err(invalid(format!(
            "config.subject_token_type must be \"urn:ietf:params:oauth:token-type:jwt\": Ferry presents an OIDC JWT (got {token_type:?})"
        )));
    }
    let token_url = required(config, "token_url", p)?;
    google_or_allowed(token_url, "token_url", GOOGLE_STS, allowed)?;
    let mut service_account = None;
    if let Some(u) = string(config, "service_account_impersonation_url", p)? {
        // google-cloud-auth impersonates only through Google's IAM Credentials API (it takes
        // the account, not a URL), so no other origin could be honoured.
        if !on_origin(u, GOOGLE_IAM_CREDENTIALS) {
            return Err(invalid(format!(
                "config.service_account_impersonation_url must be on {GOOGLE_IAM_CREDENTIALS}/ (got {u:?})"
            )));
        }
        service_account = Some(impersonated_account(u).ok_or_else(|| {
            invalid(format!(
                "config.service_account_impersonation_url must be {GOOGLE_IAM_CREDENTIALS}/v1/projects/-/serviceAccounts/<email>:generateAccessToken (got {u:?})"
            ))
        })?);
    }
    if let Some(u) = string(config, "universe_domain", p)? {
        if u != "googleapis.com" {
            return Err(invalid("config.universe_domain must be \"googleapis.com\""));
        }
    }
    string(config, "quota_project_id", p)?;
    let sealed = seal_form(&Value::Object(config.clone()));
    Ok((
        sealed,
        json!({
            "audience": audience,
            "service_account": service_account,
            "subject": "workspace:<workspace id>:pool:<pool name>",
        }),
    ))
}

/// The audience of the tokens Ferry presents to AWS STS (`AssumeRoleWithWebIdentity`): the
/// client id to register in the IAM OIDC provider.
pub const AWS_STS_AUDIENCE: &str = "sts.amazonaws.com";

fn aws_web_identity(obj: &Map<String, Value>) -> Result<(SecretString, Value), Invalid> {
    let arn = required(obj, "role_arn", "")?;
    let account = parse_role_arn(arn)?;
    let region = aws_region(obj)?;
    let material = json!({"role_arn": arn, "region": region});
    Ok((
        seal_form(&material),
        json!({
            "role_arn": arn,
            "region": region,
            "account_id": account,
            "audience": AWS_STS_AUDIENCE,
            "subject": "workspace:<workspace id>:pool:<pool name>",
        }),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    const PEM: &str = include_str!("../tests/fixtures/gcp-sa-key.pem");
    const PKCS1: &str = include_str!("../tests/fixtures/rsa-pkcs1.pem");
    const SHORT: &str = include_str!("../tests/fixtures/rsa-1024.pem");
    const EC: &str = include_str!("../tests/fixtures/ec-p256.pem");

    fn sa_key() -> Value {
        json!({
            "type": "service_account",
            "project_id": "proj",
            "private_key_id": "0123456789abcdef",
            "private_key": PEM,
            "client_email": "ferry@proj.iam.gserviceaccount.com",
            "client_id": "1234",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": GOOGLE_TOKEN_URI,
            "universe_domain": "googleapis.com",
        })
    }

    fn wif() -> Value {
        json!({
            "type": "external_account",
            "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/ferry/providers/ferry-oidc",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": "https://sts.googleapis.com/v1/token",
            "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/run@proj.iam.gserviceaccount.com:generateAccessToken",
        })
    }

    /// The tests' `parse`: the operator's default endpoints.
    fn parse(body: Value) -> Result<Parsed, Invalid> {
        super::parse(body, &AllowedEndpoints::default())
    }

    fn with(mut v: Value, path: &[&str], value: Value) -> Value {
        let mut cur = &mut v;
        for p in &path[..path.len() - 1] {
            cur = &mut cur[*p];
        }
        let last = path[path.len() - 1];
        if value.is_null() {
            if let Some(o) = cur.as_object_mut() {
                o.remove(last);
            }
        } else {
            cur[last] = value;
        }
        v
    }

    fn err(body: Value) -> String {
        match parse(body) {
            Ok(p) => panic!("accepted: {p:?}"),
            Err(e) => e.0,
        }
    }

    #[test]
    fn good_bodies_of_each_kind() {
        let cases = [
            json!({"name": "g", "kind": "gcp-service-account-key", "key": sa_key()}),
            json!({"name": "w", "kind": "gcp-workload-identity", "config": wif()}),
            json!({"name": "a", "kind": "aws-access-key", "access_key_id": "AKIAIOSFODNN7EXAMPLE",
                   "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "region": "us-east-1"}),
            json!({"name": "r", "kind": "aws-assume-role", "role_arn": "arn:aws:iam::111111111111:role/x", "region": "eu-west-2"}),
            json!({"name": "k", "kind": "aws-web-identity", "role_arn": "arn:aws:iam::111111111111:role/x", "region": "eu-west-2"}),
            json!({"name": "w", "kind": "gcp-workload-identity", "config": with(wif(), &["service_account_impersonation_url"], Value::Null)}),
        ];
        for body in cases {
            let p = parse(body.clone()).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert!(!p.material.expose_secret().is_empty());
        }
    }

    #[test]
    fn metadata_holds_no_secret() {
        let p = parse(json!({"name": "a", "kind": "aws-access-key", "access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "session_token": "tok-SECRET-1234567",
            "region": "us-east-1"})).unwrap();
        let shown = p.metadata.to_string();
        assert_eq!(p.metadata["access_key_id_last4"], "MPLE");
        for secret in ["AKIAIOSFODNN7EXA", "wJalrXUtnFEMI", "tok-SECRET"] {
            assert!(!shown.contains(secret), "{shown}");
            assert!(p.material.expose_secret().contains(secret));
        }
        assert!(!format!("{p:?}").contains("wJalrXUtnFEMI"));
        let g = parse(json!({"kind": "gcp-service-account-key", "key": sa_key()})).unwrap();
        assert!(!g.metadata.to_string().contains("PRIVATE"));
        assert!(!g.metadata.to_string().contains("0123456789abcdef"));
        assert_eq!(
            g.metadata["client_email"],
            "ferry@proj.iam.gserviceaccount.com"
        );
    }

    #[test]
    fn bad_service_account_keys_say_what_is_wrong() {
        let body = |key: Value| json!({"name": "g", "kind": "gcp-service-account-key", "key": key});
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({"name": "g", "kind": "gcp-service-account-key"}),
                "key is required",
            ),
            (
                body(json!("{\"type\": \"service_account\"}")),
                "not a string",
            ),
            (
                body(with(sa_key(), &["type"], json!("authorized_user"))),
                "key.type must be \"service_account\"",
            ),
            (
                body(with(sa_key(), &["type"], Value::Null)),
                "key.type is required",
            ),
            (
                body(with(
                    sa_key(),
                    &["token_uri"],
                    json!("https://evil.example.com/token"),
                )),
                "key.token_uri must be",
            ),
            (
                body(with(
                    sa_key(),
                    &["token_uri"],
                    json!("http://oauth2.googleapis.com/token"),
                )),
                "key.token_uri must be",
            ),
            (
                body(with(sa_key(), &["client_email"], Value::Null)),
                "key.client_email is required",
            ),
            (
                body(with(sa_key(), &["client_email"], json!("nobody"))),
                "not an email",
            ),
            (
                body(with(sa_key(), &["private_key"], Value::Null)),
                "key.private_key is required",
            ),
            (
                body(with(sa_key(), &["private_key"], json!("not a pem"))),
                "not a PEM-encoded private key",
            ),
            (
                body(with(sa_key(), &["private_key"], json!(PKCS1))),
                "must be a PKCS#8 key",
            ),
            (
                body(with(sa_key(), &["private_key"], json!(SHORT))),
                "1024 bits",
            ),
            (
                body(with(sa_key(), &["private_key"], json!(EC))),
                "not an RSA key",
            ),
            (
                body(with(
                    sa_key(),
                    &["private_key"],
                    json!(PEM.replace("MII", "MIJ")),
                )),
                "private key",
            ),
            (
                body(with(sa_key(), &["private_key"], json!(5))),
                "key.private_key must be a string",
            ),
            (
                body(with(sa_key(), &["universe_domain"], json!("example.com"))),
                "universe_domain",
            ),
        ];
        for (body, want) in cases {
            let msg = err(body.clone());
            assert!(msg.contains(want), "{body}: {msg:?} lacks {want:?}");
            let body_line = PEM.lines().nth(1).unwrap_or("-");
            assert!(!msg.contains(body_line), "{msg}");
        }
    }

    #[test]
    fn a_credential_source_is_refused_in_every_form_naming_what_to_use() {
        let body =
            |config: Value| json!({"name": "w", "kind": "gcp-workload-identity", "config": config});
        let sources = [
            json!({"url": "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01",
                   "headers": {"Metadata": "True"}, "format": {"type": "json", "subject_token_field_name": "access_token"}}),
            json!({"environment_id": "aws1",
                   "region_url": "http://169.254.169.254/latest/meta-data/placement/availability-zone",
                   "url": "http://169.254.169.254/latest/meta-data/iam/security-credentials",
                   "imdsv2_session_token_url": "http://169.254.169.254/latest/api/token",
                   "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"}),
            json!({"file": "/var/run/secrets/token"}),
            json!({"executable": {"command": "/bin/sh -c id"}}),
            json!({"url": "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/identity", "headers": {"Metadata-Flavor": "Google"}}),
            json!({"format": {"type": "text"}}),
            json!({}),
            json!("anything"),
        ];
        for source in sources {
            let first = source.as_object().and_then(|o| o.keys().next().cloned());
            let msg = err(body(with(wif(), &["credential_source"], source.clone())));
            for want in [
                "config.credential_source",
                "is refused",
                "leave credential_source out",
                "workspace:<workspace id>:pool:<pool name>",
                "trust Ferry's issuer",
            ] {
                assert!(msg.contains(want), "{source}: {msg:?} lacks {want:?}");
            }
            if let Some(k) = first {
                assert!(msg.contains(&k), "{source}: {msg:?} does not name {k}");
            }
        }
        // Positive control: the same config without a source.
        assert!(parse(body(wif())).is_ok());
    }

    #[test]
    fn bad_workload_identity_configs_say_what_is_wrong() {
        let body =
            |config: Value| json!({"name": "w", "kind": "gcp-workload-identity", "config": config});
        let cases: Vec<(Value, &str)> = vec![
            (
                body(with(wif(), &["type"], json!("service_account"))),
                "config.type must be \"external_account\"",
            ),
            (
                body(with(
                    wif(),
                    &["token_url"],
                    json!("https://sts.evil.com/v1/token"),
                )),
                "config.token_url must be on https://sts.googleapis.com/",
            ),
            (
                body(with(
                    wif(),
                    &["token_url"],
                    json!("http://sts.googleapis.com/v1/token"),
                )),
                "config.token_url",
            ),
            (
                body(with(
                    wif(),
                    &["token_url"],
                    json!("https://sts.googleapis.com.evil.com/v1/token"),
                )),
                "config.token_url",
            ),
            (
                body(with(
                    wif(),
                    &["token_url"],
                    json!("https://user@sts.googleapis.com/v1/token"),
                )),
                "config.token_url",
            ),
            (
                body(with(
                    wif(),
                    &["token_url"],
                    json!("http://127.0.0.1:9/v1/token"),
                )),
                "FERRY_ALLOWED_ENDPOINTS",
            ),
            (
                body(with(
                    wif(),
                    &["service_account_impersonation_url"],
                    json!("https://evil.com/x"),
                )),
                "iamcredentials.googleapis.com",
            ),
            (
                body(with(
                    wif(),
                    &["service_account_impersonation_url"],
                    json!("https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/nobody"),
                )),
                ":generateAccessToken",
            ),
            (
                body(with(wif(), &["audience"], json!("https://example.com"))),
                "config.audience must name a workload identity pool provider",
            ),
            (
                body(with(
                    wif(),
                    &["audience"],
                    json!("//iam.googleapis.com/locations/global/workforcePools/p/providers/x"),
                )),
                "config.audience",
            ),
            (
                body(with(
                    wif(),
                    &["subject_token_type"],
                    json!("urn:ietf:params:aws:token-type:aws4_request"),
                )),
                "Ferry presents an OIDC JWT",
            ),
            (
                body(with(wif(), &["universe_domain"], json!("example.com"))),
                "universe_domain",
            ),
            (
                body(with(wif(), &["token_info_url"], json!("https://sts.googleapis.com/v1/introspect"))),
                "unknown field \"token_info_url\"",
            ),
            (
                body(with(wif(), &["surprise"], json!(1))),
                "unknown field \"surprise\"",
            ),
            (
                json!({"name": "w", "kind": "gcp-workload-identity"}),
                "config is required",
            ),
        ];
        for (body, want) in cases {
            let msg = err(body.clone());
            assert!(msg.contains(want), "{body}: {msg:?} lacks {want:?}");
        }
    }

    #[test]
    fn a_token_url_on_an_origin_the_operator_allows_is_accepted() {
        let body = json!({"name": "w", "kind": "gcp-workload-identity",
            "config": with(wif(), &["token_url"], json!("http://127.0.0.1:4444/v1/token"))});
        let allowed = AllowedEndpoints::none()
            .with("http://127.0.0.1:4444")
            .unwrap();
        assert!(super::parse(body.clone(), &allowed).is_ok());
        // Another port, or a name that merely starts the same, is not that origin.
        for url in [
            "http://127.0.0.1:4445/v1/token",
            "http://127.0.0.1.evil.tld:4444/v1/token",
        ] {
            let other = json!({"name": "w", "kind": "gcp-workload-identity",
                "config": with(wif(), &["token_url"], json!(url))});
            assert!(super::parse(other, &allowed).is_err(), "{url}");
        }
        // The default list does not allow loopback.
        assert!(parse(body).is_err());
    }

    #[test]
    fn bad_aws_credentials_say_what_is_wrong() {
        let key = json!({"name": "a", "kind": "aws-access-key", "access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "region": "us-east-1"});
        let role = json!({"name": "r", "kind": "aws-assume-role", "role_arn": "arn:aws:iam::111111111111:role/x", "region": "us-east-1"});
        let cases: Vec<(Value, &str)> = vec![
            (
                with(key.clone(), &["access_key_id"], json!("akia-lower")),
                "access_key_id must be",
            ),
            (
                with(key.clone(), &["secret_access_key"], Value::Null),
                "secret_access_key is required",
            ),
            (
                with(key.clone(), &["secret_access_key"], json!("short")),
                "secret_access_key must be",
            ),
            (
                with(key.clone(), &["region"], json!("mars-1")),
                "region \"mars-1\"",
            ),
            (
                with(key.clone(), &["region"], Value::Null),
                "region is required",
            ),
            (
                with(key.clone(), &["session_token"], json!("has space in it")),
                "session_token",
            ),
            (
                with(key.clone(), &["role_arn"], json!("arn:aws:iam::1:role/x")),
                "unknown field \"role_arn\"",
            ),
            (
                with(role.clone(), &["external_id"], json!("mine")),
                "Ferry generates the external id",
            ),
            (
                with(
                    with(role.clone(), &["kind"], json!("aws-web-identity")),
                    &["external_id"],
                    json!("mine"),
                ),
                "the token's subject",
            ),
            (
                with(role.clone(), &["kind"], json!("aws-web-identity"))
                    .as_object()
                    .map(|o| {
                        let mut o = o.clone();
                        o.insert("access_key_id".into(), json!("AKIAIOSFODNN7EXAMPLE"));
                        Value::Object(o)
                    })
                    .unwrap(),
                "unknown field \"access_key_id\"",
            ),
            (
                with(
                    role.clone(),
                    &["role_arn"],
                    json!("arn:aws:iam::11111111111:role/x"),
                ),
                "12-digit",
            ),
            (
                with(
                    role.clone(),
                    &["role_arn"],
                    json!("arn:aws:iam::111111111111:user/x"),
                ),
                "is not a role",
            ),
            (
                with(role.clone(), &["role_arn"], json!("arn:aws:s3:::bucket")),
                "role_arn",
            ),
            (
                with(
                    role.clone(),
                    &["role_arn"],
                    json!("arn:aws:iam:us-east-1:111111111111:role/x"),
                ),
                "has a region",
            ),
            (
                with(
                    role.clone(),
                    &["role_arn"],
                    json!("arn:evil:iam::111111111111:role/x"),
                ),
                "partition",
            ),
            (
                with(
                    role.clone(),
                    &["role_arn"],
                    json!("arn:aws:iam::111111111111:role/"),
                ),
                "role path or name",
            ),
            (
                with(
                    role.clone(),
                    &["role_arn"],
                    json!("arn:aws:iam::111111111111:role/a//b"),
                ),
                "role path or name",
            ),
            (
                with(role.clone(), &["role_arn"], json!("not-an-arn")),
                "is not an ARN",
            ),
            (json!({"name": "x", "kind": "azure-key"}), "is not one of"),
            (json!({"name": "x"}), "kind is missing"),
            (json!([1, 2]), "JSON object"),
        ];
        for (body, want) in cases {
            let msg = err(body.clone());
            assert!(msg.contains(want), "{body}: {msg:?} lacks {want:?}");
        }
        for arn in [
            "arn:aws:iam::111111111111:role/x",
            "arn:aws-us-gov:iam::111111111111:role/path/to/Role_Name+=,.@-",
            "arn:aws-cn:iam::123456789012:role/service-role/x",
        ] {
            assert_eq!(parse_role_arn(arn).map(|a| a.len()), Ok(12), "{arn}");
        }
    }

    #[test]
    fn messages_never_quote_secret_values() {
        let secret = "SECRET-VALUE-canary-42";
        let bodies = [
            json!({"kind": "aws-access-key", "access_key_id": secret, "secret_access_key": secret, "region": "us-east-1"}),
            json!({"kind": "aws-access-key", "access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": secret, "session_token": format!("{secret} x"), "region": "us-east-1"}),
            json!({"kind": "gcp-service-account-key", "key": secret}),
            json!({"kind": "gcp-service-account-key", "key": with(sa_key(), &["private_key"], json!(secret))}),
            json!({"kind": "gcp-workload-identity", "config": with(wif(), &["credential_source"], json!({"url": "http://10.0.0.1/", "headers": {"Authorization": secret}}))}),
        ];
        for body in bodies {
            let msg = err(body);
            assert!(!msg.contains("canary"), "{msg}");
        }
    }
}
