//! Envelope encryption end to end: a sealed value moved to another row, workspace, kind or
//! version does not open; root-key rotation re-wraps workspace keys and rewrites nothing
//! else; an interrupted rotation is finished by the next; an open root key file is refused.

use std::os::unix::fs::PermissionsExt;

use ferry_core::{CredentialId, Name, WorkspaceId};
use secrecy::ExposeSecret;
use serde_json::json;

use crate::support::{assume_role, aws_key, App, Tenant};

async fn credential(app: &App, t: &Tenant, body: serde_json::Value) -> CredentialId {
    let r = app.post(&t.admin, "/v1/credentials", body).await;
    r.expect(201);
    r.body["id"].as_str().unwrap().parse().unwrap()
}

fn ws(t: &Tenant) -> WorkspaceId {
    t.id.parse().unwrap()
}

async fn opens(app: &App, t: &Tenant, id: CredentialId) -> bool {
    match app.vault().credential_reveal(ws(t), id).await {
        Ok(_) => true,
        Err(ferry_server::vault::Error::Crypto { .. }) => false,
        Err(e) => panic!("unexpected error {e}"),
    }
}

backend_test!(a_moved_ciphertext_does_not_open);
async fn a_moved_ciphertext_does_not_open(app: App) {
    let a = app.tenant("acme").await;
    let b = app.tenant("beta").await;
    let a1 = credential(
        &app,
        &a,
        aws_key("a1", "AKIAABCDEFGHIJKL0001", "secret-number-one-1", None),
    )
    .await;
    let a2 = credential(
        &app,
        &a,
        aws_key("a2", "AKIAABCDEFGHIJKL0002", "secret-number-two-2", None),
    )
    .await;
    let a3 = credential(&app, &a, assume_role("a3", "111111111111")).await;
    let b1 = credential(
        &app,
        &b,
        aws_key("b1", "AKIAABCDEFGHIJKL0003", "secret-number-six-3", None),
    )
    .await;
    for id in [a1, a2, a3] {
        assert!(opens(&app, &a, id).await);
    }
    let sql_id = |id: CredentialId| app.uuid_sql(&id.to_string());
    let copy = |from: CredentialId, to: CredentialId| {
        format!(
            "UPDATE credentials SET sealed = (SELECT sealed FROM credentials WHERE id = {}) WHERE id = {}",
            sql_id(from),
            sql_id(to)
        )
    };
    let save = |id: CredentialId, slot: &str| {
        format!(
            "CREATE TABLE {slot} AS SELECT sealed, version, kind FROM credentials WHERE id = {}",
            sql_id(id)
        )
    };
    let restore = |id: CredentialId, slot: &str| {
        format!(
            "UPDATE credentials SET sealed = (SELECT sealed FROM {slot}), version = (SELECT version FROM {slot}), \
             kind = (SELECT kind FROM {slot}) WHERE id = {}; DROP TABLE {slot}",
            sql_id(id)
        )
    };

    // Another object of the same workspace, kind and version.
    app.exec(&save(a2, "saved")).await;
    app.exec(&copy(a1, a2)).await;
    assert!(!opens(&app, &a, a2).await, "object id swap");
    app.exec(&restore(a2, "saved")).await;
    assert!(opens(&app, &a, a2).await);

    // Another workspace (its own key wraps nothing of ours, and the binding differs too).
    app.exec(&save(a1, "saved")).await;
    app.exec(&copy(b1, a1)).await;
    assert!(!opens(&app, &a, a1).await, "workspace swap");
    app.exec(&restore(a1, "saved")).await;

    // Another kind: the same row relabelled.
    app.exec(&format!(
        "UPDATE credentials SET kind = 'aws-assume-role' WHERE id = {}",
        sql_id(a1)
    ))
    .await;
    assert!(!opens(&app, &a, a1).await, "kind swap");
    app.exec(&format!(
        "UPDATE credentials SET kind = 'aws-access-key' WHERE id = {}",
        sql_id(a1)
    ))
    .await;
    assert!(opens(&app, &a, a1).await);

    // Another version: the material of version 1 put back after a rotation, and the version
    // number turned back.
    app.exec(&save(a1, "saved")).await;
    app.put(
        &a.admin,
        &format!("/v1/credentials/{a1}"),
        aws_key("a1", "AKIAABCDEFGHIJKL0009", "rotated-secret-99", None),
    )
    .await
    .expect(200);
    assert!(opens(&app, &a, a1).await);
    app.exec(&save(a1, "current")).await;
    app.exec(&format!(
        "UPDATE credentials SET sealed = (SELECT sealed FROM saved) WHERE id = {}",
        sql_id(a1)
    ))
    .await;
    assert!(
        !opens(&app, &a, a1).await,
        "version 1's material at version 2"
    );
    app.exec(&format!(
        "UPDATE credentials SET version = 1, sealed = (SELECT sealed FROM current) WHERE id = {}",
        sql_id(a1)
    ))
    .await;
    assert!(
        !opens(&app, &a, a1).await,
        "version 2's material labelled version 1"
    );
    app.exec(&restore(a1, "current")).await;
    app.exec("DROP TABLE saved").await;
    assert!(opens(&app, &a, a1).await);

    // Secrets: another secret's value, and another workspace's.
    for (t, n, v) in [(&a, "s1", "one"), (&a, "s2", "two"), (&b, "s1", "six")] {
        app.put(&t.admin, &format!("/v1/secrets/{n}"), json!({"value": v}))
            .await
            .expect(201);
    }
    let s = |n: &str| Name::parse(n).unwrap();
    let vault = app.vault();
    let id_of = |t: &Tenant, n: &str| {
        format!(
            "(SELECT id FROM secrets WHERE name = '{n}' AND workspace_id = {})",
            app.uuid_sql(&t.id)
        )
    };
    app.exec(&format!(
        "UPDATE secrets SET sealed = (SELECT sealed FROM secrets WHERE id = {}) WHERE id = {}",
        id_of(&a, "s2"),
        id_of(&a, "s1")
    ))
    .await;
    assert!(
        vault.secret_reveal(ws(&a), &s("s1")).await.is_err(),
        "secret object swap"
    );
    app.exec(&format!(
        "UPDATE secrets SET sealed = (SELECT sealed FROM secrets WHERE id = {}) WHERE id = {}",
        id_of(&b, "s1"),
        id_of(&a, "s2")
    ))
    .await;
    assert!(
        vault.secret_reveal(ws(&a), &s("s2")).await.is_err(),
        "secret workspace swap"
    );
    assert_eq!(
        vault
            .secret_reveal(ws(&b), &s("s1"))
            .await
            .unwrap()
            .map(|v| v.expose_secret().to_owned())
            .as_deref(),
        Some("six")
    );
    // A broken value answers 500 without detail where it is opened; its metadata still reads.
    app.get(&a.admin, "/v1/secrets/s1").await.expect(200);
}

backend_test!(root_key_rotation_rewraps_workspace_keys_only);
async fn root_key_rotation_rewraps_workspace_keys_only(app: App) {
    let a = app.tenant("acme").await;
    let b = app.tenant("beta").await;
    let mut creds = Vec::new();
    for (t, i) in [(&a, 1), (&a, 2), (&b, 3)] {
        creds.push((
            t.clone(),
            credential(
                &app,
                t,
                aws_key(
                    &format!("c{i}"),
                    &format!("AKIAABCDEFGHIJKL000{i}"),
                    &format!("rotation-secret-{i}-xyz"),
                    None,
                ),
            )
            .await,
        ));
        app.put(
            &t.admin,
            &format!("/v1/secrets/s{i}"),
            json!({"value": format!("value-{i}")}),
        )
        .await
        .expect(201);
    }
    let cred_cols = [
        "id",
        "workspace_id",
        "name",
        "kind",
        "metadata",
        "fingerprint",
        "version",
        "sealed",
        "validation",
        "created_at",
        "updated_at",
    ];
    let secret_cols = [
        "id",
        "workspace_id",
        "name",
        "version",
        "sealed",
        "created_at",
        "updated_at",
    ];
    let before_creds = app.raw_rows("credentials", &cred_cols).await;
    let before_secrets = app.raw_rows("secrets", &secret_cols).await;
    let key_cols = ["workspace_id", "key_id", "root_key_id", "wrapped_key"];
    let before_keys = app.raw_rows("workspace_keys", &key_cols).await;
    assert_eq!(before_keys.len(), 2);
    let old_file = std::fs::read(app.data_dir().join("root-key")).unwrap();

    // Rotate while the server runs.
    let r = ferry_server::root_key_rotate(&app.config).await.unwrap();
    assert_ne!(r.old_key_id, r.new_key_id);
    assert_eq!(r.rewrapped, 2);
    assert_eq!(r.retired, vec![r.old_key_id.clone()]);
    assert_ne!(
        std::fs::read(app.data_dir().join("root-key")).unwrap(),
        old_file
    );
    assert!(!app
        .data_dir()
        .join(format!("root-key.{}.retired", r.old_key_id))
        .exists());

    assert_eq!(
        app.raw_rows("credentials", &cred_cols).await,
        before_creds,
        "a credential row was rewritten"
    );
    assert_eq!(
        app.raw_rows("secrets", &secret_cols).await,
        before_secrets,
        "a secret row was rewritten"
    );
    let after_keys = app.raw_rows("workspace_keys", &key_cols).await;
    for (before, after) in before_keys.iter().zip(&after_keys) {
        assert_ne!(before, after);
        assert!(after.contains(&r.new_key_id), "{after}");
        // Same workspace, same workspace key id.
        let prefix = |s: &str| s.split('|').take(2).collect::<Vec<_>>().join("|");
        assert_eq!(prefix(before), prefix(after));
    }
    // Everything still opens: through a fresh vault, and through the running server, which
    // loaded the old root key before the rotation.
    for (t, id) in &creds {
        assert!(opens(&app, t, *id).await);
    }
    for (t, i) in [(&a, 1), (&a, 2), (&b, 3)] {
        let v = app
            .vault()
            .secret_reveal(ws(t), &Name::parse(&format!("s{i}")).unwrap())
            .await
            .unwrap();
        assert_eq!(
            v.map(|v| v.expose_secret().to_owned()),
            Some(format!("value-{i}"))
        );
        app.put(
            &t.admin,
            &format!("/v1/secrets/s{i}"),
            json!({"value": "after"}),
        )
        .await
        .expect(200);
    }
    let c = app.tenant("gamma").await;
    credential(&app, &c, assume_role("new", "111111111111")).await;
    let keys = app.raw_rows("workspace_keys", &["root_key_id"]).await;
    assert!(keys.iter().all(|k| *k == r.new_key_id), "{keys:?}");
    // Each workspace's audit log records the re-wrap.
    let log = app.get(&a.admin, "/v1/audit?limit=1000").await;
    let rotated: Vec<_> = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "root_key.rotate")
        .collect();
    assert_eq!(rotated.len(), 1);
    assert_eq!(rotated[0]["actor"], "cli");
    assert_eq!(rotated[0]["detail"]["to"], json!(r.new_key_id));
    // And again.
    let again = ferry_server::root_key_rotate(&app.config).await.unwrap();
    assert_eq!(
        (again.old_key_id.as_str(), again.rewrapped),
        (r.new_key_id.as_str(), 3)
    );
    for (t, id) in &creds {
        assert!(opens(&app, t, *id).await);
    }
}

backend_test!(an_interrupted_rotation_is_finished_by_the_next);
async fn an_interrupted_rotation_is_finished_by_the_next(app: App) {
    let a = app.tenant("acme").await;
    let id = credential(
        &app,
        &a,
        aws_key("c", "AKIAABCDEFGHIJKL0001", "interrupted-secret-1", None),
    )
    .await;
    // A rotation that replaced the root key and stopped before re-wrapping anything.
    let keyring = ferry_crypto::LocalKeyring::open(&app.data_dir()).unwrap();
    let (lock, old, new) = keyring.rotate().unwrap();
    drop(lock);
    assert!(app
        .data_dir()
        .join(format!("root-key.{old}.retired"))
        .exists());
    // Nothing is lost meanwhile: the retired key still opens the workspace's key.
    assert!(opens(&app, &a, id).await);
    app.put(&a.admin, "/v1/secrets/s", json!({"value": "v"}))
        .await
        .expect(201);
    // The next rotation re-wraps everything and removes both older keys.
    let r = ferry_server::root_key_rotate(&app.config).await.unwrap();
    assert_eq!(r.old_key_id, new);
    let mut retired = r.retired.clone();
    retired.sort();
    let mut want = vec![old, new];
    want.sort();
    assert_eq!(retired, want);
    assert!(opens(&app, &a, id).await);
    let left: Vec<_> = std::fs::read_dir(app.data_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("root-key"))
        .collect();
    assert_eq!(left, vec!["root-key".to_owned()]);
}

#[tokio::test]
async fn ferry_refuses_a_root_key_file_others_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let config = ferry_server::Config::for_tests(dir.path());
    let server = ferry_server::Server::start(config.clone(), ferry_engine::Executors::default())
        .await
        .unwrap();
    server.shutdown().await;
    let path = dir.path().join("root-key");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = ferry_server::Server::start(config, ferry_engine::Executors::default())
        .await
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(
        err.contains("readable by other users") && err.contains("chmod 600"),
        "{err}"
    );
}

/// A keyring that counts its unwraps.
#[derive(Debug)]
struct Counting {
    inner: ferry_crypto::LocalKeyring,
    unwraps: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl ferry_crypto::Keyring for Counting {
    fn key_id(&self) -> String {
        self.inner.key_id()
    }

    async fn wrap(
        &self,
        ws: WorkspaceId,
        key: &ferry_crypto::Key,
    ) -> Result<ferry_crypto::WrappedKey, ferry_crypto::Error> {
        self.inner.wrap(ws, key).await
    }

    async fn unwrap(
        &self,
        ws: WorkspaceId,
        wrapped: &ferry_crypto::WrappedKey,
    ) -> Result<ferry_crypto::Key, ferry_crypto::Error> {
        self.unwraps
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.unwrap(ws, wrapped).await
    }
}

backend_test!(an_unwrapped_workspace_key_is_reused_until_it_is_rewrapped);
async fn an_unwrapped_workspace_key_is_reused_until_it_is_rewrapped(app: App) {
    let t = app.tenant("acme").await;
    for i in 0..3 {
        app.put(
            &t.admin,
            &format!("/v1/secrets/s{i}"),
            json!({"value": format!("value-{i}")}),
        )
        .await
        .expect(201);
    }
    let counting = std::sync::Arc::new(Counting {
        inner: ferry_crypto::LocalKeyring::open(&app.config.data_dir).unwrap(),
        unwraps: std::sync::atomic::AtomicUsize::new(0),
    });
    let vault = ferry_server::Vault::new(app.store().clone(), counting.clone());
    let unwraps = || counting.unwraps.load(std::sync::atomic::Ordering::SeqCst);
    for round in 0..3 {
        for i in 0..3 {
            let value = vault
                .secret_reveal(ws(&t), &Name::parse(&format!("s{i}")).unwrap())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(value.expose_secret(), format!("value-{i}"), "round {round}");
        }
    }
    assert_eq!(unwraps(), 1, "nine opens, one unwrap");
    // A rotation re-wraps the workspace key: the next open unwraps the new form, once.
    ferry_server::root_key_rotate(&app.config).await.unwrap();
    for i in 0..3 {
        let value = vault
            .secret_reveal(ws(&t), &Name::parse(&format!("s{i}")).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(value.expose_secret(), format!("value-{i}"));
    }
    assert_eq!(unwraps(), 2);
}
