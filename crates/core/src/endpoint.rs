//! Which cloud endpoints Ferry may call on a tenant's behalf: the operator's choice
//! (`FERRY_ALLOWED_ENDPOINTS`), never a tenant's. A pool's `endpoint` (a private or regional
//! endpoint, a test fake) and a workload-identity credential's token exchange URL must be an
//! origin on this list; anything else is refused before a request is signed.
//!
//! Everything is compared after parsing with [`url::Url`] — scheme, host and port, never a
//! string prefix (`http://127.0.0.1.evil.tld` is not `http://127.0.0.1`). A pattern's host may
//! start with `*` as a whole DNS label, which matches exactly one label: `https://*.googleapis.com`
//! allows `https://run.googleapis.com` but neither `https://googleapis.com` nor
//! `https://bucket.storage.googleapis.com`.

use std::fmt;

use url::{Host, Url};

/// The operator's variable.
pub const ENV: &str = "FERRY_ALLOWED_ENDPOINTS";

/// AWS regions whose official ECS, STS and CloudWatch Logs endpoints the default list allows.
const AWS_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "af-south-1",
    "ap-east-1",
    "ap-south-1",
    "ap-south-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
];

/// Why an endpoint or a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("{0:?} is not a URL")]
    NotAUrl(String),
    #[error(
        "{0:?} must be an origin: http(s)://host[:port] with no user, path, query or fragment"
    )]
    NotAnOrigin(String),
    #[error("{0:?}: `*` may only stand as the whole leftmost label of a DNS name")]
    BadWildcard(String),
    #[error(
        "{0} is not an endpoint this Ferry may call: the operator allows only the origins in \
         FERRY_ALLOWED_ENDPOINTS (default: the clouds' official endpoints)"
    )]
    NotAllowed(String),
}

/// A parsed origin: scheme, host and port (the scheme's default port when none is written).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// Parses `s` as an origin. A trailing `/` is tolerated; any path, query, fragment or
    /// user information is refused, and so is any scheme but `http` and `https`.
    pub fn parse(s: &str) -> Result<Self, EndpointError> {
        let url = Url::parse(s).map_err(|_| EndpointError::NotAUrl(s.to_owned()))?;
        Self::of(&url).ok_or_else(|| EndpointError::NotAnOrigin(s.to_owned()))
    }

    /// The origin of `url`, if it is nothing more than an origin.
    fn of(url: &Url) -> Option<Self> {
        let bare = url.username().is_empty()
            && url.password().is_none()
            && matches!(url.path(), "" | "/")
            && url.query().is_none()
            && url.fragment().is_none();
        if !bare || !matches!(url.scheme(), "http" | "https") {
            return None;
        }
        Some(Self {
            scheme: url.scheme().to_owned(),
            host: host_text(url.host()?)?,
            port: url.port_or_known_default()?,
        })
    }

    /// The origin `url` (a full URL, with a path) is on.
    pub fn of_url(s: &str) -> Result<Self, EndpointError> {
        let url = Url::parse(s).map_err(|_| EndpointError::NotAUrl(s.to_owned()))?;
        let host = url
            .host()
            .ok_or_else(|| EndpointError::NotAnOrigin(s.to_owned()))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(EndpointError::NotAnOrigin(s.to_owned()));
        }
        if !matches!(url.scheme(), "http" | "https") {
            return Err(EndpointError::NotAnOrigin(s.to_owned()));
        }
        Ok(Self {
            scheme: url.scheme().to_owned(),
            host: host_text(host).ok_or_else(|| EndpointError::NotAnOrigin(s.to_owned()))?,
            port: url
                .port_or_known_default()
                .ok_or_else(|| EndpointError::NotAnOrigin(s.to_owned()))?,
        })
    }

    /// Whether the host is a loopback address or `localhost`.
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// The host as Ferry compares and prints it. A domain must be a DNS name — letters, digits,
/// `-`, `_` and dots (international names arrive as `xn--` labels): the URL standard lets
/// `,`, `=`, `(` and the like through, decoded from `%2c` and friends, and a host holding a
/// `,` would print as two entries of a list (found by the `endpoints` fuzz target).
fn host_text(host: Host<&str>) -> Option<String> {
    match host {
        Host::Domain(d) => {
            let d = d.to_ascii_lowercase();
            let dns = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
            d.bytes().all(dns).then_some(d)
        }
        Host::Ipv4(ip) => Some(ip.to_string()),
        Host::Ipv6(ip) => Some(format!("[{ip}]")),
    }
}

/// One allowed origin, whose host may begin with a `*` label.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    scheme: String,
    /// The host after `*.` when `wildcard`, else the whole host.
    host: String,
    wildcard: bool,
    port: u16,
}

impl Pattern {
    fn parse(s: &str) -> Result<Self, EndpointError> {
        let s = s.trim();
        // `Url` would refuse `*` in a host: parse the pattern with a placeholder label in its
        // place, then check that the placeholder is all that was there.
        const PLACEHOLDER: &str = "ferry-wildcard-label";
        let (scheme_sep, rest) = s
            .split_once("://")
            .ok_or_else(|| EndpointError::NotAUrl(s.to_owned()))?;
        let wildcard = rest.starts_with("*.");
        let text = if wildcard {
            format!("{scheme_sep}://{PLACEHOLDER}.{}", &rest[2..])
        } else {
            s.to_owned()
        };
        if text.contains('*') {
            return Err(EndpointError::BadWildcard(s.to_owned()));
        }
        let origin = Origin::parse(&text).map_err(|e| match e {
            EndpointError::NotAUrl(_) => EndpointError::NotAUrl(s.to_owned()),
            _ => EndpointError::NotAnOrigin(s.to_owned()),
        })?;
        // A `*` written percent-encoded (`%2A`) is decoded by the URL parser: checked again on
        // the host as parsed, or `Display` would print a list that parses back to another
        // (found by the `endpoints` fuzz target).
        let star = |h: &str| h.contains('*');
        let host = if wildcard {
            let tail = origin
                .host
                .strip_prefix(&format!("{PLACEHOLDER}."))
                .ok_or_else(|| EndpointError::BadWildcard(s.to_owned()))?;
            // `*.com` would allow a whole top-level domain.
            if !tail.contains('.') || tail.starts_with('[') || star(tail) {
                return Err(EndpointError::BadWildcard(s.to_owned()));
            }
            tail.to_owned()
        } else if star(&origin.host) {
            return Err(EndpointError::BadWildcard(s.to_owned()));
        } else {
            origin.host
        };
        Ok(Self {
            scheme: origin.scheme,
            host,
            wildcard,
            port: origin.port,
        })
    }

    fn matches(&self, o: &Origin) -> bool {
        if self.scheme != o.scheme || self.port != o.port {
            return false;
        }
        if !self.wildcard {
            return self.host == o.host;
        }
        match o.host.split_once('.') {
            Some((label, rest)) => !label.is_empty() && rest == self.host,
            None => false,
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let star = if self.wildcard { "*." } else { "" };
        write!(f, "{}://{star}{}:{}", self.scheme, self.host, self.port)
    }
}

/// The origins Ferry may send a tenant's calls to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedEndpoints {
    patterns: Vec<Pattern>,
}

impl Default for AllowedEndpoints {
    /// The clouds' official endpoints only: `https://*.googleapis.com` (Cloud Run, STS, IAM,
    /// Cloud Logging) and AWS's regional ECS, STS and CloudWatch Logs endpoints.
    fn default() -> Self {
        let mut patterns = vec![Pattern {
            scheme: "https".into(),
            host: "googleapis.com".into(),
            wildcard: true,
            port: 443,
        }];
        patterns.push(Pattern {
            scheme: "https".into(),
            host: "sts.amazonaws.com".into(),
            wildcard: false,
            port: 443,
        });
        for region in AWS_REGIONS {
            for service in ["ecs", "sts", "logs"] {
                patterns.push(Pattern {
                    scheme: "https".into(),
                    host: format!("{service}.{region}.amazonaws.com"),
                    wildcard: false,
                    port: 443,
                });
            }
        }
        Self { patterns }
    }
}

impl AllowedEndpoints {
    /// Parses `FERRY_ALLOWED_ENDPOINTS`: comma-separated origins (`scheme://host[:port]`),
    /// each host optionally starting with a `*` label. An empty list allows nothing.
    pub fn parse(list: &str) -> Result<Self, EndpointError> {
        let patterns = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Pattern::parse)
            .collect::<Result<_, _>>()?;
        Ok(Self { patterns })
    }

    /// No endpoint at all.
    pub fn none() -> Self {
        Self {
            patterns: Vec::new(),
        }
    }

    /// Adds `origin` (tests: a fake on a loopback port).
    pub fn with(mut self, origin: &str) -> Result<Self, EndpointError> {
        self.patterns.push(Pattern::parse(origin)?);
        Ok(self)
    }

    /// Checks `endpoint`, which must be a bare origin on the list.
    pub fn check_origin(&self, endpoint: &str) -> Result<Origin, EndpointError> {
        let origin = Origin::parse(endpoint)?;
        self.allow(origin, endpoint)
    }

    /// Checks the origin of `url` (a full URL, e.g. a token exchange endpoint).
    pub fn check_url(&self, url: &str) -> Result<Origin, EndpointError> {
        let origin = Origin::of_url(url)?;
        self.allow(origin, url)
    }

    fn allow(&self, origin: Origin, text: &str) -> Result<Origin, EndpointError> {
        if self.patterns.iter().any(|p| p.matches(&origin)) {
            Ok(origin)
        } else {
            Err(EndpointError::NotAllowed(text.to_owned()))
        }
    }
}

impl fmt::Display for AllowedEndpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.patterns.iter().map(Pattern::to_string).collect();
        f.write_str(&list.join(","))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn allowed(list: &str, endpoint: &str) -> bool {
        match AllowedEndpoints::parse(list) {
            Ok(a) => a.check_origin(endpoint).is_ok(),
            Err(e) => panic!("{list}: {e}"),
        }
    }

    #[test]
    fn exact_origins_compare_scheme_host_and_port_after_parsing() {
        let list = "http://127.0.0.1:4566,https://run.example.com";
        assert!(allowed(list, "http://127.0.0.1:4566"));
        assert!(allowed(list, "http://127.0.0.1:4566/"));
        assert!(allowed(list, "https://RUN.example.com:443"));
        // What a string prefix would have let through.
        assert!(!allowed(list, "http://127.0.0.1.evil.tld:4566"));
        assert!(!allowed(list, "http://127.0.0.1:45660"));
        assert!(!allowed(list, "http://127.0.0.1:4566@evil.tld"));
        assert!(!allowed(list, "http://127.0.0.1"));
        assert!(!allowed(list, "https://127.0.0.1:4566"));
        assert!(!allowed(list, "http://run.example.com"));
    }

    #[test]
    fn endpoints_must_be_bare_origins() {
        let a =
            AllowedEndpoints::parse("https://run.example.com").unwrap_or_else(|e| panic!("{e}"));
        for bad in [
            "https://run.example.com/v2",
            "https://run.example.com/?x=1",
            "https://user@run.example.com",
            "ftp://run.example.com",
            "run.example.com",
            "",
        ] {
            assert!(a.check_origin(bad).is_err(), "{bad}");
        }
        // A full URL is checked by its origin.
        assert!(a.check_url("https://run.example.com/v1/token").is_ok());
        assert!(a.check_url("https://evil.example.com/v1/token").is_err());
    }

    #[test]
    fn a_wildcard_is_one_whole_leftmost_label() {
        let list = "https://*.googleapis.com";
        assert!(allowed(list, "https://run.googleapis.com"));
        assert!(allowed(list, "https://us-central1-run.googleapis.com"));
        assert!(!allowed(list, "https://googleapis.com"));
        assert!(!allowed(list, "https://bucket.storage.googleapis.com"));
        assert!(!allowed(list, "https://run.googleapis.com.evil.tld"));
        assert!(!allowed(list, "https://rungoogleapis.com"));
        assert!(!allowed(list, "http://run.googleapis.com"));
        for bad in [
            "https://run*.googleapis.com",
            "https://*run.googleapis.com",
            "https://run.*.googleapis.com",
            "https://*.com",
            "https://*",
            "https://x.googleapis.com/path",
            "not a url",
            // Hosts that are no DNS names, written plainly or percent-encoded.
            "https://*.a%2cb.googleapis.com",
            "https://a=b.googleapis.com",
            "https://*.=r.c%2cesm-(5601.amazonaws.com",
            // Percent-encoded stars are stars too.
            "https://%2A.googleapis.com",
            "https://*.%2a.googleapis.com",
            "http://-.c%2amz-(560",
        ] {
            assert!(AllowedEndpoints::parse(bad).is_err(), "{bad}");
        }
        // Every list that parses prints as one that parses back to it.
        for list in [list, "http://127.0.0.1:4566,https://*.run.example.com:8443"] {
            let parsed = AllowedEndpoints::parse(list).unwrap_or_else(|e| panic!("{list}: {e}"));
            assert_eq!(
                AllowedEndpoints::parse(&parsed.to_string()),
                Ok(parsed),
                "{list}"
            );
        }
    }

    #[test]
    fn the_default_is_the_clouds_official_endpoints() {
        let d = AllowedEndpoints::default();
        assert!(d.check_origin("https://run.googleapis.com").is_ok());
        assert!(d
            .check_origin("https://europe-west1-run.googleapis.com")
            .is_ok());
        assert!(d
            .check_origin("https://ecs.eu-west-1.amazonaws.com")
            .is_ok());
        assert!(d.check_url("https://sts.amazonaws.com/").is_ok());
        assert!(d.check_url("https://sts.googleapis.com/v1/token").is_ok());
        for bad in [
            "http://127.0.0.1:4566",
            "http://localhost:8080",
            "http://169.254.169.254",
            "http://[fd00:ec2::254]",
            "https://ecs.eu-west-1.amazonaws.com.evil.tld",
            "https://evil.example.com",
            "http://run.googleapis.com",
        ] {
            assert!(d.check_origin(bad).is_err(), "{bad}");
        }
        assert!(AllowedEndpoints::none()
            .check_origin("https://run.googleapis.com")
            .is_err());
    }

    #[test]
    fn loopback_origins() {
        for (o, lo) in [
            ("http://127.0.0.1:1", true),
            ("http://localhost:1", true),
            ("http://[::1]:1", true),
            ("http://127.0.0.1.evil.tld:1", false),
            ("https://run.googleapis.com", false),
        ] {
            assert_eq!(
                Origin::parse(o).map(|o| o.is_loopback()).ok(),
                Some(lo),
                "{o}"
            );
        }
    }
}
