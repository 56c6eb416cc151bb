//! `ip_allowlist`: a workspace's IP allow-list as its admin sends it (`PUT
//! /v1/workspace/ip-allowlist {"cidrs": [...]}`), and the trusted proxies of the operator:
//! `ferry_core::{Cidrs, IpAllowList}` (crates/core/src/net.rs).
//!
//! Input: one entry per line; the last line is a client address to judge.
//!
//! Properties:
//! - an accepted list prints as networks that parse back to the same list, with no host bits
//!   set and no duplicates, at most `Cidrs::MAX` of them;
//! - a refused list is refused for an entry that does not parse alone, or for its length;
//! - an address is allowed exactly when one of the printed networks, parsed independently by
//!   `std` (address and prefix length), holds it — IPv4 seen through IPv6 as IPv4;
//! - an empty list allows every client, a set one never a client whose address is unknown.

use std::net::IpAddr;

use ferry_core::{Cidrs, IpAllowList};

pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines: Vec<&str> = text.lines().collect();
    let client = lines.pop().and_then(|l| l.trim().parse::<IpAddr>().ok());
    let cidrs = match Cidrs::parse(&lines) {
        Ok(c) => c,
        Err(_) => {
            let each_alone = lines.iter().all(|l| Cidrs::parse(&[l]).is_ok());
            assert!(
                !each_alone || lines.len() > Cidrs::MAX,
                "refused although every entry parses alone: {lines:?}"
            );
            return;
        }
    };
    let printed = cidrs.to_strings();
    assert!(printed.len() <= Cidrs::MAX);
    let mut unique = printed.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), printed.len(), "duplicates kept: {printed:?}");
    assert_eq!(Cidrs::parse(&printed).as_ref(), Ok(&cidrs), "{printed:?}");
    let list = IpAllowList::new(cidrs.clone());
    assert!(!list.allows(None) || cidrs.is_empty());
    let Some(client) = client else {
        return;
    };
    let client = ferry_core::net::canonical(client);
    let held = printed.iter().any(|net| holds(net, client));
    assert_eq!(cidrs.contains(client), held, "{printed:?} / {client}");
    assert_eq!(list.allows(Some(client)), cidrs.is_empty() || held);
}

/// Whether the network `net` (`a/n`, as printed) holds `ip`, by bit arithmetic on `std`'s types.
fn holds(net: &str, ip: IpAddr) -> bool {
    let Some((addr, len)) = net.split_once('/') else {
        return false;
    };
    let (Ok(addr), Ok(len)) = (addr.parse::<IpAddr>(), len.parse::<u32>()) else {
        return false;
    };
    match (addr, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}
