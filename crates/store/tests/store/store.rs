//! The store handle itself: connecting by URL, the backend it reports, ping and close, and
//! migrations that can be run again.

use ferry_core::PoolType;
use ferry_store::{Backend, Error, Store};

use crate::harness::{pool, run_in, workspace, Db, Kind};

backend_test!(connects_by_url_pings_and_closes);
async fn connects_by_url_pings_and_closes(db: Db) {
    let (urls, backend) = match db.kind {
        Kind::Sqlite => {
            // Both spellings of a SQLite URL open the same file.
            let path = db.url.trim_start_matches("sqlite://").to_owned();
            (
                vec![db.url.clone(), format!("sqlite:{path}")],
                Backend::Sqlite,
            )
        }
        Kind::Postgres => {
            let alt = db.url.replacen("postgres://", "postgresql://", 1);
            (vec![db.url.clone(), alt], Backend::Postgres)
        }
    };
    let ws = workspace(&db.store, "acme").await;
    for url in urls {
        let s = Store::connect(&url).await.unwrap();
        assert_eq!(s.backend(), backend);
        assert_eq!(s.backend().as_str(), backend.to_string());
        s.ping().await.unwrap();
        // It sees the same database.
        assert_eq!(s.workspace_get(ws.id).await.unwrap(), ws);
        s.close().await;
        assert!(s.ping().await.is_err(), "a closed store refuses work");
    }
    assert_eq!(db.store.backend(), backend);
    db.store.ping().await.unwrap();

    if db.kind == Kind::Sqlite {
        // An in-memory database lives on one connection, which every call shares.
        let mem = Store::connect("sqlite::memory:").await.unwrap();
        mem.migrate().await.unwrap();
        let ws = workspace(&mem, "in-memory").await;
        let p = pool(&mem, ws.id, "sbx", PoolType::Managed).await;
        let run = run_in(&mem, &p).await;
        assert_eq!(mem.run_get(ws.id, run.id).await.unwrap(), run);
        assert_eq!(mem.workspaces_list().await.unwrap(), vec![ws]);
        mem.close().await;
    }

    match Store::connect("mysql://user:secret@host/db").await {
        Err(e @ Error::UnsupportedUrl { .. }) => {
            assert!(e.to_string().contains("\"mysql\""), "{e}");
            assert!(
                !e.to_string().contains("secret"),
                "the URL's password is not echoed"
            );
        }
        other => panic!("expected UnsupportedUrl, got {other:?}"),
    }
}

backend_test!(migrating_again_changes_nothing);
async fn migrating_again_changes_nothing(db: Db) {
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let run = run_in(s, &pool(s, ws.id, "sbx", PoolType::Managed).await).await;
    s.migrate().await.unwrap();
    s.migrate().await.unwrap();
    assert_eq!(s.run_get(ws.id, run.id).await.unwrap(), run);
}

backend_test!(concurrent_writers_do_not_fail_with_busy);
async fn concurrent_writers_do_not_fail_with_busy(db: Db) {
    // The engine writes from many tasks at once; on SQLite they queue for the single write
    // lock instead of failing.
    let s = &db.store;
    let ws = workspace(s, "acme").await;
    let p = pool(s, ws.id, "sbx", PoolType::Managed).await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (s, p) = (s.clone(), p.clone());
            tokio::spawn(async move {
                for j in 0..10 {
                    let run = run_in(&s, &p).await;
                    let line = crate::logs::line(&format!("{i}/{j}"));
                    s.run_logs_append(run.id, &[line], 1024).await.unwrap();
                    if j % 2 == 0 {
                        s.run_request_cancel(p.workspace_id, run.id).await.unwrap();
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let counts = s.runs_count_by_state().await.unwrap();
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    assert_eq!(total, 160);
    assert!(counts.contains(&(ferry_core::RunState::Cancelled, 80)));
}
