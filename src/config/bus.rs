//! `[bus]` and `[[topic]]` (with its `[[topic.subscriber]]` entries): the
//! message bus's store and limits, and who publishes and receives each topic.
//! Whether a topic's event type exists in the owner's contracts and whether
//! `release` names its fields is checked against the catalogue when the
//! gateway builds (`bus::Topics::compile`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::pattern::Basis;
use super::sections::{bounded, resolve};
use super::stores::redis_url;
use super::table::{Ctx, Section};
use super::Location;
use crate::identity::AgencyId;

pub(super) const BUS_KEYS: &[&str] = &[
    "path",
    "redis_url",
    "ack_deadline_ms",
    "max_attempts",
    "idempotency_window_ms",
    "max_in_flight",
    "timeout_ms",
    "retention_ms",
    "dead_letter_retention_ms",
];
pub(super) const TOPIC_KEYS: &[&str] = &["name", "owner", "event", "subscriber"];
const SUBSCRIBER_KEYS: &[&str] = &["agency", "purposes", "basis", "release"];

/// `[bus]`: where events are kept and the delivery limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusConfig {
    /// The embedded store's file (default `bus.redb`), used when no
    /// `redis_url` is set.
    pub path: PathBuf,
    /// Redis holding the topics as Redis Streams, shared by replicas. The
    /// bus has its own key (it may name the consent store's Redis).
    pub redis_url: Option<String>,
    /// An unacknowledged delivery is redelivered after this (default 30 s).
    pub ack_deadline: Duration,
    /// Deliveries of one event before it goes to the dead letters (default 5).
    pub max_attempts: u32,
    /// A publish with an idempotency key seen within this window is the
    /// same event (default 24 h).
    pub idempotency_window: Duration,
    /// Unacknowledged deliveries per subscription before delivery pauses
    /// (default 256): the backpressure bound.
    pub max_in_flight: u32,
    /// Bound on each store operation (default 2 s).
    pub timeout: Duration,
    /// An event acknowledged by every subscription is removed once it is
    /// this old (default: the idempotency window, never shorter, so that a
    /// key always expires before its event goes).
    pub retention: Duration,
    /// A dead letter not replayed is removed once it is this old (default
    /// 7 days).
    pub dead_letter_retention: Duration,
}

/// A `[[topic]]`: one kind of event, its owner and its subscribers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicConfig {
    /// The topic's name, e.g. `civil-status.death-registered`.
    pub name: String,
    /// The only agency that may publish.
    pub owner: AgencyId,
    /// The event's message type, from the owner's contracts.
    pub event: String,
    /// Who receives the events.
    pub subscribers: Vec<SubscriberConfig>,
    /// Where the `[[topic]]` header is.
    pub at: Location,
}

/// A `[[topic.subscriber]]`: an agency receives the topic's events for
/// these purposes, on this basis, with only these fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriberConfig {
    /// The receiving agency.
    pub agency: AgencyId,
    /// The purposes it receives them for (declared `[[purpose]]`s).
    pub purposes: Vec<String>,
    /// The legal ground (`law:<ref>`, or `consent`: then each event is
    /// delivered only if the citizen consented).
    pub basis: Basis,
    /// The event fields released; `None` releases all.
    pub release: Option<Vec<String>>,
    /// Where the entry is.
    pub at: Location,
}

fn ms(
    ctx: &mut Ctx,
    s: Option<&Section<'_, '_>>,
    key: &str,
    range: (i64, i64, i64),
) -> Option<i64> {
    match s {
        Some(s) => bounded(ctx, s, key, range),
        None => Some(range.2),
    }
}

/// `[bus]`, or its defaults when absent.
pub(super) fn bus(ctx: &mut Ctx, s: Option<&Section<'_, '_>>, base: &Path) -> Option<BusConfig> {
    let path = match s {
        Some(s) if s.table.get("path").is_some() => {
            let v = s.req_str(ctx, "path", "\"bus.redb\"")?;
            if v.get_ref().trim().is_empty() {
                ctx.error(
                    &v.span(),
                    "`path` in [bus] is an empty path",
                    "give a file path, relative to this configuration file's directory",
                );
                None
            } else {
                Some(resolve(base, v.get_ref()))
            }
        }
        _ => Some(resolve(base, "bus.redb")),
    };
    let redis = match s {
        Some(s) => redis_url(ctx, s),
        None => Some(None),
    };
    let deadline = ms(ctx, s, "ack_deadline_ms", (100, 3_600_000, 30_000));
    let attempts = ms(ctx, s, "max_attempts", (1, 100, 5));
    let window = ms(
        ctx,
        s,
        "idempotency_window_ms",
        (1_000, 30 * 86_400_000, 86_400_000),
    );
    let in_flight = ms(ctx, s, "max_in_flight", (1, 10_000, 256));
    let timeout = ms(ctx, s, "timeout_ms", (10, 30_000, 2_000));
    let retention = window.and_then(|w| retention(ctx, s, w));
    let dead_retention = ms(
        ctx,
        s,
        "dead_letter_retention_ms",
        (1_000, MAX_RETENTION_MS, 7 * 86_400_000),
    );
    // Every value is range-checked by `bounded`, so the casts are lossless.
    Some(BusConfig {
        path: path?,
        redis_url: redis?,
        ack_deadline: Duration::from_millis(deadline? as u64),
        max_attempts: attempts? as u32,
        idempotency_window: Duration::from_millis(window? as u64),
        max_in_flight: in_flight? as u32,
        timeout: Duration::from_millis(timeout? as u64),
        retention: Duration::from_millis(retention? as u64),
        dead_letter_retention: Duration::from_millis(dead_retention? as u64),
    })
}

/// The longest retention either key accepts: a year.
const MAX_RETENTION_MS: i64 = 365 * 86_400_000;

/// `retention_ms`, which defaults to the idempotency `window` and may not
/// be shorter: an event removed while its key still counts would let a
/// retry with that key publish it again (on Redis a key counts only while
/// its event is in the stream), delivering it twice.
fn retention(ctx: &mut Ctx, s: Option<&Section<'_, '_>>, window: i64) -> Option<i64> {
    let Some(s) = s else {
        return Some(window);
    };
    let set = super::sections::in_range(
        ctx,
        s,
        "retention_ms",
        (1_000, MAX_RETENTION_MS),
        ("86400000", "idempotency_window_ms"),
    )?;
    match set {
        None => Some(window),
        Some(r) if r >= window => Some(r),
        Some(r) => {
            ctx.error(
                &s.span_of("retention_ms"),
                format!(
                    "`retention_ms` = {r} in [bus] is shorter than `idempotency_window_ms` = {window}: \
                     an acknowledged event removed while its idempotency key still counts could be \
                     published and delivered again by a retry with the same key"
                ),
                format!("set `retention_ms` to at least {window}, or shorten `idempotency_window_ms`"),
            );
            None
        }
    }
}

fn valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

fn agency(ctx: &mut Ctx, v: &Spanned<String>, key: &str, section: &str) -> Option<AgencyId> {
    match AgencyId::parse(v.get_ref()) {
        Ok(id) => Some(id),
        Err(e) => {
            ctx.error(
                &v.span(),
                format!("`{key}` in {section}: {e}"),
                format!("name a declared [[agency]], e.g. `{key} = \"civil-status\"`"),
            );
            None
        }
    }
}

/// A `[[topic]]` on its own; whether its agencies and purposes are declared
/// is checked by [`check_topic_references`].
pub(super) fn topic(ctx: &mut Ctx, s: &Section<'_, '_>) -> Option<TopicConfig> {
    let name = s.req_str(ctx, "name", "\"civil-status.death-registered\"");
    let name = name.filter(|n| {
        let ok = valid_topic(n.get_ref());
        if !ok {
            ctx.error(
                &n.span(),
                format!("topic name `{}` is not valid", n.get_ref()),
                "use 1 to 128 lowercase letters, digits, `-` and `.`, e.g. `civil-status.death-registered`",
            );
        }
        ok
    });
    let owner = s
        .req_str(ctx, "owner", "\"civil-status\"")
        .and_then(|v| agency(ctx, &v, "owner", "[[topic]]"));
    let event = s.req_str(ctx, "event", "\"ma.civilstatus.v1.DeathRegistered\"");
    let subscribers = subscribers(ctx, s);
    Some(TopicConfig {
        name: name?.into_inner(),
        owner: owner?,
        event: event?.into_inner(),
        subscribers: subscribers?,
        at: ctx.at(&s.span),
    })
}

fn subscribers(ctx: &mut Ctx, s: &Section<'_, '_>) -> Option<Vec<SubscriberConfig>> {
    let Some(value) = s.table.get("subscriber") else {
        return Some(Vec::new());
    };
    let Some(items) = value.get_ref().as_array() else {
        ctx.error(
            &value.span(),
            "`subscriber` in [[topic]] must be an array of tables",
            "write each subscriber under its own `[[topic.subscriber]]` header, after its [[topic]]",
        );
        return None;
    };
    let mut list = Vec::new();
    for item in items.iter() {
        if let Some(sub) = Section::new("[[topic.subscriber]]", item, SUBSCRIBER_KEYS, ctx) {
            list.push(subscriber(ctx, &sub));
        }
    }
    (list.len() == items.len()).then_some(())?;
    list.into_iter().collect()
}

fn subscriber(ctx: &mut Ctx, s: &Section<'_, '_>) -> Option<SubscriberConfig> {
    let agency_id = s
        .req_str(ctx, "agency", "\"tax\"")
        .and_then(|v| agency(ctx, &v, "agency", "[[topic.subscriber]]"));
    let purposes = s
        .req_str_list(ctx, "purposes", "[\"tax-household\"]")
        .and_then(|list| {
            if list.is_empty() {
                ctx.error(
                    &s.span_of("purposes"),
                    "`purposes` in [[topic.subscriber]] is empty: the subscriber could receive nothing",
                    "list the declared purposes it receives the events for, e.g. `purposes = [\"tax-household\"]`",
                );
                return None;
            }
            Some(list.into_iter().map(Spanned::into_inner).collect::<Vec<_>>())
        });
    let basis = s.req_str(ctx, "basis", "\"law:55-19\"").and_then(|v| {
        match Basis::parse_parts(v.get_ref()) {
            Ok(b) => Some(b),
            Err((message, fix)) => {
                ctx.error(&v.span(), message, fix);
                None
            }
        }
    });
    let release = match s.opt_str_list(ctx, "release", "[\"citizen_id\", \"death_date\"]") {
        Some(list) => Some(Some(list.into_iter().map(Spanned::into_inner).collect())),
        None => s.table.get("release").is_none().then_some(None),
    };
    Some(SubscriberConfig {
        agency: agency_id?,
        purposes: purposes?,
        basis: basis?,
        release: release?,
        at: ctx.at(&s.span),
    })
}

/// A problem found across topics: where, what, and the fix.
type Problem = (super::Location, String, String);

/// Topics name declared agencies and purposes; a topic is declared once; an
/// agency subscribes to a topic once.
pub(super) fn check_topic_references(
    ctx: &mut Ctx,
    topics: &[TopicConfig],
    agencies: &[String],
    purposes: &[String],
) {
    let mut seen: Vec<&str> = Vec::new();
    let mut errors = Vec::new();
    for t in topics {
        if seen.contains(&t.name.as_str()) {
            errors.push((
                t.at.clone(),
                format!("topic `{}` is declared twice", t.name),
                "give each [[topic]] its own name, or merge the two".to_owned(),
            ));
        }
        seen.push(&t.name);
        if !is_declared(agencies, &t.owner) {
            errors.push((
                t.at.clone(),
                format!(
                    "topic `{}` has owner `{}`, which is not declared as an [[agency]]",
                    t.name, t.owner
                ),
                format!(
                    "declare it with an [[agency]] entry (declared: {})",
                    agencies.join(", ")
                ),
            ));
        }
        check_subscribers(t, agencies, purposes, &mut errors);
    }
    for (at, message, fix) in errors {
        ctx.errors
            .push(super::ConfigError::new(Some(at), message, fix));
    }
}

fn is_declared(agencies: &[String], agency: &AgencyId) -> bool {
    agencies.iter().any(|d| d == agency.as_str())
}

/// A topic's subscribers are declared agencies, each listed once, for
/// declared purposes.
fn check_subscribers(
    t: &TopicConfig,
    agencies: &[String],
    purposes: &[String],
    errors: &mut Vec<Problem>,
) {
    let mut subs: Vec<&AgencyId> = Vec::new();
    for sub in &t.subscribers {
        if !is_declared(agencies, &sub.agency) {
            errors.push((
                sub.at.clone(),
                format!(
                    "subscriber `{}` of topic `{}` is not declared as an [[agency]]",
                    sub.agency, t.name
                ),
                format!(
                    "declare it with an [[agency]] entry (declared: {})",
                    agencies.join(", ")
                ),
            ));
        }
        if subs.contains(&&sub.agency) {
            errors.push((
                sub.at.clone(),
                format!("`{}` subscribes to topic `{}` twice", sub.agency, t.name),
                "keep one [[topic.subscriber]] entry per agency and list every purpose in it"
                    .to_owned(),
            ));
        }
        subs.push(&sub.agency);
        for p in &sub.purposes {
            if !purposes.contains(p) {
                errors.push((
                    sub.at.clone(),
                    format!("subscriber purpose `{p}` is not declared under [[purpose]]"),
                    format!(
                        "declare it with a [[purpose]] entry, or use a declared one ({})",
                        purposes.join(", ")
                    ),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests;
