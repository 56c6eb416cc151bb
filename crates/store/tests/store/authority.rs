//! What a long-lived answer (a followed log) re-checks while it streams: that the key it was
//! opened with is still active.

use ferry_core::{ApiKeyId, Role};

use crate::harness::{workspace, Db};

backend_test!(a_key_is_active_until_revoked_and_only_in_its_workspace);
async fn a_key_is_active_until_revoked_and_only_in_its_workspace(db: Db) {
    let s = &db.store;
    let a = workspace(s, "acme").await;
    let b = workspace(s, "beta").await;
    let key = s
        .api_key_create(a.id, Role::Viewer, b"hash-a", "fry_a")
        .await
        .unwrap();
    assert!(s.api_key_is_active(a.id, key.id).await.unwrap());
    // Named with another workspace, or a key that does not exist: not active.
    assert!(!s.api_key_is_active(b.id, key.id).await.unwrap());
    assert!(!s.api_key_is_active(a.id, ApiKeyId::new()).await.unwrap());
    s.api_key_revoke(a.id, key.id).await.unwrap();
    assert!(!s.api_key_is_active(a.id, key.id).await.unwrap());
}
