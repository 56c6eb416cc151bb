//! `endpoints`: the operator's list of origins Ferry may call for tenants
//! (`FERRY_ALLOWED_ENDPOINTS`, the config file's `allowed_endpoints`) and the tenant's endpoints
//! checked against it (a pool's `endpoint`, a workload identity's token URL):
//! `ferry_core::{AllowedEndpoints, Origin}` (crates/core/src/endpoint.rs).
//!
//! Input: the operator's list on the first line, the tenant's endpoint or URL on the rest.
//!
//! Properties:
//! - a list that parses prints as a list that parses back to the same list;
//! - an origin that parses prints as itself (`scheme://host:port`) and parses back the same;
//! - an endpoint the list allows is the origin a client would connect to: scheme, host and
//!   port of the URL as `url::Url` (which Ferry's HTTP clients use) reads it, with no user
//!   information; and one of the list's patterns allows it alone, either naming that very
//!   origin or `*.` and the origin's host minus exactly one leading label;
//! - the empty list allows nothing; the default list only `https` on port 443 under
//!   `googleapis.com` and `amazonaws.com`.

use ferry_core::{AllowedEndpoints, Origin};
use url::{Host, Url};

pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (list, endpoint) = text.split_once('\n').unwrap_or((text, ""));
    let endpoint = endpoint.trim_end_matches('\n');

    if let Ok(o) = Origin::parse(endpoint) {
        let printed = o.to_string();
        assert_eq!(Origin::parse(&printed).as_ref(), Ok(&o), "{printed:?}");
        assert_eq!(
            Origin::of_url(endpoint).as_ref(),
            Ok(&o),
            "of_url disagrees"
        );
    }
    assert!(AllowedEndpoints::none().check_origin(endpoint).is_err());
    assert!(AllowedEndpoints::none().check_url(endpoint).is_err());
    let default = AllowedEndpoints::default();
    for o in [default.check_origin(endpoint), default.check_url(endpoint)]
        .into_iter()
        .flatten()
    {
        let o = o.to_string();
        assert!(
            o.starts_with("https://")
                && o.ends_with(":443")
                && (o.contains(".googleapis.com:") || o.contains(".amazonaws.com:")),
            "the default list allows {o}"
        );
    }

    let Ok(allowed) = AllowedEndpoints::parse(list) else {
        return;
    };
    let printed = allowed.to_string();
    assert_eq!(
        AllowedEndpoints::parse(&printed).as_ref(),
        Ok(&allowed),
        "the list prints as {printed:?}"
    );
    if list.trim().split(',').all(|p| p.trim().is_empty()) {
        assert_eq!(allowed, AllowedEndpoints::none());
    }
    if let Ok(o) = allowed.check_origin(endpoint) {
        assert_eq!(Origin::parse(endpoint).as_ref(), Ok(&o));
        connects_to(endpoint, &o);
        allowed_by_a_pattern(&printed, &o);
    }
    if let Ok(o) = allowed.check_url(endpoint) {
        connects_to(endpoint, &o);
        allowed_by_a_pattern(&printed, &o);
    }
}

/// The origin `url::Url` reads from `endpoint` (what a client connects to) is `o`.
fn connects_to(endpoint: &str, o: &Origin) {
    let url = Url::parse(endpoint).unwrap_or_else(|e| panic!("allowed {endpoint:?}: {e}"));
    assert!(
        url.username().is_empty() && url.password().is_none(),
        "allowed {endpoint:?} with user information"
    );
    let host = match url.host() {
        Some(Host::Domain(d)) => d.to_ascii_lowercase(),
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(ip)) => format!("[{ip}]"),
        None => panic!("allowed {endpoint:?} without a host"),
    };
    let port = url
        .port_or_known_default()
        .unwrap_or_else(|| panic!("no port: {endpoint:?}"));
    assert_eq!(
        o.to_string(),
        format!("{}://{host}:{port}", url.scheme()),
        "checked one origin, would connect to another"
    );
}

/// Some pattern of the printed list, on its own, allows `o`, and says why in its text.
fn allowed_by_a_pattern(printed: &str, o: &Origin) {
    let origin = o.to_string();
    let (scheme, rest) = origin.split_once("://").unwrap_or_default();
    let (host, port) = rest.rsplit_once(':').unwrap_or_default();
    let why = printed.split(',').find(|pattern| {
        if pattern == &origin {
            return true;
        }
        let Some((p_scheme, p_rest)) = pattern.split_once("://") else {
            return false;
        };
        let Some(p_host) = p_rest.strip_prefix("*.") else {
            return false;
        };
        let Some((p_host, p_port)) = p_host.rsplit_once(':') else {
            return false;
        };
        p_scheme == scheme
            && p_port == port
            && host
                .split_once('.')
                .is_some_and(|(label, tail)| !label.is_empty() && tail == p_host)
    });
    let Some(pattern) = why else {
        panic!("{origin} allowed by no pattern of {printed:?}");
    };
    let alone = AllowedEndpoints::parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
    assert!(
        alone.check_origin(&origin).is_ok(),
        "{pattern} alone refuses {origin}"
    );
}
