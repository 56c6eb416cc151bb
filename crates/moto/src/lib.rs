//! Test support: moto (pinned in `moto-requirements.txt` beside this crate) installed into
//! `<workspace>/target/moto-venv` once per requirements hash, started once per test process
//! on a free loopback port, and one emulated customer account per account id (a VPC with DNS
//! hostnames, a subnet, a security group and an ECS cluster). If moto cannot be installed or
//! started, the tests fail; they never skip.
//!
//! moto runs under a small Python wrapper that exits when its standard input closes: the
//! test process holds the pipe, so whichever way that process ends (even killed), moto ends
//! with it and no orphan survives.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

pub const REGION: &str = "eu-west-1";
pub const CLUSTER: &str = "flows";

/// The moto server this test process uses.
pub struct Moto {
    pub endpoint: String,
    venv: PathBuf,
    /// Held until the process ends: closing it stops moto.
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
    accounts: Mutex<HashMap<String, Account>>,
}

/// One emulated customer account, ready for awsvpc tasks.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub subnet: String,
    pub security_group: String,
    pub cluster: String,
}

/// Starts the wrapped server, then prints `ready` and waits for standard input to close.
const WRAPPER: &str = r#"
import os, sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
print("ready", flush=True)
sys.stdin.read()
os._exit(0)
"#;

/// What every boto3 script starts with: its arguments (endpoint, account, region, then its
/// own in `rest`) and `kw`, the client arguments of that account (AssumeRole into it).
const PRELUDE: &str = r#"
import json, sys, boto3
endpoint, account, region = sys.argv[1:4]
rest = sys.argv[4:]
base = dict(endpoint_url=endpoint, region_name=region,
            aws_access_key_id="testing", aws_secret_access_key="testing")
creds = boto3.client("sts", **base).assume_role(
    RoleArn=f"arn:aws:iam::{account}:role/ferry-fixture", RoleSessionName="fixture")["Credentials"]
kw = dict(base, aws_access_key_id=creds["AccessKeyId"],
          aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
"#;

/// Creates the account's network and cluster, as that account (AssumeRole into it), with
/// boto3 from moto's venv. (EC2 through boto3 rather than the Rust SDK: aws-sdk-ec2 would
/// add minutes to every clean build for three calls.)
const ACCOUNT_SETUP: &str = r#"
cluster = rest[0]
ec2 = boto3.client("ec2", **kw)
vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
sg = ec2.create_security_group(GroupName="ferry-tasks", Description="ferry tasks", VpcId=vpc)["GroupId"]
boto3.client("ecs", **kw).create_cluster(clusterName=cluster)
print(json.dumps({"subnet": subnet, "security_group": sg}))
"#;

/// Describes one task as that account (its overrides, tags and status), as JSON.
const DESCRIBE_TASK: &str = r#"
cluster, task = rest[:2]
out = boto3.client("ecs", **kw).describe_tasks(cluster=cluster, tasks=[task], include=["TAGS"])
print(json.dumps(out["tasks"][0] if out["tasks"] else None, default=str))
"#;

/// Stops one task as that account, as someone in the console would.
const STOP_TASK: &str = r#"
cluster, task = rest[:2]
out = boto3.client("ecs", **kw).stop_task(cluster=cluster, task=task, reason="stopped in the console")
print(json.dumps(out["task"]["lastStatus"]))
"#;

static MOTO: OnceLock<Moto> = OnceLock::new();

/// The moto server, started on first use.
pub fn moto() -> &'static Moto {
    MOTO.get_or_init(|| match Moto::start() {
        Ok(m) => m,
        Err(e) => panic!("moto could not be started (the AWS tests need it): {e:#}"),
    })
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `<workspace>/target/moto-venv`, (re)installed when the requirements changed. Under
/// `flock`, as test processes start in parallel.
fn venv() -> Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    std::fs::create_dir_all(&target)?;
    let venv = target.join("moto-venv");
    let requirements = Path::new(env!("CARGO_MANIFEST_DIR")).join("moto-requirements.txt");
    let hash = hex::encode(Sha256::digest(std::fs::read(&requirements)?));
    let script = r#"
set -eu
venv="$1"; req="$2"; hash="$3"
if [ "$(cat "$venv/.ferry-requirements-sha256" 2>/dev/null)" = "$hash" ]; then exit 0; fi
echo "installing moto into $venv" >&2
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --disable-pip-version-check --quiet -r "$req"
echo "$hash" > "$venv/.ferry-requirements-sha256"
"#;
    let out = Command::new("flock")
        .arg(target.join("moto-venv.lock"))
        .args(["bash", "-c", script, "moto-venv"])
        .arg(&venv)
        .arg(&requirements)
        .arg(&hash)
        .stdin(Stdio::null())
        .output()
        .context("running flock + python3 -m venv")?;
    if !out.status.success() {
        bail!(
            "installing moto failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(venv)
}

impl Moto {
    fn start() -> Result<Moto> {
        let venv = venv()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut child = Command::new(venv.join("bin/python"))
            .args(["-c", WRAPPER, &port.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting moto")?;
        let stdin = child.stdin.take().context("moto's stdin")?;
        let stdout = child.stdout.take().context("moto's stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        if line.trim() != "ready" {
            let _ = child.kill();
            bail!("moto did not start: {line:?}");
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("moto is not answering on port {port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Moto {
            endpoint: format!("http://127.0.0.1:{port}"),
            venv,
            _stdin: Mutex::new(stdin),
            _child: Mutex::new(child),
            accounts: Mutex::new(HashMap::new()),
        })
    }

    /// Sets how moto advances ECS tasks (`/moto-api/state-manager/set-transition`), e.g.
    /// `{"progression": "manual", "times": 1000}`. Global to this process's server: nextest
    /// runs each test in its own process, so with its own moto.
    pub fn set_task_transition(&self, transition: serde_json::Value) {
        let body =
            serde_json::json!({"model_name": "ecs::task", "transition": transition}).to_string();
        let host = self.endpoint.trim_start_matches("http://");
        let mut conn = TcpStream::connect(host).unwrap_or_else(|e| panic!("moto: {e}"));
        let request = format!(
            "POST /moto-api/state-manager/set-transition HTTP/1.1\r\nHost: {host}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        conn.write_all(request.as_bytes())
            .unwrap_or_else(|e| panic!("moto: {e}"));
        let mut answer = String::new();
        let _ = conn.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.1 201") || answer.starts_with("HTTP/1.1 200"),
            "set-transition: {answer}"
        );
    }

    /// Runs one of the boto3 scripts above (after [`PRELUDE`]) with moto's venv; its standard
    /// output as JSON.
    fn boto3(&self, what: &str, script: &str, args: &[&str]) -> serde_json::Value {
        let out = Command::new(self.venv.join("bin/python"))
            .args(["-c", &format!("{PRELUDE}{script}"), &self.endpoint])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("running {what}: {e}"));
        assert!(
            out.status.success(),
            "{what} in moto: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what} output: {e}"))
    }

    /// DescribeTasks of `task` in `account`'s cluster, as boto3 returns it (null if
    /// unknown). Note: in moto each DescribeTasks moves the task along its states unless the
    /// transition was set otherwise ([`Moto::set_task_transition`]).
    pub fn describe_task(&self, account: &str, cluster: &str, task: &str) -> serde_json::Value {
        self.boto3(
            "describing a task",
            DESCRIBE_TASK,
            &[account, REGION, cluster, task],
        )
    }

    /// StopTask of `task` in `account`'s cluster, out of band (not by Ferry).
    pub fn stop_task(&self, account: &str, cluster: &str, task: &str) {
        self.boto3(
            "stopping a task",
            STOP_TASK,
            &[account, REGION, cluster, task],
        );
    }

    /// Account `id`'s network and cluster, created on first use.
    pub fn account(&self, id: &str) -> Account {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = accounts.get(id) {
            return a.clone();
        }
        let v = self.boto3(
            &format!("setting up account {id}"),
            ACCOUNT_SETUP,
            &[id, REGION, CLUSTER],
        );
        let a = Account {
            id: id.to_owned(),
            subnet: v["subnet"].as_str().unwrap_or_default().to_owned(),
            security_group: v["security_group"].as_str().unwrap_or_default().to_owned(),
            cluster: CLUSTER.to_owned(),
        };
        accounts.insert(id.to_owned(), a.clone());
        a
    }
}
