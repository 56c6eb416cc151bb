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

/// `url` with its host replaced by `host` and `query` as its query string.
fn pg_url(host: &str, query: &str) -> String {
    let url = ferry_store::testing::admin_url();
    let (base, _) = url.split_once('?').unwrap_or((&url, ""));
    let (scheme, rest) = base.split_once("://").unwrap();
    let (auth, hostpath) = rest.rsplit_once('@').map_or(("", rest), |(a, h)| (a, h));
    let path = hostpath.split_once(':').map_or(hostpath, |(_, p)| p);
    let at = if auth.is_empty() { "" } else { "@" };
    format!("{scheme}://{auth}{at}{host}:{path}?{query}")
}

/// PostgreSQL connections honour `sslmode` up to `verify-full`: the local server has TLS with
/// a certificate for `localhost` (`ssl_cert_file`), which is trusted only when given as
/// `sslrootcert`, and names only `localhost`.
#[tokio::test]
async fn postgres_connections_honour_sslmode_up_to_verify_full() {
    use sqlx::Connection;
    // The store first: it names rustls's crypto provider, which a build that also carries
    // aws-lc-rs (the whole workspace's) cannot pick by itself — sqlx's TLS panicked without.
    let probe = Store::connect(&pg_url("localhost", "sslmode=require"))
        .await
        .unwrap();
    probe.ping().await.unwrap();
    probe.close().await;
    let plain = pg_url("127.0.0.1", "sslmode=disable");
    let mut c = sqlx::PgConnection::connect(&plain).await.unwrap();
    let (ssl, cert): (String, String) =
        sqlx::query_as("SELECT current_setting('ssl'), current_setting('ssl_cert_file')")
            .fetch_one(&mut c)
            .await
            .unwrap();
    assert_eq!(ssl, "on", "the test server must have TLS on for this test");
    let encrypted = |url: String| async move {
        let mut c = sqlx::PgConnection::connect(&url).await?;
        let on: bool =
            sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(&mut c)
                .await?;
        Ok::<bool, sqlx::Error>(on)
    };
    assert!(
        !encrypted(plain.clone()).await.unwrap(),
        "disable: plaintext"
    );
    assert!(encrypted(pg_url("127.0.0.1", "sslmode=require"))
        .await
        .unwrap());
    let root = format!("sslrootcert={cert}");
    // verify-full: the CA must be trusted and the name must match.
    assert!(
        encrypted(pg_url("localhost", "sslmode=verify-full"))
            .await
            .is_err(),
        "untrusted CA"
    );
    assert!(
        encrypted(pg_url("127.0.0.1", &format!("sslmode=verify-full&{root}")))
            .await
            .is_err(),
        "the certificate does not name 127.0.0.1"
    );
    assert!(
        encrypted(pg_url("localhost", &format!("sslmode=verify-full&{root}")))
            .await
            .unwrap()
    );
    // verify-ca checks the CA. (sqlx 0.8 with rustls checks the name under verify-ca too, so
    // the README recommends verify-full, which says what it does.)
    assert!(
        encrypted(pg_url("localhost", &format!("sslmode=verify-ca&{root}")))
            .await
            .unwrap()
    );
    assert!(
        encrypted(pg_url("localhost", "sslmode=verify-ca"))
            .await
            .is_err(),
        "untrusted CA"
    );
    // The store connects with what the URL says.
    let store = Store::connect(&pg_url("localhost", &format!("sslmode=verify-full&{root}")))
        .await
        .unwrap();
    store.ping().await.unwrap();
    store.close().await;
    assert!(
        Store::connect(&pg_url("127.0.0.1", &format!("sslmode=verify-full&{root}")))
            .await
            .is_err()
    );
}
