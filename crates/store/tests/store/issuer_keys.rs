//! The issuer's signing keys: one row per generation however many processes race to make it,
//! the published set by time, expired keys deleted but never the newest, and re-wrapping
//! under another root key only from the root key the caller saw.

use chrono::{Duration, Utc};
use ferry_store::{Error, NewIssuerKey};

use crate::harness::Db;

fn key(kid: &str, generation: i64, not_after_in: Duration) -> NewIssuerKey {
    let now = Utc::now();
    NewIssuerKey {
        kid: kid.to_owned(),
        generation,
        alg: "ES256".into(),
        public_jwk: format!("{{\"kid\":\"{kid}\"}}"),
        root_key_id: "root-1".into(),
        wrapped_key: vec![1, 2, 3],
        sealed_private_key: vec![4, 5, 6],
        not_before: now,
        retire_after: now + not_after_in - Duration::minutes(15),
        not_after: now + not_after_in,
    }
}

backend_test!(racing_creators_of_one_generation_store_one_key);
async fn racing_creators_of_one_generation_store_one_key(db: Db) {
    let tries: Vec<_> = (0..8)
        .map(|i| {
            let store = db.store.clone();
            tokio::spawn(async move {
                store
                    .issuer_key_create(&key(&format!("k{i}"), 1, Duration::days(30)))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut stored = 0;
    for t in tries {
        if t.await.unwrap() {
            stored += 1;
        }
    }
    assert_eq!(stored, 1);
    let live = db.store.issuer_keys_live(Utc::now()).await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].generation, 1);
    assert_eq!(live[0].sealed_private_key, vec![4, 5, 6]);
    // The same kid again, at another generation: refused too.
    assert!(!db
        .store
        .issuer_key_create(&key(&live[0].kid, 2, Duration::days(30)))
        .await
        .unwrap());
    assert!(matches!(
        db.store
            .issuer_key_create(&key("zero", 0, Duration::days(1)))
            .await,
        Err(Error::Invalid(_))
    ));
}

backend_test!(expired_keys_leave_the_published_set_but_the_newest_stays);
async fn expired_keys_leave_the_published_set_but_the_newest_stays(db: Db) {
    let s = &db.store;
    assert!(s.issuer_keys_live(Utc::now()).await.unwrap().is_empty());
    assert!(s
        .issuer_key_create(&key("old", 1, Duration::minutes(20)))
        .await
        .unwrap());
    assert!(s
        .issuer_key_create(&key("new", 2, Duration::days(30)))
        .await
        .unwrap());
    let kids =
        |keys: Vec<ferry_store::IssuerKey>| keys.into_iter().map(|k| k.kid).collect::<Vec<_>>();
    assert_eq!(
        kids(s.issuer_keys_live(Utc::now()).await.unwrap()),
        ["old", "new"]
    );
    // Half an hour later, the old one is no longer published; nothing is deleted yet.
    let later = Utc::now() + Duration::minutes(30);
    assert_eq!(kids(s.issuer_keys_live(later).await.unwrap()), ["new"]);
    assert_eq!(s.issuer_keys_delete_expired(Utc::now()).await.unwrap(), 0);
    assert_eq!(s.issuer_keys_delete_expired(later).await.unwrap(), 1);
    // Long after, the newest key is still there (its generation is the last one used).
    let much_later = Utc::now() + Duration::days(60);
    assert_eq!(s.issuer_keys_delete_expired(much_later).await.unwrap(), 0);
    assert_eq!(kids(s.issuer_keys_live(much_later).await.unwrap()), ["new"]);
}

backend_test!(rewrap_moves_keys_from_the_root_key_the_caller_saw);
async fn rewrap_moves_keys_from_the_root_key_the_caller_saw(db: Db) {
    let s = &db.store;
    s.issuer_key_create(&key("a", 1, Duration::days(1)))
        .await
        .unwrap();
    assert_eq!(s.issuer_key_root_ids().await.unwrap(), ["root-1"]);
    assert_eq!(
        s.issuer_keys_not_under("root-2", 10).await.unwrap().len(),
        1
    );
    assert!(matches!(
        s.issuer_key_rewrap("a", "root-0", "root-2", &[9]).await,
        Err(Error::Changed { .. })
    ));
    s.issuer_key_rewrap("a", "root-1", "root-2", &[9])
        .await
        .unwrap();
    assert!(s
        .issuer_keys_not_under("root-2", 10)
        .await
        .unwrap()
        .is_empty());
    let live = s.issuer_keys_live(Utc::now()).await.unwrap();
    assert_eq!(
        (live[0].root_key_id.as_str(), live[0].wrapped_key.as_slice()),
        ("root-2", &[9u8][..])
    );
    assert_eq!(live[0].sealed_private_key, vec![4, 5, 6]);
}
