//! The public edge: what stands between the network and the routes. TLS and its reloading
//! ([`tls`]), the accept loop with its timeouts and connection caps ([`listener`]), the
//! client's address behind trusted proxies ([`client`]), rate limits ([`limits`]), and their
//! configuration ([`settings`]). The routes see the result through [`Edge::admit_key`] and
//! [`Edge::admit_run`], which the authenticating extractors call.

pub mod client;
pub mod limits;
pub mod listener;
pub mod settings;
pub mod tls;

use std::net::IpAddr;
use std::sync::Arc;

use axum::http::request::Parts;
use axum::http::StatusCode;
use ferry_core::{ApiKeyId, IpAllowList, RunId, WorkspaceId};

use crate::error::ApiError;
pub use settings::{EdgeFile, EdgeSettings};

/// The edge's per-process state, shared by every request.
#[derive(Debug)]
pub struct Edge {
    pub settings: EdgeSettings,
    pub limits: Arc<limits::RateLimits>,
}

impl Edge {
    pub fn new(settings: EdgeSettings) -> Arc<Self> {
        let limits = limits::RateLimits::new(&settings);
        Arc::new(Self { settings, limits })
    }

    /// The client address of a request (see [`client`]); `None` if it cannot be established
    /// (no socket peer — a request not from a listener — or a garbled forwarded chain).
    pub fn client_ip(&self, parts: &Parts) -> Option<IpAddr> {
        let peer = parts.extensions.get::<client::Peer>()?;
        client::client_ip(peer.0.ip(), &parts.headers, &self.settings.trusted_proxies)
    }

    /// Lets a request with API key `key` of workspace `ws` through, or answers why not: 403
    /// `ip_not_allowed` from outside the workspace's allow-list, 429 `rate_limited` over a
    /// bucket.
    pub fn admit_key(
        &self,
        parts: &Parts,
        ws: WorkspaceId,
        key: ApiKeyId,
        allow: &IpAllowList,
    ) -> Result<(), ApiError> {
        if !allow.allows(self.client_ip(parts)) {
            return Err(ip_not_allowed(self.client_ip(parts)));
        }
        self.limits.check_key(ws, key)
    }

    /// Lets a pushed run's report through, or answers 429 over its bucket.
    pub fn admit_run(&self, run: RunId) -> Result<(), ApiError> {
        self.limits.check_run(run)
    }
}

fn ip_not_allowed(client: Option<IpAddr>) -> ApiError {
    let from = match client {
        Some(ip) => format!("from {ip}"),
        None => "from an address that could not be established".to_owned(),
    };
    ApiError::new(
        StatusCode::FORBIDDEN,
        "ip_not_allowed",
        format!(
            "this workspace's IP allow-list does not allow requests {from}; an admin can change \
             it with PUT /v1/workspace/ip-allowlist from an allowed address"
        ),
    )
}

/// The client address of a request, as [`Edge::client_ip`] establishes it.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl axum::extract::FromRequestParts<crate::state::AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &crate::state::AppState,
    ) -> Result<Self, ApiError> {
        Ok(ClientIp(state.edge.client_ip(parts)))
    }
}
