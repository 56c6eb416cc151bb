//! `ferry bench`: the end-to-end benchmark. Starts Ferry on its embedded default (SQLite in a
//! temporary data directory, real executor workers) in this process, uploads a flow, submits
//! N runs through the HTTP API from C concurrent clients, waits for all of them, and reports
//! submit→completed latency (the server's own `created_at` → `ended_at`) and throughput.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use ferry_client::{Client, NewPool, NewRun, RunsQuery};
use secrecy::ExposeSecret;
use serde_json::json;

#[derive(Debug, Args)]
pub struct Bench {
    /// How many runs to submit.
    #[arg(long, default_value_t = 1000)]
    pub runs: usize,
    /// How many clients submit at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// The flow to run (a trivial one measures Ferry, not the flow).
    #[arg(long, default_value = "sandbox/out/hello.wasm")]
    pub flow: PathBuf,
    /// Executor worker processes.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub async fn run(b: Bench) -> anyhow::Result<()> {
    let wasm = std::fs::read(&b.flow).with_context(|| {
        format!(
            "reading {} (build the flows with ./sandbox/build.sh)",
            b.flow.display()
        )
    })?;
    let dir = tempfile::tempdir().context("making a temporary data directory")?;
    let config = ferry_server::Config {
        executor_workers: b.workers,
        ..ferry_server::Config::for_tests(dir.path())
    };
    let server = ferry_server::Server::start_real(config).await?;
    let internal = Client::new(
        &server.internal_url(),
        server.internal_token.expose_secret(),
    )?;
    let ws = internal.create_workspace("bench").await?;
    let key = internal.create_api_key(&ws.id, "admin").await?;
    let client = Client::new(&server.public_url(), &key.key)?;
    client
        .create_pool(&NewPool {
            name: "bench".into(),
            pool_type: "managed".into(),
            ..Default::default()
        })
        .await?;
    let (artifact, _) = client.upload_artifact(wasm).await?;
    // One run first, so compiling the flow is not in the figures.
    let warm = NewRun {
        pool: "bench".into(),
        artifact: Some(artifact.digest.clone()),
        ..Default::default()
    };
    let (first, _) = client.create_run(&warm).await?;
    let started = Instant::now();
    loop {
        let r = client.get_run(&first.id).await?;
        if r.is_terminal() {
            if r.state != "completed" {
                bail!("the warm-up run ended {}: {:?}", r.state, r.state_message);
            }
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("the warm-up run did not end in 2 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    eprintln!(
        "submitting {} runs from {} clients ...",
        b.runs, b.concurrency
    );
    let wall = Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..b.concurrency.max(1) {
        let (client, next, digest, total) = (
            client.clone(),
            next.clone(),
            artifact.digest.clone(),
            b.runs,
        );
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                let run = NewRun {
                    pool: "bench".into(),
                    artifact: Some(digest.clone()),
                    parameters: Some(json!({"name": "bench"})),
                    ..Default::default()
                };
                ids.push(client.create_run(&run).await?.0.id);
            }
            Ok::<_, ferry_client::Error>(ids)
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.extend(t.await.context("a submitting client panicked")??);
    }
    let submitted = wall.elapsed();
    // Wait for every run to end (polling the list of unfinished runs, cheaply).
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let mut pending = 0;
        for state in ["scheduled", "pending", "running"] {
            let page = client
                .list_runs(&RunsQuery {
                    state: Some(state.into()),
                    limit: Some(1),
                    ..Default::default()
                })
                .await?;
            pending += page.items.len();
        }
        if pending == 0 {
            break;
        }
        if Instant::now() > deadline {
            bail!("runs still unfinished after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let all_done = wall.elapsed();
    let mut latencies = Vec::with_capacity(ids.len());
    let mut failed = 0;
    let (mut first_created, mut last_ended) = (None, None);
    for id in &ids {
        let r = client.get_run(id).await?;
        if r.state != "completed" {
            failed += 1;
            continue;
        }
        let Some(ended) = r.ended_at else { continue };
        latencies.push((ended - r.created_at).num_microseconds().unwrap_or(0) as f64 / 1000.0);
        first_created = Some(
            first_created.map_or(r.created_at, |f: chrono::DateTime<chrono::Utc>| {
                f.min(r.created_at)
            }),
        );
        last_ended =
            Some(last_ended.map_or(ended, |l: chrono::DateTime<chrono::Utc>| l.max(ended)));
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let span = match (first_created, last_ended) {
        (Some(f), Some(l)) => (l - f).num_microseconds().unwrap_or(1) as f64 / 1e6,
        _ => f64::NAN,
    };
    println!("runs                 {}", ids.len());
    println!("not completed        {failed}");
    println!(
        "submit phase         {:.2} s ({:.0} submissions/s)",
        submitted.as_secs_f64(),
        ids.len() as f64 / submitted.as_secs_f64()
    );
    println!(
        "submit→completed p50 {:.2} ms",
        percentile(&latencies, 50.0)
    );
    println!(
        "submit→completed p99 {:.2} ms",
        percentile(&latencies, 99.0)
    );
    println!(
        "submit→completed max {:.2} ms",
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "throughput           {:.0} runs/s (first submit to last completion: {span:.2} s)",
        latencies.len() as f64 / span
    );
    println!("wall clock           {:.2} s", all_done.as_secs_f64());
    server.shutdown().await;
    if failed > 0 {
        bail!("{failed} runs did not complete");
    }
    Ok(())
}
