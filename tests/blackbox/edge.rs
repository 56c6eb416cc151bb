//! The public edge of a real `ferry serve`: HTTPS with the operator's certificate, used by the
//! CLI through `FERRY_CA_CERT`; SIGHUP re-reads a replaced certificate and never stops the
//! server; plaintext on a public address is refused at start with what to set.

use std::path::Path;

use crate::support::{ferry_command, run_cli, wait_until, FerryProcess};

/// A self-signed certificate for `localhost` (its own CA), as (certificate, key) PEM.
fn self_signed() -> (String, String) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    (made.cert.pem(), made.key_pair.serialize_pem())
}

fn install(dir: &Path, (cert, key): &(String, String)) {
    std::fs::write(dir.join("tls.crt"), cert).unwrap();
    std::fs::write(dir.join("tls.key"), key).unwrap();
}

/// `ferry workspace ip-allowlist show -o json` against `url`, trusting `ca`.
async fn show(dir: &Path, url: &str, key: &str, ca: &Path) -> super::support::CliOutput {
    let mut cmd = ferry_command();
    cmd.current_dir(dir)
        .env("FERRY_URL", url)
        .env("FERRY_API_KEY", key)
        .env("FERRY_CA_CERT", ca)
        .args(["workspace", "ip-allowlist", "show", "-o", "json"]);
    run_cli(cmd).await
}

#[tokio::test]
async fn https_with_the_operators_certificate_reloaded_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let first = self_signed();
    install(d, &first);
    std::fs::write(d.join("first-ca.pem"), &first.0).unwrap();
    let server = FerryProcess::serve(
        d,
        d,
        "tls",
        &[],
        &[("FERRY_TLS_CERT", "tls.crt"), ("FERRY_TLS_KEY", "tls.key")],
    )
    .await;
    assert!(
        server.public_url.starts_with("https://"),
        "{}",
        server.public_url
    );
    let url = server.public_url.replace("127.0.0.1", "localhost");
    let key = crate::ecs::bootstrap(d).await;

    // The CLI trusts the operator's CA through FERRY_CA_CERT; without it, it refuses.
    let mut set = ferry_command();
    set.current_dir(d)
        .env("FERRY_URL", &url)
        .env("FERRY_API_KEY", &key)
        .env("FERRY_CA_CERT", d.join("first-ca.pem"))
        .args([
            "workspace",
            "ip-allowlist",
            "set",
            "127.0.0.1",
            "2001:db8::/48",
        ]);
    run_cli(set)
        .await
        .assert_success(&["127.0.0.1/32", "2001:db8::/48"]);
    let mut untrusting = ferry_command();
    untrusting
        .current_dir(d)
        .env("FERRY_URL", &url)
        .env("FERRY_API_KEY", &key)
        .args(["workspace", "ip-allowlist", "show"]);
    assert_ne!(run_cli(untrusting).await.code, Some(0));

    // A new certificate on disk, then SIGHUP: the server stays up and presents it.
    let second = self_signed();
    std::fs::write(d.join("second-ca.pem"), &second.0).unwrap();
    install(d, &second);
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let second_ca = d.join("second-ca.pem");
    let shown = wait_until("the replaced certificate to be served", || {
        let (url, key, ca) = (url.clone(), key.clone(), second_ca.clone());
        async move {
            let out = show(d, &url, &key, &ca).await;
            if out.code == Some(0) {
                Ok(out)
            } else {
                Err(format!("{out:#?}"))
            }
        }
    })
    .await;
    let list: serde_json::Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(
        list["cidrs"],
        serde_json::json!(["127.0.0.1/32", "2001:db8::/48"])
    );
    let mut server = server;
    assert!(server.try_wait().is_none(), "SIGHUP stopped the server");
    // The old CA no longer verifies it.
    assert_ne!(
        show(d, &url, &key, &d.join("first-ca.pem")).await.code,
        Some(0)
    );
}

#[tokio::test]
async fn sighup_never_stops_a_plaintext_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = FerryProcess::serve(dir.path(), dir.path(), "plain", &[], &[]).await;
    for _ in 0..3 {
        let hup = std::process::Command::new("kill")
            .args(["-HUP", &server.pid().to_string()])
            .status()
            .unwrap();
        assert!(hup.success());
    }
    let healthz = format!("{}/healthz", server.public_url);
    let status = reqwest::get(&healthz).await.unwrap().status().as_u16();
    assert_eq!(status, 200);
    assert!(server.try_wait().is_none(), "SIGHUP stopped the server");
}

#[tokio::test]
async fn plaintext_on_a_public_address_is_refused_with_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = ferry_command();
    cmd.current_dir(dir.path()).args([
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--internal-listen",
        "127.0.0.1:0",
    ]);
    let out = run_cli(cmd).await;
    assert_ne!(out.code, Some(0));
    assert!(
        out.stderr.contains("FERRY_TLS_CERT") && out.stderr.contains("FERRY_ALLOW_PLAINTEXT"),
        "{out:#?}"
    );
}
