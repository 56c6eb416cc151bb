//! The public edge, tried from outside: TLS by version and a certificate replaced on disk,
//! plaintext refused off loopback, the IP allow-list through trusted and untrusted proxies,
//! rate limits per key and per workspace, and slow clients that must not starve others.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{run_configured, App, Kind};

/// A CA and a certificate it signs for `localhost` and 127.0.0.1, as PEM.
struct Pki {
    ca: String,
    cert: String,
    key: String,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    Pki {
        ca: ca.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

fn write_pair(dir: &Path, pki: &Pki) -> (std::path::PathBuf, std::path::PathBuf) {
    let (c, k) = (dir.join("tls.crt"), dir.join("tls.key"));
    // Replaced as a secret volume replaces files: written aside, then renamed into place.
    std::fs::write(dir.join("tls.crt.new"), &pki.cert).unwrap();
    std::fs::write(dir.join("tls.key.new"), &pki.key).unwrap();
    std::fs::rename(dir.join("tls.crt.new"), &c).unwrap();
    std::fs::rename(dir.join("tls.key.new"), &k).unwrap();
    (c, k)
}

/// A client trusting only `ca`, speaking only TLS `version`.
fn tls_client(ca: &str, version: reqwest::tls::Version) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .min_tls_version(version)
        .max_tls_version(version)
        .build()
        .unwrap()
}

async fn healthz(client: &reqwest::Client, url: &str) -> Result<u16, reqwest::Error> {
    Ok(client
        .get(format!("{url}/healthz"))
        .send()
        .await?
        .status()
        .as_u16())
}

/// A TLS 1.0/1.1-only ClientHello (`version` 0x0301 or 0x0302), with no extensions.
fn old_client_hello(version: u16) -> Vec<u8> {
    let mut hello = Vec::new();
    hello.extend_from_slice(&version.to_be_bytes());
    hello.extend_from_slice(&[7u8; 32]); // random
    hello.push(0); // no session id
                   // Suites the server does offer (ECDHE with AES-GCM): only the version is wrong.
    hello.extend_from_slice(&[0, 4, 0xc0, 0x2b, 0xc0, 0x2f]);
    hello.extend_from_slice(&[1, 0]); // null compression
    let mut handshake = vec![1, 0, 0, hello.len() as u8];
    handshake.extend(hello);
    let mut record = vec![0x16, 0x03, 0x01, 0, handshake.len() as u8];
    record.extend(handshake);
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_speaks_1_2_and_1_3_only() {
    let dir = tempfile::tempdir().unwrap();
    let ours = pki();
    let (cert, key) = write_pair(dir.path(), &ours);
    run_configured(
        Kind::Sqlite,
        |c| c.edge.tls = Some((cert, key)),
        |app: App| async move {
            assert!(app.url.starts_with("https://"), "{}", app.url);
            let url = app.url.replace("127.0.0.1", "localhost");
            for v in [
                reqwest::tls::Version::TLS_1_2,
                reqwest::tls::Version::TLS_1_3,
            ] {
                let status = healthz(&tls_client(&ours.ca, v), &url).await;
                assert_eq!(status.ok(), Some(200), "{v:?}");
            }
            // A client that does not trust the CA gets no answer.
            let other = pki().ca;
            assert!(
                healthz(&tls_client(&other, reqwest::tls::Version::TLS_1_3), &url)
                    .await
                    .is_err()
            );
            // Plain HTTP to the TLS listener gets no answer either.
            let plain = app.url.replace("https://", "http://");
            assert!(healthz(&reqwest::Client::new(), &plain).await.is_err());
            // TLS 1.0 and 1.1 are refused with a fatal alert, never a ServerHello.
            let addr: SocketAddr = app.url.trim_start_matches("https://").parse().unwrap();
            for version in [0x0301, 0x0302] {
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                s.write_all(&old_client_hello(version)).await.unwrap();
                let mut answer = [0u8; 7];
                let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut answer))
                    .await
                    .unwrap()
                    .unwrap_or(0);
                assert!(
                    n == 0 || answer[0] == 0x15,
                    "{version:#x}: {:?}",
                    &answer[..n]
                );
                if n == 7 {
                    assert_eq!(answer[5], 2, "a fatal alert: {answer:?}");
                }
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_replaced_on_disk_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (pki(), pki());
    let (cert, key) = write_pair(dir.path(), &first);
    let d = dir.path().to_owned();
    run_configured(
        Kind::Sqlite,
        |c| c.edge.tls = Some((cert, key)),
        |app: App| async move {
            let url = app.url.replace("127.0.0.1", "localhost");
            let v = reqwest::tls::Version::TLS_1_3;
            assert_eq!(
                healthz(&tls_client(&first.ca, v), &url).await.ok(),
                Some(200)
            );
            assert!(healthz(&tls_client(&second.ca, v), &url).await.is_err());
            // A broken replacement is refused: the current certificate stays.
            std::fs::write(d.join("tls.crt"), "not a certificate").unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            assert_eq!(
                healthz(&tls_client(&first.ca, v), &url).await.ok(),
                Some(200)
            );
            write_pair(&d, &second);
            let mut served = false;
            for _ in 0..60 {
                // New connections each time: a client pool would keep the old session.
                if healthz(&tls_client(&second.ca, v), &url).await.ok() == Some(200) {
                    served = true;
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            assert!(served, "the new certificate was never served");
            assert!(healthz(&tls_client(&first.ca, v), &url).await.is_err());
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_off_loopback_is_refused_unless_a_proxy_terminates_tls() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ferry_server::Config::for_tests(dir.path());
    config.listen = "0.0.0.0:0".parse().unwrap();
    let refused = ferry_server::Server::start(config.clone(), ferry_engine::Executors::default())
        .await
        .err()
        .map(|e| format!("{e:#}"))
        .unwrap_or_default();
    assert!(
        refused.contains("FERRY_TLS_CERT") && refused.contains("FERRY_ALLOW_PLAINTEXT"),
        "{refused}"
    );
    config.edge.allow_plaintext = true;
    let server = ferry_server::Server::start(config, ferry_engine::Executors::default())
        .await
        .unwrap();
    server.shutdown().await;
}

/// A client whose connections come from `from` (a loopback address of its own).
fn client_from(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

async fn call(
    client: &reqwest::Client,
    app: &App,
    key: &str,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
    forwarded_for: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut req = client
        .request(method, format!("{}{path}", app.url))
        .bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    if let Some(xff) = forwarded_for {
        req = req.header("x-forwarded-for", xff);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

backend_test!(ip_allow_lists_hold_through_trusted_proxies_only);
async fn ip_allow_lists_hold_through_trusted_proxies_only(app: App) {
    let acme = app.tenant("acme").await;
    let beta = app.tenant("beta").await;
    let (direct, proxy, stranger) = (
        client_from("127.0.0.1"),
        client_from("127.0.0.2"),
        client_from("127.0.0.3"),
    );
    let list = "/v1/workspace/ip-allowlist";
    let get = |c, xff| call(c, &app, &acme.admin, Method::GET, list, None, xff);
    // Open by default, and the caller is shown its own address.
    let (status, shown) = get(&direct, None).await;
    assert_eq!((status, shown["cidrs"].clone()), (200, json!([])));
    assert_eq!(shown["your_address"], "127.0.0.1");
    // Bad networks say what to fix.
    let put = |c, body, xff| call(c, &app, &acme.admin, Method::PUT, list, Some(body), xff);
    let (status, e) = put(&direct, json!({"cidrs": ["127.0.0.1/8"]}), None).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (422, Some("invalid_request"))
    );
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("127.0.0.0/8"));
    // A list leaving out the caller is refused unless forced.
    let (status, e) = put(&direct, json!({"cidrs": ["192.0.2.0/24"]}), None).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (409, Some("would_lock_out"))
    );
    let (status, set) = put(
        &direct,
        json!({"cidrs": ["127.0.0.1", "2001:db8::/48"]}),
        None,
    )
    .await;
    assert_eq!(
        (status, set["cidrs"].clone()),
        (200, json!(["127.0.0.1/32", "2001:db8::/48"]))
    );

    // Allowed directly; refused from another address, whatever it claims to forward for.
    assert_eq!(get(&direct, None).await.0, 200);
    let (status, e) = get(&stranger, None).await;
    assert_eq!(
        (status, e["error"]["code"].as_str()),
        (403, Some("ip_not_allowed"))
    );
    assert_eq!(
        get(&stranger, Some("127.0.0.1")).await.0,
        403,
        "untrusted X-Forwarded-For"
    );
    // 127.0.0.2 is not trusted either (yet): its header is not believed.
    assert_eq!(get(&proxy, Some("127.0.0.1")).await.0, 403);
    // Another workspace with no list is untouched.
    let beta_from_stranger = call(
        &stranger,
        &app,
        &beta.admin,
        Method::GET,
        "/v1/workspace",
        None,
        None,
    )
    .await;
    assert_eq!(beta_from_stranger.0, 200);

    // The change is in the audit log.
    let audit = app.get(&acme.admin, "/v1/audit?limit=100").await;
    audit.expect(200);
    assert!(
        audit.text.contains("workspace.ip_allowlist.set"),
        "{}",
        audit.text
    );

    // Forcing a list that shuts the caller out works, and does shut it out.
    let (status, _) = put(
        &direct,
        json!({"cidrs": ["192.0.2.0/24"], "force": true}),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(get(&direct, None).await.0, 403);
}

backend_test!(forwarded_addresses_are_believed_from_trusted_proxies);
async fn forwarded_addresses_are_believed_from_trusted_proxies(app: App) {
    // A server of its own, trusting 127.0.0.2 as its proxy, over the same database.
    let mut config = app.config.clone();
    config.edge.trusted_proxies = ferry_core::Cidrs::parse(&["127.0.0.2"]).unwrap();
    let proxied = ferry_server::Server::start(config, ferry_engine::Executors::default())
        .await
        .unwrap();
    let acme = app.tenant("acme").await;
    app.put(
        &acme.admin,
        "/v1/workspace/ip-allowlist",
        json!({"cidrs": ["198.51.100.0/24", "127.0.0.1"]}),
    )
    .await
    .expect(200);
    let url = proxied.public_url();
    let through = |from: &'static str, xff: Option<&'static str>| {
        let (url, key) = (url.clone(), acme.admin.clone());
        async move {
            let mut req = client_from(from)
                .get(format!("{url}/v1/workspace"))
                .bearer_auth(key);
            if let Some(x) = xff {
                req = req.header("x-forwarded-for", x);
            }
            req.send().await.unwrap().status().as_u16()
        }
    };
    // Through the trusted proxy: the client it names is judged.
    assert_eq!(through("127.0.0.2", Some("198.51.100.7")).await, 200);
    assert_eq!(through("127.0.0.2", Some("203.0.113.1")).await, 403);
    // A client's own left-hand entries are not believed.
    assert_eq!(
        through("127.0.0.2", Some("198.51.100.7, 203.0.113.1")).await,
        403
    );
    // A garbled chain names no client: refused.
    assert_eq!(through("127.0.0.2", Some("nonsense")).await, 403);
    // Not through the proxy: the header is ignored and the socket's address judged.
    assert_eq!(through("127.0.0.3", Some("198.51.100.7")).await, 403);
    assert_eq!(through("127.0.0.1", Some("203.0.113.1")).await, 200);
    proxied.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_workspaces_flood_is_limited_and_anothers_is_not() {
    run_configured(
        Kind::Sqlite,
        |c| {
            c.edge.per_key = ferry_server::Bucket { rps: 1, burst: 20 };
            c.edge.per_workspace = ferry_server::Bucket { rps: 1, burst: 30 };
        },
        |app: App| async move {
            let acme = app.tenant("acme").await;
            let beta = app.tenant("beta").await;
            // Key bucket: 20 in a burst (the tenant's upload took one), then 429.
            let mut statuses = Vec::new();
            for _ in 0..25 {
                statuses.push(app.get(&acme.admin, "/v1/pools").await.status);
            }
            assert!(statuses.iter().take(19).all(|s| *s == 200), "{statuses:?}");
            assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
            let resp = app
                .http
                .get(format!("{}/v1/pools", app.url))
                .bearer_auth(&acme.admin)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 429);
            let retry: u64 = resp.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry >= 1);
            assert_eq!(resp.headers()["ratelimit-limit"], "20");
            assert_eq!(resp.headers()["ratelimit-remaining"], "0");
            let body: serde_json::Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], "rate_limited");
            // The workspace bucket holds all its keys: a fresh key of acme has its own key
            // bucket but only what is left of the workspace's.
            let fresh = app.key_unlimited(&acme).await;
            let mut fresh_statuses = Vec::new();
            for _ in 0..15 {
                fresh_statuses.push(app.get(&fresh, "/v1/pools").await.status);
            }
            assert_eq!(fresh_statuses.last(), Some(&429), "{fresh_statuses:?}");
            // Another workspace is not throttled by acme's flood.
            for _ in 0..10 {
                app.get(&beta.admin, "/v1/pools").await.expect(200);
            }
        },
    )
    .await;
}

impl App {
    /// A viewer key minted through the internal API (which has no rate limit).
    async fn key_unlimited(&self, tenant: &crate::support::Tenant) -> String {
        let r = self
            .post(
                &self.internal_token(),
                &format!("/internal/v1/workspaces/{}/api-keys", tenant.id),
                json!({"role": "viewer"}),
            )
            .await;
        r.expect(201);
        r.body["key"].as_str().unwrap().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_half_sent_requests_do_not_starve_a_normal_one() {
    run_configured(
        Kind::Sqlite,
        |_| {},
        |app: App| async move {
            let acme = app.tenant("acme").await;
            let addr: SocketAddr = app.url.trim_start_matches("http://").parse().unwrap();
            let mut held = Vec::new();
            for i in 0..1000 {
                let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
                    continue;
                };
                let half = if i % 2 == 0 {
                    // A head that never ends.
                    "GET /v1/pools HTTP/1.1\r\nHost: ferry\r\nX-Slow: ".to_owned()
                } else {
                    // A whole head, then a body that stops after one byte.
                    format!(
                        "POST /v1/pools HTTP/1.1\r\nHost: ferry\r\nAuthorization: Bearer {}\r\n\
                         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{",
                        acme.admin
                    )
                };
                let _ = s.write_all(half.as_bytes()).await;
                held.push(s);
            }
            assert!(held.len() >= 900, "only {} connections opened", held.len());
            // A normal client from another address is answered at once.
            let normal = call(
                &client_from("127.0.0.2"),
                &app,
                &acme.admin,
                Method::GET,
                "/v1/pools",
                None,
                None,
            )
            .await;
            assert_eq!(normal.0, 200);
            // Every half-sent request is closed by the server (defaults: 10 s head, 10 s of
            // body silence); none is left open. The wait is bounded, not measured.
            let closed = futures::future::join_all(held.into_iter().map(|mut s| async move {
                let mut buf = Vec::new();
                tokio::time::timeout(Duration::from_secs(45), s.read_to_end(&mut buf))
                    .await
                    .is_ok()
            }))
            .await;
            let open = closed.iter().filter(|c| !**c).count();
            assert_eq!(open, 0, "{open} connections were never closed");
        },
    )
    .await;
}
