//! The exchange path: a gRPC-aware HTTP/2 proxy over mutual TLS.
//!
//! [`Gateway::build`] resolves everything per method once (route, access
//! table, upstream pool) into a map keyed by gRPC path; [`server`] accepts
//! TLS connections, serves each on one of the [`lanes`], and dispatches
//! each request either to Jisr's own tonic services (health, reflection) or
//! to the [`exchange`] path.
//!
//! What a reload may change (catalogue, rules, routes, rate limits, upstream
//! pools, TLS configs) lives in one [`Routing`] value behind an `ArcSwap`:
//! each call takes the current one with one atomic increment and keeps it
//! to the end, so a reload ([`reload`]) never disturbs a call in flight. The
//! audit log, its index, the consent store and the health reporter live in
//! the [`Gateway`] itself and survive every reload.

pub mod body;
mod build;
mod connections;
mod console;
pub mod exchange;
mod figures;
pub mod lanes;
pub mod layers;
pub mod metadata;
mod own;
mod peer;
mod probe;
pub mod reload;
mod routing;
pub mod server;
mod tiles;
pub mod upstream;

use crate::catalogue::Catalogue;
use crate::config::{Config, ConfigErrors};
use crate::identity::{AgencyId, TrustDomain};
use crate::telemetry::Telemetry;
use crate::tls::TlsError;
use arc_swap::ArcSwap;
use http::{Request, Response};
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::Duration;
use tonic::body::Body;
use tower::ServiceExt as _;

pub use server::{listen, run, Listening};

/// HTTP/2 flow-control window per stream, both legs: a default-size
/// (4 MiB) message flows without waiting for a window update.
const STREAM_WINDOW: u32 = 4 << 20;
/// HTTP/2 flow-control window per connection, both legs.
const CONNECTION_WINDOW: u32 = 16 << 20;

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The config, a contract or a rule is invalid.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// Certificates or keys could not be loaded.
    #[error("{0}")]
    Tls(#[from] TlsError),
    /// Jisr's own gRPC services could not be set up.
    #[error("cannot set up server reflection: {0}")]
    Reflection(String),
    /// The listener failed.
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
    /// The audit log could not be opened: no audit, no data.
    #[error("{0}")]
    Audit(#[from] crate::audit::AuditError),
    /// The consent store could not be opened.
    #[error("{0}")]
    Consent(#[from] crate::consent::StoreError),
    /// The audit index could not be opened.
    #[error("{0}")]
    Index(#[from] crate::audit::index::IndexError),
    /// OTLP export could not be set up.
    #[error("{0}")]
    Telemetry(#[from] crate::telemetry::OtlpError),
    /// The bus store could not be opened.
    #[error("{0}")]
    Bus(#[from] crate::bus::BusError),
    /// Another live replica holds this node id.
    #[error("{0}")]
    Registry(#[from] crate::cluster::RegistryError),
    /// The web console's certificate or sign-in key.
    #[error("{0}")]
    Console(#[from] crate::console::ConsoleError),
    /// The replica's instance token cannot be read or made.
    #[error("{0}")]
    Token(#[from] crate::cluster::token::TokenError),
}

/// A gateway node: what survives reloads, and the current [`Routing`].
pub struct Gateway {
    domain: TrustDomain,
    drain_timeout: Duration,
    /// Lanes to serve connections on (`node.lanes`, 0 resolved to the cores).
    lanes: usize,
    health: tonic_health::server::HealthReporter,
    recorder: crate::audit::record::Recorder,
    /// The tasks pushing checkpoints to the witnesses.
    witnessing: Arc<crate::audit::witnessing::Witnessing>,
    consents: exchange::Consents,
    /// The gateway's own APIs as built at start; a reload only gives them
    /// the new roles and purposes.
    apis: routing::Apis,
    routing: Arc<ArcSwap<Routing>>,
    reload: Arc<reload::ReloadStatus>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    telemetry: Arc<Telemetry>,
    bus: crate::bus::service::BusService,
    /// The node's entry in the replica registry (with a shared Redis).
    registration: Option<crate::cluster::Registration>,
    /// The web console, when `[console]` is configured.
    console: Option<Arc<crate::console::Console>>,
    /// Its listener, once [`Gateway::bind_console`] bound it.
    console_listener: std::sync::Mutex<Option<tokio::net::TcpListener>>,
    /// The log as tlog-tiles, when `[audit.tiles]` is configured.
    tiles: Option<tiles::Served>,
    /// Their listener, once [`Gateway::bind_tiles`] bound it.
    tiles_listener: std::sync::Mutex<Option<tokio::net::TcpListener>>,
    /// Per-agency limits on calls to the gateway's own services.
    own_limits: own::OwnLimits,
}

pub use routing::Routing;

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("domain", &self.domain)
            .field("methods", &self.routing.load().exchanges.len())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// The current routing state (catalogue, exchanges, upstream pools).
    pub fn routing(&self) -> Arc<Routing> {
        self.routing.load_full()
    }

    /// How reloads went, for operators and metrics.
    pub fn reload_status(&self) -> &Arc<reload::ReloadStatus> {
        &self.reload
    }

    /// Each provider's in-flight calls, shed calls and breakers.
    pub fn upstream_stats(&self) -> Vec<upstream::UpstreamStats> {
        self.routing.load().upstream_stats()
    }

    /// The loaded catalogue.
    pub fn catalogue(&self) -> Catalogue {
        self.routing.load().catalogue.clone()
    }

    /// The node's audit log.
    pub fn audit_log(&self) -> &Arc<crate::audit::AuditLog> {
        &self.recorder.log
    }

    /// The clock consent validity is checked on (the calls' checks and the
    /// consents API read the same one): a test pins it either side of an
    /// expiry.
    pub fn clock(&self) -> Arc<crate::clock::Clock> {
        self.consents.clock.clone()
    }

    /// Handles one request from an authenticated agency.
    pub async fn dispatch(
        &self,
        mut request: Request<Incoming>,
        consumer: &AgencyId,
    ) -> Response<Body> {
        // Held to the end of the call: a reload meanwhile does not touch it.
        let routing = self.routing.load_full();
        let path = request.uri().path();
        if is_own(path) {
            if let Err(refusal) = self.own_limits.check(consumer) {
                let path = path.to_owned();
                return own::refuse(&path, request.headers(), consumer, refusal, &self.recorder)
                    .await;
            }
            request
                .extensions_mut()
                .insert(crate::identity::Caller(consumer.clone()));
            return match routing.own.clone().oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
        }
        // A malformed id is replaced by one of ours, so its refusal is recorded.
        let (request_id, bad_id) = match metadata::request_id(request.headers()) {
            Ok(id) => (id, None),
            Err(refusal) => (metadata::new_request_id(), Some(refusal)),
        };
        let cx = exchange::CallContext {
            consumer,
            request_id: &request_id,
            max_message: routing.max_message,
            recorder: &self.recorder,
            consents: &self.consents,
            terms: &routing.terms,
            limits: &routing.limits,
            agency: routing.config.agency(consumer),
            telemetry: &self.telemetry,
        };
        if let Some(refusal) = bad_id {
            let metrics = match routing.exchanges.get(path) {
                Some(exchange) => exchange.metrics.clone(),
                None => self.telemetry.metrics().unknown_route().clone(),
            };
            let path = path.to_owned();
            return exchange::refused_early(&path, request.headers(), refusal, &metrics, cx).await;
        }
        match routing.exchanges.get(path) {
            Some(exchange) => exchange.clone().handle(request, cx).await,
            None => {
                let path = path.to_owned();
                exchange::unknown_method(&path, request.headers(), cx).await
            }
        }
    }

    /// Leaves the replica registry (so a replacement with this node id can
    /// start at once), flushes the audit log and signs its final checkpoint;
    /// exports pending telemetry and stops the admin listener.
    pub async fn close(&self) {
        if let Some(registration) = &self.registration {
            registration.release().await;
        }
        // What went over the refusal budgets is summarised before the
        // final checkpoint, so that it is signed too.
        self.recorder.write_summaries(true).await;
        self.recorder.log.close().await;
        // After the final checkpoint: a push in flight is abandoned, and
        // the next start pushes that checkpoint.
        self.witnessing.stop();
        self.telemetry.shutdown().await;
    }

    /// Reports the node as not serving and not ready (at the start of a drain).
    pub async fn set_not_serving(&self) {
        self.telemetry.ready().set_draining();
        self.bus.close_streams();
        self.health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
    }

    /// Advertises the bound listener to the other replicas, unless
    /// `[node] advertise` names what they should dial.
    pub(super) async fn advertise(&self, bound: std::net::SocketAddr) {
        if let Some(registration) = &self.registration {
            if self.routing().config.node.advertise.is_none() {
                registration.set_address(&bound.to_string()).await;
            }
        }
    }

    /// The node's telemetry (metrics, readiness, spans).
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    /// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until the
    /// gateway closes.
    pub fn spawn_admin(&self, listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        tokio::spawn(crate::telemetry::admin::serve(
            self.telemetry.clone(),
            listener,
        ))
    }

    /// Reports `NOT_SERVING` on `grpc.health.v1` as soon as the audit log
    /// stops taking entries (after an fsync failure, say): the node then
    /// releases no data, and load balancers should stop sending it calls.
    async fn watch_audit(self: Arc<Self>) {
        let mut stopped = self.telemetry.stopped();
        loop {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
            if let Err(why) = self.telemetry.ready().audit_up() {
                tracing::error!(reason = %why, "the audit log stopped: reporting NOT_SERVING");
                self.health
                    .set_service_status("", tonic_health::ServingStatus::NotServing)
                    .await;
                return;
            }
        }
    }
}

/// Checks that every `[[route]]` pattern names a loaded method (for
/// `jisr check-config`; the gateway checks the same when it loads).
pub fn check_routes(config: &Config, catalogue: &Catalogue) -> Result<(), ConfigErrors> {
    routing::route_timeouts(config, catalogue).map(drop)
}

/// Paths served by Jisr itself rather than forwarded. Agency contracts may
/// not use these package prefixes (the catalogue refuses them).
fn is_own(path: &str) -> bool {
    path.strip_prefix('/')
        .is_some_and(crate::catalogue::is_reserved_service)
}
