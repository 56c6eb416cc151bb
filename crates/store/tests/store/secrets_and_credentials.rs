//! Credentials, secrets, workspace keys and workspace settings in the store: sealed bytes in
//! and out unchanged, names unique per workspace, versions that move only forward, pools that
//! need a fitting credential, and another workspace's objects answering `NotFound`.

use ferry_core::{CredentialId, CredentialKind, PoolType, SecretId};
use ferry_store::{Actor, CredentialRotation, Error, NewCredential, Store, LOGS_DISCARDED_NOTICE};
use serde_json::json;

use crate::harness::{name, new_pool, pool, run_in, workspace, Db};

fn new_credential(n: &str, kind: CredentialKind) -> NewCredential {
    NewCredential {
        id: CredentialId::new(),
        name: name(n),
        kind,
        metadata: json!({"region": "us-east-1"}),
        fingerprint: format!("hmac-sha256:{n}"),
        sealed: format!("sealed-{n}").into_bytes(),
    }
}

async fn credential(
    s: &Store,
    ws: ferry_core::WorkspaceId,
    n: &str,
    kind: CredentialKind,
) -> ferry_store::Credential {
    s.credential_create(ws, &new_credential(n, kind), Actor::Cli)
        .await
        .unwrap()
}

backend_test!(credentials_round_trip_and_rotate);
async fn credentials_round_trip_and_rotate(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let new = new_credential("prod-aws", CredentialKind::AwsAccessKey);
    let c = s.credential_create(ws.id, &new, Actor::Cli).await.unwrap();
    assert_eq!((c.id, c.version, c.validation.clone()), (new.id, 1, None));
    assert_eq!(c.metadata, json!({"region": "us-east-1"}));
    assert_eq!(s.credential_get(ws.id, c.id).await.unwrap(), c);
    assert_eq!(
        s.credential_get_by_name(ws.id, &name("prod-aws"))
            .await
            .unwrap(),
        c
    );
    let (same, sealed) = s.credential_sealed(ws.id, c.id).await.unwrap();
    assert_eq!((same, sealed), (c.clone(), new.sealed.clone()));

    // Names are unique per workspace, not across them.
    assert!(matches!(
        s.credential_create(
            ws.id,
            &new_credential("prod-aws", CredentialKind::AwsAssumeRole),
            Actor::Cli
        )
        .await,
        Err(Error::Conflict {
            kind: "credential",
            ..
        })
    ));
    let other = workspace(s, "beta").await;
    credential(s, other.id, "prod-aws", CredentialKind::AwsAssumeRole).await;

    let rotation = CredentialRotation {
        version: 2,
        metadata: json!({"region": "eu-west-1"}),
        fingerprint: "hmac-sha256:new".into(),
        sealed: b"sealed-v2".to_vec(),
    };
    let rotated = s
        .credential_rotate(ws.id, c.id, &rotation, Actor::Cli)
        .await
        .unwrap();
    assert_eq!(
        (rotated.version, rotated.name.as_str(), rotated.kind),
        (2, "prod-aws", c.kind)
    );
    assert_eq!(rotated.created_at, c.created_at);
    assert_eq!(
        s.credential_sealed(ws.id, c.id).await.unwrap().1,
        b"sealed-v2"
    );
    // A rotation sealed for a version that is no longer next lost a race.
    assert!(matches!(
        s.credential_rotate(ws.id, c.id, &rotation, Actor::Cli)
            .await,
        Err(Error::Changed { kind: "credential" })
    ));
    assert!(matches!(
        s.credential_rotate(ws.id, CredentialId::new(), &rotation, Actor::Cli)
            .await,
        Err(Error::NotFound { kind: "credential" })
    ));
    let listed = s.credentials_list(ws.id).await.unwrap();
    assert_eq!(listed, vec![rotated]);
}

backend_test!(another_workspace_s_credentials_and_secrets_are_not_found);
async fn another_workspace_s_credentials_and_secrets_are_not_found(db: Db) {
    let s = &db.store;
    let a = workspace(s, "acme").await;
    let b = workspace(s, "beta").await;
    let c = credential(s, a.id, "cred", CredentialKind::AwsAccessKey).await;
    s.secret_create(a.id, SecretId::new(), &name("token"), b"x", Actor::Cli)
        .await
        .unwrap();
    let nf = |r: Result<(), Error>, what: &str| match r {
        Err(Error::NotFound { .. }) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    };
    nf(s.credential_get(b.id, c.id).await.map(|_| ()), "get");
    nf(
        s.credential_get_by_name(b.id, &c.name).await.map(|_| ()),
        "get by name",
    );
    nf(s.credential_sealed(b.id, c.id).await.map(|_| ()), "sealed");
    let rotation = CredentialRotation {
        version: 2,
        metadata: json!({}),
        fingerprint: "f".into(),
        sealed: b"y".to_vec(),
    };
    nf(
        s.credential_rotate(b.id, c.id, &rotation, Actor::Cli)
            .await
            .map(|_| ()),
        "rotate",
    );
    nf(s.credential_delete(b.id, c.id, Actor::Cli).await, "delete");
    nf(
        s.secret_get(b.id, &name("token")).await.map(|_| ()),
        "secret get",
    );
    nf(
        s.secret_delete(b.id, &name("token"), Actor::Cli).await,
        "secret delete",
    );
    assert_eq!(s.secret_sealed(b.id, &name("token")).await.unwrap(), None);
    assert!(s.credentials_list(b.id).await.unwrap().is_empty());
    assert!(s.secrets_list(b.id).await.unwrap().is_empty());
    // Nothing of `a`'s changed, and `b`'s log recorded nothing.
    assert_eq!(s.credential_get(a.id, c.id).await.unwrap(), c);
    assert!(s.audit_list(b.id, 0, 100).await.unwrap().is_empty());
}

backend_test!(push_pools_need_an_existing_credential_of_a_fitting_kind);
async fn push_pools_need_an_existing_credential_of_a_fitting_kind(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let other = workspace(s, "beta").await;
    credential(s, other.id, "cred", CredentialKind::AwsAccessKey).await;
    let mut ecs = new_pool("ecs", PoolType::Ecs);
    ecs.credential = Some(name("cred"));
    // Another workspace's credential of that name does not count.
    assert!(matches!(
        s.pool_create_by(ws.id, &ecs, Actor::Cli).await,
        Err(Error::NotFound { kind: "credential" })
    ));
    let gcp = credential(s, ws.id, "cred", CredentialKind::GcpServiceAccountKey).await;
    match s.pool_create_by(ws.id, &ecs, Actor::Cli).await {
        Err(Error::Invalid(msg)) => assert!(
            msg.contains("gcp-service-account-key")
                && msg.contains("aws-access-key or aws-assume-role"),
            "{msg}"
        ),
        other => panic!("expected Invalid, got {other:?}"),
    }
    let mut cr = new_pool("cr", PoolType::CloudRun);
    cr.credential = Some(name("cred"));
    let p = s.pool_create_by(ws.id, &cr, Actor::Cli).await.unwrap();
    assert_eq!(p.credential, Some(name("cred")));

    // Deleting the credential is refused while the pool uses it, naming the pool.
    let mut cr2 = new_pool("cr-2", PoolType::CloudRun);
    cr2.credential = Some(name("cred"));
    s.pool_create_by(ws.id, &cr2, Actor::Cli).await.unwrap();
    match s.credential_delete(ws.id, gcp.id, Actor::Cli).await {
        Err(Error::InUse(msg)) => assert!(msg.contains("pools \"cr\", \"cr-2\""), "{msg}"),
        other => panic!("expected InUse, got {other:?}"),
    }
    assert_eq!(s.credential_get(ws.id, gcp.id).await.unwrap(), gcp);
    s.pool_delete_by(ws.id, &name("cr"), Actor::Cli)
        .await
        .unwrap();
    s.pool_delete_by(ws.id, &name("cr-2"), Actor::Cli)
        .await
        .unwrap();
    s.credential_delete(ws.id, gcp.id, Actor::Cli)
        .await
        .unwrap();
    assert!(matches!(
        s.credential_get(ws.id, gcp.id).await,
        Err(Error::NotFound { kind: "credential" })
    ));
    // Managed pools name none.
    let managed = s
        .pool_create_by(ws.id, &new_pool("sbx", PoolType::Managed), Actor::Cli)
        .await
        .unwrap();
    assert_eq!(managed.credential, None);
}

backend_test!(pool_creation_and_credential_deletion_do_not_cross);
async fn pool_creation_and_credential_deletion_do_not_cross(db: Db) {
    // Whatever the interleaving: the credential is deleted and no pool names it, or the pool
    // exists and so does its credential.
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    for round in 0..8 {
        let c = credential(s, ws.id, &format!("c{round}"), CredentialKind::AwsAccessKey).await;
        let mut p = new_pool(&format!("p{round}"), PoolType::Ecs);
        p.credential = Some(c.name.clone());
        let create = {
            let s = s.clone();
            tokio::spawn(async move { s.pool_create_by(ws.id, &p, Actor::Cli).await })
        };
        let delete = {
            let s = s.clone();
            tokio::spawn(async move { s.credential_delete(ws.id, c.id, Actor::Cli).await })
        };
        match (create.await.unwrap(), delete.await.unwrap()) {
            (Ok(_), Err(Error::InUse(_))) => {}
            (Err(Error::NotFound { kind: "credential" }), Ok(())) => {}
            other => panic!("round {round}: impossible outcome {other:?}"),
        }
    }
}

backend_test!(secrets_are_created_replaced_and_deleted);
async fn secrets_are_created_replaced_and_deleted(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let id = SecretId::new();
    let created = s
        .secret_create(ws.id, id, &name("token"), b"v1", Actor::Cli)
        .await
        .unwrap();
    assert_eq!((created.id, created.version), (id, 1));
    assert!(matches!(
        s.secret_create(ws.id, SecretId::new(), &name("token"), b"again", Actor::Cli)
            .await,
        Err(Error::Conflict { kind: "secret", .. })
    ));
    let replaced = s
        .secret_replace(ws.id, id, 2, b"v2", Actor::Cli)
        .await
        .unwrap();
    assert_eq!(
        (replaced.id, replaced.version, replaced.created_at),
        (id, 2, created.created_at)
    );
    assert!(matches!(
        s.secret_replace(ws.id, id, 2, b"late", Actor::Cli).await,
        Err(Error::Changed { kind: "secret" })
    ));
    let (meta, sealed) = s
        .secret_sealed(ws.id, &name("token"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((meta, sealed), (replaced.clone(), b"v2".to_vec()));
    assert_eq!(s.secrets_list(ws.id).await.unwrap(), vec![replaced]);
    s.secret_delete(ws.id, &name("token"), Actor::Cli)
        .await
        .unwrap();
    assert_eq!(s.secret_sealed(ws.id, &name("token")).await.unwrap(), None);
    assert!(matches!(
        s.secret_delete(ws.id, &name("token"), Actor::Cli).await,
        Err(Error::NotFound { kind: "secret" })
    ));
}

backend_test!(workspace_keys_are_created_once_and_rewrapped_conditionally);
async fn workspace_keys_are_created_once_and_rewrapped_conditionally(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    assert_eq!(s.workspace_key_get(ws.id).await.unwrap(), None);
    let first = s
        .workspace_key_create(ws.id, "wk-1", "root-a", b"wrapped-1")
        .await
        .unwrap();
    // A second first use loses and gets the first key.
    let again = s
        .workspace_key_create(ws.id, "wk-2", "root-a", b"wrapped-2")
        .await
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(
        s.workspace_key_root_ids().await.unwrap(),
        vec!["root-a".to_owned()]
    );
    assert_eq!(
        s.workspace_keys_not_under("root-b", 10).await.unwrap(),
        vec![first.clone()]
    );
    let moved = s
        .workspace_key_rewrap(ws.id, "root-a", "root-b", b"wrapped-b", Actor::Cli)
        .await
        .unwrap();
    assert_eq!(
        (moved.key_id.as_str(), moved.root_key_id.as_str()),
        ("wk-1", "root-b")
    );
    assert!(matches!(
        s.workspace_key_rewrap(ws.id, "root-a", "root-c", b"x", Actor::Cli)
            .await,
        Err(Error::Changed { .. })
    ));
    assert!(s
        .workspace_keys_not_under("root-b", 10)
        .await
        .unwrap()
        .is_empty());
    let audit = s.audit_list(ws.id, 0, 10).await.unwrap();
    assert_eq!(
        audit.last().map(|e| e.action.as_str()),
        Some("root_key.rotate")
    );
    assert!(matches!(
        s.workspace_key_create(ferry_core::WorkspaceId::new(), "wk", "r", b"w")
            .await,
        Err(Error::NotFound { kind: "workspace" })
    ));
}

backend_test!(settings_external_ids_and_log_storage);
async fn settings_external_ids_and_log_storage(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let other = workspace(s, "beta").await;
    let settings = s.workspace_settings(ws.id).await.unwrap();
    assert!(settings.store_logs);
    assert!(settings.aws_external_id.starts_with("ferry-") && settings.aws_external_id.len() == 38);
    assert_ne!(
        settings.aws_external_id,
        s.workspace_settings(other.id)
            .await
            .unwrap()
            .aws_external_id
    );
    // A workspace from before external ids gets one on first read, and keeps it.
    db.exec("UPDATE workspaces SET aws_external_id = NULL WHERE name = 'beta'")
        .await;
    let fresh = s
        .workspace_settings(other.id)
        .await
        .unwrap()
        .aws_external_id;
    assert!(fresh.starts_with("ferry-"));
    assert_eq!(
        s.workspace_settings(other.id)
            .await
            .unwrap()
            .aws_external_id,
        fresh
    );

    // Log storage off: lines are discarded, the log says so once.
    let p = pool(s, ws.id, "sbx", PoolType::Managed).await;
    let kept = run_in(s, &p).await;
    s.run_logs_append(kept.id, &[crate::logs::line("kept")], 1 << 20)
        .await
        .unwrap();
    let off = s
        .workspace_store_logs_set(ws.id, false, Actor::Cli)
        .await
        .unwrap();
    assert!(!off.store_logs);
    let run = run_in(s, &p).await;
    for batch in 0..3 {
        let truncated = s
            .run_logs_append(
                run.id,
                &[crate::logs::line(&format!("secret output {batch}"))],
                1 << 20,
            )
            .await
            .unwrap();
        assert!(!truncated);
    }
    let logs = s.run_logs(ws.id, run.id, 0, 100).await.unwrap();
    let lines: Vec<&str> = logs.lines.iter().map(|l| l.line.line.as_str()).collect();
    assert_eq!(lines, vec![LOGS_DISCARDED_NOTICE]);
    assert!(!logs.truncated);
    // The other workspace still stores its logs; turning storage back on stores again.
    s.workspace_store_logs_set(ws.id, true, Actor::Cli)
        .await
        .unwrap();
    s.run_logs_append(run.id, &[crate::logs::line("later")], 1 << 20)
        .await
        .unwrap();
    let lines = s.run_logs(ws.id, run.id, 0, 100).await.unwrap().lines;
    assert_eq!(lines.last().map(|l| l.line.line.as_str()), Some("later"));
    assert_eq!(
        s.run_logs(ws.id, kept.id, 0, 100)
            .await
            .unwrap()
            .lines
            .len(),
        1
    );
    let actions: Vec<String> = s
        .audit_list(ws.id, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, vec!["workspace.update", "workspace.update"]);
    assert!(matches!(
        s.workspace_store_logs_set(ferry_core::WorkspaceId::new(), false, Actor::Cli)
            .await,
        Err(Error::NotFound { kind: "workspace" })
    ));
}

backend_test!(sensitive_parameters_are_stored_sealed_and_flagged);
async fn sensitive_parameters_are_stored_sealed_and_flagged(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "sbx", PoolType::Managed).await;
    let plain = run_in(s, &p).await;
    assert!(!plain.has_sensitive_parameters);
    assert_eq!(
        s.run_sensitive_parameters(ws.id, plain.id).await.unwrap(),
        None
    );
    let id = ferry_core::RunId::new();
    let (run, created) = s
        .run_create_sealed(&crate::harness::new_run(&p), id, b"sealed-params")
        .await
        .unwrap();
    assert!(created && run.has_sensitive_parameters);
    assert_eq!(run.id, id);
    assert_eq!(s.run_get(ws.id, id).await.unwrap(), run);
    assert_eq!(
        s.run_sensitive_parameters(ws.id, id).await.unwrap(),
        Some(b"sealed-params".to_vec())
    );
    let other = workspace(s, "beta").await;
    assert!(matches!(
        s.run_sensitive_parameters(other.id, id).await,
        Err(Error::NotFound { kind: "run" })
    ));
}
