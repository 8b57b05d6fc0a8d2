//! Building a gateway node: what a reload rebuilds is checked first, then
//! what survives every reload is opened (the audit log and its index, the
//! consent store, the bus, the gateway's own APIs), then telemetry starts.
//! A bad contract or certificate is reported before the audit log is
//! opened, and nothing here binds a port.

use super::{exchange, figures, reload, routing, Gateway, Routing, StartError};
use crate::catalogue::Catalogue;
use crate::config::Config;
use crate::telemetry::{Metrics, Readiness, Telemetry};
use crate::tls;
use arc_swap::ArcSwap;
use std::sync::Arc;

impl Gateway {
    /// Loads contracts and rules, prepares upstream pools and the TLS
    /// configs, opens the audit log and the consent store. Returns the
    /// gateway and its server TLS config.
    pub async fn build(config: &Config) -> Result<(Self, Arc<rustls::ServerConfig>), StartError> {
        Self::build_with_clock(config, Arc::new(crate::clock::Clock::system())).await
    }

    /// [`Gateway::build`] reading the time of day from `clock` where a
    /// date decides (consent validity, deferred disclosure), and its
    /// monotonic time where a delay does (breaker cooldowns, rate-limit
    /// refills): tests pass a date by pinning it, a delay by advancing it.
    pub async fn build_with_clock(
        config: &Config,
        clock: Arc<crate::clock::Clock>,
    ) -> Result<(Self, Arc<rustls::ServerConfig>), StartError> {
        tls::install_crypto_provider();
        let metrics = metrics(config);
        let prepared = Routing::prepare(config, None, &metrics, &clock)?;
        check_consent_files_kept(config)?;
        let recorder = open_audit(config)?;
        let (consents, redis) = open_consents(config, &recorder.pseudonyms, clock.clone()).await?;
        // Reports SERVING for "" from the start.
        let (health, _) = tonic_health::server::health_reporter();
        let bus = open_bus(config, prepared.catalogue(), &recorder, &consents).await?;
        // Pushes checkpoints in the background; never on the call path.
        let witnessing = crate::audit::witnessing::Witnessing::start(
            recorder.log.clone(),
            &config.audit.witnessing,
            config.audit.checkpoint_interval,
        )?;
        let apis = routing::Apis {
            audit: audit_api(config, &recorder)?
                .with_clock(clock.clone())
                .with_witnessing(witnessing.clone()),
            consents: consent_api(config, &recorder, &consents)?,
            health: health.clone(),
            live_peers: live_peers(config, redis.as_ref()).await,
            redis,
            bus: bus.clone(),
            clock: clock.clone(),
        };
        let routing = prepared.finish(&apis)?;
        let server_tls = routing.server_tls.clone();
        let readiness = readiness(config, &routing, &recorder, &consents);
        let routing = Arc::new(ArcSwap::from_pointee(routing));
        let reload = Arc::new(reload::ReloadStatus::default());
        metrics.set_audit_log(recorder.log.clone());
        metrics.set_bus(bus.figures());
        readiness.set_bus(bus.figures());
        readiness.set_witnessing(witnessing.clone());
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
        let console = super::console::open(
            config,
            &routing,
            (&apis.audit, &apis.consents),
            &recorder,
            &telemetry,
            apis.redis.as_ref(),
        )?;
        let tiles = super::tiles::open(config, &recorder.log, &witnessing)?;
        let gateway = Self {
            console,
            console_listener: std::sync::Mutex::new(None),
            tiles,
            tiles_listener: std::sync::Mutex::new(None),
            domain: config.node.trust_domain.clone(),
            drain_timeout: config.node.drain_timeout,
            lanes: config.node.lane_count(),
            health,
            recorder,
            witnessing,
            consents,
            apis,
            routing,
            reload,
            reloading: tokio::sync::Mutex::new(()),
            telemetry,
            bus,
            registration: None,
            own_limits: super::own::OwnLimits::new(&config.node.flood, clock.clone()),
        };
        // Last, so that no later failure leaves the id held; an error here
        // drops the gateway, which closes nothing it has not opened.
        let registration = register(config, &gateway).await?;
        Ok((
            Self {
                registration,
                ..gateway
            },
            server_tls,
        ))
    }
}

/// Claims the node id in the replica registry, with a shared Redis: a
/// second live replica with this id refuses to start, naming the other.
async fn register(
    config: &Config,
    gateway: &Gateway,
) -> Result<Option<crate::cluster::Registration>, StartError> {
    let Some(redis) = gateway.apis.redis.clone() else {
        return Ok(None);
    };
    let address = config
        .node
        .advertise
        .clone()
        .unwrap_or_else(|| config.node.listen.to_string());
    let verifier = gateway.recorder.log.verifier().to_text();
    // Kept beside the audit log, whose lock this process holds: proof that
    // a live entry with the same token is this replica's, left by a crash.
    let token = crate::cluster::token::load_or_create(&config.audit.dir)?;
    let entry = crate::cluster::NodeEntry::starting(config.node.id.as_str(), &address, &verifier)
        .owned_by(&token);
    let registry = crate::cluster::Registry::new(redis, config.node.registration_ttl);
    Ok(Some(registry.register(entry).await?))
}

/// The registry's other nodes as audit peers, with a shared Redis and no
/// `[cluster] peers` (which win when given).
async fn live_peers(
    config: &Config,
    redis: Option<&crate::redis::Shared>,
) -> Option<Arc<crate::audit::peers::LivePeers>> {
    let redis = redis.filter(|_| config.cluster.peers.is_empty())?;
    let registry = crate::cluster::Registry::new(redis.clone(), config.node.registration_ttl);
    Some(
        crate::audit::peers::LivePeers::start(
            &config.node.id,
            registry,
            (config.tls.clone(), config.node.trust_domain.clone()),
            config.cluster.remember_departed,
        )
        .await,
    )
}

/// The exchange metrics, with a slot for every declared agency and a
/// provider label for every agency with an upstream.
fn metrics(config: &Config) -> Metrics {
    Metrics::new(
        config.agencies.iter().map(|a| a.id.as_str()),
        config
            .agencies
            .iter()
            .filter(|a| !a.upstreams.is_empty())
            .map(|a| a.id.as_str()),
    )
}

/// The Audit API over the node's log and its index.
fn audit_api(
    config: &Config,
    recorder: &crate::audit::record::Recorder,
) -> Result<crate::audit::service::AuditService, StartError> {
    let index =
        crate::audit::index::AuditIndex::open_or_rebuild(&config.audit.dir.join("index.redb"))?;
    Ok(crate::audit::service::AuditService::new(
        config.node.id.clone(),
        recorder.log.clone(),
        index,
        recorder.pseudonyms.clone(),
        routing::roles(config),
    ))
}

/// The Consents API, with the node's consent signing key (created on first
/// start).
fn consent_api(
    config: &Config,
    recorder: &crate::audit::record::Recorder,
    consents: &exchange::Consents,
) -> Result<crate::consent::service::ConsentService, StartError> {
    let signer = crate::consent::artefact::ConsentSigner::load_or_create(
        &config.consent.signing_key,
        &format!("{}/jisr/consents", config.node.trust_domain),
    )?;
    Ok(crate::consent::service::ConsentService {
        store: consents.store.clone(),
        signer: Arc::new(signer),
        recorder: recorder.clone(),
        roles: Arc::new(routing::roles(config)),
        purposes: Arc::new(config.purposes.iter().map(|p| p.code.clone()).collect()),
        timeout: consents.timeout,
        clock: consents.clock.clone(),
    })
}

/// What `/readyz` checks: the node certificate, the routable methods, the
/// audit log and, with a shared consent store, its Redis.
fn readiness(
    config: &Config,
    routing: &Routing,
    recorder: &crate::audit::record::Recorder,
    consents: &exchange::Consents,
) -> Readiness {
    Readiness::new(
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
    )
}

/// Opens the consent store: Redis when configured (shared by replicas; its
/// connection is returned apart for shared rate limits; consents sealed
/// under the pseudonym key every replica shares), else the embedded one.
async fn open_consents(
    config: &Config,
    pseudonyms: &crate::audit::keys::Pseudonymizer,
    clock: Arc<crate::clock::Clock>,
) -> Result<(exchange::Consents, Option<crate::redis::Shared>), StartError> {
    use crate::consent::{
        store::embedded::EmbeddedConsentStore, store::redis::RedisConsentStore, ConsentStore,
    };
    let timeout = config.consent.timeout;
    let (store, redis): (Arc<dyn ConsentStore>, _) = match &config.consent.redis_url {
        Some(url) => {
            let redis = RedisConsentStore::open(url, timeout, pseudonyms.clone()).await?;
            let shared = redis.shared().clone();
            (Arc::new(redis), Some(shared))
        }
        None => (
            Arc::new(EmbeddedConsentStore::open(&config.consent.path)?),
            None,
        ),
    };
    Ok((
        exchange::Consents {
            store,
            timeout,
            clock,
        },
        redis,
    ))
}

/// The embedded consent store and the consent signing key are made at a
/// node's first start: missing later (the audit log exists), they were
/// deleted, and opening would make new ones, silently losing every consent
/// (or every consent's signature).
fn check_consent_files_kept(config: &Config) -> Result<(), StartError> {
    let log = &config.audit.dir;
    if !log.join(crate::audit::log::FORMAT_FILE).exists() {
        return Ok(());
    }
    let key = &config.consent.signing_key;
    if !key.exists() {
        return Err(crate::audit::AuditError::Key {
            path: key.clone(),
            what: format!(
                "the consent signing key is missing but this node has run before (its audit log {} exists); restore it from its backup (every replica shares it): a new key would make every consent issued so far fail verification",
                log.display()
            ),
        }
        .into());
    }
    let path = &config.consent.path;
    if config.consent.redis_url.is_some() || path.exists() {
        return Ok(());
    }
    Err(crate::consent::StoreError::Unavailable(format!(
        "the consent store {} is missing but this node has run before (its audit log {} exists): it was deleted or moved. Restore it from a backup; only if this node never kept consents in that file (it used Redis until now) create it empty (`touch {}`)",
        path.display(),
        log.display(),
        path.display()
    ))
    .into())
}

/// Compiles the topics and opens the bus store.
async fn open_bus(
    config: &Config,
    catalogue: &Catalogue,
    recorder: &crate::audit::record::Recorder,
    consents: &exchange::Consents,
) -> Result<crate::bus::service::BusService, StartError> {
    let topics = crate::bus::Topics::compile(config, catalogue)?;
    let figures = Arc::new(crate::bus::Figures::new(&topics.subscriptions()));
    let store = crate::bus::open_store(config, &topics, &recorder.pseudonyms, &figures).await?;
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
            retention: crate::bus::Retention {
                events: config.bus.retention,
                dead_letters: config.bus.dead_letter_retention,
            },
            figures,
        },
    ))
}

/// Opens the node's audit log with its keys (created on first start).
fn open_audit(config: &Config) -> Result<crate::audit::record::Recorder, StartError> {
    use crate::audit::{keys, AuditLog, LogOptions};
    let origin = format!("{}/jisr/{}", config.node.trust_domain, config.node.id);
    let key = &config.audit.signing_key;
    let dir = &config.audit.dir;
    let has_log = ["checkpoint", "checkpoints.log", "FORMAT"]
        .iter()
        .any(|f| dir.join(f).exists());
    if !key.exists() && has_log {
        // A new key could never sign checkpoints consistent with the old ones.
        return Err(crate::audit::AuditError::Key {
            path: key.clone(),
            what: format!(
                "the key is missing but the log in {} has signed checkpoints; restore the node's signing key (do not create a new one for an existing log)",
                dir.display()
            ),
        }
        .into());
    }
    let pseudonym_key = &config.audit.pseudonym_key;
    if !pseudonym_key.exists() && has_log {
        // A new key would give every citizen new pseudonyms: their history
        // in the log could no longer be found.
        return Err(crate::audit::AuditError::Key {
            path: pseudonym_key.clone(),
            what: format!(
                "the key is missing but the log in {} has entries made with it; restore the node's pseudonym key from its backup (a new one would hide every citizen's past entries)",
                dir.display()
            ),
        }
        .into());
    }
    let signer = keys::load_or_create_signer(&config.audit.signing_key, &origin)?;
    keys::check_signer(dir, &signer, key)?;
    let pseudonyms = keys::Pseudonymizer::load_or_create(&config.audit.pseudonym_key)?;
    pseudonyms.check_log(dir, pseudonym_key)?;
    let log = AuditLog::open(LogOptions {
        dir: config.audit.dir.clone(),
        signer,
        records_per_segment: crate::audit::log::RECORDS_PER_SEGMENT,
        checkpoint_interval: config.audit.checkpoint_interval,
        archive_dir: config.audit.archive_dir.clone(),
    })?;
    let flood = &config.node.flood;
    let recorder = crate::audit::record::Recorder {
        log: Arc::new(log),
        pseudonyms,
        node: config.node.id.to_string(),
        refusals: Arc::new(crate::audit::summary::Refusals::new(
            flood.refusals_recorded,
            flood.refusal_window,
        )),
    };
    recorder.spawn_summaries();
    Ok(recorder)
}
