//! Lists of networks, parsed as CIDRs: a workspace's IP allow-list, the operator's trusted
//! proxies. Parsed with `ipnet`, never compared as text: `10.0.0.1/8` (host bits set) is
//! refused with what was meant, an address alone is its own /32 or /128, and an IPv4 client
//! seen through an IPv6 socket (`::ffff:a.b.c.d`) matches IPv4 networks.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// A parsed, normalised list of networks. Empty allows nothing by itself; what empty means
/// (allow all, trust none) is up to the user of the list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cidrs(Vec<IpNet>);

/// Why a list of networks was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("{0:?} is not a network like 203.0.113.0/24 or 2001:db8::/32, nor an address")]
    Unparsable(String),
    #[error("{given:?} has bits set after its prefix; did you mean {network}?")]
    HostBits { given: String, network: IpNet },
    #[error("at most {max} networks (got {got})")]
    TooMany { max: usize, got: usize },
}

impl Cidrs {
    /// The most networks one list holds.
    pub const MAX: usize = 256;

    /// Parses each entry: `a.b.c.d/n`, `x:y::/n`, or a bare address. Duplicates are dropped,
    /// the order is kept.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Cidrs, CidrError> {
        if entries.len() > Self::MAX {
            return Err(CidrError::TooMany {
                max: Self::MAX,
                got: entries.len(),
            });
        }
        let mut nets: Vec<IpNet> = Vec::with_capacity(entries.len());
        for entry in entries {
            let net = parse_one(entry.as_ref().trim())?;
            if !nets.contains(&net) {
                nets.push(net);
            }
        }
        Ok(Cidrs(nets))
    }

    /// A comma-separated list (an environment variable's form); blank entries are skipped.
    pub fn parse_list(text: &str) -> Result<Cidrs, CidrError> {
        let entries: Vec<&str> = text
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        Self::parse(&entries)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether some network of the list holds `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The networks in their canonical text form (`203.0.113.0/24`).
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(IpNet::to_string).collect()
    }
}

impl fmt::Display for Cidrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_strings().join(","))
    }
}

/// An IPv4 address carried in IPv6 (`::ffff:a.b.c.d`) as the IPv4 address it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

fn parse_one(entry: &str) -> Result<IpNet, CidrError> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Ok(IpNet::from(canonical(ip)));
    }
    let net: IpNet = entry
        .parse()
        .map_err(|_| CidrError::Unparsable(entry.to_owned()))?;
    if net.network() != net.addr() {
        return Err(CidrError::HostBits {
            given: entry.to_owned(),
            network: net.trunc(),
        });
    }
    Ok(net)
}

/// A workspace's IP allow-list: empty allows every address; otherwise only addresses in one
/// of its networks may use the workspace's keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpAllowList(Cidrs);

impl IpAllowList {
    pub fn new(cidrs: Cidrs) -> Self {
        Self(cidrs)
    }

    /// Whether a request from `client` may proceed. `None` is a client whose address could
    /// not be established: allowed only when the list is empty.
    pub fn allows(&self, client: Option<IpAddr>) -> bool {
        self.0.is_empty() || client.is_some_and(|ip| self.0.contains(ip))
    }

    pub fn cidrs(&self) -> &Cidrs {
        &self.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_and_addresses_parse_and_match() {
        let c = Cidrs::parse(&["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"]).unwrap();
        assert!(c.contains(ip("203.0.113.200")));
        assert!(!c.contains(ip("203.0.114.1")));
        assert!(c.contains(ip("2001:db8:ffff::1")));
        assert!(!c.contains(ip("2001:db9::1")));
        assert!(c.contains(ip("198.51.100.7")));
        assert!(!c.contains(ip("198.51.100.8")));
        assert_eq!(
            c.to_strings(),
            ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7/32"]
        );
    }

    #[test]
    fn ipv4_seen_through_ipv6_matches_ipv4_networks() {
        let c = Cidrs::parse(&["10.0.0.0/8"]).unwrap();
        assert!(c.contains(ip("::ffff:10.1.2.3")));
        assert!(!c.contains(ip("::ffff:11.1.2.3")));
        let c = Cidrs::parse(&["::ffff:10.1.2.3"]).unwrap();
        assert!(c.contains(ip("10.1.2.3")));
    }

    #[test]
    fn bad_entries_say_what_to_fix() {
        let e = Cidrs::parse(&["10.0.0.1/8"]).unwrap_err();
        assert!(e.to_string().contains("10.0.0.0/8"), "{e}");
        assert!(matches!(
            Cidrs::parse(&["10.0.0.0/33"]),
            Err(CidrError::Unparsable(_))
        ));
        // Text that merely starts like a network is not one.
        for bad in ["10.0.0.0/8x", "10.0.0.0/8,", "localhost", "", "10/8"] {
            assert!(Cidrs::parse(&[bad]).is_err(), "{bad}");
        }
        let many: Vec<String> = (0..=Cidrs::MAX)
            .map(|i| format!("10.{}.{}.0/24", i / 256, i % 256))
            .collect();
        assert!(matches!(
            Cidrs::parse(&many),
            Err(CidrError::TooMany { .. })
        ));
    }

    #[test]
    fn an_empty_allow_list_allows_all_and_a_set_one_only_its_networks() {
        let open = IpAllowList::default();
        assert!(open.allows(Some(ip("192.0.2.1"))) && open.allows(None));
        let closed = IpAllowList::new(Cidrs::parse_list("192.0.2.0/24, 2001:db8::/48").unwrap());
        assert!(closed.allows(Some(ip("192.0.2.1"))));
        assert!(closed.allows(Some(ip("2001:db8::5"))));
        assert!(!closed.allows(Some(ip("192.0.3.1"))));
        assert!(
            !closed.allows(None),
            "an unknown client is refused by a set list"
        );
    }
}
