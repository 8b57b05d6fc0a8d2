//! The resilience keys: an `[[agency]]`'s upstream instances, call timeout,
//! in-flight limit and breaker thresholds; `[[route]]` timeouts per method;
//! `[[rate_limit]]` per consumer. Whether a route's methods exist is checked
//! when the catalogue is loaded (`gateway::layers`), at the route's place.

use std::time::Duration;

use toml::Spanned;

use super::pattern::MethodPattern;
use super::sections::{bounded, upstream_problem};
use super::table::{Ctx, Section};
use super::Location;
use crate::identity::AgencyId;

pub(super) const ROUTE_KEYS: &[&str] = &["methods", "timeout_ms"];
pub(super) const RATE_LIMIT_KEYS: &[&str] = &["consumer", "per_second", "burst", "shared"];

/// Default of `agency.timeout_ms`.
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of `agency.max_in_flight`.
pub(super) const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
/// Default of `agency.breaker_failures`.
pub(super) const DEFAULT_BREAKER_FAILURES: u32 = 5;
/// Default of `agency.breaker_cooldown_ms`.
pub(super) const DEFAULT_BREAKER_COOLDOWN: Duration = Duration::from_secs(10);
/// Most instances one agency may list in `upstream`.
const MAX_INSTANCES: usize = 16;

/// How the gateway protects itself and other providers from one provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderLimits {
    /// How long the provider may take to answer a call (its default route
    /// timeout; `[[route]]` overrides it per method).
    pub timeout: Duration,
    /// Calls in flight to the provider beyond which new ones are shed.
    pub max_in_flight: usize,
    /// Consecutive failures (transport errors, timeouts) that eject an instance.
    pub breaker_failures: u32,
    /// How long an ejected instance is left alone before one probe call.
    pub breaker_cooldown: Duration,
}

impl Default for ProviderLimits {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            breaker_failures: DEFAULT_BREAKER_FAILURES,
            breaker_cooldown: DEFAULT_BREAKER_COOLDOWN,
        }
    }
}

/// A `[[route]]`: a timeout for some methods, overriding their provider's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteConfig {
    /// The methods it covers.
    pub methods: Vec<MethodPattern>,
    /// Where each entry of `methods` is.
    pub methods_at: Vec<Location>,
    /// How long the provider may take to answer.
    pub timeout: Duration,
}

/// A `[[rate_limit]]`: how many calls per second a consumer may make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// The calling agency.
    pub consumer: AgencyId,
    /// Sustained calls per second.
    pub per_second: u32,
    /// Calls allowed at once above the sustained rate (default `per_second`).
    pub burst: u32,
    /// Counted in Redis (`[consent] redis_url`) across every replica, rather
    /// than per node.
    pub shared: bool,
    /// Where the entry is.
    pub at: Location,
}

/// `upstream`: one `host:port` or a list of instances of the same back-end.
pub(super) fn upstreams(ctx: &mut Ctx, s: &Section<'_, '_>) -> Option<Vec<String>> {
    let Some(value) = s.table.get("upstream") else {
        return Some(Vec::new());
    };
    let fix = "write the back-end's address as host:port, e.g. `upstream = \"127.0.0.1:9001\"`, or a list of its instances, e.g. `upstream = [\"10.0.0.1:9001\", \"10.0.0.2:9001\"]`";
    let list = match value.get_ref().as_str() {
        Some(one) => vec![Spanned::new(value.span(), one.to_owned())],
        None => s.opt_str_list(ctx, "upstream", "[\"10.0.0.1:9001\", \"10.0.0.2:9001\"]")?,
    };
    if list.is_empty() || list.len() > MAX_INSTANCES {
        ctx.error(
            &value.span(),
            format!(
                "`upstream` lists {} instances; 1 to {MAX_INSTANCES} are allowed",
                list.len()
            ),
            fix,
        );
        return None;
    }
    let mut ok = true;
    for (i, u) in list.iter().enumerate() {
        if let Some(why) = upstream_problem(u.get_ref()) {
            ok = false;
            ctx.error(
                &u.span(),
                format!("`upstream` `{}` is not host:port: {why}", u.get_ref()),
                fix,
            );
        } else if list[..i].iter().any(|o| o.get_ref() == u.get_ref()) {
            ok = false;
            ctx.error(
                &u.span(),
                format!("`upstream` lists `{}` twice", u.get_ref()),
                "list each instance once",
            );
        }
    }
    ok.then(|| list.into_iter().map(Spanned::into_inner).collect())
}

/// The resilience keys of an `[[agency]]`.
pub(super) fn provider_limits(ctx: &mut Ctx, s: &Section<'_, '_>) -> Option<ProviderLimits> {
    let d = ProviderLimits::default();
    let ms = |d: Duration| d.as_millis() as i64;
    let timeout = bounded(ctx, s, "timeout_ms", (1, 600_000, ms(d.timeout)));
    let in_flight = bounded(
        ctx,
        s,
        "max_in_flight",
        (1, 1_000_000, d.max_in_flight as i64),
    );
    let failures = bounded(
        ctx,
        s,
        "breaker_failures",
        (1, 10_000, i64::from(d.breaker_failures)),
    );
    let cooldown = bounded(
        ctx,
        s,
        "breaker_cooldown_ms",
        (10, 3_600_000, ms(d.breaker_cooldown)),
    );
    // Every value is range-checked by `bounded`, so the casts are lossless.
    Some(ProviderLimits {
        timeout: Duration::from_millis(timeout? as u64),
        max_in_flight: in_flight? as usize,
        breaker_failures: failures? as u32,
        breaker_cooldown: Duration::from_millis(cooldown? as u64),
    })
}

/// A `[[route]]`.
pub(super) fn route(ctx: &mut Ctx, s: &Section<'_, '_>) -> Option<RouteConfig> {
    let list = s.req_str_list(ctx, "methods", "[\"ma.tax.v1.TaxRecords/GetTaxStatus\"]");
    let methods = list.and_then(|list| {
        if list.is_empty() {
            ctx.error(
                &s.span_of("methods"),
                "`methods` in [[route]] is empty",
                "list the methods this timeout applies to, e.g. `methods = [\"ma.tax.v1.TaxRecords/*\"]`",
            );
            return None;
        }
        let mut methods = Vec::new();
        let mut at = Vec::new();
        for entry in &list {
            match MethodPattern::parse_parts(entry.get_ref()) {
                Ok(p) => {
                    methods.push(p);
                    at.push(ctx.at(&entry.span()));
                }
                Err((message, fix)) => ctx.error(&entry.span(), message, fix),
            }
        }
        (methods.len() == list.len()).then_some((methods, at))
    });
    if s.table.get("timeout_ms").is_none() {
        ctx.error(
            &s.span,
            "[[route]] is missing the required key `timeout_ms`",
            "add `timeout_ms = 500` (how long the provider may take to answer these methods)",
        );
        return None;
    }
    let timeout = bounded(ctx, s, "timeout_ms", (1, 600_000, 0));
    let (methods, methods_at) = methods?;
    Some(RouteConfig {
        methods,
        methods_at,
        timeout: Duration::from_millis(timeout? as u64),
    })
}

/// A `[[rate_limit]]`; `agencies` are the declared agency ids and `redis`
/// whether a Redis is configured (for `shared`).
pub(super) fn rate_limit(
    ctx: &mut Ctx,
    s: &Section<'_, '_>,
    agencies: &[String],
    redis: bool,
) -> Option<RateLimitConfig> {
    let consumer = limit_consumer(ctx, s, agencies);
    if s.table.get("per_second").is_none() {
        ctx.error(
            &s.span,
            "[[rate_limit]] is missing the required key `per_second`",
            "add `per_second = 100` (sustained calls per second the consumer may make)",
        );
        return None;
    }
    let per_second = bounded(ctx, s, "per_second", (1, 1_000_000, 0));
    let burst = match s.table.get("burst") {
        Some(_) => bounded(ctx, s, "burst", (1, 1_000_000, 0)),
        None => per_second,
    };
    let shared = match s.opt_bool(ctx, "shared", "true") {
        Some(b) => {
            if *b.get_ref() && !redis {
                ctx.error(
                    &b.span(),
                    "`shared = true` counts calls in Redis, but no Redis is configured",
                    "set `redis_url` in [consent] (the replicas' shared Redis), or remove `shared` to count per node",
                );
                return None;
            }
            Some(*b.get_ref())
        }
        None => s.table.get("shared").is_none().then_some(false),
    };
    // Range-checked by `bounded`, so the casts are lossless.
    Some(RateLimitConfig {
        consumer: consumer?,
        per_second: per_second? as u32,
        burst: burst? as u32,
        shared: shared?,
        at: ctx.at(&s.span),
    })
}

/// The limit's `consumer`, which must be a declared agency.
fn limit_consumer(ctx: &mut Ctx, s: &Section<'_, '_>, agencies: &[String]) -> Option<AgencyId> {
    let consumer = s.req_str(ctx, "consumer", "\"education\"");
    consumer.and_then(|v| match AgencyId::parse(v.get_ref()) {
        Ok(id) if agencies.iter().any(|a| a == id.as_str()) => Some(id),
        Ok(id) => {
            ctx.error(
                &v.span(),
                format!("rate limit consumer `{id}` is not declared as an [[agency]]"),
                format!("use a declared agency ({})", agencies.join(", ")),
            );
            None
        }
        Err(e) => {
            ctx.error(
                &v.span(),
                format!("`consumer` in [[rate_limit]]: {e}"),
                "name a declared agency, e.g. `consumer = \"education\"`",
            );
            None
        }
    })
}

/// Two `[[rate_limit]]` entries for one consumer are an error at the second.
pub(super) fn duplicate_limits(ctx: &mut Ctx, limits: &[RateLimitConfig]) {
    for (i, limit) in limits.iter().enumerate() {
        if let Some(first) = limits[..i].iter().find(|l| l.consumer == limit.consumer) {
            ctx.errors.push(super::ConfigError::new(
                Some(limit.at.clone()),
                format!(
                    "consumer `{}` has two [[rate_limit]] entries (first at line {})",
                    limit.consumer, first.at.line
                ),
                "keep one [[rate_limit]] per consumer",
            ));
        }
    }
}
