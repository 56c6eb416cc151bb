//! Test helpers: service-account key pairs, their JSON key files, and the self-signed JWTs
//! google-cloud-auth would make from them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use std::path::Path;

use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Why a test key could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("generating an RSA key")]
    Generate(#[source] rsa::Error),
    #[error("encoding a key as PEM: {0}")]
    Encode(String),
    #[error("signing a token")]
    Sign(#[source] rsa::Error),
    #[error("caching a test key in {path}")]
    Cache {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A service account with its key pair, for tests. RSA 2048 key generation is slow in debug
/// builds (several seconds): use [`ServiceAccount::cached`] to make each account once.
#[derive(Clone)]
pub struct ServiceAccount {
    pub email: String,
    pub project_id: String,
    pub private_key_id: String,
    pub client_id: String,
    key: RsaPrivateKey,
    private_key_pem: String,
    public_key_pem: String,
}

impl std::fmt::Debug for ServiceAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccount")
            .field("email", &self.email)
            .field("private_key_id", &self.private_key_id)
            .finish_non_exhaustive()
    }
}

/// The claims of a token made with [`ServiceAccount::token_with`].
#[derive(Debug, Clone)]
pub struct TokenClaims {
    pub iss: String,
    pub sub: Option<String>,
    pub scope: Option<String>,
    pub aud: Option<String>,
    pub iat: i64,
    pub exp: i64,
}

impl ServiceAccount {
    /// Makes `<name>@<project_id>.iam.gserviceaccount.com` with a fresh RSA 2048 key (the size
    /// Google issues and google-cloud-auth's signer accepts).
    pub fn generate(name: &str, project_id: &str) -> Result<Self, Error> {
        let key = RsaPrivateKey::new(&mut rand::thread_rng(), 2048).map_err(Error::Generate)?;
        let private_key_pem = key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| Error::Encode(e.to_string()))?
            .to_string();
        let public_key_pem = key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| Error::Encode(e.to_string()))?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        Ok(Self {
            email: format!("{name}@{project_id}.iam.gserviceaccount.com"),
            project_id: project_id.to_owned(),
            private_key_id: id.clone() + &id[..8],
            client_id: format!("1{:020}", u64::from_str_radix(&id[..15], 16).unwrap_or(7)),
            key,
            private_key_pem,
            public_key_pem,
        })
    }

    /// Like [`ServiceAccount::generate`], but keeps the JSON key file in `dir` and reuses it
    /// on later calls, from any process: test runners that start a process per test (nextest)
    /// then pay for key generation once. Pass e.g. `env!("CARGO_TARGET_TMPDIR")`.
    pub fn cached(name: &str, project_id: &str, dir: &Path) -> Result<Self, Error> {
        let path = dir.join(format!("cloudrun-fake-{name}@{project_id}.json"));
        if let Some(account) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| Self::from_key_json(&v))
        {
            return Ok(account);
        }
        let account = Self::generate(name, project_id)?;
        let cache = |source| Error::Cache {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(cache)?;
        // Write then rename, so a concurrent reader sees a whole file or none.
        let tmp = dir.join(format!(".{}.{}", uuid::Uuid::new_v4(), std::process::id()));
        std::fs::write(&tmp, account.key_json().to_string()).map_err(cache)?;
        std::fs::rename(&tmp, &path).map_err(cache)?;
        Ok(account)
    }

    /// An account from its JSON key file (as [`ServiceAccount::key_json`] writes it).
    pub fn from_key_json(v: &Value) -> Option<Self> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let private_key_pem = s("private_key")?;
        let key = RsaPrivateKey::from_pkcs8_pem(&private_key_pem).ok()?;
        let public_key_pem = key.to_public_key().to_public_key_pem(LineEnding::LF).ok()?;
        Some(Self {
            email: s("client_email")?,
            project_id: s("project_id")?,
            private_key_id: s("private_key_id")?,
            client_id: s("client_id")?,
            key,
            private_key_pem,
            public_key_pem,
        })
    }

    /// The public key, SPKI PEM: what to pass to `FakeCloudRun::register_project`.
    pub fn public_key_pem(&self) -> &str {
        &self.public_key_pem
    }

    /// The private key, PKCS#8 PEM.
    pub fn private_key_pem(&self) -> &str {
        &self.private_key_pem
    }

    /// The JSON key file Google hands out for this account.
    pub fn key_json(&self) -> Value {
        json!({
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": self.private_key_id,
            "private_key": self.private_key_pem,
            "client_email": self.email,
            "client_id": self.client_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": "https://oauth2.googleapis.com/token",
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": format!(
                "https://www.googleapis.com/robot/v1/metadata/x509/{}",
                self.email.replace('@', "%40")
            ),
            "universe_domain": "googleapis.com",
        })
    }

    /// The claims google-cloud-auth puts in a token by default (cloud-platform scope, one hour).
    pub fn default_claims(&self) -> TokenClaims {
        let now = chrono::Utc::now().timestamp();
        TokenClaims {
            iss: self.email.clone(),
            sub: Some(self.email.clone()),
            scope: Some("https://www.googleapis.com/auth/cloud-platform".into()),
            aud: None,
            iat: now - 10,
            exp: now + 3610,
        }
    }

    /// A valid bearer token, as google-cloud-auth makes it.
    pub fn token(&self) -> Result<String, Error> {
        self.token_with(&self.default_claims())
    }

    /// A token with these claims, signed by this account's key.
    pub fn token_with(&self, c: &TokenClaims) -> Result<String, Error> {
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": self.private_key_id});
        let mut claims = json!({"iss": c.iss, "aud": c.aud, "iat": c.iat, "exp": c.exp});
        if let Some(sub) = &c.sub {
            claims["sub"] = json!(sub);
        }
        if let Some(scope) = &c.scope {
            claims["scope"] = json!(scope);
        }
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let digest = Sha256::digest(input.as_bytes());
        let sig = self
            .key
            .sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
            .map_err(Error::Sign)?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}
