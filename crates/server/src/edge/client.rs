//! Who is on the other end: the client address a request is judged by (IP allow-lists).
//!
//! It is the socket's peer. `X-Forwarded-For` is believed only when the peer is one of the
//! operator's trusted proxies (`FERRY_TRUSTED_PROXIES`), and then only as far as the chain of
//! trusted proxies goes: read from the right, each hop a trusted proxy appended is believed,
//! and the first address that is not a trusted proxy is the client. Anything to its left was
//! written by the client itself and is ignored. An entry that does not parse ends the walk
//! with no client address, which a workspace with an allow-list refuses.

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;
use ferry_core::Cidrs;

/// The socket peer of a connection, put into each request's extensions by the listener.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// The client address of a request with these headers from `peer`; `None` when it cannot be
/// established.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &Cidrs) -> Option<IpAddr> {
    let peer = ferry_core::net::canonical(peer);
    if !trusted.contains(peer) {
        return Some(peer);
    }
    let mut hops: Vec<&str> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            return None;
        };
        hops.extend(text.split(',').map(str::trim));
    }
    let mut client = peer;
    for hop in hops.iter().rev() {
        client = ferry_core::net::canonical(parse_hop(hop)?);
        if !trusted.contains(client) {
            return Some(client);
        }
    }
    // Every hop was a trusted proxy: the leftmost is as far as anyone can tell.
    Some(client)
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let trusted = Cidrs::parse(&["10.0.0.0/8"]).unwrap();
        let h = headers(&["192.0.2.7"]);
        assert_eq!(
            client_ip(ip("198.51.100.1"), &h, &trusted),
            Some(ip("198.51.100.1"))
        );
        // No proxies trusted: never believed.
        assert_eq!(
            client_ip(ip("10.0.0.5"), &h, &Cidrs::default()),
            Some(ip("10.0.0.5"))
        );
    }

    #[test]
    fn a_trusted_proxy_is_believed_up_to_the_first_untrusted_hop() {
        let trusted = Cidrs::parse(&["10.0.0.0/8", "2001:db8::/32"]).unwrap();
        // The client wrote 203.0.113.9 itself; the proxy appended what it saw.
        let h = headers(&["203.0.113.9, 192.0.2.7"]);
        assert_eq!(
            client_ip(ip("10.0.0.5"), &h, &trusted),
            Some(ip("192.0.2.7"))
        );
        // Two trusted proxies in a row, the header split over two lines, ports on hops.
        let h = headers(&["203.0.113.9, 192.0.2.7:4711", "10.1.1.1"]);
        assert_eq!(
            client_ip(ip("10.0.0.5"), &h, &trusted),
            Some(ip("192.0.2.7"))
        );
        let h = headers(&["[2001:db9::1]:443, 2001:db8::1"]);
        assert_eq!(
            client_ip(ip("10.0.0.5"), &h, &trusted),
            Some(ip("2001:db9::1"))
        );
        // No header: the proxy itself.
        assert_eq!(
            client_ip(ip("10.0.0.5"), &headers(&[]), &trusted),
            Some(ip("10.0.0.5"))
        );
        // An IPv4 peer seen through an IPv6 socket is still trusted.
        let h = headers(&["192.0.2.8"]);
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.5"), &h, &trusted),
            Some(ip("192.0.2.8"))
        );
    }

    #[test]
    fn garbage_in_the_believed_part_gives_no_client() {
        let trusted = Cidrs::parse(&["10.0.0.0/8"]).unwrap();
        assert_eq!(
            client_ip(ip("10.0.0.5"), &headers(&["192.0.2.7, evil"]), &trusted),
            None
        );
        assert_eq!(
            client_ip(ip("10.0.0.5"), &headers(&["unknown"]), &trusted),
            None
        );
        // Garbage left of the client is the client's own writing, and ignored.
        assert_eq!(
            client_ip(ip("10.0.0.5"), &headers(&["evil, 192.0.2.7"]), &trusted),
            Some(ip("192.0.2.7"))
        );
    }
}
