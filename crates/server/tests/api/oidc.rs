//! Ferry as an OIDC issuer: the discovery document and JWKS are public (no key) on the public
//! listener only, with the right issuer; a minted token verifies against the served JWKS (with
//! an independent ES256 verifier, as a cloud would) and says sub/aud/exp; after a rotation the
//! old key is served while its tokens live, then dropped, and the next key is published before
//! it signs; processes racing to make the first key agree on one; the private key is nowhere
//! in the database in the clear; and keyless credentials refuse every host-sourced
//! `credential_source`, naming Ferry's token as what to use.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use ferry_core::{Name, WorkspaceId};
use serde_json::{json, Value};

use crate::support::{App, Kind, Reply};

/// A GET without any credentials.
async fn public(app: &App, url: &str) -> (Reply, Option<String>) {
    let resp = app.http.get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    let cache = resp
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    (Reply { status, body, text }, cache)
}

async fn jwks(app: &App) -> Value {
    let (r, _) = public(app, &format!("{}/.well-known/jwks.json", app.url)).await;
    r.expect(200);
    r.body
}

fn kids(jwks: &Value) -> Vec<String> {
    let mut k: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    k.sort();
    k
}

/// Verifies an ES256 compact JWS against a JWKS the way a relying party does: the key of the
/// header's kid, ring's P-256 verifier over the JWK's x and y (not ferry-crypto's code).
fn verify(token: &str, jwks: &Value) -> Result<Value, String> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err("not a JWS".into());
    }
    let part = |p: &str| -> Result<Value, String> {
        let bytes = URL_SAFE_NO_PAD.decode(p).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    };
    let header = part(parts[0])?;
    if header["alg"] != "ES256" || header["typ"] != "JWT" {
        return Err(format!("header {header}"));
    }
    let kid = header["kid"].as_str().ok_or("no kid")?;
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .ok_or_else(|| format!("kid {kid} is not served"))?;
    let mut point = vec![4u8];
    for c in ["x", "y"] {
        point.extend(URL_SAFE_NO_PAD.decode(key[c].as_str().unwrap()).unwrap());
    }
    let sig = URL_SAFE_NO_PAD
        .decode(parts[2])
        .map_err(|e| e.to_string())?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .map_err(|_| "bad signature".to_owned())?;
    part(parts[1])
}

fn kid_of(token: &str) -> String {
    let (h, _) = ferry_crypto::jwt::decode_unverified(token).unwrap();
    h["kid"].as_str().unwrap().to_owned()
}

fn sql_time(t: DateTime<Utc>) -> String {
    format!("'{}'", t.to_rfc3339_opts(SecondsFormat::Micros, false))
}

/// Sets key `kid`'s times (raw SQL: the state a month of running would leave).
async fn set_times(app: &App, kid: &str, times: &[(&str, DateTime<Utc>)]) {
    let set: Vec<String> = times
        .iter()
        .map(|(c, t)| format!("{c} = {}", sql_time(*t)))
        .collect();
    app.exec(&format!(
        "UPDATE issuer_keys SET {} WHERE kid = '{kid}'",
        set.join(", ")
    ))
    .await;
}

backend_test!(the_discovery_document_and_jwks_are_public_with_the_right_issuer);
async fn the_discovery_document_and_jwks_are_public_with_the_right_issuer(app: App) {
    let (d, cache) = public(
        &app,
        &format!("{}/.well-known/openid-configuration", app.url),
    )
    .await;
    d.expect(200);
    assert_eq!(d.body["issuer"], app.url);
    let jwks_uri = d.body["jwks_uri"].as_str().unwrap().to_owned();
    assert_eq!(jwks_uri, format!("{}/.well-known/jwks.json", app.url));
    assert_eq!(
        d.body["id_token_signing_alg_values_supported"],
        json!(["ES256"])
    );
    assert!(cache.unwrap().contains("max-age"));

    let (j, _) = public(&app, &jwks_uri).await;
    j.expect(200);
    let keys = j.body["keys"].as_array().unwrap();
    assert_eq!(
        keys.len(),
        1,
        "the first key is made on first use: {}",
        j.text
    );
    let k = &keys[0];
    assert_eq!(
        (&k["kty"], &k["crv"], &k["alg"], &k["use"]),
        (
            &json!("EC"),
            &json!("P-256"),
            &json!("ES256"),
            &json!("sig")
        )
    );
    assert!(k.get("d").is_none(), "no private part: {k}");
    // Served again, the same key.
    assert_eq!(kids(&jwks(&app).await), kids(&j.body));

    // Public means no key at all, and a bad key does not hurt; the API next door is not.
    let bad = app
        .http
        .get(&jwks_uri)
        .bearer_auth("fry_not-a-key")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 200);
    let (api, _) = public(&app, &format!("{}/v1/credentials", app.url)).await;
    api.expect(401);
    // The internal listener does not serve them.
    let (internal, _) = public(
        &app,
        &format!("{}/.well-known/openid-configuration", app.internal_url),
    )
    .await;
    internal.expect(404);
    // Both are in the OpenAPI document.
    let (doc, _) = public(&app, &format!("{}/openapi.json", app.url)).await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/jwks.json",
    ] {
        assert!(doc.body["paths"].get(path).is_some(), "{path} missing");
    }
}

backend_test!(a_minted_token_verifies_against_the_served_jwks);
async fn a_minted_token_verifies_against_the_served_jwks(app: App) {
    let issuer = app.issuer();
    let ws = WorkspaceId::new();
    let pool = Name::parse("etl-nightly").unwrap();
    let token = issuer
        .mint_token(ws, &pool, "sts.amazonaws.com")
        .await
        .unwrap();
    let served = jwks(&app).await;
    let claims = verify(&token, &served).unwrap();
    let now = Utc::now().timestamp();
    assert_eq!(claims["iss"], app.url);
    assert_eq!(claims["sub"], format!("workspace:{ws}:pool:etl-nightly"));
    assert_eq!(claims["aud"], "sts.amazonaws.com");
    let (iat, nbf, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["nbf"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert!(iat <= now + 1 && nbf <= now + 1 && exp > now, "{claims}");
    assert!(exp - iat > 0 && exp - iat <= 15 * 60, "{claims}");
    assert!(claims["jti"].as_str().unwrap().len() >= 16);
    assert_eq!(kids(&served), [kid_of(&token)]);

    // Through the port, for Google's audience: the same key, another jti.
    let gcp = "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/ferry/providers/ferry-oidc";
    let t2 = ferry_core::port::IdentityTokens::mint(&issuer, ws, &pool, gcp)
        .await
        .unwrap();
    let c2 = verify(secrecy::ExposeSecret::expose_secret(&t2), &served).unwrap();
    assert_eq!(c2["aud"], gcp);
    assert_ne!(c2["jti"], claims["jti"]);

    // Negative controls: a changed claim, and a key that is not served.
    let parts: Vec<&str> = token.split('.').collect();
    let other_sub = URL_SAFE_NO_PAD.encode(
        json!({"sub": format!("workspace:{}:pool:etl-nightly", WorkspaceId::new())}).to_string(),
    );
    assert_eq!(
        verify(&format!("{}.{other_sub}.{}", parts[0], parts[2]), &served),
        Err("bad signature".into())
    );
    let (stranger, _) = ferry_crypto::jwt::SigningKey::generate().unwrap();
    let forged = stranger.sign(&claims).unwrap();
    assert!(verify(&forged, &served)
        .unwrap_err()
        .contains("is not served"));
}

backend_test!(after_rotation_the_old_key_is_served_while_its_tokens_live_then_dropped);
async fn after_rotation_the_old_key_is_served_while_its_tokens_live_then_dropped(app: App) {
    let issuer = app.issuer();
    let ws = WorkspaceId::new();
    let pool = Name::parse("p").unwrap();
    let old_token = issuer.mint_token(ws, &pool, "aud").await.unwrap();
    let old = kid_of(&old_token);
    let now = Utc::now();

    // A month on: the key retired a minute ago; its last tokens live up to 10 minutes more.
    set_times(
        &app,
        &old,
        &[
            ("created_at", now - Duration::days(31)),
            ("not_before", now - Duration::days(31)),
            ("retire_after", now - Duration::minutes(1)),
            ("not_after", now + Duration::minutes(14)),
        ],
    )
    .await;
    let new_token = issuer.mint_token(ws, &pool, "aud").await.unwrap();
    let new = kid_of(&new_token);
    assert_ne!(new, old, "a retired key does not sign");
    let served = jwks(&app).await;
    let mut both = vec![old.clone(), new.clone()];
    both.sort();
    assert_eq!(kids(&served), both);
    verify(&old_token, &served).unwrap();
    verify(&new_token, &served).unwrap();
    // The server's own issuer (another process) signs with the new key too.
    let generations = app.raw_rows("issuer_keys", &["generation"]).await;
    assert_eq!(generations, ["1", "2"]);

    // Every token of the old key has expired: it is no longer served.
    set_times(
        &app,
        &old,
        &[("not_after", Utc::now() - Duration::seconds(1))],
    )
    .await;
    let served = jwks(&app).await;
    assert_eq!(kids(&served), std::slice::from_ref(&new));
    assert!(verify(&old_token, &served)
        .unwrap_err()
        .contains("is not served"));
    verify(&new_token, &served).unwrap();

    // A day before the new key retires, the next is published, but does not sign yet.
    let now = Utc::now();
    set_times(
        &app,
        &new,
        &[
            ("retire_after", now + Duration::hours(1)),
            (
                "not_after",
                now + Duration::hours(1) + Duration::minutes(15),
            ),
        ],
    )
    .await;
    let served = jwks(&app).await;
    assert_eq!(kids(&served).len(), 2, "{served}");
    assert!(kids(&served).contains(&new));
    let t = issuer.mint_token(ws, &pool, "aud").await.unwrap();
    assert_eq!(kid_of(&t), new);
    // The expired key's row (and its sealed private key) is gone.
    assert_eq!(
        app.raw_rows("issuer_keys", &["generation"]).await,
        ["2", "3"]
    );
}

backend_test!(processes_racing_to_make_the_first_key_agree_on_one);
async fn processes_racing_to_make_the_first_key_agree_on_one(app: App) {
    let issuers: Vec<_> = (0..4).map(|_| app.issuer()).collect();
    let ws = WorkspaceId::new();
    let pool = Name::parse("p").unwrap();
    let mints = issuers.iter().flat_map(|i| {
        let pool = pool.clone();
        (0..3).map(move |_| {
            let i = i.clone();
            let pool = pool.clone();
            tokio::spawn(async move { i.mint_token(ws, &pool, "aud").await.unwrap() })
        })
    });
    let tokens: Vec<String> = futures::future::join_all(mints.collect::<Vec<_>>())
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let served = jwks(&app).await;
    assert_eq!(kids(&served).len(), 1, "{served}");
    for t in &tokens {
        verify(t, &served).unwrap();
    }
    assert_eq!(app.raw_rows("issuer_keys", &["generation"]).await, ["1"]);
}

/// The bytes to look for: a needle and its encodings as a database would hold them.
fn encodings(bytes: &[u8]) -> Vec<Vec<u8>> {
    use base64::engine::general_purpose::STANDARD;
    vec![
        bytes.to_vec(),
        hexed(bytes).into_bytes(),
        hexed(bytes).to_uppercase().into_bytes(),
        STANDARD.encode(bytes).into_bytes(),
        URL_SAFE_NO_PAD.encode(bytes).into_bytes(),
    ]
}

fn hexed(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Everything the database holds, as bytes: the SQLite files, or a pg_dump.
fn database_bytes(app: &App) -> Vec<u8> {
    match app.kind {
        Kind::Sqlite => {
            let mut all = Vec::new();
            for entry in std::fs::read_dir(app.data_dir()).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                if name.starts_with("ferry.db") {
                    all.extend(std::fs::read(&path).unwrap());
                }
            }
            all
        }
        Kind::Postgres => {
            let out = std::process::Command::new("pg_dump")
                .arg("--no-owner")
                .arg(app.config.database_url())
                .output()
                .expect("pg_dump is installed");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        }
    }
}

backend_test!(the_issuer_private_key_is_not_in_the_database_in_the_clear);
async fn the_issuer_private_key_is_not_in_the_database_in_the_clear(app: App) {
    let token = app
        .issuer()
        .mint_token(WorkspaceId::new(), &Name::parse("p").unwrap(), "aud")
        .await
        .unwrap();
    let kid = kid_of(&token);
    // Open the stored key the way the issuer does, to know what to look for.
    let row = app
        .store()
        .issuer_keys_live(Utc::now())
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(row.kid, kid);
    let system = WorkspaceId(uuid::Uuid::nil());
    let keyring = ferry_crypto::LocalKeyring::open(&app.data_dir()).unwrap();
    let wrapping = ferry_crypto::Keyring::unwrap(
        &keyring,
        system,
        &ferry_crypto::WrappedKey {
            root_key_id: row.root_key_id.clone(),
            blob: row.wrapped_key.clone(),
        },
    )
    .await
    .unwrap();
    let der = ferry_crypto::WorkspaceKey::new(format!("issuer-{kid}"), wrapping)
        .open(
            &ferry_crypto::Binding::new(system, &kid, "issuer-key/ES256", 1),
            &row.sealed_private_key,
        )
        .unwrap();
    let der = secrecy::ExposeSecret::expose_secret(&der).clone();
    assert_eq!(
        ferry_crypto::jwt::SigningKey::from_pkcs8(&der)
            .unwrap()
            .kid(),
        kid,
        "the opened document is the signing key"
    );
    // ECPrivateKey: version 1, then the 32-byte private scalar.
    let at = der
        .windows(5)
        .position(|w| w == [0x02, 0x01, 0x01, 0x04, 0x20])
        .unwrap();
    let scalar = der[at + 5..at + 37].to_vec();

    let db = database_bytes(&app);
    // Positive control: the scan sees the table (the public key is stored in the clear).
    let jwk = &jwks(&app).await["keys"][0];
    assert!(contains(&db, jwk["x"].as_str().unwrap().as_bytes()));
    assert!(contains(&db, kid.as_bytes()));
    for (what, secret) in [
        ("the PKCS#8 document", &der),
        ("the private scalar", &scalar),
    ] {
        for needle in encodings(secret) {
            assert!(!contains(&db, &needle), "{what} is in the database");
        }
    }
    // Nor is it served.
    let (j, _) = public(&app, &format!("{}/.well-known/jwks.json", app.url)).await;
    for needle in encodings(&scalar) {
        assert!(!contains(j.text.as_bytes(), &needle));
    }
}

backend_test!(keyless_credentials_take_ferrys_token_and_refuse_host_sources);
async fn keyless_credentials_take_ferrys_token_and_refuse_host_sources(app: App) {
    let t = app.tenant("acme").await;
    let good = json!({
        "type": "external_account",
        "audience": "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/ferry/providers/ferry-oidc",
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": "https://sts.googleapis.com/v1/token",
        "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/runner@acme.iam.gserviceaccount.com:generateAccessToken",
    });
    let sources = [
        (
            "url (Azure IMDS)",
            json!({"url": "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=x", "headers": {"Metadata": "True"}, "format": {"type": "json", "subject_token_field_name": "access_token"}}),
        ),
        (
            "url (GCE metadata)",
            json!({"url": "http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default/identity?audience=x", "headers": {"Metadata-Flavor": "Google"}}),
        ),
        (
            "AWS environment",
            json!({"environment_id": "aws1", "region_url": "http://169.254.169.254/latest/meta-data/placement/availability-zone", "url": "http://169.254.169.254/latest/meta-data/iam/security-credentials", "imdsv2_session_token_url": "http://169.254.169.254/latest/api/token", "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"}),
        ),
        (
            "IPv6 metadata",
            json!({"url": "http://[fd00:ec2::254]/latest/meta-data/iam/security-credentials"}),
        ),
        (
            "file",
            json!({"file": "/var/run/secrets/kubernetes.io/serviceaccount/token"}),
        ),
        (
            "executable",
            json!({"executable": {"command": "/usr/bin/id", "timeout_millis": 5000}}),
        ),
        (
            "headers alone",
            json!({"headers": {"Authorization": "Bearer x"}}),
        ),
        ("format alone", json!({"format": {"type": "text"}})),
    ];
    for (what, source) in sources {
        let mut config = good.clone();
        config["credential_source"] = source.clone();
        let r = app
            .post(
                &t.admin,
                "/v1/credentials",
                json!({"name": "wif", "kind": "gcp-workload-identity", "config": config}),
            )
            .await;
        r.expect_error(
            422,
            &[
                "credential_source",
                "is refused",
                "leave credential_source out",
                "workspace:<workspace id>:pool:<pool name>",
                "trust Ferry's issuer",
            ],
        );
        let first = source.as_object().unwrap().keys().next().unwrap().clone();
        assert!(r.message().contains(&first), "{what}: {}", r.message());
    }
    // A token exchange endpoint the operator has not allowed.
    let mut loopback = good.clone();
    loopback["token_url"] = json!("http://127.0.0.1:9/v1/token");
    app.post(
        &t.admin,
        "/v1/credentials",
        json!({"name": "wif", "kind": "gcp-workload-identity", "config": loopback}),
    )
    .await
    .expect_error(422, &["config.token_url", "FERRY_ALLOWED_ENDPOINTS"]);
    // Nothing was stored by any of them.
    assert_eq!(
        app.get(&t.admin, "/v1/credentials").await.body["items"],
        json!([])
    );

    // Positive control: the programmatic form.
    let r = app
        .post(
            &t.admin,
            "/v1/credentials",
            json!({"name": "wif", "kind": "gcp-workload-identity", "config": good}),
        )
        .await;
    r.expect(201);
    assert_eq!(
        r.body["metadata"]["service_account"],
        "runner@acme.iam.gserviceaccount.com"
    );
    assert_eq!(
        r.body["metadata"]["subject"],
        "workspace:<workspace id>:pool:<pool name>"
    );

    // aws-web-identity: a role and a region; never an external id.
    let role = json!({"name": "keyless", "kind": "aws-web-identity",
        "role_arn": "arn:aws:iam::111111111111:role/ferry-keyless", "region": "eu-west-1"});
    let mut with_external = role.clone();
    with_external["external_id"] = json!("mine");
    app.post(&t.admin, "/v1/credentials", with_external)
        .await
        .expect_error(422, &["external_id is not accepted", "the token's subject"]);
    let r = app.post(&t.admin, "/v1/credentials", role).await;
    r.expect(201);
    assert_eq!(r.body["kind"], "aws-web-identity");
    assert_eq!(r.body["metadata"]["audience"], "sts.amazonaws.com");
    assert_eq!(r.body["metadata"]["account_id"], "111111111111");
    assert!(r.body.get("external_id").is_none(), "{}", r.text);
    // A keyless credential's token names a pool: validation without one says so.
    let id = r.body["id"].as_str().unwrap();
    let v = app
        .post(
            &t.admin,
            &format!("/v1/credentials/{id}/validate"),
            json!({}),
        )
        .await;
    v.expect(200);
    assert_eq!(v.body["validation"]["ok"], false);
    assert_eq!(v.body["validation"]["checks"][0]["check"], "pool");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_issuer_is_ferry_public_url_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ferry_server::Config::for_tests(dir.path());
    config.public_url = Some("https://ferry.example.com/".into());
    let server = ferry_server::Server::start(config, ferry_engine::Executors::default())
        .await
        .unwrap();
    let url = server.public_url();
    let d: Value = reqwest::get(format!("{url}/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["issuer"], "https://ferry.example.com");
    assert_eq!(
        d["jwks_uri"],
        "https://ferry.example.com/.well-known/jwks.json"
    );
    server.shutdown().await;
}

backend_test!(root_key_rotation_rewraps_the_issuer_keys);
async fn root_key_rotation_rewraps_the_issuer_keys(app: App) {
    let ws = WorkspaceId::new();
    let pool = Name::parse("p").unwrap();
    let before = app.issuer().mint_token(ws, &pool, "aud").await.unwrap();
    let r = ferry_server::root_key_rotate(&app.config).await.unwrap();
    // The old root key file is gone: nothing (no issuer key either) still needs it.
    assert_eq!(r.retired, vec![r.old_key_id.clone()]);
    assert_eq!(
        app.raw_rows("issuer_keys", &["root_key_id"]).await,
        std::slice::from_ref(&r.new_key_id)
    );
    // A fresh process opens the same key under the new root key and signs with it.
    let after = app.issuer().mint_token(ws, &pool, "aud").await.unwrap();
    assert_eq!(kid_of(&after), kid_of(&before));
    verify(&after, &jwks(&app).await).unwrap();
}
