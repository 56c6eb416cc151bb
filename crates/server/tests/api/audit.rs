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
