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
pub mod exchange;
mod figures;
pub mod lanes;
pub mod layers;
pub mod metadata;
pub mod reload;
mod routing;
pub mod server;
pub mod upstream;

use crate::catalogue::Catalogue;
use crate::config::{Config, ConfigErrors};
use crate::identity::{AgencyId, TrustDomain};
use crate::telemetry::{Metrics, Readiness, Telemetry};
use crate::tls::{self, TlsError};
use arc_swap::ArcSwap;
use http::{Request, Response};
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::Duration;
use tonic::body::Body;
use tower::ServiceExt as _;

pub use server::run;

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
}

/// A gateway node: what survives reloads, and the current [`Routing`].
pub struct Gateway {
    domain: TrustDomain,
    drain_timeout: Duration,
    /// Lanes to serve connections on (`node.lanes`, 0 resolved to the cores).
    lanes: usize,
    health: tonic_health::server::HealthReporter,
    recorder: crate::audit::record::Recorder,
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
    /// Loads contracts and rules, prepares upstream pools and the TLS
    /// configs, opens the audit log and the consent store. Returns the
    /// gateway and its server TLS config.
    pub async fn build(config: &Config) -> Result<(Self, Arc<rustls::ServerConfig>), StartError> {
        tls::install_crypto_provider();
        // Everything a reload rebuilds is checked first: a bad contract or
        // certificate is reported before the audit log is opened.
        let metrics = Metrics::new(
            config.agencies.iter().map(|a| a.id.as_str()),
            config
                .agencies
                .iter()
                .filter(|a| !a.upstreams.is_empty())
                .map(|a| a.id.as_str()),
        );
        let prepared = Routing::prepare(config, None, &metrics)?;
        let recorder = open_audit(config)?;
        let index = crate::audit::index::AuditIndex::open(&config.audit.dir.join("index.redb"))?;
        let audit_api = crate::audit::service::AuditService::new(
            recorder.log.clone(),
            index,
            recorder.pseudonyms.clone(),
            routing::roles(config),
        );
        let (consents, redis) = open_consents(config).await?;
        let signer = crate::consent::artefact::ConsentSigner::load_or_create(
            &config.consent.signing_key,
            &format!("{}/jisr/consents", config.node.trust_domain),
        )?;
        let consent_api = crate::consent::service::ConsentService {
            store: consents.store.clone(),
            signer: Arc::new(signer),
            recorder: recorder.clone(),
            roles: Arc::new(routing::roles(config)),
            purposes: Arc::new(config.purposes.iter().map(|p| p.code.clone()).collect()),
            timeout: consents.timeout,
        };
        // Reports SERVING for "" from the start.
        let (health, _) = tonic_health::server::health_reporter();
        let bus = open_bus(config, prepared.catalogue(), &recorder, &consents).await?;
        let apis = routing::Apis {
            audit: audit_api,
            consents: consent_api,
            health: health.clone(),
            redis,
            bus: bus.clone(),
        };
        let routing = prepared.finish(&apis)?;
        let server_tls = routing.server_tls.clone();
        metrics.set_audit_log(recorder.log.clone());
        let readiness = Readiness::new(
            &config.tls.cert,
            routing.exchanges.len(),
            recorder.log.clone(),
            config
                .consent
                .redis_url
                .is_some()
                .then(|| -> Arc<dyn crate::telemetry::Probe> {
                    Arc::new(figures::StoreProbe(consents.store.clone()))
                }),
        );
        let routing = Arc::new(ArcSwap::from_pointee(routing));
        let reload = Arc::new(reload::ReloadStatus::default());
        metrics.set_gateway(Arc::new(figures::Figures {
            reload: reload.clone(),
            routing: routing.clone(),
        }));
        let telemetry = Arc::new(Telemetry::start(
            &config.telemetry,
            config.node.id.as_str(),
            metrics,
            readiness,
        )?);
        let gateway = Self {
            domain: config.node.trust_domain.clone(),
            drain_timeout: config.node.drain_timeout,
            lanes: config.node.lane_count(),
            health,
            recorder,
            consents,
            apis,
            routing: routing.clone(),
            reload,
            reloading: tokio::sync::Mutex::new(()),
            telemetry,
            bus,
        };
        Ok((gateway, server_tls))
    }

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

    /// Flushes the audit log and signs its final checkpoint; exports
    /// pending telemetry and stops the admin listener.
    pub async fn close(&self) {
        self.recorder.log.close().await;
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

/// Opens the consent store: Redis when configured (shared by replicas; its
/// connection is returned apart for shared rate limits), else the embedded
/// one.
async fn open_consents(
    config: &Config,
) -> Result<(exchange::Consents, Option<crate::redis::Shared>), StartError> {
    use crate::consent::{
        store::embedded::EmbeddedConsentStore, store::redis::RedisConsentStore, ConsentStore,
    };
    let timeout = config.consent.timeout;
    let (store, redis): (Arc<dyn ConsentStore>, _) = match &config.consent.redis_url {
        Some(url) => {
            let redis = RedisConsentStore::open(url, timeout).await?;
            let shared = redis.shared().clone();
            (Arc::new(redis), Some(shared))
        }
        None => (
            Arc::new(EmbeddedConsentStore::open(&config.consent.path)?),
            None,
        ),
    };
    Ok((exchange::Consents { store, timeout }, redis))
}

/// Compiles the topics and opens the bus store.
async fn open_bus(
    config: &Config,
    catalogue: &Catalogue,
    recorder: &crate::audit::record::Recorder,
    consents: &exchange::Consents,
) -> Result<crate::bus::service::BusService, StartError> {
    let topics = crate::bus::Topics::compile(config, catalogue)?;
    let store = crate::bus::open_store(config, &topics).await?;
    Ok(crate::bus::service::BusService::new(
        crate::bus::service::BusParts {
            topics,
            store,
            recorder: recorder.clone(),
            roles: config
                .agencies
                .iter()
                .map(|a| (a.id.clone(), a.roles.clone()))
                .collect(),
            consents: crate::bus::deliver::ConsentSource {
                store: consents.store.clone(),
                timeout: consents.timeout,
            },
            timeout: config.bus.timeout,
            ack_deadline: config.bus.ack_deadline,
            max_in_flight: config.bus.max_in_flight,
        },
    ))
}

/// Opens the node's audit log with its keys (created on first start).
fn open_audit(config: &Config) -> Result<crate::audit::record::Recorder, StartError> {
    use crate::audit::{keys, AuditLog, LogOptions};
    let origin = format!("{}/jisr/{}", config.node.trust_domain, config.node.id);
    let key = &config.audit.signing_key;
    if !key.exists() && config.audit.dir.join("checkpoint").exists() {
        // A new key could never sign checkpoints consistent with the old ones.
        return Err(crate::audit::AuditError::Key {
            path: key.clone(),
            what: format!(
                "the key is missing but the log in {} has signed checkpoints; restore the node's signing key (do not create a new one for an existing log)",
                config.audit.dir.display()
            ),
        }
        .into());
    }
    let signer = keys::load_or_create_signer(&config.audit.signing_key, &origin)?;
    let pseudonyms = keys::Pseudonymizer::load_or_create(&config.audit.pseudonym_key)?;
    let log = AuditLog::open(LogOptions {
        dir: config.audit.dir.clone(),
        signer,
        records_per_segment: crate::audit::log::RECORDS_PER_SEGMENT,
        checkpoint_interval: config.audit.checkpoint_interval,
    })?;
    Ok(crate::audit::record::Recorder {
        log: Arc::new(log),
        pseudonyms,
        node: config.node.id.to_string(),
    })
}
