//! Every capability is denied unless granted, and each denial has its test: environment,
//! secrets, arguments, network, filesystem.

use std::collections::HashMap;

use anyhow::Result;
use secrecy::SecretString;
use serde_json::json;

use crate::support::{assert_host_still_works, completed, host, host_with, prepare, run, spec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_granted_environment_is_visible() -> Result<()> {
    let host = host()?;
    let prepared = prepare(&host, "grants").await?;
    let mut spec = spec(json!({}));
    spec.env = vec![("GRANTED".to_owned(), "yes".to_owned())];
    let (report, _) = run(&host, &prepared, spec).await;
    let result = completed(report.outcome)?;
    assert_eq!(result["env"], json!({"GRANTED": "yes"}));
    assert!(std::env::var_os("PATH").is_some(), "the host has a PATH...");
    // ...which the flow does not see, nor any argument.
    assert_eq!(result["args"], json!([]));

    let (report, _) = run(&host, &prepared, crate::support::spec(json!({}))).await;
    assert_eq!(completed(report.outcome)?["env"], json!({}));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_granted_secrets_are_readable() -> Result<()> {
    let host = host()?;
    let prepared = prepare(&host, "grants").await?;
    let mut spec = spec(json!({"secrets": ["token", "other"]}));
    spec.secrets = HashMap::from([("token".to_owned(), SecretString::from("s3cret"))]);
    let (report, _) = run(&host, &prepared, spec).await;
    let result = completed(report.outcome)?;
    assert_eq!(result["secrets"], json!({"token": "s3cret", "other": null}));

    // Nothing granted: nothing readable.
    let spec = crate::support::spec(json!({"secrets": ["token"]}));
    let (report, _) = run(&host, &prepared, spec).await;
    assert_eq!(
        completed(report.outcome)?["secrets"],
        json!({"token": null})
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_network_is_denied() -> Result<()> {
    // A listener of the test's own on loopback: the flow tries to reach it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let host = host()?;
    let prepared = prepare(&host, "network").await?;
    let (report, _) = run(&host, &prepared, spec(json!({"port": port}))).await;
    let result = completed(report.outcome)?;
    assert_eq!(result["allowed"], json!([]), "{result}");
    // Each attempt was made and refused by the sandbox (not merely unsupported).
    for attempt in ["tcp connect", "tcp bind", "udp bind", "udp send"] {
        let error = result["errors"][attempt].as_str().unwrap_or_default();
        assert!(error.contains("Permission denied"), "{attempt}: {result}");
    }
    assert!(result["errors"]["name lookup"].is_string(), "{result}");
    // And nothing connected.
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the flow reached the listener: {other:?}"),
    }
    assert_host_still_works(&host).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_outside_the_scratch_directory_is_reachable() -> Result<()> {
    let scratch_root = tempfile::tempdir()?;
    let root = scratch_root.path().to_owned();
    let host = host_with(|c| c.scratch_root = root.clone())?;
    let prepared = prepare(&host, "fs-escape").await?;
    let (report, _) = run(&host, &prepared, spec(json!({}))).await;
    let result = completed(report.outcome)?;
    assert_eq!(result["read"], json!([]), "{result:#}");
    assert_eq!(result["listed"], json!([]), "{result:#}");
    assert_eq!(result["wrote"], json!([]), "{result:#}");
    // The positive control: /run itself works.
    assert_eq!(result["inside"], json!(true), "{result:#}");
    // Nothing was written beside the run's scratch directory, which is gone.
    let left: Vec<_> = std::fs::read_dir(&root)?.collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert_host_still_works(&host).await
}
