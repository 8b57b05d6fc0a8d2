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
mod error;
mod pattern;
mod resilience;
mod sections;
mod table;
mod telemetry;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

pub use bus::{BusConfig, SubscriberConfig, TopicConfig};
pub use error::{report, ConfigError, ConfigErrors, Location};
pub use pattern::{Basis, MethodPattern};
pub use resilience::{ProviderLimits, RateLimitConfig, RouteConfig};
pub use telemetry::{LogFormat, OtlpTls, TelemetryConfig};

use crate::identity::{AgencyId, TrustDomain};
use crate::tls::TlsFiles;
use sections::{
    AGENCY_KEYS, AUDIT_KEYS, CATALOGUE_KEYS, CONSENT_KEYS, NODE_KEYS, PURPOSE_KEYS, RULE_KEYS,
    TLS_KEYS,
};
use table::{closest, Ctx, Section};

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
}

/// What an agency may do beyond calling services.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Reads the whole audit log (the operator, the data protection authority).
    Auditor,
    /// Records and revokes citizens' consents (the portal).
    ConsentManager,
}

impl Role {
    /// The name used in config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auditor => "auditor",
            Self::ConsentManager => "consent-manager",
        }
    }

    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auditor" => Some(Self::Auditor),
            "consent-manager" => Some(Self::ConsentManager),
            _ => None,
        }
    }
}

/// `[node]`: who this gateway is and how it listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    /// The node id (same rules as agency ids), used in its SPIFFE id.
    pub id: AgencyId,
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
    /// `proxy::lanes`); 0 (the default) means one per CPU core.
    pub lanes: usize,
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
    /// Where it is declared.
    pub at: Location,
}

impl AgencyConfig {
    /// HTTP/2 connections to each of its instances on a node with `lanes`
    /// lanes: `connections` if set, else one per lane and at least 2, so
    /// that each lane has a connection of its own (see `proxy::lanes`).
    pub fn connections_on(&self, lanes: usize) -> usize {
        self.connections.unwrap_or(lanes.max(2))
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
}

const TOP_KEYS: &[&str] = &[
    "node",
    "tls",
    "catalogue",
    "audit",
    "consent",
    "telemetry",
    "purpose",
    "agency",
    "rule",
    "route",
    "rate_limit",
    "bus",
    "topic",
];

impl Config {
    /// Reads and checks the configuration file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_toml(&text, path),
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
            return Err(finish(ctx));
        }
        let root = Spanned::new(0..0, DeValue::Table(root.into_inner()));
        let config = read(&mut ctx, &root, path);
        match config {
            Some(config) if ctx.errors.is_empty() => Ok(config),
            _ => Err(finish(ctx)),
        }
    }

    /// The agency with this id, if declared.
    pub fn agency(&self, id: &AgencyId) -> Option<&AgencyConfig> {
        self.agencies.iter().find(|a| &a.id == id)
    }
}

fn finish(mut ctx: Ctx) -> ConfigErrors {
    ctx.errors.sort();
    ctx.errors
}

/// The directory relative paths are resolved against, made absolute.
fn base_dir(path: &Path) -> PathBuf {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf())
}

fn read(ctx: &mut Ctx, root: &Spanned<DeValue<'_>>, path: &Path) -> Option<Config> {
    let top = Section::new("the top level of the file", root, TOP_KEYS, ctx)?;
    let base = base_dir(path);
    let node = required(ctx, &top, "node", NODE_KEYS, "id, trust_domain and listen")
        .and_then(|s| sections::node(ctx, &s));
    let tls = required(ctx, &top, "tls", TLS_KEYS, "ca, cert and key")
        .and_then(|s| sections::tls(ctx, &s, &base));
    let catalogue = match top.table.get("catalogue") {
        Some(v) => Section::new("[catalogue]", v, CATALOGUE_KEYS, ctx)
            .and_then(|s| sections::catalogue(ctx, &s, &base)),
        None => Some(CatalogueConfig::default()),
    };
    let audit = match top.table.get("audit") {
        Some(v) => Section::new("[audit]", v, AUDIT_KEYS, ctx)
            .and_then(|s| sections::audit(ctx, Some(&s), &base)),
        None => sections::audit(ctx, None, &base),
    };
    let consent = match top.table.get("consent") {
        Some(v) => Section::new("[consent]", v, CONSENT_KEYS, ctx)
            .and_then(|s| sections::consent(ctx, Some(&s), &base)),
        None => sections::consent(ctx, None, &base),
    };
    let telemetry = match top.table.get("telemetry") {
        Some(v) => Section::new("[telemetry]", v, telemetry::TELEMETRY_KEYS, ctx).and_then(|s| {
            let node_ca = tls.as_ref().map(|t| t.ca.as_path());
            telemetry::telemetry(ctx, Some(&s), &base, node_ca)
        }),
        None => telemetry::telemetry(ctx, None, &base, None),
    };
    let bus = match top.table.get("bus") {
        Some(v) => Section::new("[bus]", v, bus::BUS_KEYS, ctx)
            .and_then(|s| bus::bus(ctx, Some(&s), &base)),
        None => bus::bus(ctx, None, &base),
    };
    let topics: Vec<_> = array(ctx, &top, "topic", bus::TOPIC_KEYS)
        .iter()
        .map(|s| bus::topic(ctx, s))
        .collect();
    let purpose_sections = array(ctx, &top, "purpose", PURPOSE_KEYS);
    let agency_sections = array(ctx, &top, "agency", AGENCY_KEYS);
    let rule_sections = array(ctx, &top, "rule", RULE_KEYS);
    let route_sections = array(ctx, &top, "route", resilience::ROUTE_KEYS);
    let limit_sections = array(ctx, &top, "rate_limit", resilience::RATE_LIMIT_KEYS);
    let purposes: Vec<_> = purpose_sections
        .iter()
        .map(|s| sections::purpose(ctx, s))
        .collect();
    let agencies: Vec<_> = agency_sections
        .iter()
        .map(|s| sections::agency(ctx, s))
        .collect();
    let rules: Vec<_> = rule_sections
        .iter()
        .map(|s| sections::rule(ctx, s))
        .collect();
    let declared_purposes = declared(ctx, &purpose_sections, "code", "purpose");
    let declared_agencies = declared(ctx, &agency_sections, "id", "agency");
    for s in &rule_sections {
        check_references(ctx, s, &declared_agencies, &declared_purposes);
    }
    let routes: Vec<_> = route_sections
        .iter()
        .map(|s| resilience::route(ctx, s))
        .collect();
    let redis = matches!(&consent, Some(c) if c.redis_url.is_some());
    let rate_limits: Option<Vec<_>> = limit_sections
        .iter()
        .map(|s| resilience::rate_limit(ctx, s, &declared_agencies, redis))
        .collect::<Vec<_>>()
        .into_iter()
        .collect();
    if let Some(limits) = &rate_limits {
        resilience::duplicate_limits(ctx, limits);
    }
    let topics: Option<Vec<_>> = topics.into_iter().collect();
    if let Some(topics) = &topics {
        bus::check_topic_references(ctx, topics, &declared_agencies, &declared_purposes);
    }
    Some(Config {
        path: path.to_path_buf(),
        node: node?,
        tls: tls?,
        catalogue: catalogue?,
        purposes: purposes.into_iter().collect::<Option<_>>()?,
        agencies: agencies.into_iter().collect::<Option<_>>()?,
        rules: rules.into_iter().collect::<Option<_>>()?,
        audit: audit?,
        consent: consent?,
        routes: routes.into_iter().collect::<Option<_>>()?,
        rate_limits: rate_limits?,
        telemetry: telemetry?,
        bus: bus?,
        topics: topics?,
    })
}

/// A section the file must have.
fn required<'a, 'i>(
    ctx: &mut Ctx,
    top: &Section<'a, 'i>,
    key: &'static str,
    allowed: &'static [&'static str],
    keys: &str,
) -> Option<Section<'a, 'i>> {
    let name = match key {
        "node" => "[node]",
        _ => "[tls]",
    };
    match top.table.get(key) {
        Some(value) => Section::new(name, value, allowed, ctx),
        None => {
            ctx.error(
                &(0..0),
                format!("the file has no {name} section"),
                format!("add a {name} section with {keys} (see config/example.toml)"),
            );
            None
        }
    }
}

/// The tables of an optional array of tables such as `[[agency]]`.
fn array<'a, 'i>(
    ctx: &mut Ctx,
    top: &Section<'a, 'i>,
    key: &'static str,
    allowed: &'static [&'static str],
) -> Vec<Section<'a, 'i>> {
    let name = match key {
        "purpose" => "[[purpose]]",
        "agency" => "[[agency]]",
        "route" => "[[route]]",
        "rate_limit" => "[[rate_limit]]",
        "topic" => "[[topic]]",
        _ => "[[rule]]",
    };
    let Some(value) = top.table.get(key) else {
        return Vec::new();
    };
    let Some(items) = value.get_ref().as_array() else {
        ctx.error(
            &value.span(),
            format!(
                "`{key}` must be an array of tables, found a {}",
                value.get_ref().type_str()
            ),
            format!("write each entry under its own `{name}` header (double brackets)"),
        );
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| Section::new(name, item, allowed, ctx))
        .collect()
}

/// The valid names declared by `key` in `sections`, reporting duplicates.
/// Reads the raw text so that an entry with other errors still counts as declared.
fn declared(ctx: &mut Ctx, sections: &[Section<'_, '_>], key: &str, what: &str) -> Vec<String> {
    let mut first: HashMap<String, Location> = HashMap::new();
    let mut names = Vec::new();
    for s in sections {
        let Some(value) = s.table.get(key) else {
            continue;
        };
        let Some(name) = value.get_ref().as_str() else {
            continue;
        };
        if let Some(at) = first.get(name) {
            ctx.error(
                &value.span(),
                format!(
                    "{what} `{name}` is declared twice (first at line {})",
                    at.line
                ),
                format!("remove one of the two [[{what}]] entries, or give this one another {key}"),
            );
            continue;
        }
        first.insert(name.to_owned(), ctx.at(&value.span()));
        names.push(name.to_owned());
    }
    names
}

/// Whether a rule's consumer and purposes are declared.
fn check_references(ctx: &mut Ctx, s: &Section<'_, '_>, agencies: &[String], purposes: &[String]) {
    let hint = |name: &str, declared: &[String], what: &str| {
        let list = if declared.is_empty() {
            "none is declared yet".to_owned()
        } else {
            format!("declared: {}", declared.join(", "))
        };
        match closest(name, declared.iter().map(String::as_str), 2) {
            Some(close) => format!(
                "did you mean `{close}`? Otherwise declare it with a [[{what}]] entry ({list})"
            ),
            None => format!("declare it with a [[{what}]] entry, or use a declared one ({list})"),
        }
    };
    if let Some(consumer) = s.table.get("consumer") {
        if let Some(name) = consumer.get_ref().as_str() {
            if AgencyId::parse(name).is_ok() && !agencies.iter().any(|a| a == name) {
                ctx.error(
                    &consumer.span(),
                    format!("rule consumer `{name}` is not declared as an [[agency]]"),
                    hint(name, agencies, "agency"),
                );
            }
        }
    }
    let Some(list) = s.table.get("purposes").and_then(|v| v.get_ref().as_array()) else {
        return;
    };
    for item in list.iter() {
        let Some(code) = item.get_ref().as_str() else {
            continue;
        };
        if !purposes.iter().any(|p| p == code) {
            ctx.error(
                &item.span(),
                format!("rule purpose `{code}` is not declared under [[purpose]]"),
                hint(code, purposes, "purpose"),
            );
        }
    }
}
