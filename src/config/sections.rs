//! Reading and checking each kind of section on its own: `[node]`, `[tls]`,
//! `[catalogue]`, `[[purpose]]` and `[[agency]]` (`[[rule]]` in `rule.rs`,
//! the stores' sections in `stores.rs`). Checks across sections
//! (duplicates, references) live in `read.rs`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::table::{Ctx, Section};
use super::{
    AgencyConfig, CatalogueConfig, ConnectionLimits, FloodLimits, NodeConfig, PurposeConfig, Role,
};
use crate::identity::{AgencyId, TrustDomain};
use crate::tls::TlsFiles;

pub(super) const NODE_KEYS: &[&str] = &[
    "id",
    "trust_domain",
    "listen",
    "max_message_bytes",
    "drain_timeout_ms",
    "reload_poll_ms",
    "lanes",
    "id_from",
    "advertise",
    "registration_ttl_ms",
    "first_request_timeout_ms",
    "idle_timeout_ms",
    "max_connections",
    "own_calls_per_second",
    "own_calls_burst",
    "refusals_recorded",
    "refusal_window_ms",
];
pub(super) const TLS_KEYS: &[&str] = &["ca", "cert", "key", "crls"];
pub(super) const CATALOGUE_KEYS: &[&str] = &["include"];
pub(super) const PURPOSE_KEYS: &[&str] = &["code", "description"];
pub(super) const AGENCY_KEYS: &[&str] = &[
    "id",
    "upstream",
    "contracts",
    "connections",
    "roles",
    "official_prefix",
    // Resilience (read in `resilience.rs`).
    "timeout_ms",
    "max_in_flight",
    "breaker_failures",
    "breaker_cooldown_ms",
];

/// Default and bounds of `node.max_message_bytes`.
pub(super) const DEFAULT_MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
const MAX_MAX_MESSAGE_BYTES: i64 = 64 * 1024 * 1024;
/// Upper bound of `node.lanes`.
const MAX_LANES: i64 = 256;
/// Default of `node.drain_timeout_ms`.
pub(super) const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_millis(10_000);
/// Bound of `agency.connections` (the default follows the lanes, see
/// [`AgencyConfig::connections_on`]).
const MAX_CONNECTIONS: i64 = 64;

pub(super) fn agency_id(
    ctx: &mut Ctx,
    value: &Spanned<String>,
    key: &str,
    section: &str,
) -> Option<AgencyId> {
    match AgencyId::parse(value.get_ref()) {
        Ok(id) => Some(id),
        Err(e) => {
            let example = if section == "[node]" {
                "gw-1"
            } else {
                "civil-status"
            };
            ctx.error(
                &value.span(),
                format!("`{key}` in {section}: {e}"),
                format!("rename it, e.g. `{key} = \"{example}\"`"),
            );
            None
        }
    }
}

/// An integer key within `min..=max`, or its default when absent.
pub(super) fn bounded(
    ctx: &mut Ctx,
    s: &Section<'_, '_>,
    key: &str,
    (min, max, default): (i64, i64, i64),
) -> Option<i64> {
    let default_text = default.to_string();
    in_range(ctx, s, key, (min, max), (&default_text, &default_text))
        .map(|value| value.unwrap_or(default))
}

/// `key` if it is an integer from `min` to `max`: `Some(None)` when absent,
/// `None` when wrong (and reported). `example` shows a valid value; `default`
/// says what applies without the key.
// The three states are real and this parser's convention: wrong (`None`,
// already reported), absent (the default applies), set.
#[allow(clippy::option_option)]
pub(super) fn in_range(
    ctx: &mut Ctx,
    s: &Section<'_, '_>,
    key: &str,
    (min, max): (i64, i64),
    (example, default): (&str, &str),
) -> Option<Option<i64>> {
    let Some(value) = s.opt_int(ctx, key, example) else {
        // Absent (the default applies) or already reported.
        return s.table.get(key).is_none().then_some(None);
    };
    let n = *value.get_ref();
    if (min..=max).contains(&n) {
        return Some(Some(n));
    }
    ctx.error(
        &value.span(),
        format!("`{key}` = {n} in {} is out of range", s.name),
        format!("use a value from {min} to {max}, or remove the key for the default {default}"),
    );
    None
}

pub(super) fn node(
    ctx: &mut Ctx,
    s: &Section<'_, '_>,
    env: &dyn super::Environment,
) -> Option<NodeConfig> {
    let id = super::node::node_id(ctx, s, env);
    let domain = s.req_str(ctx, "trust_domain", "\"interop.gov.ma\"");
    let trust_domain = domain.and_then(|v| match TrustDomain::parse(v.get_ref()) {
        Ok(td) => Some(td),
        Err(e) => {
            ctx.error(
                &v.span(),
                format!("`trust_domain` in [node]: {e}"),
                "use the domain written in the agencies' SPIFFE ids, e.g. `trust_domain = \"interop.gov.ma\"`",
            );
            None
        }
    });
    let listen = s.req_str(ctx, "listen", "\"127.0.0.1:8443\"");
    let listen = listen.and_then(|v| match v.get_ref().parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            ctx.error(
                &v.span(),
                format!("`listen` in [node] is not an IP address and port: `{}`", v.get_ref()),
                "write an IP address and port such as `127.0.0.1:8443` or `[::]:8443` (host names are not accepted)",
            );
            None
        }
    });
    let default_bytes = DEFAULT_MAX_MESSAGE_BYTES as i64;
    let max_bytes = bounded(
        ctx,
        s,
        "max_message_bytes",
        (1, MAX_MAX_MESSAGE_BYTES, default_bytes),
    );
    let default_ms = DEFAULT_DRAIN_TIMEOUT.as_millis() as i64;
    let drain_ms = bounded(ctx, s, "drain_timeout_ms", (0, i64::MAX, default_ms));
    let poll_ms = bounded(ctx, s, "reload_poll_ms", (0, 3_600_000, 2000));
    let lanes = bounded(ctx, s, "lanes", (0, MAX_LANES, 0));
    let advertise = s.opt_str(ctx, "advertise", "\"jisr-0.jisr:8443\"");
    let ttl_ms = bounded(ctx, s, "registration_ttl_ms", (500, 3_600_000, 15_000));
    let connections = connection_limits(ctx, s);
    let flood = flood_limits(ctx, s);
    let (id, id_source) = id?;
    // `{id}` names the node, so one file serves every replica of a
    // StatefulSet (`advertise = "{id}.jisr:8443"`).
    let advertise = advertise.map(|a| a.into_inner().replace("{id}", id.as_str()));
    Some(NodeConfig {
        id,
        id_source,
        advertise,
        // At least 500 (checked above).
        registration_ttl: Duration::from_millis(ttl_ms? as u64),
        trust_domain: trust_domain?,
        listen: listen?,
        // In 1..=64 MiB (checked above), so the casts are lossless.
        max_message_bytes: max_bytes? as usize,
        drain_timeout: Duration::from_millis(drain_ms? as u64),
        reload_poll: Some(poll_ms?)
            .filter(|&ms| ms > 0)
            .map(|ms| Duration::from_millis(ms as u64)),
        // In 0..=MAX_LANES (checked above).
        lanes: lanes? as usize,
        connections: connections?,
        flood: flood?,
    })
}

/// `own_calls_per_second`, `own_calls_burst`, `refusals_recorded` and
/// `refusal_window_ms`.
fn flood_limits(ctx: &mut Ctx, s: &Section<'_, '_>) -> Option<FloodLimits> {
    let rate = bounded(ctx, s, "own_calls_per_second", (1, 1_000_000, 1000));
    let burst = bounded(ctx, s, "own_calls_burst", (1, 1_000_000, 2000));
    let recorded = bounded(ctx, s, "refusals_recorded", (0, 1_000_000, 100));
    let window_ms = bounded(ctx, s, "refusal_window_ms", (100, 86_400_000, 60_000));
    // Each within its bounds (checked above), so the casts are lossless.
    Some(FloodLimits {
        own_per_second: rate? as u32,
        own_burst: burst? as u32,
        refusals_recorded: recorded? as u32,
        refusal_window: Duration::from_millis(window_ms? as u64),
    })
}

/// `first_request_timeout_ms`, `idle_timeout_ms` and `max_connections`.
fn connection_limits(ctx: &mut Ctx, s: &Section<'_, '_>) -> Option<ConnectionLimits> {
    let first_ms = bounded(ctx, s, "first_request_timeout_ms", (100, 600_000, 10_000));
    let idle_ms = bounded(ctx, s, "idle_timeout_ms", (100, 86_400_000, 300_000));
    let max = bounded(ctx, s, "max_connections", (1, 1_000_000, 10_000));
    // Each within its positive bounds (checked above), so the casts are lossless.
    Some(ConnectionLimits {
        first_request: Duration::from_millis(first_ms? as u64),
        idle: Duration::from_millis(idle_ms? as u64),
        max: max? as usize,
    })
}

/// A path relative to the configuration file's directory, made absolute.
pub(super) fn resolve(base: &Path, path: &str) -> PathBuf {
    base.join(path)
}

fn path(
    ctx: &mut Ctx,
    s: &Section<'_, '_>,
    key: &str,
    base: &Path,
    example: &str,
) -> Option<PathBuf> {
    let value = s.req_str(ctx, key, example)?;
    non_empty_path(ctx, s, key, &value, base)
}

pub(super) fn non_empty_path(
    ctx: &mut Ctx,
    s: &Section<'_, '_>,
    key: &str,
    value: &Spanned<String>,
    base: &Path,
) -> Option<PathBuf> {
    if value.get_ref().trim().is_empty() {
        ctx.error(
            &value.span(),
            format!("`{key}` in {} is an empty path", s.name),
            "give a path, relative to the directory of this configuration file",
        );
        return None;
    }
    Some(resolve(base, value.get_ref()))
}

pub(super) fn tls(ctx: &mut Ctx, s: &Section<'_, '_>, base: &Path) -> Option<TlsFiles> {
    let ca = path(ctx, s, "ca", base, "\"pki/ca.crt\"");
    let cert = path(ctx, s, "cert", base, "\"pki/gateway.crt\"");
    let key = path(ctx, s, "key", base, "\"pki/gateway.key\"");
    let crls = s.opt_str_list(ctx, "crls", "[\"pki/ca.crl\"]");
    let crls: Option<Vec<_>> = match crls {
        Some(list) => list
            .iter()
            .map(|v| non_empty_path(ctx, s, "crls", v, base))
            .collect::<Vec<_>>()
            .into_iter()
            .collect(),
        None => s.table.get("crls").is_none().then(Vec::new),
    };
    Some(TlsFiles {
        ca: ca?,
        cert: cert?,
        key: key?,
        crls: crls?,
    })
}

pub(super) fn catalogue(
    ctx: &mut Ctx,
    s: &Section<'_, '_>,
    base: &Path,
) -> Option<CatalogueConfig> {
    let include = match s.opt_str_list(ctx, "include", "[\"../proto\"]") {
        Some(list) => list
            .iter()
            .map(|v| non_empty_path(ctx, s, "include", v, base))
            .collect::<Vec<_>>()
            .into_iter()
            .collect::<Option<Vec<_>>>()?,
        None if s.table.get("include").is_none() => Vec::new(),
        None => return None,
    };
    Some(CatalogueConfig { include })
}

/// Whether a purpose code is lowercase letters, digits and `-`.
pub(super) fn valid_code(code: &str) -> bool {
    !code.is_empty()
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

pub(super) fn purpose(ctx: &mut Ctx, s: &Section<'_, '_>) -> Option<PurposeConfig> {
    let code = s.req_str(ctx, "code", "\"bac-candidature\"");
    let code = code.filter(|code| {
        let ok = valid_code(code.get_ref());
        if !ok {
            ctx.error(
                &code.span(),
                format!("purpose code `{}` is not valid", code.get_ref()),
                "use lowercase letters, digits and `-`, e.g. `bac-candidature`",
            );
        }
        ok
    });
    let description = s.req_str(ctx, "description", "\"what the data is used for\"");
    Some(PurposeConfig {
        code: code?.into_inner(),
        description: description?.into_inner(),
        at: ctx.at(&s.span),
    })
}

/// Checks `host:port` (host a name, an IPv4 address or a bracketed IPv6 address).
pub(super) fn upstream_problem(upstream: &str) -> Option<&'static str> {
    let Some((host, port)) = upstream.rsplit_once(':') else {
        return Some("it has no `:port`");
    };
    if !matches!(port.parse::<u16>(), Ok(p) if p > 0) {
        return Some("the port is not a number from 1 to 65535");
    }
    let host = match host.strip_prefix('[') {
        Some(v6) => match v6.strip_suffix(']') {
            Some(v6) if v6.parse::<std::net::Ipv6Addr>().is_ok() => return None,
            _ => return Some("the bracketed IPv6 address is malformed"),
        },
        None => host,
    };
    let valid = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_';
    if host.is_empty() || !host.bytes().all(valid) {
        return Some("the host is empty or not a host name or IP address");
    }
    None
}

fn contracts(ctx: &mut Ctx, s: &Section<'_, '_>) -> Option<Vec<String>> {
    let example = "[\"agencies/tax/v1/tax.proto\"]";
    let list = match s.opt_str_list(ctx, "contracts", example) {
        Some(list) => list,
        None => return s.table.get("contracts").is_none().then(Vec::new),
    };
    let mut ok = true;
    for c in &list {
        let text = c.get_ref();
        let problem = if !text.ends_with(".proto") {
            Some("is not a `.proto` file")
        } else if text.starts_with('/') || text.contains('\\') {
            Some("must be a relative path with `/` separators")
        } else {
            None
        };
        if let Some(problem) = problem {
            ok = false;
            ctx.error(
                &c.span(),
                format!("contract `{text}` {problem}"),
                "give the .proto path relative to one of the [catalogue] include directories, e.g. `agencies/tax/v1/tax.proto`",
            );
        }
    }
    ok.then(|| list.into_iter().map(Spanned::into_inner).collect())
}

pub(super) fn agency(ctx: &mut Ctx, s: &Section<'_, '_>) -> Option<AgencyConfig> {
    let id = s.req_str(ctx, "id", "\"civil-status\"");
    let id = id.and_then(|v| agency_id(ctx, &v, "id", "[[agency]]"));
    let upstreams = super::resilience::upstreams(ctx, s);
    let limits = super::resilience::provider_limits(ctx, s);
    let contracts = contracts(ctx, s);
    if matches!(&contracts, Some(c) if !c.is_empty()) && s.table.get("upstream").is_none() {
        let name = id
            .as_ref()
            .map_or_else(String::new, |id| format!(" `{id}`"));
        ctx.error(
            &s.span_of("contracts"),
            format!("agency{name} has contracts but no `upstream`: its methods could never be served"),
            "add `upstream = \"host:port\"` of its back-end, or remove `contracts` if the agency only consumes",
        );
    }
    let connections = in_range(
        ctx,
        s,
        "connections",
        (1, MAX_CONNECTIONS),
        ("2", "(one per lane, at least 2)"),
    );
    let roles = roles(ctx, s);
    let official_prefix = official_prefix(ctx, s);
    Some(AgencyConfig {
        id: id?,
        upstreams: upstreams?,
        limits: limits?,
        contracts: contracts?,
        // In 1..=64 (checked by `in_range`), so the cast is lossless.
        connections: connections?.map(|n| n as usize),
        roles: roles?,
        official_prefix: official_prefix?,
        at: ctx.at(&s.span),
    })
}

/// `official_prefix`: what every `jisr-official` the agency sends must
/// start with (by default `<id>.`); `Some(None)` when absent.
// Wrong (`None`, reported), absent, set: the parser's three states.
#[allow(clippy::option_option)]
fn official_prefix(ctx: &mut Ctx, s: &Section<'_, '_>) -> Option<Option<String>> {
    let Some(value) = s.opt_str(ctx, "official_prefix", "\"dgi.\"") else {
        return s.table.get("official_prefix").is_none().then_some(None);
    };
    let text = value.get_ref();
    let valid = (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if valid {
        return Some(Some(text.clone()));
    }
    ctx.error(
        &value.span(),
        format!("`official_prefix` = `{text}` in [[agency]] is not a valid prefix"),
        "use 1 to 64 characters among letters, digits and `-_.:`, e.g. `official_prefix = \"dgi.\"`, or remove the key for the default `<agency id>.`",
    );
    None
}

fn roles(ctx: &mut Ctx, s: &Section<'_, '_>) -> Option<Vec<Role>> {
    let Some(list) = s.opt_str_list(ctx, "roles", "[\"auditor\"]") else {
        return s.table.get("roles").is_none().then(Vec::new);
    };
    let mut roles = Vec::new();
    let mut ok = true;
    for value in &list {
        match Role::parse(value.get_ref()) {
            Some(role) => roles.push(role),
            None => {
                ok = false;
                ctx.error(
                    &value.span(),
                    format!("unknown role `{}` in [[agency]]", value.get_ref()),
                    "use `auditor` (reads the whole audit log), `consent-manager` (records consents) or `operator` (watches health and traffic in the console)",
                );
            }
        }
    }
    ok.then_some(roles)
}
