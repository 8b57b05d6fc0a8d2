//! Reading the file into a [`Config`]: each section on its own, then the
//! checks across sections (duplicate names, dangling references).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use toml::de::DeValue;
use toml::Spanned;

use super::sections::{AGENCY_KEYS, CATALOGUE_KEYS, NODE_KEYS, PURPOSE_KEYS, TLS_KEYS};
use super::stores::{AUDIT_KEYS, CONSENT_KEYS};
use super::table::{closest, Ctx, Section};
use super::{
    bus, cluster, resilience, rule, sections, stores, telemetry, AgencyConfig, AuditConfig,
    BusConfig, CatalogueConfig, Config, ConfigErrors, ConsentConfig, Location, NodeConfig,
    PurposeConfig, RateLimitConfig, RouteConfig, RuleConfig, TelemetryConfig,
};
use crate::identity::AgencyId;
use crate::tls::TlsFiles;

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
    "cluster",
    "console",
    "labels",
];

/// Reads every section, then checks the sections against each other.
/// Every error is reported; `None` means at least one was.
pub(super) fn read(
    ctx: &mut Ctx,
    root: &Spanned<DeValue<'_>>,
    path: &Path,
    env: &dyn super::Environment,
) -> Option<Config> {
    let top = Section::new("the top level of the file", root, TOP_KEYS, ctx)?;
    let base = base_dir(path);
    let one = Singles::read(ctx, &top, &base, env);
    let topics: Vec<_> = array(ctx, &top, "topic", bus::TOPIC_KEYS)
        .iter()
        .map(|s| bus::topic(ctx, s))
        .collect();
    let redis = matches!(&one.consent, Some(c) if c.redis_url.is_some());
    let entries = Entries::read(ctx, &top, redis);
    let topics: Option<Vec<_>> = topics.into_iter().collect();
    let labels = match top.table.get("labels") {
        Some(v) => super::labels::read(ctx, v),
        None => Some(super::Labels::default()),
    };
    if let Some(topics) = &topics {
        bus::check_topic_references(ctx, topics, &entries.agency_ids, &entries.purpose_codes);
    }
    Some(Config {
        path: path.to_path_buf(),
        node: one.node?,
        tls: one.tls?,
        catalogue: one.catalogue?,
        purposes: entries.purposes.into_iter().collect::<Option<_>>()?,
        agencies: entries.agencies.into_iter().collect::<Option<_>>()?,
        rules: entries.rules.into_iter().collect::<Option<_>>()?,
        audit: one.audit?,
        consent: one.consent?,
        routes: entries.routes.into_iter().collect::<Option<_>>()?,
        rate_limits: entries.rate_limits?,
        telemetry: one.telemetry?,
        bus: one.bus?,
        topics: topics?,
        cluster: one.cluster?,
        console: one.console?,
        labels: labels?,
    })
}

/// The single `[…]` sections, each read on its own; `None` where one had
/// errors (already reported).
struct Singles {
    node: Option<NodeConfig>,
    tls: Option<TlsFiles>,
    catalogue: Option<CatalogueConfig>,
    audit: Option<AuditConfig>,
    consent: Option<ConsentConfig>,
    telemetry: Option<TelemetryConfig>,
    bus: Option<BusConfig>,
    cluster: Option<cluster::ClusterConfig>,
    /// `Some(None)`: no `[console]`, the console is off.
    // Wrong (reported), absent (off) and set are three real states.
    #[allow(clippy::option_option)]
    console: Option<Option<super::ConsoleConfig>>,
}

impl Singles {
    fn read(
        ctx: &mut Ctx,
        top: &Section<'_, '_>,
        base: &Path,
        env: &dyn super::Environment,
    ) -> Self {
        let node = required(ctx, top, "node", NODE_KEYS, "id, trust_domain and listen")
            .and_then(|s| sections::node(ctx, &s, env));
        let tls = required(ctx, top, "tls", TLS_KEYS, "ca, cert and key")
            .and_then(|s| sections::tls(ctx, &s, base));
        let catalogue = match top.table.get("catalogue") {
            Some(v) => Section::new("[catalogue]", v, CATALOGUE_KEYS, ctx)
                .and_then(|s| sections::catalogue(ctx, &s, base)),
            None => Some(CatalogueConfig::default()),
        };
        let audit = match top.table.get("audit") {
            Some(v) => Section::new("[audit]", v, AUDIT_KEYS, ctx)
                .and_then(|s| stores::audit(ctx, Some(&s), base, tls.as_ref())),
            None => stores::audit(ctx, None, base, tls.as_ref()),
        };
        let consent = match top.table.get("consent") {
            Some(v) => Section::new("[consent]", v, CONSENT_KEYS, ctx)
                .and_then(|s| stores::consent(ctx, Some(&s), base)),
            None => stores::consent(ctx, None, base),
        };
        let telemetry = match top.table.get("telemetry") {
            Some(v) => {
                Section::new("[telemetry]", v, telemetry::TELEMETRY_KEYS, ctx).and_then(|s| {
                    // The collector's CA defaults to the node's own.
                    let node_ca = tls.as_ref().map(|t| t.ca.as_path());
                    telemetry::telemetry(ctx, Some(&s), base, node_ca)
                })
            }
            None => telemetry::telemetry(ctx, None, base, None),
        };
        let bus = match top.table.get("bus") {
            Some(v) => Section::new("[bus]", v, bus::BUS_KEYS, ctx)
                .and_then(|s| bus::bus(ctx, Some(&s), base)),
            None => bus::bus(ctx, None, base),
        };
        let own = node.as_ref().map(|n: &NodeConfig| &n.id);
        let cluster = match top.table.get("cluster") {
            Some(v) => Section::new("[cluster]", v, cluster::CLUSTER_KEYS, ctx)
                .and_then(|s| cluster::cluster(ctx, Some(&s), own)),
            None => cluster::cluster(ctx, None, own),
        };
        let console = match top.table.get("console") {
            Some(v) => Section::new("[console]", v, super::console::CONSOLE_KEYS, ctx)
                .and_then(|s| super::console::console(ctx, &s, base, tls.as_ref()))
                .map(Some),
            None => Some(None),
        };
        Self {
            console,
            node,
            tls,
            catalogue,
            audit,
            consent,
            telemetry,
            bus,
            cluster,
        }
    }
}

/// The `[[…]]` entries: each read on its own, then checked against the
/// others (duplicate names, references to undeclared agencies and purposes).
struct Entries {
    purposes: Vec<Option<PurposeConfig>>,
    agencies: Vec<Option<AgencyConfig>>,
    rules: Vec<Option<RuleConfig>>,
    routes: Vec<Option<RouteConfig>>,
    rate_limits: Option<Vec<RateLimitConfig>>,
    /// The declared names, counting entries that have other errors.
    agency_ids: Vec<String>,
    purpose_codes: Vec<String>,
}

impl Entries {
    /// `redis`: whether consents, and so shared rate limits, are in Redis.
    fn read(ctx: &mut Ctx, top: &Section<'_, '_>, redis: bool) -> Self {
        let purpose_sections = array(ctx, top, "purpose", PURPOSE_KEYS);
        let agency_sections = array(ctx, top, "agency", AGENCY_KEYS);
        let rule_sections = array(ctx, top, "rule", rule::RULE_KEYS);
        let route_sections = array(ctx, top, "route", resilience::ROUTE_KEYS);
        let limit_sections = array(ctx, top, "rate_limit", resilience::RATE_LIMIT_KEYS);
        let purposes = purpose_sections
            .iter()
            .map(|s| sections::purpose(ctx, s))
            .collect();
        let agencies = agency_sections
            .iter()
            .map(|s| sections::agency(ctx, s))
            .collect();
        let rules = rule_sections.iter().map(|s| rule::rule(ctx, s)).collect();
        let purpose_codes = declared(ctx, &purpose_sections, "code", "purpose");
        let agency_ids = declared(ctx, &agency_sections, "id", "agency");
        for s in &rule_sections {
            check_references(ctx, s, &agency_ids, &purpose_codes);
        }
        let routes = route_sections
            .iter()
            .map(|s| resilience::route(ctx, s))
            .collect();
        let rate_limits: Option<Vec<_>> = limit_sections
            .iter()
            .map(|s| resilience::rate_limit(ctx, s, &agency_ids, redis))
            .collect::<Vec<_>>()
            .into_iter()
            .collect();
        if let Some(limits) = &rate_limits {
            resilience::duplicate_limits(ctx, limits);
        }
        Self {
            purposes,
            agencies,
            rules,
            routes,
            rate_limits,
            agency_ids,
            purpose_codes,
        }
    }
}

pub(super) fn finish(mut ctx: Ctx) -> ConfigErrors {
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
