//! `ferry workspace`: the caller's workspace — for now its IP allow-list.

use clap::Subcommand;
use ferry_client::IpAllowList;

use crate::commands::client;
use crate::output::{self, Format};
use crate::Global;

#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// The networks the workspace's API keys may be used from (admin).
    #[command(subcommand, name = "ip-allowlist")]
    IpAllowlist(IpAllowlistCommand),
}

#[derive(Debug, Subcommand)]
pub enum IpAllowlistCommand {
    /// Show the list, and this client's address as Ferry sees it.
    Show,
    /// Replace the list: networks (`203.0.113.0/24`, `2001:db8::/48`) or addresses. No
    /// networks at all (`--clear`) allows every address again. Audited.
    Set {
        /// The networks; the list is replaced by exactly these.
        #[arg(value_name = "CIDR", required_unless_present = "clear")]
        cidrs: Vec<String>,
        /// Allow every address (an empty list).
        #[arg(long, conflicts_with = "cidrs")]
        clear: bool,
        /// Set the list even if it leaves out this client's own address.
        #[arg(long)]
        force: bool,
    },
}

pub async fn run(g: &Global, command: WorkspaceCommand) -> anyhow::Result<()> {
    let client = client(g)?;
    let WorkspaceCommand::IpAllowlist(command) = command;
    let list = match command {
        IpAllowlistCommand::Show => client.get_ip_allowlist().await?,
        IpAllowlistCommand::Set { cidrs, force, .. } => {
            client.set_ip_allowlist(&cidrs, force).await?
        }
    };
    print(g, &list)
}

fn print(g: &Global, list: &IpAllowList) -> anyhow::Result<()> {
    if g.output == Format::Json {
        return output::json(list);
    }
    if list.cidrs.is_empty() {
        output::out("Every address may use this workspace's keys (no allow-list).")?;
    } else {
        output::out(&list.cidrs.join("\n"))?;
    }
    if let Some(me) = &list.your_address {
        output::note(&format!("This client's address, as Ferry sees it: {me}"))?;
    }
    Ok(())
}
