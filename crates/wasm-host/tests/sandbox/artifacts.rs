//! Artifact validation, the compiled-artifact cache, allocation strategies and the
//! `FlowRunner` wrapper.

use std::sync::Arc;

use anyhow::Result;
use async_trait::async_trait;
use ferry_core::port::{FlowOutcome, FlowRunner, RunJob};
use ferry_core::{FailureReason, Name, PoolId, PoolType, RunId, WorkspaceId};
use ferry_wasm_host::{
    ArtifactError, ArtifactKind, ArtifactSource, Host, HostConfig, SourceError, WasmRunner,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::support::{completed, config, flow, host, host_with, run, spec, RecordingSink};

#[test]
fn inspect_names_the_kind_and_digest() -> Result<()> {
    let host = host()?;
    for (name, kind) in [
        ("hello", ArtifactKind::Component),
        ("network", ArtifactKind::Component),
        ("command", ArtifactKind::Command),
        ("preview1", ArtifactKind::Preview1),
    ] {
        let bytes = flow(name)?;
        let info = host.inspect(&bytes)?;
        assert_eq!(info.kind, kind, "{name}");
        assert_eq!(info.size, bytes.len() as u64);
        assert_eq!(
            info.digest,
            format!("sha256:{}", hex::encode(Sha256::digest(&bytes)))
        );
    }
    Ok(())
}

#[test]
fn inspect_refuses_what_is_not_wasm() -> Result<()> {
    let host = host()?;
    assert_eq!(
        host.inspect(b"#!/bin/sh\necho hi\n"),
        Err(ArtifactError::NotWasm)
    );
    assert_eq!(host.inspect(b""), Err(ArtifactError::NotWasm));
    assert!(matches!(
        host.inspect(b"\0asm\x01\0\0\0\xff\xff"),
        Err(ArtifactError::Invalid(_))
    ));
    Ok(())
}

#[test]
fn inspect_refuses_what_is_too_large() -> Result<()> {
    let host = host_with(|c| c.max_artifact_bytes = 1000)?;
    let bytes = flow("hello")?;
    assert_eq!(
        host.inspect(&bytes),
        Err(ArtifactError::TooLarge {
            size: bytes.len() as u64,
            max: 1000
        })
    );
    Ok(())
}

#[tokio::test]
async fn prepare_refuses_what_is_too_large_before_reading_it() -> Result<()> {
    let host = host_with(|c| c.max_artifact_bytes = 8)?;
    let err = host.prepare(&[0u8; 9], false).await.err();
    assert_eq!(err, Some(ArtifactError::TooLarge { size: 9, max: 8 }));
    Ok(())
}

#[test]
fn inspect_names_the_imports_ferry_does_not_provide() -> Result<()> {
    let host = host()?;
    let component = wat::parse_str(
        r#"(component
            (import "wasi:http/types@0.2.0" (instance))
            (import "wasi:cli/stdout@0.2.0" (instance))
            (import "acme:secrets/vault@1.0.0" (instance))
            (core module $m (func (export "run")))
        )"#,
    )?;
    assert_eq!(
        host.inspect(&component),
        Err(ArtifactError::UnsupportedImports(vec![
            "acme:secrets/vault@1.0.0".to_owned(),
            "wasi:http/types@0.2.0".to_owned(),
        ]))
    );
    let module = wat::parse_str(
        r#"(module
            (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
            (import "env" "host_exec" (func))
            (func (export "_start"))
        )"#,
    )?;
    assert_eq!(
        host.inspect(&module),
        Err(ArtifactError::UnsupportedImports(vec![
            "env::host_exec".to_owned()
        ]))
    );
    let err = host.inspect(&module).err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("the artifact imports what Ferry does not provide: env::host_exec")
    );
    Ok(())
}

#[test]
fn inspect_refuses_what_is_not_a_flow() -> Result<()> {
    let host = host()?;
    let reactor = wat::parse_str(r#"(module (func (export "compute")))"#)?;
    assert!(matches!(
        host.inspect(&reactor),
        Err(ArtifactError::NotAFlow(_))
    ));
    let empty_component = wat::parse_str("(component)")?;
    assert!(matches!(
        host.inspect(&empty_component),
        Err(ArtifactError::NotAFlow(_))
    ));
    Ok(())
}

#[tokio::test]
async fn prepare_refuses_a_component_whose_run_has_the_wrong_type() -> Result<()> {
    // Exports `run`, but as a function of no arguments: the linker's check catches it.
    let host = host()?;
    let component = wat::parse_str(
        r#"(component
            (core module $m (func (export "run")))
            (core instance $i (instantiate $m))
            (func $run (canon lift (core func $i "run")))
            (export "run" (func $run))
        )"#,
    )?;
    assert_eq!(host.inspect(&component)?.kind, ArtifactKind::Component);
    let err = host.prepare(&component, false).await.err();
    assert!(matches!(err, Some(ArtifactError::NotAFlow(_))), "{err:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_digest_is_compiled_once_and_then_loaded_from_disk() -> Result<()> {
    let cache = tempfile::tempdir()?;
    let fresh = || {
        Host::new(HostConfig {
            max_concurrent_instances: 2,
            ..HostConfig::new(cache.path())
        })
    };
    let bytes = flow("hello")?;

    let first = fresh()?;
    let prepared = first.prepare(&bytes, false).await?;
    assert_eq!(first.compile_count(), 1);
    let digest = prepared.info().digest.clone();
    let path = first.compiled_path(&digest, false);
    assert!(path.as_ref().is_some_and(|p| p.is_file()), "{path:?}");
    // Again on the same host: from memory.
    first.prepare(&bytes, false).await?;
    assert_eq!(first.compile_count(), 1);

    // A new host on the same cache directory (a restart): from disk, no compilation.
    let second = fresh()?;
    let prepared = second.prepare(&bytes, false).await?;
    assert_eq!(second.compile_count(), 0);
    let (report, _) = run(&second, &prepared, spec(json!({"name": "cache"}))).await;
    assert_eq!(
        completed(report.outcome)?,
        json!({"greeting": "hello cache"})
    );

    // And without the bytes at all, by digest.
    let third = fresh()?;
    let found = third.lookup(&digest, false).await;
    assert!(found.is_some());
    assert_eq!(third.compile_count(), 0);
    assert!(
        third.lookup(&digest, true).await.is_none(),
        "not compiled for fuel"
    );
    assert!(third.lookup("sha256:../../etc", false).await.is_none());

    // The metered engine has its own file.
    let metered = third.prepare(&bytes, true).await?;
    assert!(metered.metered());
    assert_eq!(third.compile_count(), 1);
    assert_ne!(third.compiled_path(&digest, true), path);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_cache_file_is_recompiled() -> Result<()> {
    let cache = tempfile::tempdir()?;
    let config = || HostConfig {
        max_concurrent_instances: 2,
        ..HostConfig::new(cache.path())
    };
    let bytes = flow("hello")?;
    let first = Host::new(config())?;
    let digest = first.prepare(&bytes, false).await?.info().digest.clone();
    let path = first
        .compiled_path(&digest, false)
        .ok_or_else(|| anyhow::anyhow!("no path"))?;
    // A loaded artifact is mapped from its file: a file is only ever replaced whole (by
    // rename), never rewritten in place while a host has it loaded. So the first host goes.
    drop(first);
    std::fs::write(&path, b"not machine code")?;

    let second = Host::new(config())?;
    let prepared = second.prepare(&bytes, false).await?;
    assert_eq!(second.compile_count(), 1);
    let (report, _) = run(&second, &prepared, spec(json!({}))).await;
    assert_eq!(
        completed(report.outcome)?,
        json!({"greeting": "hello world"})
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_and_on_demand_allocation_both_run_flows() -> Result<()> {
    for pooling in [true, false] {
        let host = host_with(|c| c.pooling = pooling)?;
        assert_eq!(host.is_pooling(), pooling);
        for name in ["hello", "command", "preview1"] {
            let prepared = host.prepare(&flow(name)?, false).await?;
            let (report, _) = run(&host, &prepared, spec(json!({"name": "pool"}))).await;
            let result = completed(report.outcome)?;
            assert_eq!(
                result["greeting"],
                json!("hello pool"),
                "{name}, pooling {pooling}"
            );
        }
    }
    Ok(())
}

/// An artifact store holding one artifact.
struct OneArtifact(Vec<u8>);

#[async_trait]
impl ArtifactSource for OneArtifact {
    async fn get(&self, digest: &str) -> Result<Vec<u8>, SourceError> {
        let have = format!("sha256:{}", hex::encode(Sha256::digest(&self.0)));
        if digest == have {
            Ok(self.0.clone())
        } else {
            Err(SourceError::NotFound(digest.to_owned()))
        }
    }
}

fn job(artifact: Option<String>, parameters: serde_json::Value) -> Result<RunJob> {
    Ok(RunJob {
        run_id: RunId::new(),
        workspace_id: WorkspaceId::new(),
        pool_id: PoolId::new(),
        pool: Name::parse("managed")?,
        pool_type: PoolType::Managed,
        attempt: 1,
        artifact,
        parameters,
        job_template: json!({}),
        job_variables: json!({}),
        credential: None,
        limits: crate::support::limits(),
        has_sensitive_parameters: false,
        infrastructure: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_fetches_prepares_and_runs() -> Result<()> {
    let bytes = flow("hello")?;
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    let runner = WasmRunner::new(Host::new(config())?, Arc::new(OneArtifact(bytes)));
    let sink = RecordingSink::default();

    let outcome = runner
        .run(
            &job(Some(digest), json!({"name": "runner"}))?,
            &sink,
            CancellationToken::new(),
        )
        .await;
    assert_eq!(completed(outcome)?, json!({"greeting": "hello runner"}));

    let missing = format!("sha256:{}", "0".repeat(64));
    let outcome = runner
        .run(
            &job(Some(missing), json!({}))?,
            &sink,
            CancellationToken::new(),
        )
        .await;
    match outcome {
        FlowOutcome::Crashed(f) => assert_eq!(f.reason, FailureReason::InvalidConfig),
        other => anyhow::bail!("expected a crash, got {other:?}"),
    }

    let outcome = runner
        .run(&job(None, json!({}))?, &sink, CancellationToken::new())
        .await;
    assert!(matches!(outcome, FlowOutcome::Crashed(_)), "{outcome:?}");
    Ok(())
}

/// Set in the child process of the fallback test, which runs with its address space limited.
const AS_LIMITED: &str = "FERRY_TEST_AS_LIMITED";

#[test]
fn pooling_falls_back_to_on_demand_where_the_pool_cannot_be_reserved() -> Result<()> {
    if std::env::var_os(AS_LIMITED).is_some() {
        // The child: the pool's reservation (hundreds of GiB of address space) cannot fit
        // under the limit, so the host must fall back and still run flows.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let host = host()?;
        assert!(!host.is_pooling());
        let outcome = rt.block_on(async {
            let prepared = host.prepare(&flow("hello")?, false).await?;
            anyhow::Ok(
                run(&host, &prepared, spec(json!({"name": "fallback"})))
                    .await
                    .0,
            )
        })?;
        assert_eq!(
            completed(outcome.outcome)?,
            json!({"greeting": "hello fallback"})
        );
        return Ok(());
    }
    // The parent: run this same test again in a child process whose address space is limited
    // (so the limit cannot affect other tests, whatever the test runner).
    let exe = std::env::current_exe()?;
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg("ulimit -v $((16 * 1024 * 1024)) && exec \"$0\" \"$@\"")
        .arg(exe)
        .args([
            "artifacts::pooling_falls_back_to_on_demand_where_the_pool_cannot_be_reserved",
            "--exact",
            "--nocapture",
        ])
        .env(AS_LIMITED, "1")
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success() && stdout.contains("1 passed"),
        "the child failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}
