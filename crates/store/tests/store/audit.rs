//! The audit log: entries recorded with each audited change, numbered and chained per
//! workspace, and verification that finds each kind of tampering (made here with raw SQL).

use ferry_core::{PoolType, Role, WorkspaceId};
use ferry_store::{Actor, AuditReport, PoolPatch, Store};
use serde_json::json;

use crate::harness::{name, new_pool, Db, Kind};

/// A workspace with five audited changes: create, key, pool create, pool update, pool delete.
async fn busy_workspace(s: &Store, n: &str) -> WorkspaceId {
    let ws = s
        .workspace_create_by(&name(n), Actor::Internal)
        .await
        .unwrap();
    let key = s
        .api_key_create_by(
            ws.id,
            Role::Admin,
            n.as_bytes(),
            "fry_key_x",
            Actor::Internal,
        )
        .await
        .unwrap();
    let actor = Actor::Key(key.id);
    s.pool_create_by(ws.id, &new_pool("sbx", PoolType::Managed), actor)
        .await
        .unwrap();
    let patch = PoolPatch {
        paused: Some(true),
        ..Default::default()
    };
    s.pool_update_by(ws.id, &name("sbx"), &patch, actor)
        .await
        .unwrap();
    s.pool_delete_by(ws.id, &name("sbx"), actor).await.unwrap();
    ws.id
}

/// The workspace id as a literal of the backend's column type.
fn ws_sql(db: &Db, ws: WorkspaceId) -> String {
    match db.kind {
        Kind::Sqlite => format!("X'{}'", ws.0.simple()),
        Kind::Postgres => format!("'{}'", ws.0),
    }
}

fn problem(r: &AuditReport) -> (i64, String) {
    r.problem
        .as_ref()
        .map(|p| (p.seq, p.reason.clone()))
        .unwrap_or_else(|| panic!("tampering not detected: {r:?}"))
}

backend_test!(changes_are_recorded_in_order_with_a_chain);
async fn changes_are_recorded_in_order_with_a_chain(db: Db) {
    let s = &db.store;
    let ws = busy_workspace(s, "acme").await;
    let events = s.audit_list(ws, 0, 100).await.unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "workspace.create",
            "api_key.create",
            "pool.create",
            "pool.update",
            "pool.delete"
        ]
    );
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(events[0].actor, "internal");
    assert!(events[2].actor.starts_with("key:"));
    assert_eq!(events[2].target, "pool:sbx");
    assert_eq!(events[3].detail["changes"], json!({"paused": true}));
    assert_eq!(events[0].prev_hash, vec![0u8; 32]);
    for pair in events.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    // Paging.
    let page = s.audit_list(ws, 2, 2).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
    let report = s.audit_verify(ws).await.unwrap();
    assert_eq!(report.problem, None);
    assert_eq!(report.entries, 5);
    assert_eq!(report.head_hash.as_deref(), Some(events[4].hash.as_slice()));
    // An empty log verifies too.
    let quiet = s.workspace_create(&name("quiet")).await.unwrap();
    let r = s.audit_verify(quiet.id).await.unwrap();
    assert_eq!((r.entries, r.problem, r.head_hash), (0, None, None));
}

backend_test!(concurrent_appends_keep_one_chain);
async fn concurrent_appends_keep_one_chain(db: Db) {
    let s = &db.store;
    let ws = s.workspace_create(&name("acme")).await.unwrap().id;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.audit_append(
                    ws,
                    Actor::Cli,
                    "test.append",
                    &format!("n:{i}"),
                    json!({"i": i}),
                )
                .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let report = s.audit_verify(ws).await.unwrap();
    assert_eq!((report.entries, report.problem), (16, None));
}

backend_test!(verification_detects_a_changed_entry);
async fn verification_detects_a_changed_entry(db: Db) {
    let s = &db.store;
    let cases = [
        ("detail", "detail = '{\"id\":\"forged\"}'"),
        ("actor", "actor = 'internal'"),
        ("action", "action = 'pool.update'"),
        ("target", "target = 'pool:other'"),
        ("whitespace", "detail = detail || ' '"),
        ("hash", "hash = prev_hash"),
    ];
    for (i, (what, set)) in cases.iter().enumerate() {
        let ws = busy_workspace(s, &format!("w{i}")).await;
        db.exec(&format!(
            "UPDATE audit_events SET {set} WHERE workspace_id = {} AND seq = 3",
            ws_sql(&db, ws)
        ))
        .await;
        let (seq, reason) = problem(&s.audit_verify(ws).await.unwrap());
        assert_eq!(seq, 3, "{what}: {reason}");
        assert!(reason.contains("changed"), "{what}: {reason}");
    }
    // A changed time, too.
    let ws = busy_workspace(s, "time").await;
    let at = match db.kind {
        Kind::Sqlite => "'2001-01-01T00:00:00.000000Z'",
        Kind::Postgres => "'2001-01-01T00:00:00Z'",
    };
    db.exec(&format!(
        "UPDATE audit_events SET at = {at} WHERE workspace_id = {} AND seq = 2",
        ws_sql(&db, ws)
    ))
    .await;
    assert_eq!(problem(&s.audit_verify(ws).await.unwrap()).0, 2);
}

backend_test!(verification_detects_a_removed_entry);
async fn verification_detects_a_removed_entry(db: Db) {
    let s = &db.store;
    // From the middle.
    let ws = busy_workspace(s, "middle").await;
    db.exec(&format!(
        "DELETE FROM audit_events WHERE workspace_id = {} AND seq = 2",
        ws_sql(&db, ws)
    ))
    .await;
    let (seq, reason) = problem(&s.audit_verify(ws).await.unwrap());
    assert_eq!(seq, 2, "{reason}");
    assert!(reason.contains("missing"), "{reason}");
    // The first.
    let ws = busy_workspace(s, "first").await;
    db.exec(&format!(
        "DELETE FROM audit_events WHERE workspace_id = {} AND seq = 1",
        ws_sql(&db, ws)
    ))
    .await;
    assert_eq!(problem(&s.audit_verify(ws).await.unwrap()).0, 1);
    // The last: the chain itself is intact, the head is not.
    let ws = busy_workspace(s, "last").await;
    db.exec(&format!(
        "DELETE FROM audit_events WHERE workspace_id = {} AND seq = 5",
        ws_sql(&db, ws)
    ))
    .await;
    let (seq, reason) = problem(&s.audit_verify(ws).await.unwrap());
    assert_eq!(seq, 5, "{reason}");
    assert!(reason.contains("removed from the end"), "{reason}");
    // Removed and renumbered, so there is no gap: the chain breaks.
    let ws = busy_workspace(s, "renumbered").await;
    let w = ws_sql(&db, ws);
    db.exec(&format!(
        "DELETE FROM audit_events WHERE workspace_id = {w} AND seq = 3; \
         UPDATE audit_events SET seq = seq - 1 WHERE workspace_id = {w} AND seq > 3; \
         UPDATE audit_heads SET seq = 4 WHERE workspace_id = {w}"
    ))
    .await;
    assert_eq!(problem(&s.audit_verify(ws).await.unwrap()).0, 3);
    // Everything, head included: detected by nothing but an empty log is all that is left.
    let ws = busy_workspace(s, "head").await;
    db.exec(&format!(
        "DELETE FROM audit_heads WHERE workspace_id = {}",
        ws_sql(&db, ws)
    ))
    .await;
    assert!(problem(&s.audit_verify(ws).await.unwrap())
        .1
        .contains("no head"));
}

backend_test!(verification_detects_reordered_entries);
async fn verification_detects_reordered_entries(db: Db) {
    let s = &db.store;
    // Two entries swap places (their sequence numbers).
    let ws = busy_workspace(s, "swap").await;
    let w = ws_sql(&db, ws);
    db.exec(&format!(
        "UPDATE audit_events SET seq = -1 WHERE workspace_id = {w} AND seq = 2; \
         UPDATE audit_events SET seq = 2 WHERE workspace_id = {w} AND seq = 3; \
         UPDATE audit_events SET seq = 3 WHERE workspace_id = {w} AND seq = -1"
    ))
    .await;
    let (seq, reason) = problem(&s.audit_verify(ws).await.unwrap());
    assert_eq!(seq, 2, "{reason}");
    // A later pair, so the first entries verify and the break is found where it is.
    let ws = busy_workspace(s, "later").await;
    let w = ws_sql(&db, ws);
    db.exec(&format!(
        "UPDATE audit_events SET seq = -4 WHERE workspace_id = {w} AND seq = 4; \
         UPDATE audit_events SET seq = 4 WHERE workspace_id = {w} AND seq = 3; \
         UPDATE audit_events SET seq = 3 WHERE workspace_id = {w} AND seq = -4"
    ))
    .await;
    assert_eq!(problem(&s.audit_verify(ws).await.unwrap()).0, 3);
    // An entry moved in from another workspace's log.
    let a = busy_workspace(s, "from").await;
    let b = busy_workspace(s, "into").await;
    db.exec(&format!(
        "DELETE FROM audit_events WHERE workspace_id = {} AND seq = 2; \
         UPDATE audit_events SET workspace_id = {} WHERE workspace_id = {} AND seq = 2",
        ws_sql(&db, b),
        ws_sql(&db, b),
        ws_sql(&db, a)
    ))
    .await;
    assert_eq!(problem(&s.audit_verify(b).await.unwrap()).0, 2);
    assert_eq!(problem(&s.audit_verify(a).await.unwrap()).0, 2);
}

/// Workspace `ws`'s chain rewritten from entry `from` on by someone without the key.
async fn rehash_without_the_key(db: &Db, ws: WorkspaceId, from: i64) {
    ferry_store::testing::audit_rehash_without_key(&db.store, ws, from)
        .await
        .unwrap();
}

backend_test!(a_chain_recomputed_without_the_key_is_detected);
async fn a_chain_recomputed_without_the_key_is_detected(db: Db) {
    let s = &db.store;
    // Positive control: untouched, and recomputed without a change, it verifies; only the
    // keyless recomputation is refused.
    let ws = busy_workspace(s, "acme").await;
    let r = s.audit_verify(ws).await.unwrap();
    assert_eq!((r.entries, r.problem), (5, None));
    // An entry changed and the chain from it recomputed with plain SHA-256.
    db.exec(&format!(
        "UPDATE audit_events SET actor = 'internal' WHERE workspace_id = {} AND seq = 3",
        ws_sql(&db, ws)
    ))
    .await;
    rehash_without_the_key(&db, ws, 3).await;
    let (seq, reason) = problem(&s.audit_verify(ws).await.unwrap());
    assert_eq!(seq, 3, "{reason}");
    assert!(reason.contains("changed"), "{reason}");
    // Recomputed from the very first entry, nothing changed: still refused, at entry 1.
    let ws = busy_workspace(s, "whole").await;
    rehash_without_the_key(&db, ws, 1).await;
    assert_eq!(problem(&s.audit_verify(ws).await.unwrap()).0, 1);
    // Another key's chain does not verify under this one either.
    let other = ferry_store::Store::connect(&db.url).await.unwrap();
    other
        .set_audit_key(ferry_store::AuditKey::for_tests())
        .unwrap();
    let ws = busy_workspace(&other, "other-key").await;
    assert_eq!(problem(&s.audit_verify(ws).await.unwrap()).0, 1);
    assert_eq!(other.audit_verify(ws).await.unwrap().problem, None);
    other.close().await;
}

backend_test!(a_store_without_the_key_makes_no_audited_change);
async fn a_store_without_the_key_makes_no_audited_change(db: Db) {
    let keyless = ferry_store::Store::connect(&db.url).await.unwrap();
    assert!(!keyless.has_audit_key());
    let ws = db.store.workspace_create(&name("acme")).await.unwrap().id;
    let no_key = |r: Result<_, ferry_store::Error>| {
        assert!(
            matches!(r, Err(ferry_store::Error::NoAuditKey)),
            "expected NoAuditKey"
        )
    };
    no_key(
        keyless
            .audit_append(ws, Actor::Cli, "test.append", "t", json!({}))
            .await
            .map(|_| ()),
    );
    no_key(
        keyless
            .pool_create_by(ws, &new_pool("sbx", PoolType::Managed), Actor::Cli)
            .await
            .map(|_| ()),
    );
    no_key(keyless.audit_verify(ws).await.map(|_| ()));
    // The change was not made without its entry.
    assert!(db.store.pool_get(ws, &name("sbx")).await.is_err());
    assert!(db.store.audit_list(ws, 0, 10).await.unwrap().is_empty());
    // A store's key is set once.
    assert!(db
        .store
        .set_audit_key(ferry_store::AuditKey::for_tests())
        .is_err());
    keyless.close().await;
}

backend_test!(chains_from_before_the_key_are_resealed_once_when_it_is_made);
async fn chains_from_before_the_key_are_resealed_once_when_it_is_made(db: Db) {
    // Two logs as a version without the key wrote them: plain SHA-256 chains. In the second,
    // entry 4 was changed afterwards (the chain was not recomputed).
    let good = busy_workspace(&db.store, "good").await;
    let broken = busy_workspace(&db.store, "broken").await;
    let empty = db.store.workspace_create(&name("empty")).await.unwrap().id;
    rehash_without_the_key(&db, good, 1).await;
    rehash_without_the_key(&db, broken, 1).await;
    db.exec(&format!(
        "UPDATE audit_events SET target = 'pool:forged' WHERE workspace_id = {} AND seq = 4",
        ws_sql(&db, broken)
    ))
    .await;

    let s = ferry_store::Store::connect(&db.url).await.unwrap();
    assert_eq!(s.audit_key_get().await.unwrap(), None);
    let key = ferry_store::AuditKey::for_tests();
    let new = ferry_store::NewAuditKey {
        root_key_id: "root-1".into(),
        wrapped_key: vec![1, 2, 3],
    };
    let mut resealed = s.audit_key_create(&new, &key).await.unwrap().unwrap();
    resealed.sort_by_key(|r| r.resealed);
    assert_eq!(resealed.len(), 2, "{resealed:?}");
    assert_eq!(
        (resealed[0].workspace_id, resealed[0].resealed),
        (broken, 3)
    );
    assert_eq!(resealed[0].problem.as_ref().map(|p| p.seq), Some(4));
    assert_eq!(
        (
            resealed[1].workspace_id,
            resealed[1].resealed,
            &resealed[1].problem
        ),
        (good, 5, &None)
    );
    // Made once: a second start uses the stored key.
    let again = ferry_store::NewAuditKey {
        root_key_id: "root-2".into(),
        wrapped_key: vec![4],
    };
    assert_eq!(s.audit_key_create(&again, &key).await.unwrap(), None);
    let stored = s.audit_key_get().await.unwrap().unwrap();
    assert_eq!(
        (stored.root_key_id.as_str(), stored.wrapped_key.as_slice()),
        ("root-1", &[1u8, 2, 3][..])
    );

    s.set_audit_key(key).unwrap();
    let r = s.audit_verify(good).await.unwrap();
    assert_eq!((r.entries, r.problem), (6, None));
    let last = s.audit_list(good, 5, 1).await.unwrap();
    assert_eq!(
        (last[0].action.as_str(), last[0].actor.as_str()),
        ("audit.reseal", "system")
    );
    assert_eq!(last[0].detail["resealed"], 5);
    // The broken log is still broken where it was, and only there.
    let (seq, reason) = problem(&s.audit_verify(broken).await.unwrap());
    assert_eq!(seq, 4, "{reason}");
    assert_eq!(s.audit_verify(empty).await.unwrap().problem, None);
    // New entries chain on.
    s.audit_append(good, Actor::Cli, "test.append", "t", json!({}))
        .await
        .unwrap();
    assert_eq!(s.audit_verify(good).await.unwrap().entries, 7);

    // Rotation's re-wrap: only from the root key it is under.
    assert!(matches!(
        s.audit_key_rewrap("root-0", "root-9", &[9]).await,
        Err(ferry_store::Error::Changed { .. })
    ));
    s.audit_key_rewrap("root-1", "root-9", &[9]).await.unwrap();
    assert_eq!(
        s.audit_key_get().await.unwrap().unwrap().root_key_id,
        "root-9"
    );
    s.close().await;
}
