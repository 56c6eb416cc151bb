//! No secret material where it must not be. Registers 100 credentials of each kind, 100
//! secrets and 20 runs with sensitive parameters, every secret field holding a unique random
//! canary, through the HTTP API of an in-process Ferry, then looks for every canary in:
//! each HTTP response; the raw bytes of every file of the data directory (the SQLite database
//! with its -wal and -shm files) or a `pg_dump` of the PostgreSQL database (plain and
//! hex-encoded, as bytea is dumped); and everything logged at TRACE level meanwhile.
//!
//! The TRACE subscriber it installs is process-global: nextest runs every test in a process of
//! its own, so it sees this test's logs (under `cargo test` it would see others' too, which
//! only adds lines to search).

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use crate::support::{assume_role, aws_key, sa_key, wif_config, App, Kind, Reply};
use serde_json::json;

/// Everything logged, at every level, by every target.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The process's log, captured at TRACE whatever `FERRY_LOG` says.
fn captured() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(logs.clone())
            .init();
        logs
    })
}

fn random_hex(len: usize) -> String {
    let mut s = String::new();
    while s.len() < len {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(len);
    s
}

/// Canaries, with a description of where each went.
#[derive(Default)]
struct Canaries(BTreeMap<String, String>);

impl Canaries {
    fn lower(&mut self, what: String) -> String {
        let c = random_hex(32);
        self.0.insert(c.clone(), what);
        c
    }

    fn upper(&mut self, what: String) -> String {
        let c = random_hex(16).to_ascii_uppercase();
        self.0.insert(c.clone(), what);
        c
    }

    /// The first canary found in `hay` (also hex-encoded, when `hex` is set), and where it
    /// went.
    fn find_in(&self, hay: &[u8], hex: bool) -> Option<(String, String)> {
        let mut needles: BTreeMap<usize, HashSet<Vec<u8>>> = BTreeMap::new();
        let mut origin = BTreeMap::new();
        for (c, what) in &self.0 {
            let mut forms = vec![c.as_bytes().to_vec()];
            if hex {
                forms.push(
                    c.bytes()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                        .into_bytes(),
                );
            }
            for f in forms {
                origin.insert(f.clone(), (c.clone(), what.clone()));
                needles.entry(f.len()).or_default().insert(f);
            }
        }
        for (len, set) in &needles {
            if let Some(w) = hay.windows(*len).find(|w| set.contains(*w)) {
                return origin.get(w).cloned();
            }
        }
        None
    }
}

#[track_caller]
fn assert_clean(c: &Canaries, what: &str, hay: &[u8], hex: bool) {
    if let Some((canary, origin)) = c.find_in(hay, hex) {
        panic!("canary {canary} ({origin}) found in {what}");
    }
}

const N: usize = 100;

async fn no_canary_anywhere(mut app: App) {
    let logs = captured();
    let mut c = Canaries::default();
    let mut replies: Vec<Reply> = Vec::new();
    let a = app.tenant("acme").await;
    let b = app.tenant("beta").await;
    for i in 0..N {
        let t = if i % 2 == 0 { &a } else { &b };
        let key_id = c.lower(format!("private_key_id of sa-{i}"));
        let body = json!({"name": format!("sa-{i}"), "kind": "gcp-service-account-key",
            "key": sa_key(&key_id, "ferry@proj.iam.gserviceaccount.com")});
        replies.push(app.post(&t.admin, "/v1/credentials", body).await);
        let header = c.lower(format!("quota_project_id of wif-{i}"));
        let body = json!({"name": format!("wif-{i}"), "kind": "gcp-workload-identity", "config": wif_config(&header)});
        replies.push(app.post(&t.admin, "/v1/credentials", body).await);
        let id = format!("AKIA{}ABCD", c.upper(format!("access_key_id of aws-{i}")));
        let secret = format!(
            "{}/K7MDENG",
            c.lower(format!("secret_access_key of aws-{i}"))
        );
        let token = format!("IQoJ{}", c.lower(format!("session_token of aws-{i}")));
        replies.push(
            app.post(
                &t.admin,
                "/v1/credentials",
                aws_key(&format!("aws-{i}"), &id, &secret, Some(&token)),
            )
            .await,
        );
        replies.push(
            app.post(
                &t.admin,
                "/v1/credentials",
                assume_role(&format!("role-{i}"), "111111111111"),
            )
            .await,
        );
        let value = c.lower(format!("value of secret s-{i}"));
        replies.push(
            app.put(
                &t.admin,
                &format!("/v1/secrets/s-{i}"),
                json!({"value": value}),
            )
            .await,
        );
    }
    // Rotations and replacements too: the old material must not linger either.
    for i in 0..10 {
        let t = if i % 2 == 0 { &a } else { &b };
        let id = replies[i * 5 + 2].body["id"].as_str().unwrap().to_owned();
        let secret = c.lower(format!("rotated secret_access_key of aws-{i}"));
        let body = aws_key(&format!("aws-{i}"), "AKIAROTATEDROTATED12", &secret, None);
        replies.push(
            app.put(&t.admin, &format!("/v1/credentials/{id}"), body)
                .await,
        );
        let value = c.lower(format!("second value of secret s-{i}"));
        replies.push(
            app.put(
                &t.admin,
                &format!("/v1/secrets/s-{i}"),
                json!({"value": value}),
            )
            .await,
        );
    }
    replies.push(
        app.post(
            &a.admin,
            "/v1/pools",
            json!({"name": "sbx", "type": "managed"}),
        )
        .await,
    );
    for i in 0..20 {
        let p = c.lower(format!("sensitive parameter of run {i}"));
        let body = json!({"pool": "sbx", "artifact": crate::support::NOOP_DIGEST,
            "sensitive_parameters": {"password": p}});
        replies.push(app.post(&a.admin, "/v1/runs", body).await);
    }
    // Some refused requests carrying secrets, whose errors must not echo them.
    for i in 0..5 {
        let secret = c.lower(format!("secret of refused request {i}"));
        let mut body = aws_key(&format!("bad-{i}"), "lowercase-id", &secret, None);
        body["region"] = json!("nowhere");
        replies.push(app.post(&a.admin, "/v1/credentials", body).await);
        let key = c.lower(format!("key given as a string {i}"));
        replies.push(
            app.post(
                &a.admin,
                "/v1/credentials",
                json!({"name": "s", "kind": "gcp-service-account-key", "key": key}),
            )
            .await,
        );
    }
    for r in &replies {
        assert!(r.status < 500, "{r:#?}");
    }
    let ok = replies.iter().filter(|r| r.status < 300).count();
    assert_eq!(ok, 5 * N + 20 + 1 + 20, "every good request succeeded");
    // Reads of everything there is to read.
    for t in [&a, &b] {
        replies.push(app.get(&t.admin, "/v1/credentials").await);
        replies.push(app.get(&t.admin, "/v1/secrets").await);
        replies.push(app.get(&t.admin, "/v1/audit?limit=1000").await);
        replies.push(app.get(&t.admin, "/v1/runs?limit=500").await);
    }
    for (i, r) in replies.iter().enumerate() {
        assert_clean(
            &c,
            &format!("HTTP response {i} ({})", r.status),
            r.text.as_bytes(),
            false,
        );
    }
    // The private key's own text is material too.
    let pem_line = crate::support::SA_PEM.lines().nth(3).unwrap().to_owned();
    c.0.insert(pem_line, "a line of the service-account private key".into());

    match app.kind {
        Kind::Sqlite => {
            let dir = app.data_dir();
            let read_all = |c: &Canaries, when: &str| {
                for entry in std::fs::read_dir(&dir).unwrap() {
                    let path = entry.unwrap().path();
                    if path.is_file() {
                        let bytes = std::fs::read(&path).unwrap();
                        assert_clean(c, &format!("{} ({when})", path.display()), &bytes, false);
                    }
                }
            };
            assert!(app.data_dir().join("ferry.db-wal").exists());
            read_all(&c, "while running");
            app.stop().await;
            read_all(&c, "after shutdown");
        }
        Kind::Postgres => {
            let out = std::process::Command::new("pg_dump")
                .arg("--no-owner")
                .arg(app.config.database_url())
                .output()
                .expect("pg_dump is installed");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(out.stdout.len() > 10_000, "the dump holds the data");
            assert!(String::from_utf8_lossy(&out.stdout).contains("COPY public.credentials"));
            assert_clean(&c, "pg_dump", &out.stdout, true);
            app.stop().await;
        }
    }
    let logged = logs.0.lock().unwrap().clone();
    assert!(
        logged.len() > 100_000,
        "TRACE logging was captured ({} bytes)",
        logged.len()
    );
    assert!(String::from_utf8_lossy(&logged).contains("Credential registered"));
    assert_clean(&c, "the TRACE log", &logged, false);
}

backend_test!(no_canary_anywhere);
