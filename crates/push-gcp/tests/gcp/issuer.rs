//! A test OIDC issuer standing in for Ferry's: ES256 keys from ferry-crypto, its discovery
//! document and JWKS served over HTTP (so the fake STS fetches them as Google would), tokens
//! with the server issuer's claims, and a record of what it minted. It can be turned rogue:
//! signing with a key it does not publish.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ferry_core::port::{identity_subject, IdentityTokens, SecretsError};
use ferry_core::{Name, WorkspaceId};
use ferry_crypto::jwt::SigningKey;
use secrecy::SecretString;
use serde_json::{json, Value};

/// What the issuer minted: workspace, pool, audience and the token.
pub type Minted = (WorkspaceId, Name, String, String);

pub struct TestIssuer {
    pub url: String,
    signer: Mutex<Arc<SigningKey>>,
    pub minted: Mutex<Vec<Minted>>,
}

impl TestIssuer {
    /// Serves `/.well-known/openid-configuration` and `/.well-known/jwks.json` on a free
    /// loopback port; signs with the one key it publishes.
    pub async fn start() -> Arc<TestIssuer> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (key, _) = SigningKey::generate().unwrap();
        let key = Arc::new(key);
        let issuer = Arc::new(TestIssuer {
            url: url.clone(),
            signer: Mutex::new(key.clone()),
            minted: Mutex::default(),
        });
        let discovery = json!({
            "issuer": url,
            "jwks_uri": format!("{url}/.well-known/jwks.json"),
            "id_token_signing_alg_values_supported": ["ES256"],
        });
        let jwks = json!({"keys": [key.public_jwk()]});
        let app = axum::Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || async move { axum::Json(discovery) }),
            )
            .route(
                "/.well-known/jwks.json",
                axum::routing::get(move || async move { axum::Json(jwks) }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        issuer
    }

    /// From now on, signs with a fresh key that is not in the JWKS (under its own kid).
    pub fn go_rogue(&self) {
        let (key, _) = SigningKey::generate().unwrap();
        *self.signer.lock().unwrap() = Arc::new(key);
    }

    pub fn minted(&self) -> Vec<Minted> {
        self.minted.lock().unwrap().clone()
    }

    fn claims(&self, ws: WorkspaceId, pool: &Name, audience: &str) -> Value {
        let now = chrono::Utc::now().timestamp();
        json!({
            "iss": self.url,
            "sub": identity_subject(ws, pool),
            "aud": audience,
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "jti": uuid_like(),
        })
    }
}

fn uuid_like() -> String {
    ferry_core::RunId::new().to_string()
}

#[async_trait]
impl IdentityTokens for TestIssuer {
    async fn mint(
        &self,
        ws: WorkspaceId,
        pool: &Name,
        audience: &str,
    ) -> Result<SecretString, SecretsError> {
        let claims = self.claims(ws, pool, audience);
        let signer = self.signer.lock().unwrap().clone();
        let token = signer.sign(&claims).unwrap();
        self.minted
            .lock()
            .unwrap()
            .push((ws, pool.clone(), audience.to_owned(), token.clone()));
        Ok(SecretString::from(token))
    }
}
