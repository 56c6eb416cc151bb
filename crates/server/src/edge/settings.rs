//! The public edge as an operator tunes it: the config file's `[edge]` table or `FERRY_*`
//! variables (which win), checked together when Ferry starts.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use ferry_core::Cidrs;

use crate::timings::var;

/// Every knob is optional in the file; [`EdgeSettings::resolve`] fills in the defaults.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeFile {
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub allow_plaintext: Option<bool>,
    pub trusted_proxies: Option<Vec<String>>,
    pub rate_limit_rps: Option<u32>,
    pub rate_limit_burst: Option<u32>,
    pub workspace_rate_limit_rps: Option<u32>,
    pub workspace_rate_limit_burst: Option<u32>,
    pub run_token_rate_limit_rps: Option<u32>,
    pub run_token_rate_limit_burst: Option<u32>,
    pub header_timeout_s: Option<u64>,
    pub body_timeout_s: Option<u64>,
    pub request_timeout_s: Option<u64>,
    pub idle_timeout_s: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_connections_per_peer: Option<usize>,
}

/// A token bucket: `rps` tokens a second, at most `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub rps: u32,
    pub burst: u32,
}

/// The public edge, resolved: TLS, who is believed about client addresses, rate limits,
/// timeouts and connection caps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeSettings {
    /// `FERRY_TLS_CERT` / `FERRY_TLS_KEY`: PEM files that make the public listener HTTPS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `FERRY_ALLOW_PLAINTEXT=1`: plaintext on a non-loopback address (behind a
    /// TLS-terminating proxy).
    pub allow_plaintext: bool,
    /// `FERRY_TRUSTED_PROXIES`: peers whose `X-Forwarded-For` is believed (CIDRs; default
    /// none).
    pub trusted_proxies: Cidrs,
    /// `FERRY_RATE_LIMIT_RPS` / `_BURST`: per API key (default 5,000/s, burst 10,000: one key
    /// driving 1,000 runs/s with a few requests per run stays clear of it).
    pub per_key: Bucket,
    /// `FERRY_WORKSPACE_RATE_LIMIT_RPS` / `_BURST`: per workspace, all its keys together
    /// (default 10,000/s, burst 20,000).
    pub per_workspace: Bucket,
    /// `FERRY_RUN_TOKEN_RATE_LIMIT_RPS` / `_BURST`: per pushed run, for its container's log
    /// and result posts (default 50/s, burst 200).
    pub per_run: Bucket,
    /// `FERRY_HEADER_TIMEOUT_S`: time to send a request's head, counted from when the
    /// connection is ready for it — so also how long a keep-alive connection may sit idle
    /// between requests (default 10).
    pub header_timeout: Duration,
    /// `FERRY_BODY_TIMEOUT_S`: longest silence while a request body is being sent (default 10).
    pub body_timeout: Duration,
    /// `FERRY_REQUEST_TIMEOUT_S`: longest time from a request's head to its response's head,
    /// body included, on every route (streams are bounded by this until they start; then by
    /// their authority) — except artifact uploads, which get ten times as long (default 30).
    pub request_timeout: Duration,
    /// `FERRY_IDLE_TIMEOUT_S`: a connection on which no byte moves either way for this long is
    /// closed, whatever it is doing (default 60; followed streams send a keep-alive every 15 s).
    pub idle_timeout: Duration,
    /// `FERRY_MAX_CONNECTIONS`: open connections in all, per listener (default 8,192).
    pub max_connections: usize,
    /// `FERRY_MAX_CONNECTIONS_PER_PEER`: open connections per client address (an IPv6 client
    /// counts by its /64) (default 512).
    pub max_connections_per_peer: usize,
}

impl Default for EdgeSettings {
    fn default() -> Self {
        Self {
            tls: None,
            allow_plaintext: false,
            trusted_proxies: Cidrs::default(),
            per_key: Bucket {
                rps: 5_000,
                burst: 10_000,
            },
            per_workspace: Bucket {
                rps: 10_000,
                burst: 20_000,
            },
            per_run: Bucket {
                rps: 50,
                burst: 200,
            },
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 8_192,
            max_connections_per_peer: 512,
        }
    }
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn bucket(
    what: &str,
    rps: Option<u32>,
    burst: Option<u32>,
    default: Bucket,
) -> anyhow::Result<Bucket> {
    let b = Bucket {
        rps: rps.unwrap_or(default.rps),
        burst: burst.unwrap_or(default.burst),
    };
    if b.rps == 0 || b.burst == 0 {
        bail!(
            "{what}_RPS and {what}_BURST must be at least 1 (got {} and {})",
            b.rps,
            b.burst
        );
    }
    Ok(b)
}

fn secs(what: &str, given: Option<u64>, default: Duration) -> anyhow::Result<Duration> {
    match given {
        Some(0) => bail!("{what} must be at least 1 second"),
        Some(s) => Ok(Duration::from_secs(s)),
        None => Ok(default),
    }
}

impl EdgeSettings {
    /// The file's `[edge]` table with the environment's values over it, checked.
    pub fn resolve(file: EdgeFile) -> anyhow::Result<Self> {
        let d = Self::default();
        let cert = env_path("FERRY_TLS_CERT").or(file.tls_cert);
        let key = env_path("FERRY_TLS_KEY").or(file.tls_key);
        let tls = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => bail!("set both FERRY_TLS_CERT and FERRY_TLS_KEY (PEM files), or neither"),
        };
        let allow_plaintext = match std::env::var("FERRY_ALLOW_PLAINTEXT").ok().as_deref() {
            Some("1" | "true") => true,
            Some("0" | "false" | "") => false,
            Some(other) => bail!("FERRY_ALLOW_PLAINTEXT must be 1 or 0 (got {other:?})"),
            None => file.allow_plaintext.unwrap_or(false),
        };
        let trusted_proxies = match std::env::var("FERRY_TRUSTED_PROXIES").ok() {
            Some(list) => Cidrs::parse_list(&list),
            None => Cidrs::parse(&file.trusted_proxies.unwrap_or_default()),
        }
        .map_err(|e| anyhow::anyhow!("FERRY_TRUSTED_PROXIES: {e}"))?;
        let count = |name: &str, file: Option<usize>, default: usize| -> anyhow::Result<usize> {
            let n = var::<usize>(name)?.or(file).unwrap_or(default);
            if n == 0 {
                bail!("{name} must be at least 1");
            }
            Ok(n)
        };
        Ok(Self {
            tls,
            allow_plaintext,
            trusted_proxies,
            per_key: bucket(
                "FERRY_RATE_LIMIT",
                var("FERRY_RATE_LIMIT_RPS")?.or(file.rate_limit_rps),
                var("FERRY_RATE_LIMIT_BURST")?.or(file.rate_limit_burst),
                d.per_key,
            )?,
            per_workspace: bucket(
                "FERRY_WORKSPACE_RATE_LIMIT",
                var("FERRY_WORKSPACE_RATE_LIMIT_RPS")?.or(file.workspace_rate_limit_rps),
                var("FERRY_WORKSPACE_RATE_LIMIT_BURST")?.or(file.workspace_rate_limit_burst),
                d.per_workspace,
            )?,
            per_run: bucket(
                "FERRY_RUN_TOKEN_RATE_LIMIT",
                var("FERRY_RUN_TOKEN_RATE_LIMIT_RPS")?.or(file.run_token_rate_limit_rps),
                var("FERRY_RUN_TOKEN_RATE_LIMIT_BURST")?.or(file.run_token_rate_limit_burst),
                d.per_run,
            )?,
            header_timeout: secs(
                "FERRY_HEADER_TIMEOUT_S",
                var("FERRY_HEADER_TIMEOUT_S")?.or(file.header_timeout_s),
                d.header_timeout,
            )?,
            body_timeout: secs(
                "FERRY_BODY_TIMEOUT_S",
                var("FERRY_BODY_TIMEOUT_S")?.or(file.body_timeout_s),
                d.body_timeout,
            )?,
            request_timeout: secs(
                "FERRY_REQUEST_TIMEOUT_S",
                var("FERRY_REQUEST_TIMEOUT_S")?.or(file.request_timeout_s),
                d.request_timeout,
            )?,
            idle_timeout: secs(
                "FERRY_IDLE_TIMEOUT_S",
                var("FERRY_IDLE_TIMEOUT_S")?.or(file.idle_timeout_s),
                d.idle_timeout,
            )?,
            max_connections: count(
                "FERRY_MAX_CONNECTIONS",
                file.max_connections,
                d.max_connections,
            )?,
            max_connections_per_peer: count(
                "FERRY_MAX_CONNECTIONS_PER_PEER",
                file.max_connections_per_peer,
                d.max_connections_per_peer,
            )?,
        })
    }

    /// Refuses a plaintext public listener on an address other hosts can reach, unless the
    /// operator said a proxy terminates TLS in front of it.
    pub fn check_listener(&self, listen: std::net::SocketAddr) -> anyhow::Result<()> {
        if self.tls.is_none() && !self.allow_plaintext && !listen.ip().is_loopback() {
            bail!(
                "refusing to serve the public API in plaintext on {listen}: set FERRY_TLS_CERT and \
                 FERRY_TLS_KEY (PEM files) to serve HTTPS, or FERRY_ALLOW_PLAINTEXT=1 if a \
                 TLS-terminating proxy is in front of Ferry"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_is_refused_off_loopback_and_says_what_to_set() {
        let s = EdgeSettings::default();
        assert!(s.check_listener("127.0.0.1:8080".parse().unwrap()).is_ok());
        assert!(s.check_listener("[::1]:8080".parse().unwrap()).is_ok());
        let e = s
            .check_listener("0.0.0.0:8080".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("FERRY_TLS_CERT") && e.contains("FERRY_ALLOW_PLAINTEXT"),
            "{e}"
        );
        let proxied = EdgeSettings {
            allow_plaintext: true,
            ..EdgeSettings::default()
        };
        assert!(proxied
            .check_listener("0.0.0.0:8080".parse().unwrap())
            .is_ok());
        let tls = EdgeSettings {
            tls: Some(("c.pem".into(), "k.pem".into())),
            ..EdgeSettings::default()
        };
        assert!(tls.check_listener("[::]:443".parse().unwrap()).is_ok());
    }

    #[test]
    fn the_file_takes_an_edge_table_and_refuses_unknown_keys() {
        let f: EdgeFile = toml::from_str(
            "tls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"\ntrusted_proxies = [\"10.0.0.0/8\"]\nrate_limit_rps = 7",
        )
        .unwrap();
        let s = EdgeSettings::resolve(f).unwrap();
        assert_eq!(s.tls, Some(("/c.pem".into(), "/k.pem".into())));
        assert!(s.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
        assert_eq!(s.per_key.rps, 7);
        assert!(toml::from_str::<EdgeFile>("tls = 1").is_err());
        let half = EdgeFile {
            tls_cert: Some("/c.pem".into()),
            ..EdgeFile::default()
        };
        assert!(EdgeSettings::resolve(half)
            .unwrap_err()
            .to_string()
            .contains("FERRY_TLS_KEY"));
        let bad = EdgeFile {
            trusted_proxies: Some(vec!["10.0.0.1/8".into()]),
            ..EdgeFile::default()
        };
        assert!(EdgeSettings::resolve(bad)
            .unwrap_err()
            .to_string()
            .contains("10.0.0.0/8"));
    }
}
