//! `/v1/secrets/{name}`: written, replaced, read as metadata only, deleted; revealed (through
//! the vault) only to its own workspace and only by its name.

use ferry_core::Name;
use secrecy::ExposeSecret;
use serde_json::json;

use crate::support::App;

backend_test!(secrets_are_write_only);
async fn secrets_are_write_only(app: App) {
    let t = app.tenant("acme").await;
    let dev = app.key(&t, "developer").await;
    let viewer = app.key(&t, "viewer").await;
    let created = app
        .put(
            &dev,
            "/v1/secrets/db-password",
            json!({"value": "hunter2-SECRET"}),
        )
        .await;
    created.expect(201);
    assert_eq!(created.body["name"], "db-password");
    assert_eq!(created.body["version"], 1);
    assert!(created.body["created_at"].is_string() && created.body["updated_at"].is_string());
    let replaced = app
        .put(
            &dev,
            "/v1/secrets/db-password",
            json!({"value": "hunter3-SECRET"}),
        )
        .await;
    replaced.expect(200);
    assert_eq!(replaced.body["version"], 2);
    assert_eq!(replaced.body["created_at"], created.body["created_at"]);
    for reply in [
        app.get(&viewer, "/v1/secrets/db-password").await,
        app.get(&viewer, "/v1/secrets").await,
        replaced,
    ] {
        reply.expect(200);
        assert!(!reply.text.contains("hunter"), "{}", reply.text);
    }
    // The vault opens the latest value, by name, for this workspace only.
    let ws = t.id.parse().unwrap();
    let vault = app.vault();
    let v = vault
        .secret_reveal(ws, &Name::parse("db-password").unwrap())
        .await
        .unwrap();
    assert_eq!(
        v.map(|s| s.expose_secret().to_owned()).as_deref(),
        Some("hunter3-SECRET")
    );
    assert!(vault
        .secret_reveal(ws, &Name::parse("other").unwrap())
        .await
        .unwrap()
        .is_none());
    let b = app.tenant("beta").await;
    let other_ws = b.id.parse().unwrap();
    assert!(vault
        .secret_reveal(other_ws, &Name::parse("db-password").unwrap())
        .await
        .unwrap()
        .is_none());
    app.get(&b.admin, "/v1/secrets/db-password")
        .await
        .expect(404);
    app.delete(&b.admin, "/v1/secrets/db-password")
        .await
        .expect(404);
    // Viewers and runners do not write.
    app.put(&viewer, "/v1/secrets/x", json!({"value": "v"}))
        .await
        .expect(403);
    let runner = app.key(&t, "runner").await;
    app.get(&runner, "/v1/secrets").await.expect(403);
    // Bad input.
    app.put(&dev, "/v1/secrets/x", json!({"value": ""}))
        .await
        .expect_error(422, &["must not be empty"]);
    app.put(
        &dev,
        "/v1/secrets/x",
        json!({"value": "a".repeat(64 * 1024 + 1)}),
    )
    .await
    .expect_error(422, &["at most 65536"]);
    app.put(&dev, "/v1/secrets/Bad_Name", json!({"value": "v"}))
        .await
        .expect_error(422, &["secret name"]);
    app.put(&dev, "/v1/secrets/x", json!({"value": "v", "ttl": 3}))
        .await
        .expect_error(422, &["unknown field"]);
    app.put(&dev, "/v1/secrets/x", json!({"value": 5}))
        .await
        .expect(422);
    // Deleted: gone for everyone.
    app.delete(&dev, "/v1/secrets/db-password")
        .await
        .expect(204);
    app.get(&dev, "/v1/secrets/db-password").await.expect(404);
    assert!(vault
        .secret_reveal(ws, &Name::parse("db-password").unwrap())
        .await
        .unwrap()
        .is_none());
    assert_eq!(app.get(&dev, "/v1/secrets").await.body["items"], json!([]));
}

backend_test!(concurrent_writes_of_one_secret_all_land);
async fn concurrent_writes_of_one_secret_all_land(app: App) {
    let t = app.tenant("acme").await;
    let writes: Vec<_> = (0..3)
        .map(|i| {
            app.put(
                &t.admin,
                "/v1/secrets/shared",
                json!({"value": format!("v{i}")}),
            )
        })
        .collect();
    let replies = futures::future::join_all(writes).await;
    let created = replies.iter().filter(|r| r.status == 201).count();
    assert_eq!(created, 1, "{replies:#?}");
    assert!(
        replies.iter().all(|r| r.status == 201 || r.status == 200),
        "{replies:#?}"
    );
    assert_eq!(
        app.get(&t.admin, "/v1/secrets/shared").await.body["version"],
        3
    );
}
