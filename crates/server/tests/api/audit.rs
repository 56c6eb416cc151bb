//! `/v1/audit` and `ferry admin audit verify`: every audited action of the API is listed, in
//! order, with who did it; only admins read it; tampering is reported.

use serde_json::json;

use crate::support::{assume_role, App};

backend_test!(every_audited_action_is_recorded_in_order);
async fn every_audited_action_is_recorded_in_order(app: App) {
    let t = app.tenant("acme").await;
    let admin_id = {
        let keys = app.get(&t.admin, "/v1/api-keys").await;
        keys.body["items"][0]["id"].as_str().unwrap().to_owned()
    };
    let c = app
        .post(
            &t.admin,
            "/v1/credentials",
            assume_role("aws", "111111111111"),
        )
        .await;
    let cred = format!("/v1/credentials/{}", c.body["id"].as_str().unwrap());
    app.put(&t.admin, &cred, assume_role("aws", "222222222222"))
        .await
        .expect(200);
    app.put(
        &t.admin,
        "/v1/secrets/s",
        json!({"value": "AUDIT-CANARY-1"}),
    )
    .await
    .expect(201);
    app.put(
        &t.admin,
        "/v1/secrets/s",
        json!({"value": "AUDIT-CANARY-2"}),
    )
    .await
    .expect(200);
    app.delete(&t.admin, "/v1/secrets/s").await.expect(204);
    let key = app
        .post(&t.admin, "/v1/api-keys", json!({"role": "viewer"}))
        .await;
    let viewer = key.body["key"].as_str().unwrap().to_owned();
    let key_id = key.body["id"].as_str().unwrap().to_owned();
    app.post(&t.admin, "/v1/pools", json!({"name": "ecs", "type": "ecs", "credential": "aws", "job_template": {"cluster": "c"}})).await.expect(201);
    app.request(
        &t.admin,
        reqwest::Method::PATCH,
        "/v1/pools/ecs",
        Some(json!({"paused": true})),
    )
    .await
    .expect(200);
    app.delete(&t.admin, "/v1/pools/ecs").await.expect(204);
    app.delete(&t.admin, &cred).await.expect(204);
    app.request(
        &t.admin,
        reqwest::Method::PATCH,
        "/v1/workspace",
        Some(json!({"store_logs": false})),
    )
    .await
    .expect(200);
    app.delete(&t.admin, &format!("/v1/api-keys/{key_id}"))
        .await
        .expect(200);
    // Refused attempts change nothing and are not entries.
    app.delete(&t.admin, "/v1/secrets/nope").await.expect(404);

    let log = app.get(&t.admin, "/v1/audit").await;
    log.expect(200);
    let items = log.body["items"].as_array().unwrap();
    let actions: Vec<&str> = items
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "workspace.create",
            "api_key.create",
            "credential.create",
            "credential.rotate",
            "secret.create",
            "secret.update",
            "secret.delete",
            "api_key.create",
            "pool.create",
            "pool.update",
            "pool.delete",
            "credential.delete",
            "workspace.update",
            "api_key.revoke",
        ]
    );
    let seqs: Vec<i64> = items.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=14).collect::<Vec<_>>());
    assert_eq!(items[0]["actor"], "internal");
    assert_eq!(items[1]["actor"], "internal");
    let me = format!("key:{admin_id}");
    assert!(
        items[2..].iter().all(|e| e["actor"] == json!(me)),
        "{items:#?}"
    );
    assert_eq!(items[2]["target"], "credential:aws");
    assert_eq!(items[3]["detail"]["version"], 2);
    assert_eq!(items[12]["detail"], json!({"store_logs": false}));
    for pair in items.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
    }
    assert!(!log.text.contains("AUDIT-CANARY"));
    // Paging.
    let page = app.get(&t.admin, "/v1/audit?after=3&limit=2").await;
    let seqs: Vec<i64> = page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(
        (seqs, page.body["next_after"].clone()),
        (vec![4, 5], json!(5))
    );
    let last = app.get(&t.admin, "/v1/audit?after=13").await;
    assert_eq!(last.body["next_after"], json!(null));
    app.get(&t.admin, "/v1/audit?limit=0").await.expect(400);
    // Admins only (the viewer key was revoked; a fresh developer key is refused too).
    app.get(&viewer, "/v1/audit").await.expect(401);
    let dev = app.key(&t, "developer").await;
    app.get(&dev, "/v1/audit").await.expect(403);
    // Another workspace sees only its own.
    let b = app.tenant("beta").await;
    let theirs = app.get(&b.admin, "/v1/audit").await;
    assert_eq!(theirs.body["items"].as_array().unwrap().len(), 2);

    let reports = ferry_server::audit_verify(&app.config, None).await.unwrap();
    assert_eq!(reports.len(), 2);
    assert!(
        reports.iter().all(|(_, r)| r.problem.is_none()),
        "{reports:?}"
    );
}

backend_test!(verify_reports_the_first_tampered_entry);
async fn verify_reports_the_first_tampered_entry(app: App) {
    let t = app.tenant("acme").await;
    for i in 0..4 {
        app.put(
            &t.admin,
            &format!("/v1/secrets/s{i}"),
            json!({"value": "v"}),
        )
        .await
        .expect(201);
    }
    let ok = ferry_server::audit_verify(&app.config, Some("acme"))
        .await
        .unwrap();
    assert_eq!(ok[0].1.problem, None);
    assert_eq!(ok[0].1.entries, 6);
    app.exec(&format!(
        "UPDATE audit_events SET actor = 'cli' WHERE seq = 4 AND workspace_id = {}",
        app.uuid_sql(&t.id)
    ))
    .await;
    let bad = ferry_server::audit_verify(&app.config, Some("acme"))
        .await
        .unwrap();
    let p = bad[0].1.problem.clone().unwrap();
    assert_eq!(p.seq, 4);
    assert!(p.reason.contains("changed"), "{}", p.reason);
    let missing = ferry_server::audit_verify(&app.config, Some("nobody")).await;
    assert!(missing
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
        .contains("no workspace named"));
}

/// Workspace `ws`'s chain rewritten from entry `from` on by someone without the key
/// (`ferry_store::testing::audit_rehash_without_key`), on a connection of its own.
async fn rehash_without_the_key(app: &App, ws: &str, from: i64) {
    let store = ferry_store::Store::connect(&app.config.database_url())
        .await
        .unwrap();
    ferry_store::testing::audit_rehash_without_key(&store, ws.parse().unwrap(), from)
        .await
        .unwrap();
    store.close().await;
}

/// A tenant with six entries (workspace, key, four secrets).
async fn tenant_with_history(app: &App, name: &str) -> crate::support::Tenant {
    let t = app.tenant(name).await;
    for i in 0..4 {
        app.put(
            &t.admin,
            &format!("/v1/secrets/s{i}"),
            json!({"value": "v"}),
        )
        .await
        .expect(201);
    }
    t
}

fn verified(reports: &[(ferry_store::Workspace, ferry_store::AuditReport)]) -> bool {
    reports.iter().all(|(_, r)| r.problem.is_none())
}

backend_test!(an_entry_changed_and_rehashed_without_the_key_is_named);
async fn an_entry_changed_and_rehashed_without_the_key_is_named(app: App) {
    let t = tenant_with_history(&app, "acme").await;
    let ok = ferry_server::audit_verify(&app.config, Some("acme"))
        .await
        .unwrap();
    assert!(verified(&ok), "{ok:?}");
    assert_eq!(ok[0].1.entries, 6);
    // The attacker changes entry 4 and recomputes the chain from it, head included.
    app.exec(&format!(
        "UPDATE audit_events SET actor = 'cli' WHERE seq = 4 AND workspace_id = {}",
        app.uuid_sql(&t.id)
    ))
    .await;
    rehash_without_the_key(&app, &t.id, 4).await;
    let bad = ferry_server::audit_verify(&app.config, Some("acme"))
        .await
        .unwrap();
    let p = bad[0]
        .1
        .problem
        .clone()
        .expect("a rewritten chain verified");
    assert_eq!(p.seq, 4, "{}", p.reason);
    assert!(p.reason.contains("changed"), "{}", p.reason);
    // The key is in the database only wrapped by the root key.
    let stored = app
        .raw_rows("audit_key", &["id", "root_key_id", "wrapped_key"])
        .await;
    assert_eq!(stored.len(), 1, "{stored:?}");
}

backend_test!(root_key_rotation_keeps_the_audit_chain_verifiable);
async fn root_key_rotation_keeps_the_audit_chain_verifiable(app: App) {
    let t = tenant_with_history(&app, "acme").await;
    let r = ferry_server::root_key_rotate(&app.config).await.unwrap();
    // The audit key moved to the new root key, so the old one could be retired.
    let stored = app.raw_rows("audit_key", &["root_key_id"]).await;
    assert_eq!(stored, std::slice::from_ref(&r.new_key_id));
    assert!(r.retired.contains(&r.old_key_id), "{r:?}");
    let again = ferry_server::root_key_rotate(&app.config).await.unwrap();
    assert_eq!(
        app.raw_rows("audit_key", &["root_key_id"]).await,
        std::slice::from_ref(&again.new_key_id)
    );
    // The running server goes on appending under the same audit key.
    app.put(&t.admin, "/v1/secrets/after", json!({"value": "v"}))
        .await
        .expect(201);
    let reports = ferry_server::audit_verify(&app.config, None).await.unwrap();
    assert!(verified(&reports), "{reports:?}");
    // 6, the two rotations' re-wraps of the workspace key, and the secret.
    assert_eq!(reports[0].1.entries, 9);
    // And tampering is still found.
    app.exec(&format!(
        "UPDATE audit_events SET target = 'secret:x' WHERE seq = 2 AND workspace_id = {}",
        app.uuid_sql(&t.id)
    ))
    .await;
    rehash_without_the_key(&app, &t.id, 2).await;
    let bad = ferry_server::audit_verify(&app.config, None).await.unwrap();
    assert_eq!(bad[0].1.problem.as_ref().map(|p| p.seq), Some(2));
}

backend_test!(chains_of_an_earlier_version_are_resealed_at_the_first_start);
async fn chains_of_an_earlier_version_are_resealed_at_the_first_start(mut app: App) {
    let a = tenant_with_history(&app, "acme").await;
    let b = tenant_with_history(&app, "beta").await;
    app.stop().await;
    // What a database of the version before the audit key holds: plain SHA-256 chains and no
    // key. One of them was changed back then (not recomputed).
    rehash_without_the_key(&app, &a.id, 1).await;
    rehash_without_the_key(&app, &b.id, 1).await;
    app.exec(&format!(
        "DELETE FROM audit_key; UPDATE audit_events SET actor = 'cli' WHERE seq = 5 AND workspace_id = {}",
        app.uuid_sql(&b.id)
    ))
    .await;
    // The first command of this version makes the key and re-seals what verifies.
    let reports = ferry_server::audit_verify(&app.config, None).await.unwrap();
    let by_name = |n: &str| {
        reports
            .iter()
            .find(|(ws, _)| ws.name.as_str() == n)
            .map(|(_, r)| r.clone())
            .unwrap()
    };
    let acme = by_name("acme");
    assert_eq!((acme.entries, acme.problem), (7, None));
    let beta = by_name("beta");
    assert_eq!(beta.problem.map(|p| p.seq), Some(5));
    // Once: a server started now uses that key and appends on.
    let server =
        ferry_server::Server::start(app.config.clone(), ferry_engine::Executors::default())
            .await
            .unwrap();
    let r = app
        .http
        .put(format!("{}/v1/secrets/later", server.public_url()))
        .bearer_auth(&a.admin)
        .json(&json!({"value": "v"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    server.shutdown().await;
    let again = ferry_server::audit_verify(&app.config, Some("acme"))
        .await
        .unwrap();
    assert_eq!((again[0].1.entries, &again[0].1.problem), (8, &None));
}
