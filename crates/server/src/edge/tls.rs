//! HTTPS for the public listener: TLS 1.2 and 1.3 only, ring's AEAD suites with forward
//! secrecy, HTTP/1.1 by ALPN. The certificate is re-read when its files change on disk
//! (checked every [`WATCH_INTERVAL`]) or on SIGHUP, without a restart; a replacement that does
//! not load (half-written, key not matching) is logged and the current one kept.
//!
//! The watch reads and hashes the two files rather than asking the kernel for events: a
//! Kubernetes Secret volume replaces its files by swapping a symlink, which inotify watches on
//! the files themselves do not see, and two small reads every few seconds cost nothing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

/// How often the certificate files are checked for a change.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    // Explicit: the tree also carries aws-lc-rs (through the AWS SDK), so there is no single
    // process-wide default to fall back on.
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate and key the listener presents, reloadable.
#[derive(Debug)]
pub struct Certificate {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: ArcSwap<CertifiedKey>,
    /// SHA-256 of the two files' bytes as last loaded (or last refused).
    seen: Mutex<[u8; 32]>,
}

fn read_both(cert: &Path, key: &Path) -> anyhow::Result<(Vec<u8>, Vec<u8>, [u8; 32])> {
    let c = std::fs::read(cert)
        .with_context(|| format!("reading FERRY_TLS_CERT {}", cert.display()))?;
    let k =
        std::fs::read(key).with_context(|| format!("reading FERRY_TLS_KEY {}", key.display()))?;
    let mut h = Sha256::new();
    h.update((c.len() as u64).to_be_bytes());
    h.update(&c);
    h.update(&k);
    Ok((c, k, h.finalize().into()))
}

fn parse(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .context("FERRY_TLS_CERT is not a PEM certificate chain")?;
    if chain.is_empty() {
        anyhow::bail!("FERRY_TLS_CERT holds no certificate");
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .context("FERRY_TLS_KEY is not a PEM private key (PKCS#8, PKCS#1 or SEC1)")?;
    CertifiedKey::from_der(chain, key, &provider()).context(
        "FERRY_TLS_KEY does not belong to FERRY_TLS_CERT's certificate, or is not a usable key",
    )
}

impl Certificate {
    /// Loads the pair; an error says which file is wrong.
    pub fn load(cert_path: &Path, key_path: &Path) -> anyhow::Result<Arc<Self>> {
        let (c, k, digest) = read_both(cert_path, key_path)?;
        let key = parse(&c, &k)?;
        Ok(Arc::new(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: ArcSwap::from_pointee(key),
            seen: Mutex::new(digest),
        }))
    }

    /// Re-reads the files; swaps the certificate in if they changed and load. Returns whether
    /// it swapped.
    pub fn reload_if_changed(&self) -> bool {
        let (c, k, digest) = match read_both(&self.cert_path, &self.key_path) {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "TLS certificate not reloaded; keeping the current one"
                );
                return false;
            }
        };
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if *seen == digest {
            return false;
        }
        // Remembered either way: a bad pair is reported once, not every interval.
        *seen = digest;
        match parse(&c, &k) {
            Ok(key) => {
                self.current.store(Arc::new(key));
                tracing::info!(cert = %self.cert_path.display(), "TLS certificate reloaded");
                true
            }
            Err(error) => {
                tracing::error!(
                    error = format!("{error:#}"),
                    "TLS certificate changed on disk but does not load; keeping the current one"
                );
                false
            }
        }
    }

    /// The rustls configuration presenting this certificate.
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .context("configuring TLS")?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Checks the files every [`WATCH_INTERVAL`], and at once on SIGHUP, until `stop`.
    pub fn watch(self: &Arc<Self>, stop: CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut hup = hangups();
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(WATCH_INTERVAL) => {}
                    _ = next(&mut hup) => tracing::info!("SIGHUP: checking the TLS certificate"),
                }
                this.reload_if_changed();
            }
        });
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

#[cfg(unix)]
fn hangups() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

#[cfg(not(unix))]
fn hangups() -> Option<()> {
    None
}

#[cfg(unix)]
async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn next(_: &mut Option<()>) {
    std::future::pending().await
}
