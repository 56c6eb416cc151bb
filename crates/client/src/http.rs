//! The client handle and the plumbing every call shares: URLs, the bearer header, timeouts,
//! and the mapping of transport failures and error statuses to [`Error`].

use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{Method, RequestBuilder, Response, Url};
use serde::de::DeserializeOwned;

use crate::error::{api_error, Error};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an ordinary (non-streaming) request may take in all.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a response may go without a byte arriving. Followed log streams carry keep-alive
/// comments well within this, so a silent stream is a dead one.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_secs(90);

/// A handle on one Ferry listener (public or internal), authenticated by one bearer token.
/// Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// The base URL, its path ending in `/`.
    base: Url,
    /// The base URL as the user wrote it (without a trailing `/`), for messages.
    shown: String,
    auth: HeaderValue,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.shown)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the Ferry listener at `base_url` (`http://127.0.0.1:8080`, or with a path
    /// prefix such as `https://ferry.example.com/api`), sending `token` as the bearer token of
    /// every request.
    pub fn new(base_url: &str, token: &str) -> Result<Client, Error> {
        Self::with_roots(base_url, token, None)
    }

    /// [`Client::new`], also trusting the certificate authorities in `ca_pem` (PEM) for an
    /// `https://` server whose certificate a private CA signed.
    pub fn with_ca(base_url: &str, token: &str, ca_pem: &[u8]) -> Result<Client, Error> {
        Self::with_roots(base_url, token, Some(ca_pem))
    }

    fn with_roots(base_url: &str, token: &str, ca_pem: Option<&[u8]>) -> Result<Client, Error> {
        let invalid = |reason: &str| Error::InvalidUrl {
            url: base_url.to_owned(),
            reason: reason.to_owned(),
        };
        let mut base = Url::parse(base_url.trim()).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(invalid("it must start with http:// or https://"));
        }
        if base.host_str().is_none_or(str::is_empty) {
            return Err(invalid("it has no host"));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid("it must not have a query or fragment"));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let shown = base.as_str().trim_end_matches('/').to_owned();

        let mut auth =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| Error::InvalidToken)?;
        auth.set_sensitive(true);

        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("ferry-client/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT);
        if let Some(pem) = ca_pem {
            for ca in reqwest::Certificate::from_pem_bundle(pem).map_err(Error::Build)? {
                builder = builder.add_root_certificate(ca);
            }
        }
        let http = builder.build().map_err(Error::Build)?;
        Ok(Client {
            http,
            base,
            shown,
            auth,
        })
    }

    /// The base URL this client talks to, as given (without a trailing `/`).
    pub fn base_url(&self) -> &str {
        &self.shown
    }

    /// `GET /healthz`: succeeds when the listener answers with a success status.
    pub async fn health(&self) -> Result<(), Error> {
        self.send(self.request(Method::GET, &["healthz"])?).await?;
        Ok(())
    }

    /// The URL of `segments` under the base URL, each segment percent-encoded.
    ///
    /// Segments that URL parsing would drop or resolve (empty, `.` and `..`, in any encoding)
    /// are refused: `ferry run show ..` must not turn into a request for another route.
    pub(crate) fn url(&self, segments: &[&str]) -> Result<Url, Error> {
        if let Some(bad) = segments.iter().find(|s| {
            let s = s.to_ascii_lowercase().replace("%2e", ".");
            s.is_empty() || s == "." || s == ".."
        }) {
            return Err(Error::InvalidName((*bad).to_owned()));
        }
        let mut url = self.base.clone();
        // Cannot fail: `new` refused cannot-be-a-base URLs.
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        Ok(url)
    }

    /// A request with the bearer header and no overall timeout (for streams).
    pub(crate) fn streaming_request(
        &self,
        method: Method,
        segments: &[&str],
    ) -> Result<RequestBuilder, Error> {
        Ok(self
            .http
            .request(method, self.url(segments)?)
            .header(AUTHORIZATION, self.auth.clone()))
    }

    /// An ordinary request: bearer header and an overall timeout.
    pub(crate) fn request(
        &self,
        method: Method,
        segments: &[&str],
    ) -> Result<RequestBuilder, Error> {
        Ok(self
            .streaming_request(method, segments)?
            .timeout(REQUEST_TIMEOUT))
    }

    /// Sends a request; a non-success status becomes [`Error::Api`].
    pub(crate) async fn send(&self, request: RequestBuilder) -> Result<Response, Error> {
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let request_id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.bytes().await.map_err(|e| self.transport(e))?;
        Err(api_error(status.as_u16(), request_id, &body))
    }

    /// Reads a JSON body.
    pub(crate) async fn decode<T: DeserializeOwned>(&self, response: Response) -> Result<T, Error> {
        let what = response.url().path().to_owned();
        let body = response.bytes().await.map_err(|e| self.transport(e))?;
        serde_json::from_slice(&body).map_err(|source| Error::Decode { what, source })
    }

    /// Sends a request and reads its JSON answer.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<T, Error> {
        let response = self.send(request).await?;
        self.decode(response).await
    }

    /// Classifies a failure of reqwest: no connection (or no answer in time) is
    /// [`Error::Unreachable`]; anything else broke an established connection.
    pub(crate) fn transport(&self, e: reqwest::Error) -> Error {
        let url = self.shown.clone();
        if e.is_connect() || e.is_timeout() {
            Error::Unreachable { url, source: e }
        } else {
            Error::Transport { url, source: e }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_join_and_encode_segments() {
        let cases = [
            (
                "http://127.0.0.1:8080",
                &["v1", "pools"][..],
                "http://127.0.0.1:8080/v1/pools",
            ),
            (
                "http://127.0.0.1:8080/",
                &["v1", "pools"][..],
                "http://127.0.0.1:8080/v1/pools",
            ),
            (
                "https://h/api",
                &["v1", "runs", "r1"][..],
                "https://h/api/v1/runs/r1",
            ),
            ("https://h/api/", &["healthz"][..], "https://h/api/healthz"),
            (
                "http://h",
                &["v1", "pools", "a/b c?"][..],
                "http://h/v1/pools/a%2Fb%20c%3F",
            ),
            (
                "http://h",
                &["v1", "pools", "%2F"][..],
                "http://h/v1/pools/%252F",
            ),
        ];
        for (base, segments, want) in cases {
            let c = Client::new(base, "t").unwrap();
            assert_eq!(
                c.url(segments).unwrap().as_str(),
                want,
                "{base} + {segments:?}"
            );
        }
    }

    #[test]
    fn segments_that_would_move_the_path_are_refused() {
        let c = Client::new("http://h", "t").unwrap();
        for bad in ["", ".", "..", "%2e", "%2E%2e", ".%2E"] {
            let e = c.url(&["v1", "pools", bad]).unwrap_err();
            assert!(
                matches!(e, Error::InvalidName(ref s) if s == bad),
                "{bad}: {e:?}"
            );
        }
        for fine in ["...", "a..b", ".hidden", "%2f"] {
            assert!(c.url(&["v1", "pools", fine]).is_ok(), "{fine}");
        }
    }

    #[test]
    fn base_url_is_shown_as_given() {
        let c = Client::new("http://127.0.0.1:8080/", "t").unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:8080");
    }

    #[test]
    fn bad_base_urls_are_refused() {
        for base in [
            "",
            "127.0.0.1:8080",
            "localhost:8080",
            "ftp://h/",
            "mailto:x@y",
            "http://h/?q=1",
            "http://h/#f",
        ] {
            let e = Client::new(base, "t").unwrap_err();
            assert!(matches!(e, Error::InvalidUrl { .. }), "{base}: {e:?}");
        }
    }

    #[test]
    fn tokens_must_fit_a_header() {
        let e = Client::new("http://h", "bad\ntoken").unwrap_err();
        assert!(matches!(e, Error::InvalidToken));
        assert!(!e.to_string().contains("bad"));
    }

    #[test]
    fn debug_hides_the_token() {
        let c = Client::new("http://h", "fk_secret").unwrap();
        assert!(!format!("{c:?}").contains("fk_secret"));
    }
}
