//! `/v1/credentials`: each kind registered, shown without material, refused with a clear
//! message when wrong, rotated, deleted unless in use, and invisible to other workspaces;
//! push pools need a fitting credential.

use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::support::{assume_role, aws_key, sa_key, wif_config, App};

backend_test!(each_kind_is_registered_and_shown_without_material);
async fn each_kind_is_registered_and_shown_without_material(app: App) {
    let t = app.tenant("acme").await;
    let bodies = [
        json!({"name": "gcp", "kind": "gcp-service-account-key", "key": sa_key("kid-SECRET-1", "ferry@proj.iam.gserviceaccount.com")}),
        json!({"name": "wif", "kind": "gcp-workload-identity", "config": wif_config("hdr-SECRET-2")}),
        aws_key(
            "keys",
            "AKIAABCDEFGHIJKL1234",
            "aws-SECRET-3-wJalrXUtnFEMI",
            Some("tok-SECRET-4"),
        ),
        assume_role("role", "111111111111"),
    ];
    let settings = app.get(&t.admin, "/v1/workspace").await;
    let external_id = settings.body["aws_external_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(external_id.starts_with("ferry-"));
    let mut ids = Vec::new();
    for body in &bodies {
        let r = app.post(&t.admin, "/v1/credentials", body.clone()).await;
        r.expect(201);
        assert!(!r.text.contains("SECRET"), "{}", r.text);
        assert!(!r.text.contains("PRIVATE KEY"), "{}", r.text);
        assert_eq!(r.body["name"], body["name"]);
        assert_eq!(r.body["kind"], body["kind"]);
        assert_eq!(r.body["version"], 1);
        assert!(
            r.body["validation"].is_null()
                && r.body.as_object().unwrap().contains_key("validation")
        );
        assert!(r.body["fingerprint"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:"));
        if body["kind"] == "aws-assume-role" {
            assert_eq!(r.body["external_id"], json!(external_id));
            assert_eq!(r.body["metadata"]["account_id"], "111111111111");
        } else {
            assert!(r.body.get("external_id").is_none(), "{}", r.text);
        }
        ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    let keys = app
        .get(&t.admin, &format!("/v1/credentials/{}", ids[2]))
        .await;
    assert_eq!(
        keys.body["metadata"],
        json!({"region": "us-east-1", "access_key_id_last4": "1234", "session_token": true})
    );
    let gcp = app
        .get(&t.admin, &format!("/v1/credentials/{}", ids[0]))
        .await;
    assert_eq!(
        gcp.body["metadata"]["client_email"],
        "ferry@proj.iam.gserviceaccount.com"
    );
    let wif = app
        .get(&t.admin, &format!("/v1/credentials/{}", ids[1]))
        .await;
    assert_eq!(
        wif.body["metadata"]["service_account"],
        "run@proj.iam.gserviceaccount.com"
    );
    // Viewers and developers read metadata; the list is by name.
    let viewer = app.key(&t, "viewer").await;
    let list = app.get(&viewer, "/v1/credentials").await;
    list.expect(200);
    let names: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["gcp", "keys", "role", "wif"]);
    assert!(!list.text.contains("SECRET"));
    // The material is sealed, and opens to exactly what was sent.
    let (cred, material) = app
        .vault()
        .credential_reveal(t.id.parse().unwrap(), ids[2].parse().unwrap())
        .await
        .unwrap();
    assert_eq!(cred.name.as_str(), "keys");
    let m: Value = serde_json::from_str(material.expose_secret()).unwrap();
    assert_eq!(m["secret_access_key"], "aws-SECRET-3-wJalrXUtnFEMI");
    assert_eq!(m["session_token"], "tok-SECRET-4");
    let (_, sa) = app
        .vault()
        .credential_reveal(t.id.parse().unwrap(), ids[0].parse().unwrap())
        .await
        .unwrap();
    let sa: Value = serde_json::from_str(sa.expose_secret()).unwrap();
    assert_eq!(
        sa,
        sa_key("kid-SECRET-1", "ferry@proj.iam.gserviceaccount.com")
    );
}

backend_test!(fingerprints_recognise_equal_material_within_a_workspace_only);
async fn fingerprints_recognise_equal_material_within_a_workspace_only(app: App) {
    let a = app.tenant("acme").await;
    let b = app.tenant("beta").await;
    let fp = |r: &crate::support::Reply| r.body["fingerprint"].as_str().unwrap().to_owned();
    let one = app
        .post(
            &a.admin,
            "/v1/credentials",
            aws_key(
                "one",
                "AKIAABCDEFGHIJKL1234",
                "secret-secret-secret-1",
                None,
            ),
        )
        .await;
    let two = app
        .post(
            &a.admin,
            "/v1/credentials",
            aws_key(
                "two",
                "AKIAABCDEFGHIJKL1234",
                "secret-secret-secret-1",
                None,
            ),
        )
        .await;
    let three = app
        .post(
            &a.admin,
            "/v1/credentials",
            aws_key(
                "three",
                "AKIAABCDEFGHIJKL1234",
                "secret-secret-secret-2",
                None,
            ),
        )
        .await;
    let other = app
        .post(
            &b.admin,
            "/v1/credentials",
            aws_key(
                "one",
                "AKIAABCDEFGHIJKL1234",
                "secret-secret-secret-1",
                None,
            ),
        )
        .await;
    // The name is not material; the region is.
    assert_eq!(fp(&one), fp(&two));
    assert_ne!(fp(&one), fp(&three));
    assert_ne!(fp(&one), fp(&other));
}

backend_test!(bad_credentials_are_refused_saying_what_is_wrong);
async fn bad_credentials_are_refused_saying_what_is_wrong(app: App) {
    let t = app.tenant("acme").await;
    let key = sa_key("kid", "ferry@proj.iam.gserviceaccount.com");
    let mut wrong_type = key.clone();
    wrong_type["type"] = json!("authorized_user");
    let mut foreign_uri = key.clone();
    foreign_uri["token_uri"] = json!("https://token.example.com/token");
    let mut bad_pem = key.clone();
    bad_pem["private_key"] =
        json!("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n");
    let mut file_sourced = wif_config("h");
    file_sourced["credential_source"] = json!({"file": "/var/run/token"});
    let mut exec_sourced = wif_config("h");
    exec_sourced["credential_source"] = json!({"executable": {"command": "/bin/id"}});
    let mut foreign_sts = wif_config("h");
    foreign_sts["token_url"] = json!("https://sts.example.com/v1/token");
    let mut with_external = assume_role("r", "111111111111");
    with_external["external_id"] = json!("my-own-id");
    let mut bad_arn = assume_role("r", "111111111111");
    bad_arn["role_arn"] = json!("arn:aws:iam::1111:role/x");
    let cases: Vec<(Value, &[&str])> = vec![
        (
            json!({"name": "g", "kind": "gcp-service-account-key", "key": "{\"type\": \"service_acc"}),
            &["key must be the key file's JSON object"],
        ),
        (
            json!({"name": "g", "kind": "gcp-service-account-key", "key": wrong_type}),
            &["key.type must be \"service_account\"", "authorized_user"],
        ),
        (
            json!({"name": "g", "kind": "gcp-service-account-key", "key": foreign_uri}),
            &["key.token_uri must be \"https://oauth2.googleapis.com/token\""],
        ),
        (
            json!({"name": "g", "kind": "gcp-service-account-key", "key": bad_pem}),
            &["key.private_key"],
        ),
        (
            json!({"name": "w", "kind": "gcp-workload-identity", "config": file_sourced}),
            &[
                "credential_source (file) is refused",
                "leave credential_source out",
            ],
        ),
        (
            json!({"name": "w", "kind": "gcp-workload-identity", "config": exec_sourced}),
            &[
                "credential_source (executable) is refused",
                "leave credential_source out",
            ],
        ),
        (
            json!({"name": "w", "kind": "gcp-workload-identity", "config": foreign_sts}),
            &["https://sts.googleapis.com/"],
        ),
        (
            with_external,
            &["Ferry generates the external id", "trust policy"],
        ),
        (bad_arn, &["role_arn", "12-digit account"]),
        (
            json!({"name": "x", "kind": "ssh-key"}),
            &["kind \"ssh-key\" is not one of"],
        ),
        (
            json!({"kind": "aws-assume-role", "role_arn": "arn:aws:iam::111111111111:role/x", "region": "us-east-1"}),
            &["name is required"],
        ),
        (
            assume_role("Bad_Name", "111111111111"),
            &["name \"Bad_Name\""],
        ),
    ];
    for (body, mentions) in cases {
        let r = app.post(&t.admin, "/v1/credentials", body.clone()).await;
        assert_eq!(r.body["error"]["code"], "invalid_request", "{body}: {r:?}");
        r.expect_error(422, mentions);
    }
    // A body that is not JSON at all is a 400, as everywhere in the API.
    let raw = app
        .http
        .post(format!("{}/v1/credentials", app.url))
        .bearer_auth(&t.admin)
        .header("content-type", "application/json")
        .body("{\"name\": \"x\", \"kind\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    // Nothing was stored.
    assert_eq!(
        app.get(&t.admin, "/v1/credentials").await.body["items"],
        json!([])
    );
    // Taken names conflict; only admins write.
    app.post(
        &t.admin,
        "/v1/credentials",
        assume_role("r", "111111111111"),
    )
    .await
    .expect(201);
    app.post(
        &t.admin,
        "/v1/credentials",
        assume_role("r", "222222222222"),
    )
    .await
    .expect(409);
    let dev = app.key(&t, "developer").await;
    app.post(&dev, "/v1/credentials", assume_role("d", "111111111111"))
        .await
        .expect(403);
}

backend_test!(another_workspace_s_credential_is_not_found);
async fn another_workspace_s_credential_is_not_found(app: App) {
    let a = app.tenant("acme").await;
    let b = app.tenant("beta").await;
    let c = app
        .post(
            &a.admin,
            "/v1/credentials",
            assume_role("r", "111111111111"),
        )
        .await;
    let path = format!("/v1/credentials/{}", c.body["id"].as_str().unwrap());
    app.get(&b.admin, &path)
        .await
        .expect_error(404, &["credential not found"]);
    app.put(&b.admin, &path, assume_role("r", "222222222222"))
        .await
        .expect(404);
    app.delete(&b.admin, &path).await.expect(404);
    app.get(&b.admin, "/v1/credentials/not-a-uuid")
        .await
        .expect(404);
    assert_eq!(
        app.get(&b.admin, "/v1/credentials").await.body["items"],
        json!([])
    );
    // Still there, unchanged, for its own workspace.
    let again = app.get(&a.admin, &path).await;
    again.expect(200);
    assert_eq!(again.body["version"], 1);
    // And a pool of `b` cannot name it.
    let pool =
        json!({"name": "ecs", "type": "ecs", "credential": "r", "job_template": {"cluster": "c"}});
    app.post(&b.admin, "/v1/pools", pool)
        .await
        .expect_error(422, &["does not exist in this workspace"]);
}

backend_test!(rotation_replaces_the_material_under_the_same_name);
async fn rotation_replaces_the_material_under_the_same_name(app: App) {
    let t = app.tenant("acme").await;
    let c = app
        .post(
            &t.admin,
            "/v1/credentials",
            aws_key("keys", "AKIAABCDEFGHIJKL1111", "first-secret-value-1", None),
        )
        .await;
    let id = c.body["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/credentials/{id}");
    let r = app
        .put(
            &t.admin,
            &path,
            aws_key(
                "keys",
                "AKIAABCDEFGHIJKL2222",
                "second-secret-value-2",
                None,
            ),
        )
        .await;
    r.expect(200);
    assert_eq!(
        (r.body["version"].clone(), r.body["id"].clone()),
        (json!(2), json!(id))
    );
    assert_eq!(r.body["metadata"]["access_key_id_last4"], "2222");
    assert_ne!(r.body["fingerprint"], c.body["fingerprint"]);
    assert_eq!(r.body["created_at"], c.body["created_at"]);
    let (_, m) = app
        .vault()
        .credential_reveal(t.id.parse().unwrap(), id.parse().unwrap())
        .await
        .unwrap();
    assert!(m.expose_secret().contains("second-secret-value-2"));
    // Without a name is fine; another name or kind is not.
    let mut nameless = aws_key("x", "AKIAABCDEFGHIJKL3333", "third-secret-value-3", None);
    nameless.as_object_mut().unwrap().remove("name");
    app.put(&t.admin, &path, nameless).await.expect(200);
    app.put(
        &t.admin,
        &path,
        aws_key(
            "renamed",
            "AKIAABCDEFGHIJKL3333",
            "third-secret-value-3",
            None,
        ),
    )
    .await
    .expect_error(422, &["a rotation keeps the name"]);
    app.put(&t.admin, &path, assume_role("keys", "111111111111"))
        .await
        .expect_error(422, &["aws-access-key", "aws-assume-role"]);
    app.put(&t.admin, &path, json!({"kind": "aws-access-key"}))
        .await
        .expect_error(422, &["access_key_id is required"]);
    assert_eq!(app.get(&t.admin, &path).await.body["version"], 3);
}

backend_test!(a_credential_in_use_is_not_deleted_and_the_pools_are_named);
async fn a_credential_in_use_is_not_deleted_and_the_pools_are_named(app: App) {
    let t = app.tenant("acme").await;
    let c = app
        .post(
            &t.admin,
            "/v1/credentials",
            assume_role("prod-aws", "111111111111"),
        )
        .await;
    let path = format!("/v1/credentials/{}", c.body["id"].as_str().unwrap());
    for p in ["ecs-a", "ecs-b"] {
        let pool = json!({"name": p, "type": "ecs", "credential": "prod-aws", "job_template": {"cluster": "c"}});
        app.post(&t.admin, "/v1/pools", pool).await.expect(201);
    }
    app.delete(&t.admin, &path)
        .await
        .expect_error(409, &["\"ecs-a\", \"ecs-b\""]);
    app.get(&t.admin, &path).await.expect(200);
    for p in ["ecs-a", "ecs-b"] {
        app.delete(&t.admin, &format!("/v1/pools/{p}"))
            .await
            .expect(204);
    }
    app.delete(&t.admin, &path).await.expect(204);
    app.get(&t.admin, &path).await.expect(404);
}

backend_test!(push_pools_need_an_existing_credential_of_a_fitting_kind);
async fn push_pools_need_an_existing_credential_of_a_fitting_kind(app: App) {
    let t = app.tenant("acme").await;
    let pool = |ty: &str, cred: Option<&str>| {
        let mut p = json!({"name": format!("{ty}-pool"), "type": ty, "job_template": {}});
        if let Some(c) = cred {
            p["credential"] = json!(c);
        }
        p
    };
    app.post(&t.admin, "/v1/pools", pool("ecs", None))
        .await
        .expect_error(
            422,
            &["needs a credential", "aws-access-key or aws-assume-role"],
        );
    app.post(&t.admin, "/v1/pools", pool("ecs", Some("nope")))
        .await
        .expect_error(422, &["\"nope\" does not exist", "POST /v1/credentials"]);
    app.post(&t.admin, "/v1/credentials", json!({"name": "gcp", "kind": "gcp-service-account-key", "key": sa_key("k", "a@b.iam.gserviceaccount.com")})).await.expect(201);
    app.post(
        &t.admin,
        "/v1/credentials",
        assume_role("aws", "111111111111"),
    )
    .await
    .expect(201);
    app.post(&t.admin, "/v1/pools", pool("ecs", Some("gcp")))
        .await
        .expect_error(422, &["gcp-service-account-key", "ecs"]);
    app.post(&t.admin, "/v1/pools", pool("cloud-run", Some("aws")))
        .await
        .expect_error(422, &["aws-assume-role", "cloud-run"]);
    app.post(&t.admin, "/v1/pools", pool("ecs", Some("aws")))
        .await
        .expect(201);
    app.post(&t.admin, "/v1/pools", pool("cloud-run", Some("gcp")))
        .await
        .expect(201);
    app.post(
        &t.admin,
        "/v1/pools",
        json!({"name": "m", "type": "managed", "credential": "aws"}),
    )
    .await
    .expect(422);
}
