//! `ferry pool`: create, list, show, update and delete pools.

use clap::builder::PossibleValuesParser;
use clap::{ArgGroup, Args, Subcommand};
use ferry_client::{NewPool, Pool, PoolPatch};
use ferry_core::PoolType;
use serde_json::Value;

use crate::args::{self, ConcurrencyLimit};
use crate::commands::client;
use crate::output::{self, Format, Table};
use crate::Global;

#[derive(Debug, Subcommand)]
pub enum PoolCommand {
    /// Create a pool.
    Create(Create),
    /// List the workspace's pools.
    List,
    /// Show a pool, its limits and its job template.
    Show {
        /// The pool's name.
        name: String,
    },
    /// Change a pool: pause or resume it, change its limits, retries or job template.
    Update(Update),
    /// Delete a pool.
    Delete {
        /// The pool's name.
        name: String,
    },
    /// Print the cloud permissions a push pool's credential needs (JSON): for ecs, an IAM
    /// policy document and the trust actions; for cloud-run, the roles and permissions. The
    /// Terraform modules in infra/terraform grant exactly these. Needs no server.
    IamPolicy {
        /// The pool type.
        #[arg(long = "type", value_name = "TYPE", value_parser = PossibleValuesParser::new(["ecs", "cloud-run"]))]
        pool_type: String,
    },
}

fn pool_types() -> PossibleValuesParser {
    PossibleValuesParser::new(PoolType::ALL.map(PoolType::as_str))
}

#[derive(Debug, Args)]
pub struct Create {
    /// The pool's name.
    pub name: String,

    /// How the pool executes runs.
    #[arg(long = "type", value_name = "TYPE", value_parser = pool_types())]
    pub pool_type: String,

    /// Limits of each run, as JSON: {"memory_mb": 64, "timeout_s": 30, ...}.
    #[arg(long, value_name = "JSON|@FILE", value_parser = args::parse_json_object)]
    pub limits: Option<Value>,

    /// The base job template (push pools), as JSON or @file.
    #[arg(long, value_name = "JSON|@FILE", value_parser = args::parse_json_object)]
    pub job_template: Option<Value>,

    /// The credential the pool's runs use (push pools).
    #[arg(long, value_name = "NAME")]
    pub credential: Option<String>,

    /// How many of the pool's runs may execute at once [default: unlimited].
    #[arg(long, value_name = "N")]
    pub concurrency_limit: Option<u32>,

    /// Infrastructure retries of each run.
    #[arg(long, value_name = "N")]
    pub max_retries: Option<u32>,

    /// Create the pool paused: its runs wait until it is resumed.
    #[arg(long)]
    pub paused: bool,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("change").required(true).multiple(true)))]
pub struct Update {
    /// The pool's name.
    pub name: String,

    /// Pause (true) or resume (false) the pool.
    #[arg(long, value_name = "true|false", action = clap::ArgAction::Set, group = "change")]
    pub paused: Option<bool>,

    /// A new concurrency limit, or `none` to remove it.
    #[arg(long, value_name = "N|none", value_parser = args::parse_concurrency_limit, group = "change")]
    pub concurrency_limit: Option<ConcurrencyLimit>,

    /// Infrastructure retries of each run.
    #[arg(long, value_name = "N", group = "change")]
    pub max_retries: Option<u32>,

    /// New limits, as JSON.
    #[arg(long, value_name = "JSON|@FILE", value_parser = args::parse_json_object, group = "change")]
    pub limits: Option<Value>,

    /// A new base job template, as JSON or @file.
    #[arg(long, value_name = "JSON|@FILE", value_parser = args::parse_json_object, group = "change")]
    pub job_template: Option<Value>,
}

impl Create {
    fn body(self) -> NewPool {
        NewPool {
            name: self.name,
            pool_type: self.pool_type,
            limits: self.limits,
            job_template: self.job_template,
            credential: self.credential,
            concurrency_limit: self.concurrency_limit,
            max_retries: self.max_retries,
            paused: self.paused.then_some(true),
        }
    }
}

impl Update {
    fn patch(self) -> (String, PoolPatch) {
        let patch = PoolPatch {
            paused: self.paused,
            concurrency_limit: self.concurrency_limit.map(|c| c.0),
            max_retries: self.max_retries,
            limits: self.limits,
            job_template: self.job_template,
        };
        (self.name, patch)
    }
}

pub async fn run(g: &Global, command: PoolCommand) -> anyhow::Result<()> {
    if let PoolCommand::IamPolicy { pool_type } = &command {
        return iam_policy(pool_type);
    }
    let client = client(g)?;
    match command {
        PoolCommand::IamPolicy { .. } => Ok(()),
        PoolCommand::Create(c) => {
            let pool = client.create_pool(&c.body()).await?;
            match g.output {
                Format::Json => output::json(&pool),
                Format::Table => {
                    output::out(&format!(
                        "Created pool {} ({}, id {}).",
                        pool.name, pool.pool_type, pool.id
                    ))?;
                    Ok(())
                }
            }
        }
        PoolCommand::List => {
            let pools = client.list_pools().await?;
            match g.output {
                Format::Json => output::json(&pools),
                Format::Table if pools.is_empty() => {
                    output::note("No pools yet; create one with `ferry pool create`.")?;
                    Ok(())
                }
                Format::Table => {
                    output::out(&table(&pools))?;
                    Ok(())
                }
            }
        }
        PoolCommand::Show { name } => {
            let pool = client.get_pool(&name).await?;
            show(g.output, &pool)
        }
        PoolCommand::Update(u) => {
            let (name, patch) = u.patch();
            let pool = client.update_pool(&name, &patch).await?;
            show(g.output, &pool)
        }
        PoolCommand::Delete { name } => {
            client.delete_pool(&name).await?;
            if g.output == Format::Table {
                output::out(&format!("Deleted pool {name}."))?;
            }
            Ok(())
        }
    }
}

fn show(format: Format, pool: &Pool) -> anyhow::Result<()> {
    match format {
        Format::Json => output::json(pool),
        Format::Table => {
            output::out(&details(pool))?;
            Ok(())
        }
    }
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

fn concurrency(limit: Option<u32>) -> String {
    limit.map_or_else(|| "unlimited".to_owned(), |n| n.to_string())
}

/// Whether a free-form field says anything (not absent, not `{}`).
fn is_set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Object(m) => !m.is_empty(),
        _ => true,
    }
}

pub(crate) fn table(pools: &[Pool]) -> String {
    let mut t = Table::new(&[
        "NAME",
        "TYPE",
        "CREDENTIAL",
        "CONCURRENCY",
        "RETRIES",
        "PAUSED",
        "CREATED",
    ]);
    for p in pools {
        t.row(vec![
            p.name.clone(),
            p.pool_type.clone(),
            output::opt(p.credential.as_deref()),
            concurrency(p.concurrency_limit),
            p.max_retries.to_string(),
            yes_no(p.paused),
            output::time(&p.created_at),
        ]);
    }
    t.render()
}

pub(crate) fn details(p: &Pool) -> String {
    let mut rows = vec![
        ("Name", p.name.clone()),
        ("ID", p.id.clone()),
        ("Type", p.pool_type.clone()),
    ];
    if let Some(c) = &p.credential {
        rows.push(("Credential", c.clone()));
    }
    rows.extend([
        ("Concurrency", concurrency(p.concurrency_limit)),
        ("Max retries", p.max_retries.to_string()),
        ("Paused", yes_no(p.paused)),
        (
            "Limits",
            if is_set(&p.limits) {
                output::compact(&p.limits)
            } else {
                "(defaults)".to_owned()
            },
        ),
    ]);
    if is_set(&p.job_template) {
        rows.push(("Job template", output::pretty(&p.job_template)));
    }
    rows.extend([
        ("Created", output::time(&p.created_at)),
        ("Updated", output::time(&p.updated_at)),
    ]);
    output::details(&rows)
}

/// `ferry pool iam-policy`: the permissions from the push backends' own lists.
fn iam_policy(pool_type: &str) -> anyhow::Result<()> {
    let pool_type = PoolType::parse(pool_type)
        .filter(|t| t.is_push())
        .ok_or_else(|| anyhow::anyhow!("--type must be ecs or cloud-run"))?;
    let mut out = ferry_server::permissions::permissions(pool_type)
        .ok_or_else(|| anyhow::anyhow!("{pool_type} pools need no cloud permissions"))?;
    if pool_type == PoolType::Ecs {
        out["policy"] = ferry_server::permissions::ecs_policy_document();
    }
    output::json(&out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::{Cli, Command};
    use clap::Parser;
    use serde_json::json;

    fn pool_command(argv: &[&str]) -> PoolCommand {
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Pool(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn create_with_everything() {
        let PoolCommand::Create(c) = pool_command(&[
            "ferry",
            "pool",
            "create",
            "ecs-prod",
            "--type",
            "ecs",
            "--limits",
            r#"{"timeout_s": 30}"#,
            "--job-template",
            r#"{"cluster": "c"}"#,
            "--credential",
            "prod-aws",
            "--concurrency-limit",
            "5",
            "--max-retries",
            "2",
            "--paused",
        ]) else {
            panic!()
        };
        assert_eq!(
            serde_json::to_value(c.body()).unwrap(),
            json!({
                "name": "ecs-prod", "type": "ecs", "limits": {"timeout_s": 30},
                "job_template": {"cluster": "c"}, "credential": "prod-aws",
                "concurrency_limit": 5, "max_retries": 2, "paused": true
            })
        );
    }

    #[test]
    fn create_minimal_sends_only_name_and_type() {
        let PoolCommand::Create(c) =
            pool_command(&["ferry", "pool", "create", "sbx", "--type", "managed"])
        else {
            panic!()
        };
        assert_eq!(
            serde_json::to_value(c.body()).unwrap(),
            json!({"name": "sbx", "type": "managed"})
        );
    }

    #[test]
    fn create_usage_errors() {
        for argv in [
            &["ferry", "pool", "create", "sbx"][..],
            &["ferry", "pool", "create", "sbx", "--type", "lambda"],
            &[
                "ferry", "pool", "create", "sbx", "--type", "managed", "--limits", "{",
            ],
            &[
                "ferry", "pool", "create", "sbx", "--type", "managed", "--limits", "[]",
            ],
            &[
                "ferry",
                "pool",
                "create",
                "sbx",
                "--type",
                "ecs",
                "--max-retries",
                "-1",
            ],
            &["ferry", "pool", "create", "--type", "managed"],
        ] {
            let e = Cli::try_parse_from(argv).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{argv:?}: {e}");
        }
    }

    #[test]
    fn update_builds_a_patch_of_what_was_given() {
        let cases: &[(&[&str], Value)] = &[
            (&["--paused", "true"], json!({"paused": true})),
            (&["--paused", "false"], json!({"paused": false})),
            (
                &["--concurrency-limit", "none"],
                json!({"concurrency_limit": null}),
            ),
            (
                &["--concurrency-limit", "3"],
                json!({"concurrency_limit": 3}),
            ),
            (
                &["--max-retries", "1", "--limits", r#"{"memory_mb": 32}"#],
                json!({"max_retries": 1, "limits": {"memory_mb": 32}}),
            ),
            (
                &["--job-template", r#"{"image": "i"}"#],
                json!({"job_template": {"image": "i"}}),
            ),
        ];
        for (flags, want) in cases {
            let mut argv = vec!["ferry", "pool", "update", "p"];
            argv.extend_from_slice(flags);
            let PoolCommand::Update(u) = pool_command(&argv) else {
                panic!()
            };
            let (name, patch) = u.patch();
            assert_eq!(name, "p");
            assert_eq!(serde_json::to_value(patch).unwrap(), *want, "{flags:?}");
        }
    }

    #[test]
    fn update_needs_a_change() {
        for argv in [
            &["ferry", "pool", "update", "p"][..],
            &["ferry", "pool", "update", "p", "--paused"],
            &["ferry", "pool", "update", "p", "--paused", "maybe"],
            &[
                "ferry",
                "pool",
                "update",
                "p",
                "--concurrency-limit",
                "lots",
            ],
        ] {
            let e = Cli::try_parse_from(argv).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{argv:?}: {e}");
        }
    }

    fn pool(name: &str) -> Pool {
        serde_json::from_value(json!({
            "id": format!("id-{name}"), "name": name, "type": "managed", "limits": {},
            "job_template": {}, "credential": null, "concurrency_limit": null,
            "max_retries": 0, "paused": false, "created_at": "2024-05-01T12:00:00Z",
            "updated_at": "2024-05-01T12:30:00Z"
        }))
        .unwrap()
    }

    #[test]
    fn list_table() {
        let mut ecs = pool("ecs-prod");
        ecs.pool_type = "ecs".into();
        ecs.credential = Some("prod-aws".into());
        ecs.concurrency_limit = Some(10);
        ecs.max_retries = 2;
        ecs.paused = true;
        assert_eq!(
            table(&[pool("sbx"), ecs]),
            "NAME      TYPE     CREDENTIAL  CONCURRENCY  RETRIES  PAUSED  CREATED\n\
             sbx       managed  -           unlimited    0        no      2024-05-01T12:00:00Z\n\
             ecs-prod  ecs      prod-aws    10           2        yes     2024-05-01T12:00:00Z"
        );
    }

    #[test]
    fn details_show_limits_and_template() {
        let mut p = pool("cr");
        p.limits = json!({"timeout_s": 30});
        p.job_template = json!({"image": "i"});
        p.credential = Some("gcp".into());
        assert_eq!(
            details(&p),
            "Name          cr\n\
             ID            id-cr\n\
             Type          managed\n\
             Credential    gcp\n\
             Concurrency   unlimited\n\
             Max retries   0\n\
             Paused        no\n\
             Limits        {\"timeout_s\":30}\n\
             Job template  {\n\
            \x20               \"image\": \"i\"\n\
            \x20             }\n\
             Created       2024-05-01T12:00:00Z\n\
             Updated       2024-05-01T12:30:00Z"
        );
        let plain = details(&pool("sbx"));
        assert!(plain.contains("\nLimits       (defaults)\n"), "{plain}");
        assert!(!plain.contains("Job template"), "{plain}");
        assert!(!plain.contains("Credential"), "{plain}");
    }
}
