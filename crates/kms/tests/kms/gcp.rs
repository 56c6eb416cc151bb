//! The Cloud KMS keyring against the fake ([`crate::gcp_fake`]), authenticated with a
//! service-account key file: round trips bound to the workspace, damaged and moved wraps
//! refused, a new key version and a second CryptoKey taking over with earlier wraps still
//! unwrapping, and clear errors for unknown, disabled and forbidden keys and unknown accounts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_cloudrun_fake::ServiceAccount;
use ferry_core::WorkspaceId;
use ferry_crypto::{Error, Key, Keyring, WrappedKey};
use ferry_kms::{CryptoKeyName, GcpKmsKeyring, KeySpec, Options};

use crate::gcp_fake::FakeKms;
use crate::{chain, shows_no_key, unwrap_ok};

const ROOT: &str = "projects/proj/locations/europe-west1/keyRings/ferry/cryptoKeys/root";
const NEXT: &str = "projects/proj/locations/europe-west1/keyRings/ferry/cryptoKeys/next";

/// The fake with key [`ROOT`], usable by the account whose key file is `key_file`.
struct Setup {
    fake: FakeKms,
    account: ServiceAccount,
    key_file: PathBuf,
    _dir: tempfile::TempDir,
}

fn account(name: &str) -> ServiceAccount {
    ServiceAccount::cached(name, "proj", Path::new(env!("CARGO_TARGET_TMPDIR"))).unwrap()
}

async fn setup() -> Setup {
    let fake = FakeKms::start().await;
    let account = account("ferry");
    fake.register_account(&account.email, account.public_key_pem());
    fake.create_key(ROOT, &[&account.email]);
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("sa.json");
    std::fs::write(&key_file, account.key_json().to_string()).unwrap();
    Setup {
        fake,
        account,
        key_file,
        _dir: dir,
    }
}

impl Setup {
    fn options(&self) -> Options {
        Options {
            endpoint: Some(self.fake.endpoint.clone()),
            gcp_credentials_file: Some(self.key_file.clone()),
        }
    }

    async fn try_keyring(&self, name: &str) -> Result<GcpKmsKeyring, ferry_kms::Error> {
        GcpKmsKeyring::connect(&CryptoKeyName::parse(name).unwrap(), &self.options()).await
    }

    async fn keyring(&self, name: &str) -> GcpKmsKeyring {
        self.try_keyring(name)
            .await
            .unwrap_or_else(|e| panic!("{}", chain(&e)))
    }

    async fn connect_error(&self, name: &str) -> String {
        let e = self.try_keyring(name).await.err().unwrap();
        assert!(matches!(e, ferry_kms::Error::Probe { .. }), "{e:?}");
        chain(&e)
    }
}

async fn wrap(k: &dyn Keyring, ws: WorkspaceId, key: &Key) -> WrappedKey {
    k.wrap(ws, key).await.unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn wraps_round_trip_bound_to_the_workspace() {
    let s = setup().await;
    let k = s.keyring(ROOT).await;
    assert_eq!(k.key_id(), format!("gcp-kms:{ROOT}"));
    let (ws, other) = (WorkspaceId::new(), WorkspaceId::new());
    let key = Key::generate();
    let wrapped = wrap(&k, ws, &key).await;
    assert_eq!(wrapped.root_key_id, k.key_id());
    assert_eq!(unwrap_ok(&k, ws, &wrapped).await.bytes(), key.bytes());
    match k.unwrap(other, &wrapped).await {
        Err(Error::Decrypt) => {}
        r => panic!("expected Decrypt, got {r:?}"),
    }
    // Every call named the key and came from the key file's account (the probe's two first).
    let journal = s.fake.journal();
    let methods: Vec<&str> = journal.iter().map(|(m, _, _)| m.as_str()).collect();
    assert_eq!(methods, ["encrypt", "decrypt", "encrypt", "decrypt"]);
    assert!(journal
        .iter()
        .all(|(_, name, who)| name == ROOT && *who == s.account.email));
}

#[tokio::test]
async fn a_damaged_wrap_does_not_unwrap() {
    let s = setup().await;
    let k = s.keyring(ROOT).await;
    let ws = WorkspaceId::new();
    let key = Key::generate();
    let wrapped = wrap(&k, ws, &key).await;
    let last = wrapped.blob.len() - 1;
    for damage in [last, wrapped.blob.len() / 2, 0] {
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
    assert!(matches!(e, Error::Decrypt), "{e:?}");
    shows_no_key(&format!("{e} {e:?} {k:?}"), &key);
}

#[tokio::test]
async fn a_new_key_version_or_a_second_key_takes_over_and_old_wraps_still_unwrap() {
    let s = setup().await;
    let k = s.keyring(ROOT).await;
    let ws = WorkspaceId::new();
    let key = Key::generate();
    let v1 = wrap(&k, ws, &key).await;

    // Cloud KMS rotation: a new primary version under the same CryptoKey; no re-wrap needed.
    s.fake.rotate(ROOT);
    let v2 = wrap(&k, ws, &key).await;
    assert_eq!(v2.root_key_id, v1.root_key_id);
    assert_eq!(&v2.blob[..4], &[0, 0, 0, 2], "the fake's version prefix");
    for w in [&v1, &v2] {
        assert_eq!(unwrap_ok(&k, ws, w).await.bytes(), key.bytes());
    }

    // The operator points Ferry at another CryptoKey.
    s.fake.create_key(NEXT, &[&s.account.email]);
    let next = s.keyring(NEXT).await;
    assert_eq!(next.key_id(), format!("gcp-kms:{NEXT}"));
    assert_eq!(unwrap_ok(&next, ws, &v1).await.bytes(), key.bytes());
    let new = wrap(&next, ws, &key).await;
    assert_eq!(new.root_key_id, format!("gcp-kms:{NEXT}"));
    assert_eq!(unwrap_ok(&k, ws, &new).await.bytes(), key.bytes());

    // A wrap relabelled with the other key's name does not decrypt.
    let relabelled = WrappedKey {
        root_key_id: v1.root_key_id.clone(),
        blob: new.blob.clone(),
    };
    assert!(matches!(
        next.unwrap(ws, &relabelled).await,
        Err(Error::Decrypt)
    ));
    // Ids of other backends, or malformed ones, are not this keyring's.
    for id in [
        "local-0123456789abcdef",
        "aws-kms:arn:aws:kms:eu-west-1:1:key/k",
        "gcp-kms:projects/p",
    ] {
        let w = WrappedKey {
            root_key_id: id.into(),
            blob: new.blob.clone(),
        };
        assert!(
            matches!(next.unwrap(ws, &w).await, Err(Error::UnknownRootKey(_))),
            "{id}"
        );
    }
}

#[tokio::test]
async fn unknown_disabled_and_forbidden_keys_are_clear_errors() {
    let s = setup().await;
    let missing = "projects/proj/locations/europe-west1/keyRings/ferry/cryptoKeys/missing";
    let e = s.connect_error(missing).await;
    assert!(
        e.contains(missing) && e.contains("no such key") && e.contains("NOT_FOUND"),
        "{e}"
    );

    s.fake
        .create_key(NEXT, &["someone-else@proj.iam.gserviceaccount.com"]);
    let e = s.connect_error(NEXT).await;
    assert!(e.contains("permission denied"), "{e}");

    // Disabled after start: wraps fail with the reason; enabled again, they work.
    let k = s.keyring(ROOT).await;
    s.fake.set_enabled(ROOT, 1, false);
    let ws = WorkspaceId::new();
    let e = k
        .wrap(ws, &Key::generate())
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("not enabled") && e.contains("FAILED_PRECONDITION"),
        "{e}"
    );
    let e = s.connect_error(ROOT).await;
    assert!(e.contains("not enabled"), "{e}");
    s.fake.set_enabled(ROOT, 1, true);
    wrap(&k, ws, &Key::generate()).await;
}

#[tokio::test]
async fn an_unknown_account_is_refused_and_a_bad_key_file_is_a_clear_error() {
    let s = setup().await;
    // A stranger's key file: its tokens do not verify.
    let stranger = account("stranger");
    std::fs::write(&s.key_file, stranger.key_json().to_string()).unwrap();
    let e = s.connect_error(ROOT).await;
    assert!(e.contains("credentials were refused"), "{e}");
    assert!(s.fake.journal().is_empty());

    // Not JSON: the error says where, and never echoes the file.
    std::fs::write(&s.key_file, "-----BEGIN PRIVATE KEY----- secret-bits").unwrap();
    let e = s.try_keyring(ROOT).await.err().unwrap();
    let text = chain(&e);
    assert!(text.contains("not a JSON key file"), "{text}");
    assert!(!text.contains("secret-bits"), "{text}");

    std::fs::remove_file(&s.key_file).unwrap();
    let e = s.try_keyring(ROOT).await.err().unwrap();
    assert!(
        matches!(e, ferry_kms::Error::CredentialsFile { .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn connect_builds_the_configured_backend() {
    let s = setup().await;
    let spec = KeySpec::parse(&format!("gcp-kms:{ROOT}")).unwrap();
    let k: Arc<dyn Keyring> = ferry_kms::connect(&spec, &s.options()).await.unwrap();
    assert_eq!(k.key_id(), format!("gcp-kms:{ROOT}"));
    assert!(format!("{k:?}").contains(ROOT));
}
