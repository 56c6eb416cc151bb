//! Workspaces, API keys and pools, and the isolation of one workspace from another: every
//! workspace-scoped method answers `NotFound` for another workspace's object and changes
//! nothing.

use ferry_core::{ApiKeyId, PoolId, PoolLimits, PoolType, Role, RunId, RunState, WorkspaceId};
use ferry_store::{Error, PoolPatch, RunFilter};
use serde_json::json;

use crate::harness::{claim_one, name, new_pool, new_run, pool, run_in, workspace, Db};

backend_test!(workspaces_are_created_read_and_listed);
async fn workspaces_are_created_read_and_listed(db: Db) {
    let s = &db.store;
    let b = workspace(s, "beta").await;
    let a = workspace(s, "acme").await;
    assert_eq!(a.name.as_str(), "acme");
    assert_eq!(s.workspace_get(a.id).await.unwrap(), a);
    assert_eq!(s.workspace_get_by_name(&name("beta")).await.unwrap(), b);
    let listed = s.workspaces_list().await.unwrap();
    assert_eq!(listed, vec![a.clone(), b], "listed by name");

    match s.workspace_create(&name("acme")).await {
        Err(Error::Conflict {
            kind: "workspace",
            name,
        }) => assert_eq!(name, "acme"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        s.workspaces_list().await.unwrap().len(),
        2,
        "the duplicate was not stored"
    );
    assert!(matches!(
        s.workspace_get(WorkspaceId::new()).await,
        Err(Error::NotFound { kind: "workspace" })
    ));
    assert!(matches!(
        s.workspace_get_by_name(&name("nope")).await,
        Err(Error::NotFound { kind: "workspace" })
    ));
}

backend_test!(api_keys_are_created_found_by_hash_listed_and_revoked);
async fn api_keys_are_created_found_by_hash_listed_and_revoked(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let admin = s
        .api_key_create(ws.id, Role::Admin, b"hash-admin", "fy_adm")
        .await
        .unwrap();
    let viewer = s
        .api_key_create(ws.id, Role::Viewer, b"hash-view", "fy_vie")
        .await
        .unwrap();
    assert_eq!(admin.role, Role::Admin);
    assert_eq!(admin.workspace_id, ws.id);
    assert_eq!(admin.prefix, "fy_adm");
    assert_eq!(admin.revoked_at, None);

    assert_eq!(s.api_key_get_by_hash(b"hash-view").await.unwrap(), viewer);
    assert!(matches!(
        s.api_key_get_by_hash(b"hash-other").await,
        Err(Error::NotFound { kind: "api key" })
    ));
    assert_eq!(
        s.api_keys_list(ws.id).await.unwrap(),
        vec![admin.clone(), viewer.clone()]
    );

    // A hash is unique across workspaces.
    let other = workspace(s, "other").await;
    assert!(matches!(
        s.api_key_create(other.id, Role::Admin, b"hash-admin", "fy_x")
            .await,
        Err(Error::Conflict {
            kind: "api key",
            ..
        })
    ));
    assert!(matches!(
        s.api_key_create(WorkspaceId::new(), Role::Admin, b"hash-new", "fy_n")
            .await,
        Err(Error::NotFound { kind: "workspace" })
    ));

    let revoked = s.api_key_revoke(ws.id, viewer.id).await.unwrap();
    let at = revoked.revoked_at.expect("revoked_at is set");
    // A revoked key is still found, so the caller can say it was revoked.
    assert_eq!(
        s.api_key_get_by_hash(b"hash-view")
            .await
            .unwrap()
            .revoked_at,
        Some(at)
    );
    // Revoking again keeps the first time.
    assert_eq!(
        s.api_key_revoke(ws.id, viewer.id).await.unwrap().revoked_at,
        Some(at)
    );
    assert!(matches!(
        s.api_key_revoke(ws.id, ApiKeyId::new()).await,
        Err(Error::NotFound { kind: "api key" })
    ));
    assert_eq!(
        s.api_keys_list(ws.id).await.unwrap().len(),
        2,
        "revoked keys are listed"
    );
}

backend_test!(pools_are_created_read_listed_updated_and_deleted);
async fn pools_are_created_read_listed_updated_and_deleted(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let mut spec = new_pool("ecs-prod", PoolType::Ecs);
    spec.concurrency_limit = Some(4);
    spec.paused = true;
    let ecs = s.pool_create(ws.id, &spec).await.unwrap();
    assert_eq!(ecs.name, spec.name);
    assert_eq!(ecs.pool_type, PoolType::Ecs);
    assert_eq!(ecs.limits, spec.limits);
    assert_eq!(ecs.job_template, spec.job_template);
    assert_eq!(ecs.credential, Some(name("cred")));
    assert_eq!(ecs.concurrency_limit, Some(4));
    assert_eq!(ecs.max_retries, 2);
    assert!(ecs.paused);
    assert_eq!(ecs.created_at, ecs.updated_at);
    let managed = pool(s, ws.id, "a-sandbox", PoolType::Managed).await;
    assert_eq!(managed.credential, None);

    assert_eq!(s.pool_get(ws.id, &name("ecs-prod")).await.unwrap(), ecs);
    assert_eq!(s.pool_get_by_id(ws.id, ecs.id).await.unwrap(), ecs);
    assert_eq!(
        s.pools_list(ws.id).await.unwrap(),
        vec![managed.clone(), ecs.clone()]
    );

    match s
        .pool_create(ws.id, &new_pool("ecs-prod", PoolType::Managed))
        .await
    {
        Err(Error::Conflict { kind: "pool", name }) => assert_eq!(name, "ecs-prod"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // The same name in another workspace is another pool.
    let other = workspace(s, "other").await;
    pool(s, other.id, "ecs-prod", PoolType::Ecs).await;
    assert!(matches!(
        s.pool_create(WorkspaceId::new(), &new_pool("x", PoolType::Managed))
            .await,
        Err(Error::NotFound { kind: "workspace" })
    ));

    // An empty patch changes only updated_at.
    let same = s
        .pool_update(ws.id, &ecs.name, &PoolPatch::default())
        .await
        .unwrap();
    assert_eq!(
        (same.limits, &same.job_template, same.concurrency_limit),
        (ecs.limits, &ecs.job_template, Some(4))
    );
    assert!(same.updated_at >= ecs.updated_at);

    let limits = PoolLimits {
        timeout_s: Some(99),
        ..Default::default()
    };
    let patch = PoolPatch {
        limits: Some(limits),
        job_template: Some(json!({"image": "new"})),
        concurrency_limit: Some(None),
        max_retries: Some(7),
        paused: Some(false),
    };
    let updated = s.pool_update(ws.id, &ecs.name, &patch).await.unwrap();
    assert_eq!(updated.limits, limits);
    assert_eq!(updated.job_template, json!({"image": "new"}));
    assert_eq!(
        updated.concurrency_limit, None,
        "Some(None) clears the limit"
    );
    assert_eq!(updated.max_retries, 7);
    assert!(!updated.paused);
    assert_eq!(updated.created_at, ecs.created_at);
    assert!(updated.updated_at >= same.updated_at);
    let limited = PoolPatch {
        concurrency_limit: Some(Some(3)),
        ..Default::default()
    };
    assert_eq!(
        s.pool_update(ws.id, &ecs.name, &limited)
            .await
            .unwrap()
            .concurrency_limit,
        Some(3)
    );
    assert_eq!(s.pool_get(ws.id, &ecs.name).await.unwrap().max_retries, 7);
    assert!(matches!(
        s.pool_update(ws.id, &name("nope"), &patch).await,
        Err(Error::NotFound { kind: "pool" })
    ));

    s.pool_delete(ws.id, &ecs.name).await.unwrap();
    assert!(matches!(
        s.pool_get(ws.id, &ecs.name).await,
        Err(Error::NotFound { kind: "pool" })
    ));
    assert!(matches!(
        s.pool_delete(ws.id, &ecs.name).await,
        Err(Error::NotFound { kind: "pool" })
    ));
    assert_eq!(s.pools_list(ws.id).await.unwrap(), vec![managed]);
    // The name is free again.
    pool(s, ws.id, "ecs-prod", PoolType::Ecs).await;
}

backend_test!(another_workspaces_objects_are_not_found_and_unchanged);
async fn another_workspaces_objects_are_not_found_and_unchanged(db: Db) {
    let s = &db.store;
    let a = workspace(s, "acme").await;
    let b = workspace(s, "beta").await;
    let key = s
        .api_key_create(a.id, Role::Admin, b"hash-a", "fy_a")
        .await
        .unwrap();
    let p = pool(s, a.id, "sbx", PoolType::Managed).await;
    let owned = run_in(s, &p).await;
    let owned = claim_one(s, "sched", &owned).await;
    let scheduled = run_in(s, &p).await;
    s.run_logs_append(owned.id, &[crate::logs::line("secret output")], 1 << 20)
        .await
        .unwrap();

    fn not_found<T: std::fmt::Debug>(r: Result<T, Error>, kind: &str) {
        match r {
            Err(Error::NotFound { kind: k }) => assert_eq!(k, kind),
            other => panic!("expected {kind} not found, got {other:?}"),
        }
    }
    not_found(s.api_key_revoke(b.id, key.id).await, "api key");
    assert!(s.api_keys_list(b.id).await.unwrap().is_empty());
    not_found(s.pool_get(b.id, &p.name).await, "pool");
    not_found(s.pool_get_by_id(b.id, p.id).await, "pool");
    assert!(s.pools_list(b.id).await.unwrap().is_empty());
    not_found(
        s.pool_update(
            b.id,
            &p.name,
            &PoolPatch {
                paused: Some(true),
                ..Default::default()
            },
        )
        .await,
        "pool",
    );
    not_found(s.pool_delete(b.id, &p.name).await, "pool");
    // A run can be submitted only into the workspace's own pool.
    let mut foreign = new_run(&p);
    foreign.workspace_id = b.id;
    not_found(s.run_create(&foreign).await, "pool");
    for run in [&scheduled, &owned] {
        not_found(s.run_get(b.id, run.id).await, "run");
        not_found(s.run_request_cancel(b.id, run.id).await, "run");
        not_found(s.run_events(b.id, run.id).await, "run");
        not_found(s.run_logs(b.id, run.id, 0, 100).await, "run");
    }
    not_found(s.run_get(a.id, RunId::new()).await, "run");
    let listed = s.runs_list(b.id, &RunFilter::default()).await.unwrap();
    assert!(listed.items.is_empty() && listed.next_cursor.is_none());

    // Nothing changed in workspace a.
    assert_eq!(
        s.api_key_get_by_hash(b"hash-a").await.unwrap().revoked_at,
        None
    );
    assert_eq!(s.pool_get(a.id, &p.name).await.unwrap(), p);
    assert_eq!(s.run_get(a.id, scheduled.id).await.unwrap(), scheduled);
    assert_eq!(
        s.run_get(a.id, owned.id).await.unwrap().state,
        RunState::Pending
    );
    assert_eq!(
        s.runs_list(a.id, &RunFilter::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    assert_eq!(s.run_events(a.id, owned.id).await.unwrap().len(), 2);
    assert_eq!(
        s.run_logs(a.id, owned.id, 0, 100)
            .await
            .unwrap()
            .lines
            .len(),
        1
    );
    not_found(s.pool_get_by_id(a.id, PoolId::new()).await, "pool");
}

backend_test!(ip_allowlists_are_per_workspace_audited_and_read_with_the_key);
async fn ip_allowlists_are_per_workspace_audited_and_read_with_the_key(db: Db) {
    use ferry_core::{Cidrs, IpAllowList};
    let s = &db.store;
    let a = workspace(s, "acme").await;
    let b = workspace(s, "beta").await;
    let key = s
        .api_key_create(a.id, Role::Admin, b"hash-a", "fry_a")
        .await
        .unwrap();
    // A new workspace allows every address.
    assert_eq!(
        s.workspace_ip_allowlist(a.id).await.unwrap(),
        IpAllowList::default()
    );
    let list = IpAllowList::new(Cidrs::parse(&["192.0.2.0/24", "2001:db8::/48"]).unwrap());
    s.workspace_ip_allowlist_set(a.id, &list, ferry_store::Actor::Cli)
        .await
        .unwrap();
    assert_eq!(s.workspace_ip_allowlist(a.id).await.unwrap(), list);
    // Another workspace's list is its own.
    assert_eq!(
        s.workspace_ip_allowlist(b.id).await.unwrap(),
        IpAllowList::default()
    );
    // Authenticating a key reads its workspace's list with it.
    let (found, allow) = s.api_key_authenticate(b"hash-a").await.unwrap();
    assert_eq!((found.id, allow), (key.id, list.clone()));
    assert!(matches!(
        s.api_key_authenticate(b"nope").await,
        Err(Error::NotFound { kind: "api key" })
    ));
    // The change is in the audit log, with what it replaced.
    s.workspace_ip_allowlist_set(a.id, &IpAllowList::default(), ferry_store::Actor::Cli)
        .await
        .unwrap();
    let events = s.audit_list(a.id, 0, 100).await.unwrap();
    let sets: Vec<_> = events
        .iter()
        .filter(|e| e.action == "workspace.ip_allowlist.set")
        .map(|e| e.detail.clone())
        .collect();
    assert_eq!(
        sets,
        vec![
            json!({"cidrs": ["192.0.2.0/24", "2001:db8::/48"], "previous": []}),
            json!({"cidrs": [], "previous": ["192.0.2.0/24", "2001:db8::/48"]}),
        ]
    );
    assert!(matches!(
        s.workspace_ip_allowlist_set(WorkspaceId::new(), &list, ferry_store::Actor::Cli)
            .await,
        Err(Error::NotFound { kind: "workspace" })
    ));
    // A corrupt stored list is an error, not an open door.
    db.exec("UPDATE workspaces SET ip_allowlist = '[\"10.0.0.1/8\"]' WHERE name = 'acme'")
        .await;
    assert!(s.api_key_authenticate(b"hash-a").await.is_err());
}
