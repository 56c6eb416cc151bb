//! Artifacts: content-addressed per workspace, idempotent upload, isolated between tenants.

use crate::harness::{workspace, Db};

const DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";

async fn put_get_list_and_isolation(db: Db) {
    let s = &db.store;
    let a = workspace(s, "a").await;
    let b = workspace(s, "b").await;
    let bytes = b"\0asm\x01\0\0\0".to_vec();
    let (art, created) = s
        .artifact_put(a.id, DIGEST, "preview1", &bytes)
        .await
        .unwrap();
    assert!(created);
    assert_eq!(
        (art.digest.as_str(), art.kind.as_str(), art.size),
        (DIGEST, "preview1", 8)
    );
    let (again, created) = s
        .artifact_put(a.id, DIGEST, "preview1", &bytes)
        .await
        .unwrap();
    assert!(!created, "the same bytes again are not a new artifact");
    assert_eq!(again, art);
    assert_eq!(s.artifact_bytes(a.id, DIGEST).await.unwrap(), bytes);
    assert_eq!(s.artifacts_list(a.id).await.unwrap(), vec![art]);
    // Another workspace sees nothing of it.
    assert!(matches!(
        s.artifact_get(b.id, DIGEST).await,
        Err(ferry_store::Error::NotFound { kind: "artifact" })
    ));
    assert!(s.artifact_bytes(b.id, DIGEST).await.is_err());
    assert!(s.artifacts_list(b.id).await.unwrap().is_empty());
}
backend_test!(put_get_list_and_isolation);
