//! The operators' web console: server-rendered pages on the node's own
//! HTTPS listener (`[console]`), for auditors, operators and each agency's
//! data protection officer.
//!
//! - [`link`]: single-use sign-in links, minted by `jisr console login`
//!   with the key file the config names (no call to the gateway);
//! - `session`: the session cookie and the CSRF token;
//! - `routes`: which page answers which path, and the sign-in gate every
//!   page but the sign-in itself is behind;
//! - `citizen`: the citizen's page (issue 18), for the portal
//!   (`consent-manager`): one citizen's history in five languages;
//! - `breakglass`, `traffic`, `agencies`, `consents`: the Break-glass
//!   review, Traffic and health, Agencies and contracts, and Consents pages;
//! - `integrity`: Log integrity, the node's checkpoints over time with
//!   their consistency proofs, checked in the browser;
//! - `exchanges`: the Exchanges pages, which read the log through the
//!   audit API itself (`AuditService`) so that the console applies the
//!   very role checks agencies get over gRPC;
//! - `assets/`: the console's scripts and style, served from the binary.
//!
//! The console reads the gateway through [`Backend`], which the gateway
//! implements: it sees the current roles after every reload.

mod agencies;
mod breakglass;
mod citizen;
mod consents;
mod exchanges;
mod html;
mod integrity;
pub mod link;
mod record;
mod routes;
mod session;
mod shared;
#[cfg(test)]
mod tests;
mod traffic;

use crate::audit::record::Recorder;
use crate::audit::service::AuditService;
use crate::config::{ConsoleConfig, Role};
use crate::identity::AgencyId;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the console needs from the gateway, read per request so that a
/// reload's roles apply at once.
pub trait Backend: Send + Sync + 'static {
    /// The audit API with the current roles and peers.
    fn audit(&self) -> AuditService;
    /// The roles of `agency`, or `None` when it is not declared (any more).
    fn roles(&self, agency: &AgencyId) -> Option<Vec<Role>>;
    /// The labels in force (`[labels]`), for the citizen's page.
    fn labels(&self) -> crate::config::Labels;
    /// The data category of a method (`/pkg.Service/Method`), as its
    /// contract declares it; `unspecified` when unknown.
    fn category(&self, method: &str) -> &'static str;
    /// The configuration in force (agencies, purposes, rules).
    fn config(&self) -> crate::config::Config;
    /// The contracts in force.
    fn catalogue(&self) -> crate::catalogue::Catalogue;
    /// The Consents API with the current roles and purposes.
    fn consents(&self) -> crate::consent::service::ConsentService;
    /// The node's own metrics and readiness.
    fn telemetry(&self) -> Arc<crate::telemetry::Telemetry>;
}

/// Why the console could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// Its certificate or key.
    #[error("console: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// Its sign-in key.
    #[error("{0}")]
    Key(#[from] link::KeyError),
}

/// A node's console: its TLS config, sign-in key and sessions.
pub struct Console {
    backend: Arc<dyn Backend>,
    recorder: Recorder,
    key: link::LinkKey,
    sessions: shared::Store,
    session_ttl: Duration,
    tls: Arc<rustls::ServerConfig>,
    /// Recent exchange totals, for calls per second.
    samples: traffic::Samples,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("session_ttl", &self.session_ttl)
            .finish_non_exhaustive()
    }
}

impl Console {
    /// Loads the certificate and the sign-in key (made if absent); with
    /// `redis`, sessions are kept there, shared by the replicas.
    pub fn open(
        config: &ConsoleConfig,
        backend: Arc<dyn Backend>,
        recorder: Recorder,
        redis: Option<crate::redis::Shared>,
    ) -> Result<Self, ConsoleError> {
        Ok(Self {
            backend,
            recorder,
            key: link::LinkKey::load_or_create(&config.signin_key)?,
            // With a Redis, sessions and used nonces are the replicas' own.
            sessions: redis.map_or_else(
                || shared::Store::Node(session::Sessions::default()),
                shared::Store::Redis,
            ),
            session_ttl: config.session,
            tls: crate::tls::web_server_config(&config.cert, &config.key)?,
            samples: traffic::Samples::default(),
        })
    }
}

/// Serves the console on `listener` until `stop` turns true, then lets
/// open requests finish within `drain` and returns.
pub async fn serve(
    console: Arc<Console>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    drain: Duration,
) {
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    let tls = console.tls.clone();
    crate::tls::https::serve_http1("console", tls, listener, stopped, drain, move |request| {
        let console = console.clone();
        async move { routes::answer(&console, request).await }
    })
    .await;
}
