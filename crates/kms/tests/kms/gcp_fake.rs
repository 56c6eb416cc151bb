//! Test support: an in-process fake of Cloud KMS's REST API, the two methods Ferry calls —
//! `POST /v1/{name}:encrypt` and `POST /v1/{name}:decrypt` on
//! `projects/*/locations/*/keyRings/*/cryptoKeys/*`.
//!
//! Each CryptoKey holds versions of a 256-bit secret (the newest is primary; rotation adds
//! one). A ciphertext is `version (u32 BE) || nonce || AES-256-GCM(secret, plaintext)` with
//! the request's additional authenticated data, bound to the key's name as well, so it opens
//! only under the same CryptoKey and AAD. As Cloud KMS does, the fake
//! - authenticates the bearer token: an RS256 JWT self-signed by a registered service account's
//!   key, unexpired, with the cloud-platform (or Cloud KMS) scope or audience (401 otherwise);
//! - authorizes the account on the key (403), finds the key (404), refuses a disabled primary
//!   version on encrypt and a disabled version on decrypt (400 FAILED_PRECONDITION);
//! - validates the body: JSON, only the method's fields, base64 bytes, int64 checksums
//!   (decimal strings), sizes; checks the request's CRC32C checksums and answers with its own;
//! - answers failed decryption with 400 INVALID_ARGUMENT.
//!
//! Nothing changes state but the test's own calls ([`FakeKms::create_key`], `rotate`, …).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rand::RngCore;
use rsa::pkcs8::DecodePublicKey;
use rsa::{Pkcs1v15Sign, RsaPublicKey};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

const PLAINTEXT_MAX: usize = 64 * 1024;
const AAD_MAX: usize = 64 * 1024;
const SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/cloudkms",
];
const AUDIENCE: &str = "https://cloudkms.googleapis.com";

struct CryptoKey {
    /// Version `n` is `versions[n - 1]`: (secret, enabled).
    versions: Vec<([u8; 32], bool)>,
    /// Accounts allowed to encrypt and decrypt (roles/cloudkms.cryptoKeyEncrypterDecrypter).
    users: HashSet<String>,
}

#[derive(Default)]
struct Inner {
    keys: HashMap<String, CryptoKey>,
    accounts: HashMap<String, RsaPublicKey>,
    /// `(method, key name, account)` of every authenticated call.
    journal: Vec<(String, String, String)>,
}

/// A running fake; stops when dropped.
pub struct FakeKms {
    pub endpoint: String,
    inner: Arc<Mutex<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKms {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Google's error body.
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "code": self.status.as_u16(), "message": self.message, "status": self.code}});
        (self.status, Json(body)).into_response()
    }
}

impl FakeKms {
    pub async fn start() -> FakeKms {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/v1/{*rest}", post(call))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeKms {
            endpoint,
            inner,
            task,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a service account's public key (SPKI PEM): tokens it signs authenticate.
    pub fn register_account(&self, email: &str, public_key_pem: &str) {
        let key = RsaPublicKey::from_public_key_pem(public_key_pem).unwrap();
        self.lock().accounts.insert(email.to_owned(), key);
    }

    /// Creates a CryptoKey with one enabled version, usable by `users`.
    pub fn create_key(&self, name: &str, users: &[&str]) {
        let key = CryptoKey {
            versions: vec![(random_secret(), true)],
            users: users.iter().map(|u| (*u).to_owned()).collect(),
        };
        self.lock().keys.insert(name.to_owned(), key);
    }

    /// Adds a new primary version to the key (what automatic rotation does).
    pub fn rotate(&self, name: &str) {
        self.lock()
            .keys
            .get_mut(name)
            .unwrap()
            .versions
            .push((random_secret(), true));
    }

    /// Enables or disables version `version` (1-based) of the key.
    pub fn set_enabled(&self, name: &str, version: usize, enabled: bool) {
        self.lock().keys.get_mut(name).unwrap().versions[version - 1].1 = enabled;
    }

    /// `(method, key name, account)` of every authenticated call so far.
    pub fn journal(&self) -> Vec<(String, String, String)> {
        self.lock().journal.clone()
    }
}

fn random_secret() -> [u8; 32] {
    let mut s = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut s);
    s
}

/// Cloud KMS's CRC32C (Castagnoli), computed independently of ferry-kms's.
fn crc32c(data: &[u8]) -> i64 {
    let table: Vec<u32> = (0..256u32)
        .map(|mut c| {
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0x82F6_3B78 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            c
        })
        .collect();
    let crc = data.iter().fold(!0u32, |crc, &b| {
        table[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8)
    });
    i64::from(!crc)
}

fn is_crypto_key_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    parts.len() == 8
        && parts
            .chunks(2)
            .zip(["projects", "locations", "keyRings", "cryptoKeys"])
            .all(|(pair, label)| pair[0] == label && !pair[1].is_empty())
}

/// The account whose valid token authorizes the call.
fn authenticate(inner: &Inner, headers: &HeaderMap) -> Result<String, ApiError> {
    let unauthenticated = |why: &str| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            format!("Request had invalid authentication credentials: {why}"),
        )
    };
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| unauthenticated("no bearer token"))?;
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(unauthenticated("not a JWT"));
    };
    let decode = |p: &str| {
        URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|_| unauthenticated("bad base64"))
    };
    let header: Value =
        serde_json::from_slice(&decode(h)?).map_err(|_| unauthenticated("bad JWT header"))?;
    if header["alg"] != "RS256" {
        return Err(unauthenticated("JWT alg is not RS256"));
    }
    let claims: Value =
        serde_json::from_slice(&decode(c)?).map_err(|_| unauthenticated("bad JWT claims"))?;
    let iss = claims["iss"].as_str().unwrap_or_default().to_owned();
    let key = inner
        .accounts
        .get(&iss)
        .ok_or_else(|| unauthenticated("unknown service account"))?;
    let digest = Sha256::digest(format!("{h}.{c}").as_bytes());
    key.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, &decode(s)?)
        .map_err(|_| unauthenticated("bad JWT signature"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    let (iat, exp) = (claims["iat"].as_i64(), claims["exp"].as_i64());
    match (iat, exp) {
        (Some(iat), Some(exp)) if exp > now && iat <= now + 300 && iat <= exp => {}
        _ => return Err(unauthenticated("token expired or not yet valid")),
    }
    if claims["sub"].as_str().is_some_and(|sub| sub != iss) {
        return Err(unauthenticated("sub differs from iss"));
    }
    let scoped = claims["scope"]
        .as_str()
        .is_some_and(|s| s.split(' ').any(|s| SCOPES.contains(&s)));
    let audience = claims["aud"]
        .as_str()
        .is_some_and(|a| a.trim_end_matches('/') == AUDIENCE);
    if !scoped && !audience {
        return Err(unauthenticated("no Cloud KMS scope or audience"));
    }
    Ok(iss)
}

/// The body's fields, checked against the method's: bytes fields decoded, int64 fields parsed.
struct Body {
    bytes: HashMap<&'static str, Vec<u8>>,
    ints: HashMap<&'static str, i64>,
}

fn parse_body(
    body: &[u8],
    bytes_fields: &[&'static str],
    int_fields: &[&'static str],
) -> Result<Body, ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("Invalid JSON payload received. {e}")))?;
    let Value::Object(map) = v else {
        return Err(ApiError::invalid(
            "Invalid JSON payload received: not an object",
        ));
    };
    let map: Map<String, Value> = map;
    let mut out = Body {
        bytes: HashMap::new(),
        ints: HashMap::new(),
    };
    for (k, v) in &map {
        if let Some(f) = bytes_fields.iter().find(|f| **f == k) {
            let s = v
                .as_str()
                .ok_or_else(|| ApiError::invalid(format!("{k}: expected a base64 string")))?;
            let b = STANDARD
                .decode(s)
                .map_err(|_| ApiError::invalid(format!("{k}: invalid base64")))?;
            out.bytes.insert(f, b);
        } else if let Some(f) = int_fields.iter().find(|f| **f == k) {
            // proto3 JSON writes int64 as a decimal string; numbers are accepted too.
            let n = match v {
                Value::String(s) => s.parse().ok(),
                Value::Number(n) => n.as_i64(),
                _ => None,
            }
            .ok_or_else(|| ApiError::invalid(format!("{k}: expected an int64")))?;
            out.ints.insert(f, n);
        } else {
            return Err(ApiError::invalid(format!(
                "Invalid JSON payload received. Unknown name \"{k}\": Cannot find field."
            )));
        }
    }
    Ok(out)
}

fn check_crc(body: &Body, data: &'static str, crc: &'static str) -> Result<bool, ApiError> {
    let Some(want) = body.ints.get(crc) else {
        return Ok(false);
    };
    let got = crc32c(body.bytes.get(data).map(Vec::as_slice).unwrap_or_default());
    if *want != got {
        return Err(ApiError::invalid(format!(
            "The checksum in field {crc} did not match the data in field {data}."
        )));
    }
    Ok(true)
}

fn gcm_aad(name: &str, aad: &[u8]) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.push(0);
    v.extend_from_slice(aad);
    v
}

async fn call(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(rest): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let (name, method) = rest
        .rsplit_once(':')
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such method"))?;
    if !matches!(method, "encrypt" | "decrypt") || !is_crypto_key_name(name) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no method {method} on {name}"),
        ));
    }
    let json_content = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json_content {
        return Err(ApiError::invalid("the body must be application/json"));
    }
    let mut inner = inner.lock().unwrap_or_else(|e| e.into_inner());
    let account = authenticate(&inner, &headers)?;
    let key = inner.keys.get(name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("CryptoKey {name} not found."),
        )
    })?;
    if !key.users.contains(&account) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            format!(
                "Permission 'cloudkms.cryptoKeyVersions.useTo{}' denied on resource '{name}' \
                 (or it may not exist).",
                if method == "encrypt" {
                    "Encrypt"
                } else {
                    "Decrypt"
                }
            ),
        ));
    }
    let aad_field = "additionalAuthenticatedData";
    let aad_crc = "additionalAuthenticatedDataCrc32c";
    let answer = if method == "encrypt" {
        let b = parse_body(
            &body,
            &["plaintext", aad_field],
            &["plaintextCrc32c", aad_crc],
        )?;
        let plaintext = b
            .bytes
            .get("plaintext")
            .ok_or_else(|| ApiError::invalid("plaintext is required"))?;
        let aad = b.bytes.get(aad_field).cloned().unwrap_or_default();
        if plaintext.len() > PLAINTEXT_MAX || aad.len() > AAD_MAX {
            return Err(ApiError::invalid("plaintext or AAD too large"));
        }
        let verified_plaintext = check_crc(&b, "plaintext", "plaintextCrc32c")?;
        let verified_aad = check_crc(&b, aad_field, aad_crc)?;
        let version = key.versions.len();
        let (secret, enabled) = key.versions[version - 1];
        if !enabled {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "FAILED_PRECONDITION",
                format!("{name}/cryptoKeyVersions/{version} is not enabled, current state is: DISABLED."),
            ));
        }
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = Aes256Gcm::new_from_slice(&secret)
            .unwrap()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &gcm_aad(name, &aad),
                },
            )
            .unwrap();
        let mut ciphertext = (version as u32).to_be_bytes().to_vec();
        ciphertext.extend_from_slice(&nonce);
        ciphertext.extend_from_slice(&sealed);
        json!({
            "name": format!("{name}/cryptoKeyVersions/{version}"),
            "ciphertext": STANDARD.encode(&ciphertext),
            "ciphertextCrc32c": crc32c(&ciphertext).to_string(),
            "verifiedPlaintextCrc32c": verified_plaintext,
            "verifiedAdditionalAuthenticatedDataCrc32c": verified_aad,
            "protectionLevel": "SOFTWARE",
        })
    } else {
        let b = parse_body(
            &body,
            &["ciphertext", aad_field],
            &["ciphertextCrc32c", aad_crc],
        )?;
        let ciphertext = b
            .bytes
            .get("ciphertext")
            .ok_or_else(|| ApiError::invalid("ciphertext is required"))?;
        check_crc(&b, "ciphertext", "ciphertextCrc32c")?;
        check_crc(&b, aad_field, aad_crc)?;
        let aad = b.bytes.get(aad_field).cloned().unwrap_or_default();
        let failed = || {
            ApiError::invalid(
                "Decryption failed: verify that 'name' refers to the correct CryptoKey.",
            )
        };
        if ciphertext.len() < 4 + 12 + 16 {
            return Err(failed());
        }
        let version = u32::from_be_bytes(ciphertext[..4].try_into().unwrap()) as usize;
        let (secret, enabled) = *version
            .checked_sub(1)
            .and_then(|i| key.versions.get(i))
            .ok_or_else(failed)?;
        if !enabled {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "FAILED_PRECONDITION",
                format!("{name}/cryptoKeyVersions/{version} is not enabled, current state is: DISABLED."),
            ));
        }
        let plaintext = Aes256Gcm::new_from_slice(&secret)
            .unwrap()
            .decrypt(
                Nonce::from_slice(&ciphertext[4..16]),
                Payload {
                    msg: &ciphertext[16..],
                    aad: &gcm_aad(name, &aad),
                },
            )
            .map_err(|_| failed())?;
        json!({
            "plaintext": STANDARD.encode(&plaintext),
            "plaintextCrc32c": crc32c(&plaintext).to_string(),
            "usedPrimary": version == key.versions.len(),
            "protectionLevel": "SOFTWARE",
        })
    };
    inner
        .journal
        .push((method.to_owned(), name.to_owned(), account));
    Ok(Json(answer))
}
