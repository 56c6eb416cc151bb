//! Credential material: what a request for each kind must carry, checked here once ("parse,
//! don't validate") and split into the secret material (sealed, never shown) and the metadata
//! (shown). No message built here ever quotes a secret field's value.
//!
//! The sealed material is canonical JSON, the contract with the push backends that will open
//! it:
//! - `gcp-service-account-key`: the key file's JSON object, as given;
//! - `gcp-workload-identity`: the `external_account` configuration object, as given;
//! - `aws-access-key`: `{"access_key_id", "secret_access_key", "session_token"?, "region"}`;
//! - `aws-assume-role`: `{"role_arn", "region"}` (the external id is the workspace's).

use ferry_core::{canonical_json, CredentialKind};
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

/// Parses a `POST`/`PUT /v1/credentials` body: `{"name", "kind", ...the kind's fields}`. The
/// body's string values are zeroized before this returns, whatever the outcome.
pub fn parse(mut body: Value) -> Result<Parsed, Invalid> {
    let parsed = parse_inner(&body);
    scrub(&mut body);
    parsed
}

fn parse_inner(body: &Value) -> Result<Parsed, Invalid> {
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
        CredentialKind::AwsAssumeRole => &["name", "kind", "role_arn", "region"],
    };
    only_fields(obj, allowed, &format!("a {kind} credential"))?;
    let (material, metadata) = match kind {
        CredentialKind::GcpServiceAccountKey => gcp_service_account_key(obj)?,
        CredentialKind::GcpWorkloadIdentity => gcp_workload_identity(obj)?,
        CredentialKind::AwsAccessKey => aws_access_key(obj)?,
        CredentialKind::AwsAssumeRole => aws_assume_role(obj)?,
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

/// Whether `url` is an `https` URL on exactly `host` (default port, no credentials).
fn https_on(url: &str, host: &str) -> bool {
    Url::parse(url).is_ok_and(|u| {
        u.scheme() == "https"
            && u.host_str() == Some(host)
            && u.port().is_none()
            && u.username().is_empty()
            && u.password().is_none()
    })
}

/// Whether `url` is an `http` URL on a cloud's link-local instance-metadata address (where
/// a subject token can come from Ferry's own host, and from nowhere else).
fn metadata_url(url: &str) -> bool {
    Url::parse(url).is_ok_and(|u| {
        u.scheme() == "http"
            && matches!(
                u.host_str(),
                Some("169.254.169.254") | Some("[fd00:ec2::254]")
            )
            && u.port().is_none()
            && u.username().is_empty()
    })
}

fn gcp_workload_identity(obj: &Map<String, Value>) -> Result<(SecretString, Value), Invalid> {
    let config = match obj.get("config") {
        Some(Value::Object(c)) => c,
        Some(_) => return Err(invalid("config must be the external_account configuration's JSON object")),
        None => return Err(invalid("config is required: the external_account configuration (gcloud iam workload-identity-pools create-cred-config)")),
    };
    only_fields(
        config,
        &[
            "type",
            "audience",
            "subject_token_type",
            "token_url",
            "token_info_url",
            "service_account_impersonation_url",
            "service_account_impersonation",
            "credential_source",
            "quota_project_id",
            "workforce_pool_user_project",
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
    if !audience.starts_with("//iam.googleapis.com/") {
        return Err(invalid(
            "config.audience must name a workload identity pool provider (//iam.googleapis.com/projects/.../providers/...)",
        ));
    }
    let token_type = required(config, "subject_token_type", p)?;
    if !token_type.starts_with("urn:ietf:params:") {
        return Err(invalid(
            "config.subject_token_type must be a token type URN (urn:ietf:params:...)",
        ));
    }
    let token_url = required(config, "token_url", p)?;
    if !https_on(token_url, "sts.googleapis.com") {
        return Err(invalid(format!(
            "config.token_url must be on https://sts.googleapis.com/ (got {token_url:?}): Ferry exchanges tokens only with Google"
        )));
    }
    if let Some(u) = string(config, "token_info_url", p)? {
        if !https_on(u, "sts.googleapis.com") {
            return Err(invalid(
                "config.token_info_url must be on https://sts.googleapis.com/",
            ));
        }
    }
    let mut service_account = None;
    if let Some(u) = string(config, "service_account_impersonation_url", p)? {
        if !https_on(u, "iamcredentials.googleapis.com") {
            return Err(invalid(format!(
                "config.service_account_impersonation_url must be on https://iamcredentials.googleapis.com/ (got {u:?})"
            )));
        }
        service_account = u
            .rsplit_once("/serviceAccounts/")
            .and_then(|(_, rest)| rest.split_once(':'))
            .map(|(email, _)| email.to_owned());
    }
    if let Some(u) = string(config, "universe_domain", p)? {
        if u != "googleapis.com" {
            return Err(invalid("config.universe_domain must be \"googleapis.com\""));
        }
    }
    for field in ["quota_project_id", "workforce_pool_user_project"] {
        string(config, field, p)?;
    }
    match config.get("service_account_impersonation") {
        None | Some(Value::Object(_)) => {}
        Some(_) => {
            return Err(invalid(
                "config.service_account_impersonation must be an object",
            ))
        }
    }
    let source_kind = credential_source(config)?;
    let sealed = seal_form(&Value::Object(config.clone()));
    Ok((
        sealed,
        json!({
            "audience": audience,
            "service_account": service_account,
            "credential_source": source_kind,
        }),
    ))
}

/// Checks `credential_source`; returns `aws` or `url`.
fn credential_source(config: &Map<String, Value>) -> Result<&'static str, Invalid> {
    let source = match config.get("credential_source") {
        Some(Value::Object(s)) => s,
        Some(_) => return Err(invalid("config.credential_source must be an object")),
        None => return Err(invalid("config.credential_source is required")),
    };
    if source.contains_key("file") {
        return Err(invalid(
            "config.credential_source.file is refused: Ferry never reads files on its hosts for a credential; \
             use an AWS (environment_id) or instance-metadata url source",
        ));
    }
    if source.contains_key("executable") {
        return Err(invalid(
            "config.credential_source.executable is refused: Ferry never runs programs for a credential; \
             use an AWS (environment_id) or instance-metadata url source",
        ));
    }
    only_fields(
        source,
        &[
            "environment_id",
            "region_url",
            "url",
            "regional_cred_verification_url",
            "imdsv2_session_token_url",
            "headers",
            "format",
        ],
        "config.credential_source",
    )?;
    let p = "config.credential_source.";
    match source.get("headers") {
        None => {}
        Some(Value::Object(h)) if h.values().all(Value::is_string) => {}
        Some(_) => {
            return Err(invalid(
                "config.credential_source.headers must map names to strings",
            ))
        }
    }
    match source.get("format") {
        None | Some(Value::Object(_)) => {}
        Some(_) => return Err(invalid("config.credential_source.format must be an object")),
    }
    for field in ["region_url", "url", "imdsv2_session_token_url"] {
        if let Some(u) = string(source, field, p)? {
            if !metadata_url(u) {
                return Err(invalid(format!(
                    "config.credential_source.{field} must be an instance-metadata URL (http://169.254.169.254/... or http://[fd00:ec2::254]/...)"
                )));
            }
        }
    }
    if let Some(env) = string(source, "environment_id", p)? {
        if !env.starts_with("aws") {
            return Err(invalid(format!(
                "config.credential_source.environment_id {env:?} is not supported; only aws1 is"
            )));
        }
        if let Some(u) = string(source, "regional_cred_verification_url", p)? {
            if !u.starts_with("https://sts.{region}.amazonaws.com") {
                return Err(invalid(
                    "config.credential_source.regional_cred_verification_url must be https://sts.{region}.amazonaws.com?...",
                ));
            }
        }
        return Ok("aws");
    }
    if string(source, "url", p)?.is_some() {
        if source.contains_key("regional_cred_verification_url") {
            return Err(invalid(
                "config.credential_source.regional_cred_verification_url belongs to AWS sources (environment_id)",
            ));
        }
        return Ok("url");
    }
    Err(invalid(
        "config.credential_source needs environment_id (AWS) or url (instance metadata)",
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
            "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/aws",
            "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
            "token_url": "https://sts.googleapis.com/v1/token",
            "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/run@proj.iam.gserviceaccount.com:generateAccessToken",
            "credential_source": {
                "environment_id": "aws1",
                "region_url": "http://169.254.169.254/latest/meta-data/placement/availability-zone",
                "url": "http://169.254.169.254/latest/meta-data/iam/security-credentials",
                "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
            }
        })
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
                    &["service_account_impersonation_url"],
                    json!("https://evil.com/x"),
                )),
                "iamcredentials.googleapis.com",
            ),
            (
                body(with(
                    wif(),
                    &["credential_source"],
                    json!({"file": "/etc/passwd"}),
                )),
                "credential_source.file is refused",
            ),
            (
                body(with(
                    wif(),
                    &["credential_source"],
                    json!({"executable": {"command": "/bin/sh"}}),
                )),
                "credential_source.executable is refused",
            ),
            (
                body(with(
                    wif(),
                    &["credential_source"],
                    json!({"url": "http://10.0.0.1/token"}),
                )),
                "instance-metadata URL",
            ),
            (
                body(with(
                    wif(),
                    &["credential_source"],
                    json!({"url": "http://127.0.0.1:8081/internal"}),
                )),
                "instance-metadata URL",
            ),
            (
                body(with(wif(), &["credential_source"], json!({}))),
                "needs environment_id",
            ),
            (
                body(with(
                    wif(),
                    &["credential_source"],
                    json!({"environment_id": "azure1"}),
                )),
                "not supported",
            ),
            (
                body(with(wif(), &["audience"], json!("https://example.com"))),
                "config.audience",
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
        let url_source = with(
            wif(),
            &["credential_source"],
            json!({
                "url": "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01",
                "headers": {"Metadata": "True"}, "format": {"type": "json", "subject_token_field_name": "access_token"}
            }),
        );
        assert!(parse(body(url_source)).is_ok());
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
