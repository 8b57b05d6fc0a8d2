//! Traffic and health: the node's own metrics as a page for operators —
//! calls per second and p50/p99 latency per provider, refusals by reason,
//! provider instances ejected by their breakers, and the readiness checks
//! (audit log, consent store's Redis, certificate, catalogue), and each
//! agency's certificate expiry (`certificates`). The page
//! reloads itself every [`REFRESH_SECONDS`]. It holds no personal data, so
//! reading it is not an audit entry.
//!
//! Calls per second are counted between page views: each view adds the
//! node's counters to [`Samples`], and the rate is taken against the
//! oldest sample of the last minute.

mod certificates;

use super::html::{self, esc, Reply};
use super::routes::Who;
use super::Console;
use crate::config::Role;
use crate::proto::jisr::audit::v1::Outcome;
use crate::telemetry::histogram::{Snapshot, BOUNDS_MICROS};
use crate::telemetry::labels;
use http::StatusCode;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the page reloads itself.
const REFRESH_SECONDS: u32 = 5;
/// How far back the rate looks.
const WINDOW: Duration = Duration::from_secs(60);
/// Samples kept at most (one per page view).
const MAX_SAMPLES: usize = 256;

/// Exchange totals by provider at recent page views.
#[derive(Debug, Default)]
pub(super) struct Samples {
    inner: Mutex<VecDeque<(Instant, BTreeMap<String, u64>)>>,
}

impl Samples {
    /// Adds `now`'s totals; returns the calls per second by provider since
    /// the oldest sample of the window and how long that is (`None` when
    /// no earlier sample is at least a second old).
    fn add(
        &self,
        now: Instant,
        totals: &BTreeMap<String, u64>,
    ) -> Option<(Duration, BTreeMap<String, f64>)> {
        let mut samples = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        while samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > WINDOW)
            || samples.len() >= MAX_SAMPLES
        {
            samples.pop_front();
        }
        let rate = samples.front().and_then(|(at, earlier)| {
            let span = now.duration_since(*at);
            (span >= Duration::from_secs(1)).then(|| {
                let per_second = totals
                    .iter()
                    .map(|(provider, n)| {
                        let before = earlier.get(provider).copied().unwrap_or(0);
                        (
                            provider.clone(),
                            n.saturating_sub(before) as f64 / span.as_secs_f64(),
                        )
                    })
                    .collect();
                (span, per_second)
            })
        });
        samples.push_back((now, totals.clone()));
        rate
    }
}

/// One provider's figures.
#[derive(Debug, Default)]
struct Provider {
    calls: u64,
    refused: u64,
    failed: u64,
    latency: Option<Snapshot>,
}

/// GET /traffic.
pub(super) fn show(console: &Console, who: &Who) -> Reply {
    if !who
        .roles
        .iter()
        .any(|r| matches!(r, Role::Operator | Role::Auditor))
    {
        return html::refused(
            StatusCode::FORBIDDEN,
            "Refused",
            "Only operators and auditors read the node's traffic and health.",
            "Sign in as an agency with the `operator` role.",
        );
    }
    let telemetry = console.backend.telemetry();
    let metrics = telemetry.metrics();
    let mut providers: BTreeMap<String, Provider> = BTreeMap::new();
    let mut reasons: BTreeMap<&'static str, u64> = BTreeMap::new();
    for (_, route, reason, n) in metrics.exchange_counts() {
        let p = providers.entry(route.provider.clone()).or_default();
        p.calls += n;
        match labels::outcome(reason) {
            Outcome::Refused => p.refused += n,
            Outcome::Failed => p.failed += n,
            _ => {}
        }
        if let Some(reason) = reason {
            *reasons.entry(reason.as_str()).or_default() += n;
        }
    }
    for (route, outcome) in metrics.latencies() {
        let p = providers.entry(route.provider.clone()).or_default();
        let snapshot = route.latency(outcome).snapshot();
        p.latency = Some(match p.latency.take() {
            Some(sum) => add(sum, &snapshot),
            None => snapshot,
        });
    }
    let totals = providers
        .iter()
        .map(|(k, p)| (k.clone(), p.calls))
        .collect();
    let rate = console.samples.add(Instant::now(), &totals);
    let mut main = format!(
        "<p class=\"hint\">This node's own figures since it started; the page reloads every {REFRESH_SECONDS} s.</p>"
    );
    main.push_str(&checks(&telemetry.ready().check()));
    main.push_str(&provider_table(&providers, rate.as_ref()));
    main.push_str(&reason_table(&reasons));
    main.push_str(&instances(metrics.gateway()));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let seen = metrics.certificates().all();
    main.push_str(&certificates::table(&console.backend.config(), &seen, now));
    let roles = who.role_names();
    let page = html::page("Traffic and health", Some(who.header(&roles)), &main, &[]);
    // A meta refresh rather than a script: it needs nothing from the CSP.
    let page = page.replacen(
        "<meta charset=\"utf-8\">",
        &format!(
            "<meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">"
        ),
        1,
    );
    html::reply(StatusCode::OK, page)
}

fn add(mut sum: Snapshot, more: &Snapshot) -> Snapshot {
    for (a, b) in sum.cumulative.iter_mut().zip(more.cumulative.iter()) {
        *a += b;
    }
    sum.count += more.count;
    sum.sum_micros += more.sum_micros;
    sum
}

/// The bucket bound at or under which a fraction `q` of the calls took, as
/// text (`≤ 2.5 ms`); the histogram's buckets make it an upper bound.
fn quantile(s: &Snapshot, q: f64) -> String {
    if s.count == 0 {
        return "–".into();
    }
    let rank = (q * s.count as f64).ceil() as u64;
    match s.cumulative.iter().position(|&c| c >= rank) {
        Some(i) => format!("≤ {}", millis(BOUNDS_MICROS[i])),
        None => format!("> {}", millis(BOUNDS_MICROS[BOUNDS_MICROS.len() - 1])),
    }
}

fn millis(micros: u64) -> String {
    let ms = micros as f64 / 1000.0;
    if ms < 1.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms} ms")
    }
}

fn checks(checks: &[crate::telemetry::ready::Check]) -> String {
    let mut t = String::from(
        "<h2>Health</h2><table id=\"health\"><thead><tr><th>Check</th><th>State</th><th>Detail</th></tr></thead><tbody>",
    );
    for c in checks {
        let (class, state) = if c.ok {
            ("ok", "ok")
        } else {
            ("bad", "failing")
        };
        let _ = write!(
            t,
            "<tr><td data-label=\"Check\">{}</td><td data-label=\"State\" class=\"{class}\">{state}</td>\
             <td data-label=\"Detail\">{}</td></tr>",
            esc(c.name),
            esc(&c.detail)
        );
    }
    t.push_str("</tbody></table>");
    t
}

fn provider_table(
    providers: &BTreeMap<String, Provider>,
    rate: Option<&(Duration, BTreeMap<String, f64>)>,
) -> String {
    let over = rate.map_or_else(
        || "calls/s (after the next refresh)".to_owned(),
        |(span, _)| format!("calls/s over the last {} s", span.as_secs()),
    );
    let mut t = format!(
        "<h2>Traffic by provider</h2><table id=\"traffic\"><thead><tr><th>Provider</th><th>{}</th>\
         <th>Calls</th><th>Refused</th><th>Failed</th><th>p50</th><th>p99</th></tr></thead><tbody>",
        esc(&over)
    );
    if providers.is_empty() {
        t.push_str("<tr><td colspan=\"7\">No exchange yet.</td></tr>");
    }
    for (name, p) in providers {
        let per_second = rate
            .and_then(|(_, r)| r.get(name))
            .map_or_else(|| "–".to_owned(), |r| format!("{r:.2}"));
        let (p50, p99) = p.latency.as_ref().map_or_else(
            || ("–".into(), "–".into()),
            |s| (quantile(s, 0.5), quantile(s, 0.99)),
        );
        let name = if name.is_empty() {
            "(unknown method)"
        } else {
            name
        };
        let _ = write!(
            t,
            "<tr><td data-label=\"Provider\">{}</td><td data-label=\"calls/s\">{per_second}</td>\
             <td data-label=\"Calls\">{}</td><td data-label=\"Refused\">{}</td><td data-label=\"Failed\">{}</td>\
             <td data-label=\"p50\">{}</td><td data-label=\"p99\">{}</td></tr>",
            esc(name),
            p.calls,
            p.refused,
            p.failed,
            esc(&p50),
            esc(&p99)
        );
    }
    t.push_str("</tbody></table>");
    t
}

fn reason_table(reasons: &BTreeMap<&'static str, u64>) -> String {
    let mut t = String::from(
        "<h2>Refusals and failures by reason</h2><table id=\"reasons\"><thead><tr><th>Reason</th><th>Calls</th></tr></thead><tbody>",
    );
    if reasons.is_empty() {
        t.push_str("<tr><td colspan=\"2\">None.</td></tr>");
    }
    for (reason, n) in reasons {
        let _ = write!(
            t,
            "<tr><td data-label=\"Reason\">{}</td><td data-label=\"Calls\">{n}</td></tr>",
            esc(reason)
        );
    }
    t.push_str("</tbody></table>");
    t
}

fn instances(view: Option<&dyn crate::telemetry::view::GatewayView>) -> String {
    let mut t = String::from(
        "<h2>Provider instances</h2><table id=\"instances\"><thead><tr><th>Provider</th><th>Instance</th>\
         <th>Breaker</th><th>Ejections</th><th>In flight (provider)</th></tr></thead><tbody>",
    );
    for p in view.map(|v| v.providers()).unwrap_or_default() {
        for i in &p.instances {
            let class = if i.ejected { "bad" } else { "ok" };
            let state = if i.ejected {
                format!("ejected ({})", i.state)
            } else {
                i.state.to_owned()
            };
            let _ = write!(
                t,
                "<tr><td data-label=\"Provider\">{}</td><td data-label=\"Instance\">{}</td>\
                 <td data-label=\"Breaker\" class=\"{class}\">{}</td><td data-label=\"Ejections\">{}</td>\
                 <td data-label=\"In flight\">{}</td></tr>",
                esc(&p.provider),
                esc(&i.addr),
                esc(&state),
                i.ejections,
                p.in_flight
            );
        }
    }
    t.push_str("</tbody></table>");
    t
}
