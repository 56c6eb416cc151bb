//! `ferry run`: submit (and wait for), list, show, cancel runs, and read their events and logs.

use std::time::Duration;

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::builder::PossibleValuesParser;
use clap::{Args, Subcommand};
use ferry_client::{Client, FollowEvent, LogLine, Logs, NewRun, Run, RunEvent, RunsQuery};
use ferry_core::RunState;
use futures::StreamExt;
use serde_json::Value;

use crate::args;
use crate::commands::client;
use crate::output::{self, Format, Table};
use crate::Global;

#[derive(Debug, Subcommand)]
pub enum RunCommand {
    /// Submit a run to a pool.
    Submit(Submit),
    /// List runs, newest first.
    List(List),
    /// Show a run: state, failure reason, attempt, infrastructure, result, timestamps.
    Show {
        /// The run's id.
        id: String,
    },
    /// Ask a run to stop.
    Cancel {
        /// The run's id.
        id: String,
    },
    /// Show a run's state transitions.
    Events {
        /// The run's id.
        id: String,
    },
    /// Print a run's log (its stdout to stdout, its stderr to stderr).
    Logs {
        /// The run's id.
        id: String,
        /// Keep printing lines as they are written, until the run ends.
        #[arg(long, short)]
        follow: bool,
        /// Start each line with its timestamp.
        #[arg(long, short)]
        timestamps: bool,
    },
}

#[derive(Debug, Args)]
pub struct Submit {
    /// The pool to run in.
    #[arg(long, value_name = "POOL")]
    pub pool: String,

    /// The flow to run (managed pools): an uploaded artifact's digest.
    #[arg(long, value_name = "sha256:HEX")]
    pub artifact: Option<String>,

    /// A parameter; VALUE is JSON if it parses as JSON (n=3, ok=true), else a string
    /// (name=alice). Repeatable; applied over --params.
    #[arg(long = "param", value_name = "KEY=VALUE", value_parser = args::parse_key_value)]
    pub param: Vec<(String, Value)>,

    /// All parameters as a JSON object, or @file.
    #[arg(long = "params", value_name = "JSON|@FILE", value_parser = args::parse_json_object)]
    pub params: Option<Value>,

    /// A job variable overriding the pool's job template (same VALUE rules as --param).
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = args::parse_key_value)]
    pub var: Vec<(String, Value)>,

    /// All job variables as a JSON object, or @file.
    #[arg(long = "vars", value_name = "JSON|@FILE", value_parser = args::parse_json_object)]
    pub vars: Option<Value>,

    /// Wall-clock limit of each attempt, in seconds (at most the pool's).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u32>,

    /// Limits lower than the pool's, as JSON: {"memory_mb": 32}.
    #[arg(long, value_name = "JSON", value_parser = args::parse_json_object)]
    pub limits: Option<Value>,

    /// Infrastructure retries [default: the pool's].
    #[arg(long, value_name = "N")]
    pub max_retries: Option<u32>,

    /// Submitting again with the same key returns the first run instead of a new one.
    #[arg(long, value_name = "KEY")]
    pub idempotency_key: Option<String>,

    /// Do not start before this time (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = args::parse_time)]
    pub scheduled_at: Option<DateTime<Utc>>,

    /// Wait until the run ends; exit non-zero unless it completed.
    #[arg(long)]
    pub wait: bool,
}

fn run_states() -> PossibleValuesParser {
    PossibleValuesParser::new(RunState::ALL.map(RunState::as_str))
}

#[derive(Debug, Args)]
pub struct List {
    /// Only the runs of this pool.
    #[arg(long, value_name = "POOL")]
    pub pool: Option<String>,

    /// Only the runs in this state.
    #[arg(long, value_name = "STATE", value_parser = run_states())]
    pub state: Option<String>,

    /// Runs per page [default: the server's].
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,

    /// Follow the pages to the end, instead of printing the first.
    #[arg(long)]
    pub all: bool,
}

impl Submit {
    fn body(self) -> NewRun {
        NewRun {
            pool: self.pool,
            artifact: self.artifact,
            parameters: args::merge_object(self.params, self.param),
            job_variables: args::merge_object(self.vars, self.var),
            timeout_s: self.timeout,
            limits: self.limits,
            max_retries: self.max_retries,
            idempotency_key: self.idempotency_key,
            scheduled_at: self.scheduled_at,
            sensitive_parameters: None,
        }
    }
}

pub async fn run(g: &Global, command: RunCommand) -> anyhow::Result<()> {
    let client = client(g)?;
    match command {
        RunCommand::Submit(s) => submit(&client, g.output, s).await,
        RunCommand::List(l) => list(&client, g.output, l).await,
        RunCommand::Show { id } => {
            let run = client.get_run(&id).await?;
            show(g.output, &run)
        }
        RunCommand::Cancel { id } => {
            let run = client.cancel_run(&id).await?;
            match g.output {
                Format::Json => output::json(&run),
                Format::Table => {
                    output::out(&cancel_message(&run))?;
                    Ok(())
                }
            }
        }
        RunCommand::Events { id } => {
            let events = client.run_events(&id).await?;
            match g.output {
                Format::Json => output::json(&events),
                Format::Table => {
                    output::out(&events_table(&events))?;
                    Ok(())
                }
            }
        }
        RunCommand::Logs {
            id,
            follow,
            timestamps,
        } => {
            if follow {
                follow_logs(&client, g.output, &id, timestamps).await
            } else {
                logs(&client, g.output, &id, timestamps).await
            }
        }
    }
}

/// What `run cancel` says: a scheduled run is cancelled at once, a running one is being
/// stopped, and an ended one stays as it ended.
fn cancel_message(run: &Run) -> String {
    let state = output::clean(&run.state, false);
    if run.state == RunState::Cancelled.as_str() {
        format!("Run {} is cancelled.", run.id)
    } else if run.is_terminal() {
        format!("Run {} had already ended: {state}.", run.id)
    } else {
        format!("Cancelling run {} (now {state}).", run.id)
    }
}

async fn submit(client: &Client, format: Format, s: Submit) -> anyhow::Result<()> {
    let wait = s.wait;
    let key = s.idempotency_key.clone();
    let (run, created) = client.create_run(&s.body()).await?;
    if format == Format::Table {
        let line = if created {
            format!(
                "Submitted run {} to pool {} ({}).",
                run.id, run.pool, run.state
            )
        } else {
            format!(
                "Run {} already exists for idempotency key {:?} ({}).",
                run.id,
                key.unwrap_or_default(),
                run.state
            )
        };
        output::out(&output::clean(&line, false))?;
    }
    if !wait {
        return match format {
            Format::Json => output::json(&run),
            Format::Table => Ok(()),
        };
    }
    let run = wait_for_end(client, format, run).await?;
    show(format, &run)?;
    check_completed(&run)
}

/// The first pause between polls; it grows to [`MAX_POLL`].
const FIRST_POLL: Duration = Duration::from_millis(250);
const MAX_POLL: Duration = Duration::from_secs(2);
/// Failed polls in a row (server unreachable) before giving up.
const MAX_POLL_FAILURES: u32 = 10;

async fn wait_for_end(client: &Client, format: Format, mut run: Run) -> anyhow::Result<Run> {
    let mut pause = FIRST_POLL;
    let mut failures = 0;
    let mut last_state = run.state.clone();
    while !run.is_terminal() {
        tokio::time::sleep(pause).await;
        pause = (pause * 3 / 2).min(MAX_POLL);
        match client.get_run(&run.id).await {
            Ok(r) => {
                failures = 0;
                run = r;
            }
            Err(e) if e.is_transient() && failures < MAX_POLL_FAILURES => {
                failures += 1;
                continue;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot wait for run {}", run.id));
            }
        }
        if run.state != last_state {
            if format == Format::Table {
                output::note(&format!(
                    "Run {}: {}",
                    run.id,
                    output::clean(&run.state, false)
                ))?;
            }
            last_state = run.state.clone();
        }
    }
    Ok(run)
}

fn check_completed(run: &Run) -> anyhow::Result<()> {
    if run.state == RunState::Completed.as_str() {
        return Ok(());
    }
    let mut message = format!("run {} ended {}", run.id, run.state);
    if let Some(reason) = &run.state_reason {
        message.push_str(&format!(" ({reason})"));
    }
    if let Some(m) = &run.state_message {
        message.push_str(": ");
        message.push_str(m);
    }
    bail!(output::clean(&message, false))
}

async fn list(client: &Client, format: Format, l: List) -> anyhow::Result<()> {
    let mut query = RunsQuery {
        pool: l.pool,
        state: l.state,
        limit: l.limit,
        cursor: None,
    };
    let mut runs = Vec::new();
    let more = loop {
        let page = client.list_runs(&query).await?;
        runs.extend(page.items);
        match page.next_cursor {
            Some(cursor) if l.all => {
                // A cursor that does not move would loop forever.
                if query.cursor.as_deref() == Some(cursor.as_str()) {
                    bail!("the server returned the same cursor twice ({cursor})");
                }
                query.cursor = Some(cursor);
            }
            next => break next.is_some(),
        }
    };
    match format {
        Format::Json => output::json(&runs),
        Format::Table => {
            if runs.is_empty() {
                output::note("No runs.")?;
            } else {
                output::out(&runs_table(&runs))?;
            }
            if more {
                output::note("There are more runs: pass --all to list them all.")?;
            }
            Ok(())
        }
    }
}

fn show(format: Format, run: &Run) -> anyhow::Result<()> {
    match format {
        Format::Json => output::json(run),
        Format::Table => {
            output::out(&details(run))?;
            Ok(())
        }
    }
}

/// Lines asked for per page when reading a whole log.
const LOG_PAGE: u32 = 1000;

async fn logs(client: &Client, format: Format, id: &str, timestamps: bool) -> anyhow::Result<()> {
    let mut after = None;
    let mut all = Logs {
        lines: Vec::new(),
        truncated: false,
    };
    loop {
        let page = client.run_logs(id, after, Some(LOG_PAGE)).await?;
        all.truncated |= page.truncated;
        let Some(last) = page.lines.last().map(|l| l.seq) else {
            break;
        };
        if after.is_some_and(|a| last <= a) {
            bail!("the server's log pages do not advance (after {last})");
        }
        after = Some(last);
        match format {
            // Printed as they come, so a long log starts showing at once.
            Format::Table => {
                for line in &page.lines {
                    print_line(line, timestamps)?;
                }
            }
            Format::Json => all.lines.extend(page.lines),
        }
    }
    match format {
        Format::Json => output::json(&all),
        Format::Table => {
            if all.truncated {
                output::note(TRUNCATED)?;
            }
            Ok(())
        }
    }
}

const TRUNCATED: &str = "(log truncated: output past the run's log limit was discarded)";

async fn follow_logs(
    client: &Client,
    format: Format,
    id: &str,
    timestamps: bool,
) -> anyhow::Result<()> {
    let mut stream = std::pin::pin!(client.follow_logs(id, None));
    while let Some(event) = stream.next().await {
        match event? {
            FollowEvent::Line(line) => match format {
                Format::Json => output::json_line(&line)?,
                Format::Table => print_line(&line, timestamps)?,
            },
            FollowEvent::End { state, truncated } => {
                if format == Format::Table {
                    if truncated {
                        output::note(TRUNCATED)?;
                    }
                    output::note(&format!("(run {})", output::clean(&state, false)))?;
                }
                return Ok(());
            }
        }
    }
    // The client ends the stream only after `end` or an error.
    Ok(())
}

/// One log line for people: the run's stderr to stderr, everything else to stdout, streams
/// other than stdout and stderr marked with their name.
fn print_line(line: &LogLine, timestamps: bool) -> anyhow::Result<()> {
    let text = format_line(line, timestamps);
    if line.stream == "stderr" {
        output::note(&text)?;
    } else {
        output::out(&text)?;
    }
    Ok(())
}

pub(crate) fn format_line(line: &LogLine, timestamps: bool) -> String {
    let mut s = String::new();
    if timestamps {
        s.push_str(&line.ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        s.push(' ');
    }
    if line.stream != "stdout" && line.stream != "stderr" {
        s.push('[');
        s.push_str(&line.stream);
        s.push_str("] ");
    }
    s.push_str(&line.line);
    output::clean(&s, false)
}

pub(crate) fn runs_table(runs: &[Run]) -> String {
    let mut t = Table::new(&[
        "ID", "POOL", "STATE", "REASON", "ATTEMPT", "CREATED", "ENDED",
    ]);
    for r in runs {
        t.row(vec![
            r.id.clone(),
            r.pool.clone(),
            r.state.clone(),
            output::opt(r.state_reason.as_deref()),
            r.attempt.to_string(),
            output::time(&r.created_at),
            output::opt_time(r.ended_at.as_ref()),
        ]);
    }
    t.render()
}

pub(crate) fn events_table(events: &[RunEvent]) -> String {
    let mut t = Table::new(&[
        "SEQ", "AT", "FROM", "TO", "CAUSE", "REASON", "ATTEMPT", "MESSAGE",
    ]);
    for e in events {
        t.row(vec![
            e.seq.to_string(),
            output::time(&e.at),
            output::opt(e.from.as_deref()),
            e.to.clone(),
            e.cause.clone(),
            output::opt(e.reason.as_deref()),
            e.attempt.to_string(),
            e.message.clone().unwrap_or_default(),
        ]);
    }
    t.render()
}

/// Whether a free-form field says anything (not absent, not `{}`).
fn is_set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Object(m) => !m.is_empty(),
        _ => true,
    }
}

pub(crate) fn details(r: &Run) -> String {
    let mut rows = vec![
        ("ID", r.id.clone()),
        ("Pool", format!("{} ({})", r.pool, r.pool_type)),
        ("State", r.state.clone()),
    ];
    if let Some(reason) = &r.state_reason {
        rows.push(("Reason", reason.clone()));
    }
    if let Some(message) = &r.state_message {
        rows.push(("Message", message.clone()));
    }
    rows.push((
        "Attempt",
        format!("{} (max retries {})", r.attempt, r.max_retries),
    ));
    if let Some(a) = &r.artifact {
        rows.push(("Artifact", a.clone()));
    }
    if let Some(k) = &r.idempotency_key {
        rows.push(("Idempotency key", k.clone()));
    }
    rows.push(("Parameters", output::compact(&r.parameters)));
    if is_set(&r.job_variables) {
        rows.push(("Job variables", output::compact(&r.job_variables)));
    }
    if let Some(infra) = r.infrastructure.as_ref().filter(|v| is_set(v)) {
        rows.push(("Infrastructure", output::fields(infra)));
    }
    if let Some(result) = r.result.as_ref().filter(|v| !v.is_null()) {
        rows.push(("Result", output::pretty(result)));
    }
    if r.log_truncated {
        rows.push(("Log", "truncated at the run's log limit".to_owned()));
    }
    rows.extend([
        ("Scheduled", output::time(&r.scheduled_at)),
        ("Created", output::time(&r.created_at)),
        ("Started", output::opt_time(r.started_at.as_ref())),
        ("Ended", output::opt_time(r.ended_at.as_ref())),
    ]);
    if let (Some(start), Some(end)) = (&r.started_at, &r.ended_at) {
        rows.push(("Duration", output::duration(start, end)));
    }
    output::details(&rows)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;
    use serde_json::json;

    fn run_command(argv: &[&str]) -> RunCommand {
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Run(c) => c,
            other => panic!("{other:?}"),
        }
    }

    fn submit_body(flags: &[&str]) -> (Value, bool) {
        let mut argv = vec!["ferry", "run", "submit"];
        argv.extend_from_slice(flags);
        let RunCommand::Submit(s) = run_command(&argv) else {
            panic!()
        };
        let wait = s.wait;
        (serde_json::to_value(s.body()).unwrap(), wait)
    }

    #[test]
    fn submit_minimal() {
        assert_eq!(
            submit_body(&["--pool", "sbx"]),
            (json!({"pool": "sbx"}), false)
        );
    }

    #[test]
    fn submit_with_everything() {
        let (body, wait) = submit_body(&[
            "--pool",
            "sbx",
            "--artifact",
            "sha256:ab",
            "--params",
            r#"{"n": 1, "keep": "yes"}"#,
            "--param",
            "n=3",
            "--param",
            "name=alice",
            "--param",
            "flags=[1,2]",
            "--var",
            "cpu=\"1024\"",
            "--var",
            "command=[\"python\",\"flow.py\"]",
            "--timeout",
            "10",
            "--limits",
            r#"{"memory_mb": 32}"#,
            "--max-retries",
            "2",
            "--idempotency-key",
            "k1",
            "--scheduled-at",
            "2024-05-01T12:00:00Z",
            "--wait",
        ]);
        assert!(wait);
        assert_eq!(
            body,
            json!({
                "pool": "sbx", "artifact": "sha256:ab",
                "parameters": {"n": 3, "keep": "yes", "name": "alice", "flags": [1, 2]},
                "job_variables": {"cpu": "1024", "command": ["python", "flow.py"]},
                "timeout_s": 10, "limits": {"memory_mb": 32}, "max_retries": 2,
                "idempotency_key": "k1", "scheduled_at": "2024-05-01T12:00:00Z"
            })
        );
    }

    #[test]
    fn submit_usage_errors() {
        for flags in [
            &[][..],
            &["--pool", "p", "--param", "novalue"],
            &["--pool", "p", "--params", "[1]"],
            &["--pool", "p", "--timeout", "soon"],
            &["--pool", "p", "--scheduled-at", "tomorrow"],
        ] {
            let mut argv = vec!["ferry", "run", "submit"];
            argv.extend_from_slice(flags);
            let e = Cli::try_parse_from(&argv).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{flags:?}: {e}");
        }
    }

    #[test]
    fn list_flags() {
        let RunCommand::List(l) = run_command(&[
            "ferry", "run", "list", "--pool", "p", "--state", "failed", "--limit", "5", "--all",
        ]) else {
            panic!()
        };
        assert_eq!(
            (l.pool.as_deref(), l.state.as_deref(), l.limit, l.all),
            (Some("p"), Some("failed"), Some(5), true)
        );
        let e = Cli::try_parse_from(["ferry", "run", "list", "--state", "exploded"]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn logs_flags() {
        let RunCommand::Logs {
            id,
            follow,
            timestamps,
        } = run_command(&["ferry", "run", "logs", "r1", "-f", "-t"])
        else {
            panic!()
        };
        assert_eq!((id.as_str(), follow, timestamps), ("r1", true, true));
    }

    fn run(state: &str) -> Run {
        serde_json::from_value(json!({
            "id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "pool": "sbx",
            "pool_type": "managed", "state": state, "state_reason": null,
            "state_message": null, "attempt": 1, "max_retries": 0, "parameters": {"n": 3},
            "job_variables": {}, "artifact": null, "result": null, "idempotency_key": null,
            "infrastructure": null, "log_truncated": false,
            "scheduled_at": "2024-05-01T12:00:00Z", "created_at": "2024-05-01T12:00:00Z",
            "started_at": null, "ended_at": null
        }))
        .unwrap()
    }

    #[test]
    fn runs_table_prints_full_ids() {
        let mut failed = run("failed");
        failed.id = "r2".into();
        failed.state_reason = Some("timeout".into());
        failed.attempt = 2;
        failed.ended_at = Some("2024-05-01T12:00:10Z".parse().unwrap());
        assert_eq!(
            runs_table(&[run("running"), failed]),
            "ID                                    POOL  STATE    REASON   ATTEMPT  CREATED               ENDED\n\
             0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b  sbx   running  -        1        2024-05-01T12:00:00Z  -\n\
             r2                                    sbx   failed   timeout  2        2024-05-01T12:00:00Z  2024-05-01T12:00:10Z"
        );
    }

    #[test]
    fn details_of_a_failed_push_run() {
        let mut r = run("crashed");
        r.pool = "ecs".into();
        r.pool_type = "ecs".into();
        r.state_reason = Some("image_pull".into());
        r.state_message = Some("CannotPullContainerError: pull access denied".into());
        r.attempt = 2;
        r.max_retries = 1;
        r.infrastructure = Some(json!({"task_arn": "arn:aws:ecs:us-east-1:1:task/c/abc"}));
        r.started_at = Some("2024-05-01T12:00:01Z".parse().unwrap());
        r.ended_at = Some("2024-05-01T12:00:13.4Z".parse().unwrap());
        assert_eq!(
            details(&r),
            "ID              0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b\n\
             Pool            ecs (ecs)\n\
             State           crashed\n\
             Reason          image_pull\n\
             Message         CannotPullContainerError: pull access denied\n\
             Attempt         2 (max retries 1)\n\
             Parameters      {\"n\":3}\n\
             Infrastructure  task_arn: arn:aws:ecs:us-east-1:1:task/c/abc\n\
             Scheduled       2024-05-01T12:00:00Z\n\
             Created         2024-05-01T12:00:00Z\n\
             Started         2024-05-01T12:00:01Z\n\
             Ended           2024-05-01T12:00:13Z\n\
             Duration        12.4s"
        );
    }

    #[test]
    fn details_of_a_completed_managed_run() {
        let mut r = run("completed");
        r.artifact = Some("sha256:ab".into());
        r.result = Some(json!({"sum": 6}));
        r.log_truncated = true;
        let s = details(&r);
        assert!(s.contains("\nArtifact    sha256:ab\n"), "{s}");
        assert!(
            s.contains("\nResult      {\n              \"sum\": 6\n            }\n"),
            "{s}"
        );
        assert!(s.contains("\nLog         truncated"), "{s}");
        assert!(
            !s.contains("Reason") && !s.contains("Infrastructure"),
            "{s}"
        );
    }

    #[test]
    fn events_table_layout() {
        let events: Vec<RunEvent> = serde_json::from_value(json!([
            {"seq": 1, "at": "2024-05-01T12:00:00Z", "from": null, "to": "scheduled",
             "cause": "submitted", "reason": null, "message": null, "attempt": 1},
            {"seq": 2, "at": "2024-05-01T12:00:05Z", "from": "running", "to": "failed",
             "cause": "executor", "reason": "timeout", "message": "deadline of 5s", "attempt": 1}
        ]))
        .unwrap();
        assert_eq!(
            events_table(&events),
            "SEQ  AT                    FROM     TO         CAUSE      REASON   ATTEMPT  MESSAGE\n\
             1    2024-05-01T12:00:00Z  -        scheduled  submitted  -        1\n\
             2    2024-05-01T12:00:05Z  running  failed     executor   timeout  1        deadline of 5s"
        );
    }

    #[test]
    fn completed_runs_pass_the_wait_check() {
        assert!(check_completed(&run("completed")).is_ok());
        let mut r = run("failed");
        r.state_reason = Some("exit_code".into());
        r.state_message = Some("exit status 3".into());
        let e = check_completed(&r).unwrap_err().to_string();
        assert_eq!(
            e,
            "run 0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b ended failed (exit_code): exit status 3"
        );
        assert!(check_completed(&run("cancelled")).is_err());
    }

    #[test]
    fn cancel_messages() {
        let id = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
        let cases = [
            ("cancelled", format!("Run {id} is cancelled.")),
            (
                "cancelling",
                format!("Cancelling run {id} (now cancelling)."),
            ),
            (
                "completed",
                format!("Run {id} had already ended: completed."),
            ),
        ];
        for (state, want) in cases {
            assert_eq!(cancel_message(&run(state)), want);
        }
    }

    #[test]
    fn log_lines() {
        let line = |stream: &str, text: &str| LogLine {
            seq: 1,
            ts: "2024-05-01T12:00:00.25Z".parse().unwrap(),
            stream: stream.into(),
            line: text.into(),
        };
        let cases = [
            (line("stdout", "hello"), false, "hello"),
            (
                line("stdout", "hello"),
                true,
                "2024-05-01T12:00:00.250Z hello",
            ),
            (line("stderr", "oops"), false, "oops"),
            (line("ferry", "limit hit"), false, "[ferry] limit hit"),
            (line("stdout", "\u{1b}[2Jclear"), false, "\\u{1b}[2Jclear"),
        ];
        for (l, ts, want) in cases {
            assert_eq!(format_line(&l, ts), want);
        }
    }
}
