//! The AWS KMS keyring against moto: round trips bound to the workspace, damaged and moved
//! wraps refused, a second KMS key taking over with the first's wraps still unwrapping, and
//! clear errors for unknown and disabled keys.

use std::sync::Arc;

use aws_sdk_kms::config::{Credentials, Region};
use ferry_core::WorkspaceId;
use ferry_crypto::{Error, Key, Keyring, WrappedKey};
use ferry_kms::{AwsKey, AwsKmsKeyring, KeySpec, Options};

use crate::{chain, shows_no_key, unwrap_ok};

fn sdk(region: Option<&str>) -> aws_config::SdkConfig {
    let mut b = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .credentials_provider(aws_sdk_kms::config::SharedCredentialsProvider::new(
            Credentials::new("testing", "testing", None, None, "ferry-kms-tests"),
        ));
    if let Some(r) = region {
        b = b.region(Region::new(r.to_owned()));
    }
    b.build()
}

/// A client of moto's KMS, to make and change keys as an operator would.
fn admin() -> aws_sdk_kms::Client {
    let conf = aws_sdk_kms::config::Builder::from(&sdk(Some(ferry_moto::REGION)))
        .endpoint_url(&ferry_moto::moto().endpoint)
        .build();
    aws_sdk_kms::Client::from_conf(conf)
}

/// A new symmetric KMS key in moto; its ARN.
async fn create_key() -> String {
    let out = admin()
        .create_key()
        .description("ferry root key")
        .send()
        .await
        .unwrap();
    out.key_metadata().unwrap().arn().unwrap().to_owned()
}

async fn keyring(key: &str) -> AwsKmsKeyring {
    try_keyring(key)
        .await
        .unwrap_or_else(|e| panic!("{}", chain(&e)))
}

async fn try_keyring(key: &str) -> Result<AwsKmsKeyring, ferry_kms::Error> {
    AwsKmsKeyring::with_sdk_config(
        &AwsKey::parse(key).unwrap(),
        &sdk(Some(ferry_moto::REGION)),
        Some(&ferry_moto::moto().endpoint),
    )
    .await
}

async fn wrap(k: &dyn Keyring, ws: WorkspaceId, key: &Key) -> WrappedKey {
    k.wrap(ws, key).await.unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn wraps_round_trip_bound_to_the_workspace() {
    let arn = create_key().await;
    let k = keyring(&arn).await;
    assert_eq!(k.key_id(), format!("aws-kms:{arn}"));
    let (ws, other) = (WorkspaceId::new(), WorkspaceId::new());
    let key = Key::generate();
    let wrapped = wrap(&k, ws, &key).await;
    assert_eq!(wrapped.root_key_id, k.key_id());
    assert!(!wrapped.blob.windows(32).any(|w| w == key.bytes()));
    assert_eq!(unwrap_ok(&k, ws, &wrapped).await.bytes(), key.bytes());
    // Another workspace's wrapped key: KMS refuses the encryption context.
    match k.unwrap(other, &wrapped).await {
        Err(Error::Decrypt) => {}
        r => panic!("expected Decrypt, got {r:?}"),
    }
    // Wrapping twice gives two ciphertexts.
    assert_ne!(wrap(&k, ws, &key).await.blob, wrapped.blob);
}

#[tokio::test]
async fn a_damaged_wrap_does_not_unwrap() {
    let k = keyring(&create_key().await).await;
    let ws = WorkspaceId::new();
    let key = Key::generate();
    let wrapped = wrap(&k, ws, &key).await;
    let last = wrapped.blob.len() - 1;
    let middle = wrapped.blob.len() / 2;
    for damage in [last, middle] {
        let mut bad = wrapped.clone();
        bad.blob[damage] ^= 0x01;
        let r = k.unwrap(ws, &bad).await;
        assert!(matches!(r, Err(Error::Decrypt)), "byte {damage}: {r:?}");
    }
    let truncated = WrappedKey {
        blob: wrapped.blob[..10].to_vec(),
        ..wrapped.clone()
    };
    let e = k.unwrap(ws, &truncated).await.err().unwrap();
    shows_no_key(&format!("{e} {e:?} {k:?}"), &key);
}

#[tokio::test]
async fn an_alias_resolves_to_its_key_and_an_arn_needs_no_region() {
    let arn = create_key().await;
    let alias = format!("alias/ferry-{}", WorkspaceId::new());
    admin()
        .create_alias()
        .alias_name(&alias)
        .target_key_id(&arn)
        .send()
        .await
        .unwrap();
    let by_alias = keyring(&alias).await;
    assert_eq!(by_alias.key_id(), format!("aws-kms:{arn}"));
    assert_eq!(by_alias.arn(), arn);

    // No region configured: the ARN's is used.
    let by_arn = AwsKmsKeyring::with_sdk_config(
        &AwsKey::parse(&arn).unwrap(),
        &sdk(None),
        Some(&ferry_moto::moto().endpoint),
    )
    .await
    .unwrap_or_else(|e| panic!("{}", chain(&e)));
    let ws = WorkspaceId::new();
    let key = Key::generate();
    let wrapped = wrap(&by_alias, ws, &key).await;
    assert_eq!(unwrap_ok(&by_arn, ws, &wrapped).await.bytes(), key.bytes());
    // An alias without a region is refused with the reason.
    let e = AwsKmsKeyring::with_sdk_config(&AwsKey::parse(&alias).unwrap(), &sdk(None), None)
        .await
        .err()
        .map(|e| chain(&e))
        .unwrap();
    assert!(e.contains("no AWS region"), "{e}");
}

#[tokio::test]
async fn a_second_key_takes_over_and_the_first_keys_wraps_still_unwrap() {
    let (first_arn, second_arn) = (create_key().await, create_key().await);
    let first = keyring(&first_arn).await;
    let ws = WorkspaceId::new();
    let key = Key::generate();
    let old = wrap(&first, ws, &key).await;

    // The operator points Ferry at the second key.
    let second = keyring(&second_arn).await;
    assert_ne!(second.key_id(), first.key_id());
    assert_eq!(unwrap_ok(&second, ws, &old).await.bytes(), key.bytes());
    let new = wrap(&second, ws, &key).await;
    assert_eq!(new.root_key_id, format!("aws-kms:{second_arn}"));
    assert_eq!(unwrap_ok(&second, ws, &new).await.bytes(), key.bytes());
    assert_eq!(unwrap_ok(&first, ws, &new).await.bytes(), key.bytes());

    // A wrap relabelled with the other key's id is refused: Decrypt names the key.
    let relabelled = WrappedKey {
        root_key_id: old.root_key_id.clone(),
        blob: new.blob.clone(),
    };
    assert!(second.unwrap(ws, &relabelled).await.is_err());
    // An id of another backend is not this keyring's.
    let local = WrappedKey {
        root_key_id: "local-0123456789abcdef".into(),
        blob: new.blob.clone(),
    };
    assert!(matches!(
        second.unwrap(ws, &local).await,
        Err(Error::UnknownRootKey(_))
    ));
}

#[tokio::test]
async fn an_unknown_key_is_a_clear_error_at_connect() {
    let missing = format!(
        "arn:aws:kms:{}:123456789012:key/{}",
        ferry_moto::REGION,
        uuid_like()
    );
    let e = try_keyring(&missing).await.err().unwrap();
    assert!(matches!(e, ferry_kms::Error::Probe { .. }), "{e:?}");
    let text = chain(&e);
    assert!(
        text.contains(&missing)
            && text.contains("no such key")
            && text.contains("NotFoundException"),
        "{text}"
    );
    // Through the generic entry point too.
    let spec = KeySpec::parse(&format!("aws-kms:{missing}")).unwrap();
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    std::env::set_var("AWS_REGION", ferry_moto::REGION);
    let options = Options {
        endpoint: Some(ferry_moto::moto().endpoint.clone()),
        ..Options::default()
    };
    let e = ferry_kms::connect(&spec, &options).await.err().unwrap();
    assert!(chain(&e).contains("no such key"), "{}", chain(&e));
    let arn = create_key().await;
    let spec = KeySpec::parse(&format!("aws-kms:{arn}")).unwrap();
    let k: Arc<dyn Keyring> = ferry_kms::connect(&spec, &options).await.unwrap();
    assert_eq!(k.key_id(), format!("aws-kms:{arn}"));
}

/// A random key id (the shape of a KMS key id).
fn uuid_like() -> String {
    WorkspaceId::new().to_string()
}

/// A KMS that refuses every call as AWS does for a disabled key: the refusal reaches the
/// operator as such. (A stand-in for moto here: moto 5.2's Encrypt and Decrypt ignore the key
/// state, so a disabled key keeps working there.)
#[tokio::test]
async fn a_disabled_key_is_a_clear_error() {
    use axum::http::{HeaderMap, StatusCode};
    let app = axum::Router::new().fallback(|headers: HeaderMap| async move {
        let target = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = serde_json::json!({
            "__type": "DisabledException",
            "message": format!("{} is disabled.", "arn:aws:kms:eu-west-1:123456789012:key/k1"),
        });
        assert!(target.starts_with("TrentService."), "{target}");
        (
            StatusCode::BAD_REQUEST,
            [("content-type", "application/x-amz-json-1.1")],
            body.to_string(),
        )
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let key = "arn:aws:kms:eu-west-1:123456789012:key/k1";
    let e = AwsKmsKeyring::with_sdk_config(&AwsKey::parse(key).unwrap(), &sdk(None), Some(&url))
        .await
        .err()
        .unwrap();
    let text = chain(&e);
    assert!(
        text.contains(key) && text.contains("the key is disabled"),
        "{text}"
    );
}
