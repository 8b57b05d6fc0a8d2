//! The exchange path: a gRPC-aware HTTP/2 proxy over mutual TLS.
//!
//! [`Gateway::build`] resolves everything per method once (route, access
//! table, upstream pool) into a map keyed by gRPC path; [`server`] accepts
//! TLS connections and dispatches each request either to Jisr's own tonic
//! services (health, reflection) or to the [`exchange`] path.

pub mod body;
pub mod exchange;
pub mod metadata;
pub mod refusal;
pub mod server;
pub mod trail;
pub mod upstream;

use crate::catalogue::Catalogue;
use crate::config::{Config, ConfigErrors};
use crate::identity::{AgencyId, PeerIdentity, TrustDomain};
use crate::policy::Policy;
use crate::tls::{self, TlsError};
use exchange::Exchange;
use http::{Request, Response};
use hyper::body::Incoming;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tonic::body::Body;
use tonic::service::Routes;
use tower::ServiceExt as _;
use upstream::Upstream;

pub use server::run;

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
    /// The bus store could not be opened.
    #[error("{0}")]
    Bus(#[from] crate::bus::BusError),
}

/// A gateway node's routing state.
pub struct Gateway {
    domain: TrustDomain,
    exchanges: HashMap<String, Arc<Exchange>>,
    max_message: usize,
    drain_timeout: Duration,
    own: Routes,
    health: tonic_health::server::HealthReporter,
    catalogue: Catalogue,
    recorder: trail::Recorder,
    consents: exchange::Consents,
    terms: Vec<exchange::RuleTerms>,
    bus: crate::bus::service::BusService,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("domain", &self.domain)
            .field("methods", &self.exchanges.len())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// Loads contracts and rules, prepares upstream pools and the TLS
    /// configs, opens the audit log and the consent store. Returns the
    /// gateway and its server TLS config.
    pub async fn build(config: &Config) -> Result<(Self, Arc<rustls::ServerConfig>), StartError> {
        tls::install_crypto_provider();
        let catalogue = Catalogue::load(config)?;
        let policy = Policy::compile(config, &catalogue)?;
        let domain = config.node.trust_domain.clone();
        let node = PeerIdentity::Gateway(config.node.id.clone());
        tls::check_own_identity(&config.tls, &domain, &node)?;
        let server_tls = tls::server_config(&config.tls, &domain, tls::Accept::Agencies)?;
        let mut upstreams: HashMap<AgencyId, Arc<Upstream>> = HashMap::new();
        for agency in &config.agencies {
            let Some(addr) = &agency.upstream else {
                continue;
            };
            let client_tls = tls::client_config(
                &config.tls,
                &domain,
                PeerIdentity::Agency(agency.id.clone()),
            )?;
            let pool = Upstream::new(
                agency.id.clone(),
                addr.clone(),
                agency.connections,
                client_tls,
            );
            upstreams.insert(agency.id.clone(), Arc::new(pool));
        }
        let mut exchanges = HashMap::new();
        for route in catalogue.methods() {
            // Config validation guarantees every agency with contracts has an upstream.
            let Some(upstream) = upstreams.get(&route.provider) else {
                continue;
            };
            let releases = (0..config.rules.len())
                .filter_map(|rule| Some((rule, policy.release(&route.path, rule)?.clone())))
                .collect();
            let exchange = Exchange {
                route: route.clone(),
                access: policy.access(&route.path).cloned().unwrap_or_default(),
                upstream: upstream.clone(),
                releases,
            };
            exchanges.insert(route.path.clone(), Arc::new(exchange));
        }
        let recorder = open_audit(config)?;
        let index = crate::audit::index::AuditIndex::open(&config.audit.dir.join("index.redb"))?;
        let roles = config
            .agencies
            .iter()
            .map(|a| (a.id.clone(), a.roles.clone()))
            .collect();
        let audit_api = crate::audit::service::AuditService::new(
            recorder.log.clone(),
            index,
            recorder.pseudonyms.clone(),
            roles,
        );
        let consents = open_consents(config).await?;
        let terms = config
            .rules
            .iter()
            .map(|r| exchange::RuleTerms {
                break_glass: r.break_glass,
            })
            .collect();
        let signer = crate::consent::artefact::ConsentSigner::load_or_create(
            &config.consent.signing_key,
            &format!("{}/jisr/consents", config.node.trust_domain),
        )?;
        let consent_api = crate::consent::service::ConsentService {
            store: consents.store.clone(),
            signer: Arc::new(signer),
            recorder: recorder.clone(),
            roles: Arc::new(
                config
                    .agencies
                    .iter()
                    .map(|a| (a.id.clone(), a.roles.clone()))
                    .collect(),
            ),
            purposes: Arc::new(config.purposes.iter().map(|p| p.code.clone()).collect()),
            timeout: consents.timeout,
        };
        let bus = open_bus(config, &catalogue, &recorder, &consents).await?;
        let (own, health) = own_services(&catalogue, audit_api, consent_api, bus.clone())?;
        let gateway = Self {
            domain,
            exchanges,
            max_message: config.node.max_message_bytes,
            drain_timeout: config.node.drain_timeout,
            own,
            health,
            catalogue,
            recorder,
            consents,
            terms,
            bus,
        };
        Ok((gateway, server_tls))
    }

    /// The loaded catalogue.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
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
        let path = request.uri().path();
        if is_own(path) {
            request
                .extensions_mut()
                .insert(crate::audit::service::Caller(consumer.clone()));
            return match self.own.clone().oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
        }
        let request_id = match metadata::request_id(request.headers()) {
            Ok(id) => id,
            Err(refusal) => return refusal.into_response(&metadata::new_request_id()),
        };
        let cx = exchange::CallContext {
            consumer,
            request_id: &request_id,
            max_message: self.max_message,
            recorder: &self.recorder,
            consents: &self.consents,
            terms: &self.terms,
        };
        match self.exchanges.get(path) {
            Some(exchange) => exchange.clone().handle(request, cx).await,
            None => {
                let path = path.to_owned();
                exchange::unknown_method(&path, request.headers(), cx).await
            }
        }
    }

    /// Flushes the audit log and signs its final checkpoint.
    pub async fn close(&self) {
        self.recorder.log.close().await;
    }

    /// Reports the node as not serving (at the start of a drain).
    pub async fn set_not_serving(&self) {
        self.bus.close_streams();
        self.health
            .set_service_status("", tonic_health::ServingStatus::NotServing)
            .await;
    }
}

/// Paths served by Jisr itself rather than forwarded. Agency contracts may
/// not use these package prefixes (the catalogue refuses them).
fn is_own(path: &str) -> bool {
    path.strip_prefix('/')
        .is_some_and(crate::catalogue::is_reserved_service)
}

/// Opens the consent store: Redis when configured (shared by replicas),
/// else the embedded one.
async fn open_consents(config: &Config) -> Result<exchange::Consents, StartError> {
    use crate::consent::{
        embedded::EmbeddedConsentStore, redis_store::RedisConsentStore, ConsentStore,
    };
    let timeout = config.consent.timeout;
    let store: Arc<dyn ConsentStore> = match &config.consent.redis_url {
        Some(url) => Arc::new(RedisConsentStore::connect_with_timeout(url, timeout).await?),
        None => Arc::new(EmbeddedConsentStore::open(&config.consent.path)?),
    };
    Ok(exchange::Consents { store, timeout })
}

/// Compiles the topics and opens the bus store.
async fn open_bus(
    config: &Config,
    catalogue: &Catalogue,
    recorder: &trail::Recorder,
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
fn open_audit(config: &Config) -> Result<trail::Recorder, StartError> {
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
    Ok(trail::Recorder {
        log: Arc::new(log),
        pseudonyms,
        node: config.node.id.to_string(),
    })
}

fn own_services(
    catalogue: &Catalogue,
    audit: crate::audit::service::AuditService,
    consents: crate::consent::service::ConsentService,
    bus: crate::bus::service::BusService,
) -> Result<(Routes, tonic_health::server::HealthReporter), StartError> {
    let (reporter, health) = tonic_health::server::health_reporter();
    let fds = prost_types::FileDescriptorSet {
        file: catalogue.pool().file_descriptor_protos().cloned().collect(),
    };
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(crate::proto::JISR_FILE_DESCRIPTOR_SET)
        .register_file_descriptor_set(fds)
        .build_v1()
        .map_err(|e| StartError::Reflection(e.to_string()))?;
    // v1alpha too: many deployed grpcurl and IDE clients still speak only it.
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(crate::proto::JISR_FILE_DESCRIPTOR_SET)
        .register_file_descriptor_set(prost_types::FileDescriptorSet {
            file: catalogue.pool().file_descriptor_protos().cloned().collect(),
        })
        .build_v1alpha()
        .map_err(|e| StartError::Reflection(e.to_string()))?;
    let audit = crate::proto::jisr::audit::v1::audit_server::AuditServer::new(audit);
    Ok((
        Routes::new(health)
            .add_service(reflection)
            .add_service(reflection_alpha)
            .add_service(audit)
            .add_service(
                crate::proto::jisr::consent::v1::consents_server::ConsentsServer::new(consents),
            )
            .add_service(crate::proto::jisr::bus::v1::bus_server::BusServer::new(bus)),
        reporter,
    ))
}
