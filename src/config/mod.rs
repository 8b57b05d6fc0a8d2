//! The node's configuration file (TOML): its typed form ([`Config`]), how it
//! is read and checked ([`Config::load`]), and the errors an operator sees
//! ([`ConfigErrors`], [`report`]), each with its file, line, column and fix.
//!
//! Checking is complete rather than fail-fast: syntax errors are all reported
//! together; otherwise every section is read, and every missing key, wrong
//! type, bad value and dangling reference is reported in one run. Whether the
//! files named exist and whether rule methods exist in the contracts is left to
//! the TLS and catalogue loaders, which use the locations kept here.
//!
//! See `config/example.toml` for a commented reference file.

mod bus;
mod cluster;
mod console;
mod deferral;
mod error;
mod labels;
mod node;
mod pattern;
mod read;
mod resilience;
mod rule;
mod sections;
mod stores;
mod table;
mod telemetry;
#[cfg(test)]
mod tests;
mod tiles;
mod witness;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

pub use bus::{BusConfig, SubscriberConfig, TopicConfig};
pub use cluster::{ClusterConfig, PeerConfig};
pub use console::ConsoleConfig;
pub use deferral::{format as format_disclosure, parse as parse_disclosure};
pub use error::{report, ConfigError, ConfigErrors, Location};
pub use labels::{Labels, Text, LANGS};
pub use node::{Environment, FixedEnvironment, NodeIdSource, ProcessEnvironment, NODE_ID_VAR};
pub use pattern::{Basis, MethodPattern};
pub use resilience::{ProviderLimits, RateLimitConfig, RouteConfig};
pub use telemetry::{LogFormat, OtlpTls, TelemetryConfig};
pub use tiles::TilesConfig;
pub use witness::{WitnessConfig, Witnessing};

use crate::identity::{AgencyId, TrustDomain};
use crate::tls::TlsFiles;
use table::Ctx;

/// A checked node configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// This node: identity, listening address, limits.
    pub node: NodeConfig,
    /// The node's certificate files, resolved against the file's directory.
    pub tls: TlsFiles,
    /// Where the contracts are found.
    pub catalogue: CatalogueConfig,
    /// The declared purposes of processing, in file order.
    pub purposes: Vec<PurposeConfig>,
    /// The agencies known to the node, in file order.
    pub agencies: Vec<AgencyConfig>,
    /// The access rules, in file order.
    pub rules: Vec<RuleConfig>,
    /// The audit log.
    pub audit: AuditConfig,
    /// Where consents are kept.
    pub consent: ConsentConfig,
    /// Timeouts per method (`[[route]]`), in file order.
    pub routes: Vec<RouteConfig>,
    /// Calls per second per consumer (`[[rate_limit]]`), in file order.
    pub rate_limits: Vec<RateLimitConfig>,
    /// Traces, metrics, the admin listener, logs.
    pub telemetry: TelemetryConfig,
    /// The message bus's store and limits.
    pub bus: BusConfig,
    /// The bus topics, in file order.
    pub topics: Vec<TopicConfig>,
    /// The other replicas (`[cluster]`).
    pub cluster: ClusterConfig,
    /// The operators' web console; `None` (off) without `[console]`.
    pub console: Option<ConsoleConfig>,
    /// What citizens read for purposes, procedures and agencies (`[labels]`).
    pub labels: Labels,
}

/// `[consent]`: the consent store and the key that signs consents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentConfig {
    /// The embedded store's file (default `consents.redb`), used when no
    /// Redis is configured.
    pub path: PathBuf,
    /// The key that signs consent artefacts (default
    /// `consent-signing.key`; created if absent). Every replica must share it.
    pub signing_key: PathBuf,
    /// Redis (`redis://…` or `redis+cluster://…`) shared by replicas.
    pub redis_url: Option<String>,
    /// How long a consent check may wait for the store (default 250 ms).
    pub timeout: Duration,
}

/// `[audit]`: where the node keeps its audit log and keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditConfig {
    /// The log directory (default `audit`, next to the config file).
    pub dir: PathBuf,
    /// The node's Ed25519 checkpoint signing key, in signed-note private key
    /// text (default `audit-signing.key`; created at first start if absent).
    pub signing_key: PathBuf,
    /// The key of the keyed hash that pseudonymises citizen ids (default
    /// `pseudonym.key`; created if absent). Every replica must share it.
    pub pseudonym_key: PathBuf,
    /// How often a new checkpoint is signed while entries arrive (default 1 s).
    pub checkpoint_interval: Duration,
    /// Where sealed segments and checkpoints are copied (none by default).
    pub archive_dir: Option<PathBuf>,
    /// `[[audit.witness]]`, `witness_quorum`, `witness_retry_max_ms`: who
    /// cosigns the checkpoints (none by default).
    pub witnessing: Witnessing,
    /// `[audit.tiles]`: the log served in the C2SP tlog-tiles layout over
    /// HTTPS; `None` (not served) without it.
    pub tiles: Option<TilesConfig>,
}

/// What an agency may do beyond calling services.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Reads the whole audit log (the operator, the data protection authority).
    Auditor,
    /// Records and revokes citizens' consents (the portal).
    ConsentManager,
    /// Watches the platform (health, traffic) in the console; reads no
    /// exchange beyond its own agency's.
    Operator,
}

impl Role {
    /// The name used in config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auditor => "auditor",
            Self::ConsentManager => "consent-manager",
            Self::Operator => "operator",
        }
    }

    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auditor" => Some(Self::Auditor),
            "consent-manager" => Some(Self::ConsentManager),
            "operator" => Some(Self::Operator),
            _ => None,
        }
    }
}

/// `[node]`: who this gateway is and how it listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// The node id (same rules as agency ids), used in its SPIFFE id and
    /// its audit log's origin; one per replica.
    pub id: AgencyId,
    /// Where `id` was read (`id`, or `id_from` the environment or host name).
    pub id_source: NodeIdSource,
    /// The address other replicas should dial (`host:port`); `None`: the
    /// address the node listens on.
    pub advertise: Option<String>,
    /// How long the node's entry in the replica registry outlives its last
    /// heartbeat (default 15 s); see `cluster`.
    pub registration_ttl: Duration,
    /// The trust domain of every identity the node accepts.
    pub trust_domain: TrustDomain,
    /// The address the gateway listens on.
    pub listen: SocketAddr,
    /// The largest gRPC message accepted, in bytes (default 4 MiB, at most 64 MiB).
    pub max_message_bytes: usize,
    /// How long in-flight calls may run at shutdown (default 10 s).
    pub drain_timeout: Duration,
    /// How often the configuration and the files it names are checked for
    /// changes (default 2 s; `None` when `reload_poll_ms = 0`: SIGHUP only).
    pub reload_poll: Option<Duration>,
    /// Threads that serve connections, each with its own runtime (see
    /// `gateway::lanes`); 0 (the default) means one per CPU core.
    pub lanes: usize,
    /// How long connections may stay without a call, and how many may be open.
    pub connections: ConnectionLimits,
    /// What one agency can make the node do: its calls to the gateway's
    /// own services, and how many of its refusals are recorded one by one.
    pub flood: FloodLimits,
}

/// Bounds on one agency's calls to the gateway's own services and on the
/// entries its refused calls add to the audit log (`[node]`
/// `own_calls_per_second`, `own_calls_burst`, `refusals_recorded`,
/// `refusal_window_ms`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FloodLimits {
    /// Sustained calls per second per agency to the audit, consent and bus
    /// APIs, health and reflection, on this node; default 1000.
    pub own_per_second: u32,
    /// Calls at once above that rate; default 2000.
    pub own_burst: u32,
    /// Refused calls per agency recorded one by one per window; beyond
    /// them, counted and recorded as one summary entry per reason at the
    /// window's end; default 100.
    pub refusals_recorded: u32,
    /// The window; default 60 s.
    pub refusal_window: Duration,
}

/// Bounds on the clients' connections, so that connections that never
/// call cannot hold the node's file descriptors and memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From the TCP accept to the first request (TLS handshake, HTTP/2
    /// preface, first request headers); default 10 s.
    pub first_request: Duration,
    /// A connection with no call in flight for this long is sent GOAWAY
    /// and closed; default 300 s.
    pub idle: Duration,
    /// Open client connections on the node (peers included); the next is
    /// closed at once; default 10,000.
    pub max: usize,
}

impl NodeConfig {
    /// How many lanes the node runs: `lanes`, or one per CPU core when 0.
    pub fn lane_count(&self) -> usize {
        match self.lanes {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            n => n,
        }
    }
}

/// `[catalogue]`: where the contracts (`.proto` files) are found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CatalogueConfig {
    /// Import directories, resolved against the configuration file's directory.
    pub include: Vec<PathBuf>,
}

/// A `[[purpose]]`: a declared purpose of processing that rules refer to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PurposeConfig {
    /// The code callers send, e.g. `bac-candidature`.
    pub code: String,
    /// What the purpose is, for people.
    pub description: String,
    /// Where it is declared.
    pub at: Location,
}

/// An `[[agency]]`: a consumer, and a provider if it has an upstream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgencyConfig {
    /// The agency id, as in its certificates.
    pub id: AgencyId,
    /// `host:port` of each instance of the provider back-end; empty for a
    /// consumer-only agency.
    pub upstreams: Vec<String>,
    /// The `.proto` files it provides, relative to a catalogue include directory.
    pub contracts: Vec<String>,
    /// HTTP/2 connections kept to each upstream instance (1 to 64), if
    /// set; see [`AgencyConfig::connections_on`] for the default.
    pub connections: Option<usize>,
    /// Roles beyond calling services.
    pub roles: Vec<Role>,
    /// Timeout, in-flight limit and breaker thresholds towards its upstream.
    pub limits: ProviderLimits,
    /// What each `jisr-official` it sends must start with; `None`: its
    /// own namespace, `<id>.` (see [`AgencyConfig::admits_official`]).
    pub official_prefix: Option<String>,
    /// Where it is declared.
    pub at: Location,
}

impl AgencyConfig {
    /// HTTP/2 connections to each of its instances on a node with `lanes`
    /// lanes: `connections` if set, else one per lane and at least 2, so
    /// that each lane has a connection of its own (see `gateway::lanes`).
    pub fn connections_on(&self, lanes: usize) -> usize {
        self.connections.unwrap_or(lanes.max(2))
    }

    /// The form its `jisr-official` values must take, for refusals:
    /// `tax.…` or the configured prefix followed by `…`.
    pub fn official_form(&self) -> String {
        match &self.official_prefix {
            Some(prefix) => format!("{prefix}…"),
            None => format!("{}.…", self.id),
        }
    }

    /// Whether `official` lies in the agency's namespace: the configured
    /// prefix, else `<id>.`, followed by at least one character. The value
    /// is asserted by the consumer; this only keeps one agency from naming
    /// another's officials.
    pub fn admits_official(&self, official: &str) -> bool {
        let rest = match &self.official_prefix {
            Some(prefix) => official.strip_prefix(prefix.as_str()),
            None => official
                .strip_prefix(self.id.as_str())
                .and_then(|r| r.strip_prefix('.')),
        };
        rest.is_some_and(|r| !r.is_empty())
    }
}

/// A `[[rule]]`: a consumer may call these methods for these purposes on this basis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleConfig {
    /// The calling agency (declared as an `[[agency]]`).
    pub consumer: AgencyId,
    /// The methods it may call.
    pub methods: Vec<MethodPattern>,
    /// The purposes it may call them for (declared as `[[purpose]]`s).
    pub purposes: Vec<String>,
    /// The legal ground.
    pub basis: Basis,
    /// Where the rule's `[[rule]]` header is.
    pub at: Location,
    /// Where each entry of `methods` is, in the same order.
    pub methods_at: Vec<Location>,
    /// The response fields released (minimisation); `None` releases all.
    pub release: Option<Vec<String>>,
    /// An emergency rule: `jisr-justification` is required and the exchange
    /// is flagged for review.
    pub break_glass: bool,
    /// Deferred disclosure (`disclose_on`): the rule's exchanges are kept
    /// from the citizen's history until this time (microseconds since the
    /// epoch); `None` shows them at once.
    pub disclose_from: Option<i64>,
}

impl Config {
    /// Reads and checks the configuration file at `path`, with the
    /// process's environment.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Self::load_in(path, &ProcessEnvironment)
    }

    /// Reads and checks the configuration file at `path`; what it reads
    /// from outside the file (the node id's variable, the host name) comes
    /// from `env`.
    pub fn load_in(path: &Path, env: &dyn Environment) -> Result<Config, ConfigErrors> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_toml_in(&text, path, env),
            Err(e) => Err(ConfigError::new(
                None,
                format!("cannot read the configuration file {}: {e}", path.display()),
                "check the path and its permissions, or start from config/example.toml",
            )
            .into()),
        }
    }

    /// Checks configuration text; `path` names it in errors, and relative
    /// paths in it are resolved against `path`'s directory.
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
        Self::from_toml_in(text, path, &ProcessEnvironment)
    }

    /// [`Config::from_toml`], reading the environment from `env`.
    pub fn from_toml_in(
        text: &str,
        path: &Path,
        env: &dyn Environment,
    ) -> Result<Config, ConfigErrors> {
        let mut ctx = Ctx {
            src: error::Source::new(text, path),
            errors: ConfigErrors::default(),
        };
        let (root, syntax) = DeTable::parse_recoverable(text);
        if !syntax.is_empty() {
            // Later errors would mostly be echoes of the syntax errors.
            for e in syntax {
                ctx.error(
                    &e.span().unwrap_or(0..0),
                    format!("invalid TOML: {}", e.message()),
                    "correct the syntax here: strings in double quotes, `[table]` and `[[array-of-tables]]` headers, `key = value` lines",
                );
            }
            return Err(read::finish(ctx));
        }
        let root = Spanned::new(0..0, DeValue::Table(root.into_inner()));
        let config = read::read(&mut ctx, &root, path, env);
        match config {
            Some(config) if ctx.errors.is_empty() => Ok(config),
            _ => Err(read::finish(ctx)),
        }
    }

    /// Warnings for `check-config`: each label a citizen would miss, once
    /// the file has `[labels]` (a node without any has not taken up the
    /// citizen page's labels, and gets no warnings: the page shows codes).
    pub fn missing_labels(&self) -> Vec<String> {
        if self.labels == Labels::default() {
            return Vec::new();
        }
        let purposes: Vec<_> = self.purposes.iter().map(|p| p.code.as_str()).collect();
        let agencies: Vec<_> = self.agencies.iter().map(|a| a.id.as_str()).collect();
        self.labels.missing(&purposes, &agencies)
    }

    /// The agency with this id, if declared.
    pub fn agency(&self, id: &AgencyId) -> Option<&AgencyConfig> {
        self.agencies.iter().find(|a| &a.id == id)
    }
}
