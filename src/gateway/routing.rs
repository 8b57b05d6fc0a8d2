//! The part of a gateway a reload replaces: catalogue, access tables,
//! per-method exchanges with their timeouts, rate limits, upstream pools and
//! the server TLS config. Built whole from a configuration, then swapped in
//! at once; an upstream pool whose configuration and certificates did not
//! change is carried over with its connections and breakers.

use super::exchange::{Exchange, RuleTerms};
use super::layers::rate::RateLimits;
use super::metadata;
use super::upstream::Upstream;
use super::StartError;
use crate::catalogue::Catalogue;
use crate::config::{AgencyConfig, Config, ConfigError, ConfigErrors, Role};
use crate::identity::{AgencyId, PeerIdentity};
use crate::policy::Policy;
use crate::tls;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tonic::service::Routes;

/// The gateway's own APIs, built once; a reload hands them new roles.
#[derive(Clone)]
pub(super) struct Apis {
    pub(super) audit: crate::audit::service::AuditService,
    pub(super) consents: crate::consent::service::ConsentService,
    pub(super) health: tonic_health::server::HealthReporter,
    /// The consent store's Redis connection, if any, for shared rate limits.
    pub(super) redis: Option<crate::redis::Shared>,
    /// The other nodes of the replica registry (with a shared Redis).
    pub(super) live_peers: Option<Arc<crate::audit::peers::LivePeers>>,
    /// The bus, whose topics are fixed at start.
    pub(super) bus: crate::bus::service::BusService,
    /// The node's clock: the breakers' cooldowns and the rate limits'
    /// refills count on its monotonic reading.
    pub(super) clock: Arc<crate::clock::Clock>,
}

/// Everything a reload may change, resolved for call time.
pub struct Routing {
    /// The configuration it was built from.
    pub config: Config,
    pub(super) exchanges: HashMap<String, Arc<Exchange>>,
    pub(super) upstreams: HashMap<AgencyId, Arc<Upstream>>,
    pub(super) own: Routes,
    /// The audit API as `own` serves it (this config's roles, peers), for
    /// the console; set by [`Prepared::finish`].
    pub(super) audit: Option<crate::audit::service::AuditService>,
    pub(super) catalogue: Catalogue,
    pub(super) terms: Vec<RuleTerms>,
    pub(super) limits: RateLimits,
    pub(super) server_tls: Arc<rustls::ServerConfig>,
    /// SHA-256 of the TLS files' contents: pools are rebuilt when it changes.
    tls_digest: [u8; 32],
    pub(super) max_message: usize,
    /// The agencies this configuration gives metric labels, put in force
    /// with this state.
    pub(super) labels: Arc<crate::telemetry::AgencyLabels>,
}

impl std::fmt::Debug for Routing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routing")
            .field("methods", &self.exchanges.len())
            .field("upstreams", &self.upstreams.len())
            .finish_non_exhaustive()
    }
}

/// A routing state checked against the configuration, before the gateway's
/// own APIs are attached.
pub(super) struct Prepared {
    routing: Routing,
    /// The rate buckets before the reload, kept where limits are unchanged.
    previous_limits: Option<RateLimits>,
}

/// Roles by agency, as the APIs want them.
pub(super) fn roles(config: &Config) -> HashMap<AgencyId, Vec<Role>> {
    config
        .agencies
        .iter()
        .map(|a| (a.id.clone(), a.roles.clone()))
        .collect()
}

impl Routing {
    /// Loads contracts, compiles rules and routes and prepares TLS and the
    /// upstream pools (their breakers counting on `clock`); pools unchanged
    /// since `previous` are reused.
    pub(super) fn prepare(
        config: &Config,
        previous: Option<&Routing>,
        metrics: &crate::telemetry::Metrics,
        clock: &Arc<crate::clock::Clock>,
    ) -> Result<Prepared, StartError> {
        let catalogue = Catalogue::load(config)?;
        let policy = Policy::compile(config, &catalogue)?;
        let domain = &config.node.trust_domain;
        let node = PeerIdentity::Gateway(config.node.id.clone());
        tls::check_own_identity(&config.tls, domain, &node)?;
        // Replicas read each other's audit logs with their gateway
        // certificates; without peers (configured, or found in the registry
        // of a shared Redis), agencies only may connect.
        let accept = if config.cluster.peers.is_empty() && config.consent.redis_url.is_none() {
            tls::Accept::Agencies
        } else {
            tls::Accept::AgenciesAndPeers
        };
        let server_tls = tls::server_config(&config.tls, domain, accept)?;
        let tls_digest = tls_digest(&config.tls)?;
        let upstreams = Self::pools(config, previous, &tls_digest, metrics, clock)?;
        let timeouts = route_timeouts(config, &catalogue)?;
        // Before the methods register: their counters get slots for new agencies.
        let labels = metrics.declare(config);
        let exchanges = exchanges(config, &catalogue, &policy, &upstreams, &timeouts, metrics);
        let terms = config
            .rules
            .iter()
            .map(|r| RuleTerms {
                break_glass: r.break_glass,
                disclose_from: r.disclose_from,
            })
            .collect();
        Ok(Prepared {
            previous_limits: previous.map(|p| p.limits.clone()),
            routing: Routing {
                config: config.clone(),
                exchanges,
                upstreams,
                own: Routes::default(),
                audit: None,
                catalogue,
                terms,
                limits: RateLimits::default(),
                server_tls,
                tls_digest,
                max_message: config.node.max_message_bytes,
                labels,
            },
        })
    }

    /// A pool for each agency with upstreams: the previous one where it can
    /// be reused, else a new one.
    fn pools(
        config: &Config,
        previous: Option<&Routing>,
        tls_digest: &[u8; 32],
        metrics: &crate::telemetry::Metrics,
        clock: &Arc<crate::clock::Clock>,
    ) -> Result<HashMap<AgencyId, Arc<Upstream>>, StartError> {
        let domain = &config.node.trust_domain;
        let mut upstreams = HashMap::new();
        for agency in config.agencies.iter().filter(|a| !a.upstreams.is_empty()) {
            let kept = previous.and_then(|p| p.reusable_pool(agency, tls_digest));
            let pool = match kept {
                Some(pool) => pool,
                None => {
                    let client_tls = tls::provider_client_config(
                        &config.tls,
                        domain,
                        agency.id.clone(),
                        metrics.certificates().clone(),
                    )?;
                    Arc::new(Upstream::new(
                        agency.id.clone(),
                        &agency.upstreams,
                        agency.connections_on(config.node.lane_count()),
                        agency.limits.clone(),
                        client_tls,
                        clock.clone(),
                    ))
                }
            };
            upstreams.insert(agency.id.clone(), pool);
        }
        Ok(upstreams)
    }

    /// The pool of `agency` in this state, if nothing it depends on changed.
    fn reusable_pool(&self, agency: &AgencyConfig, tls_digest: &[u8; 32]) -> Option<Arc<Upstream>> {
        if &self.tls_digest != tls_digest {
            return None;
        }
        let old = self.config.agency(&agency.id)?;
        let same = (&old.upstreams, old.connections, &old.limits)
            == (&agency.upstreams, agency.connections, &agency.limits);
        same.then(|| self.upstreams.get(&agency.id).cloned())?
    }

    /// The loaded catalogue.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// The number of routed methods.
    pub fn methods(&self) -> usize {
        self.exchanges.len()
    }

    /// Each provider's in-flight calls, shed calls and breakers, by provider.
    pub fn upstream_stats(&self) -> Vec<super::upstream::UpstreamStats> {
        let mut stats: Vec<_> = self.upstreams.values().map(|u| u.stats()).collect();
        stats.sort_by(|a, b| a.provider.cmp(&b.provider));
        stats
    }

    /// The server TLS config for new connections.
    pub fn server_tls(&self) -> &Arc<rustls::ServerConfig> {
        &self.server_tls
    }
}

impl Prepared {
    /// The catalogue it loaded.
    pub(super) fn catalogue(&self) -> &Catalogue {
        &self.routing.catalogue
    }

    /// Attaches the gateway's own APIs (with this configuration's roles)
    /// and the rate limits (which may count in the consent store's Redis).
    pub(super) fn finish(self, apis: &Apis) -> Result<Routing, StartError> {
        let mut routing = self.routing;
        let peers =
            crate::audit::peers::Peers::from_config(&routing.config, apis.live_peers.clone())?;
        let audit = apis
            .audit
            .with_roles(roles(&routing.config))
            .with_peers(peers);
        let probe = super::probe::ProbeService::new(
            &routing.config,
            &routing.catalogue,
            &routing.upstreams,
        );
        routing.own = own_services(&routing, apis, audit.clone(), probe)?;
        routing.audit = Some(audit);
        routing.limits = RateLimits::new(
            &routing.config.rate_limits,
            self.previous_limits.as_ref(),
            apis.redis.as_ref(),
            apis.clock.clone(),
        );
        Ok(routing)
    }
}

/// The exchange of each method of the catalogue, with its access rules,
/// releases, timeout, pool and counters.
fn exchanges(
    config: &Config,
    catalogue: &Catalogue,
    policy: &Policy,
    upstreams: &HashMap<AgencyId, Arc<Upstream>>,
    timeouts: &HashMap<&str, Duration>,
    metrics: &crate::telemetry::Metrics,
) -> HashMap<String, Arc<Exchange>> {
    let mut exchanges = HashMap::new();
    let bases: HashMap<usize, http::HeaderValue> = config
        .rules
        .iter()
        .enumerate()
        .map(|(rule, r)| (rule, metadata::header(&r.basis.to_string())))
        .collect();
    for route in catalogue.methods() {
        // Config validation guarantees every agency with contracts has an upstream.
        let Some(upstream) = upstreams.get(&route.provider) else {
            continue;
        };
        let releases = (0..config.rules.len())
            .filter_map(|rule| Some((rule, policy.release(&route.path, rule)?.clone())))
            .collect();
        // A catalogue path is `/<package>.<Service>/<Method>` of
        // identifier characters, always a valid URI path.
        let Ok(uri_path) = route.path.parse() else {
            continue;
        };
        let exchange = Exchange {
            uri_path,
            route: route.clone(),
            access: policy.access(&route.path).cloned().unwrap_or_default(),
            upstream: upstream.clone(),
            releases,
            bases: bases.clone(),
            timeout: timeouts
                .get(route.path.as_str())
                .copied()
                .unwrap_or(upstream.limits().timeout),
            // Kept across reloads: a method's counters continue.
            metrics: metrics.route(route.provider.as_str(), route.path.trim_start_matches('/')),
        };
        exchanges.insert(route.path.clone(), Arc::new(exchange));
    }
    exchanges
}

/// The `[[route]]` timeout of each method it names; a pattern that matches
/// no loaded method is an error at its place.
pub(super) fn route_timeouts<'c>(
    config: &Config,
    catalogue: &'c Catalogue,
) -> Result<HashMap<&'c str, Duration>, ConfigErrors> {
    let mut timeouts = HashMap::new();
    let mut errors = Vec::new();
    for route in &config.routes {
        for (pattern, at) in route.methods.iter().zip(&route.methods_at) {
            let mut matched = false;
            for m in catalogue.methods() {
                if pattern.matches(&m.service, &m.method) {
                    matched = true;
                    // The first [[route]] naming a method wins, like rules.
                    timeouts.entry(m.path.as_str()).or_insert(route.timeout);
                }
            }
            if !matched {
                errors.push(ConfigError::new(
                    Some(at.clone()),
                    format!("the route names `{pattern}`, which no loaded contract provides"),
                    "name a method of an onboarded contract (see `jisr catalog`), or remove the entry",
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(timeouts)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// SHA-256 over the contents of the TLS files.
fn tls_digest(files: &tls::TlsFiles) -> Result<[u8; 32], StartError> {
    let mut hash = Sha256::new();
    for path in [&files.ca, &files.cert, &files.key]
        .into_iter()
        .chain(&files.crls)
    {
        hash.update(std::fs::read(path)?);
        hash.update([0]);
    }
    Ok(hash.finalize().into())
}

fn own_services(
    routing: &Routing,
    apis: &Apis,
    audit: crate::audit::service::AuditService,
    probe: super::probe::ProbeService,
) -> Result<Routes, StartError> {
    let (config, catalogue) = (&routing.config, &routing.catalogue);
    let health = tonic_health::pb::health_server::HealthServer::new(
        tonic_health::server::HealthService::from_health_reporter(apis.health.clone()),
    );
    let files = || prost_types::FileDescriptorSet {
        file: catalogue.pool().file_descriptor_protos().cloned().collect(),
    };
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(crate::proto::JISR_FILE_DESCRIPTOR_SET)
        .register_file_descriptor_set(files())
        .build_v1()
        .map_err(|e| StartError::Reflection(e.to_string()))?;
    // v1alpha too: many deployed grpcurl and IDE clients still speak only it.
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(crate::proto::JISR_FILE_DESCRIPTOR_SET)
        .register_file_descriptor_set(files())
        .build_v1alpha()
        .map_err(|e| StartError::Reflection(e.to_string()))?;
    let audit = crate::proto::jisr::audit::v1::audit_server::AuditServer::new(audit);
    let mut consents = apis.consents.clone();
    consents.roles = Arc::new(roles(config));
    consents.purposes = Arc::new(config.purposes.iter().map(|p| p.code.clone()).collect());
    Ok(Routes::new(health)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(audit)
        .add_service(
            crate::proto::jisr::consent::v1::consents_server::ConsentsServer::new(consents),
        )
        .add_service(crate::proto::jisr::bus::v1::bus_server::BusServer::new(
            apis.bus.clone(),
        ))
        .add_service(crate::proto::jisr::probe::v1::probe_server::ProbeServer::new(probe)))
}
