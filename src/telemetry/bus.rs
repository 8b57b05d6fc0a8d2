//! The bus in metrics and readiness: counters kept as deliveries leave,
//! gauges as the bus's last retention run found them (see
//! `bus::figures`), and the data Redis lost. A loss makes `/readyz` say
//! so without making the node unready: the bus works again, and every
//! exchange the node serves is unaffected.

use std::fmt::Write as _;

use super::prometheus::{escape, header};
use super::ready::Check;
use crate::bus::figures::{Figures, Loss, SubscriptionFigures};

/// The name of the bus's readiness line.
pub(crate) const BUS_DATA: &str = "bus data";

/// `/readyz`'s line after Redis lost the bus's data.
pub(super) fn check(loss: &Loss) -> Check {
    let at = format!("at unix time {}", loss.at_unix_micros / 1_000_000);
    Check {
        name: BUS_DATA,
        ok: false,
        needed: false,
        detail: format!(
            "Redis lost the bus's data (last seen {at}); the consumer groups of {} were made again and the bus works, \
             but events published before then and not yet acknowledged, in-flight deliveries and dead letters may be lost \
             (see docs/bus.md, \"When Redis loses data\"); cleared by a restart",
            loss.subscriptions.join(", ")
        ),
    }
}

/// Every bus metric: the gauges here, then [`counters`]; `now` (µs since
/// the epoch) ages the oldest owed event.
pub(super) fn lines(out: &mut String, figures: &Figures, now: i64) {
    let subs = figures.subscriptions();
    let lengths = figures.lengths();
    header(out, "jisr_bus_stream_length", "gauge", "Events a topic holds (owed to a subscription, kept for a dead letter, or within retention), as of the last retention run.");
    for (topic, n) in &lengths {
        let _ = writeln!(
            out,
            "jisr_bus_stream_length{{topic=\"{}\"}} {n}",
            escape(topic)
        );
    }
    header(out, "jisr_bus_oldest_unacknowledged_age_seconds", "gauge", "Age of the oldest event a subscription still owes (delivered or not, unacknowledged), as of the last retention run; 0 when it owes none.");
    for s in &subs {
        let age = s
            .oldest_owed_unix_micros
            .map_or(0.0, |at| (now - at).max(0) as f64 / 1e6);
        let _ = writeln!(
            out,
            "jisr_bus_oldest_unacknowledged_age_seconds{{{}}} {age}",
            labels(&s.topic, &s.subscriber)
        );
    }
    header(
        out,
        "jisr_bus_dead_letters",
        "gauge",
        "Dead letters a subscription holds, as of the last retention run.",
    );
    for s in &subs {
        let _ = writeln!(
            out,
            "jisr_bus_dead_letters{{{}}} {}",
            labels(&s.topic, &s.subscriber),
            s.dead_letters
        );
    }
    counters(out, figures, &subs);
}

/// Deliveries per subscription, what retention removed, and data lost.
fn counters(out: &mut String, figures: &Figures, subs: &[SubscriptionFigures]) {
    header(
        out,
        "jisr_bus_deliveries_total",
        "counter",
        "Deliveries sent by this node (first attempts and redeliveries).",
    );
    for s in subs {
        let _ = writeln!(
            out,
            "jisr_bus_deliveries_total{{{}}} {}",
            labels(&s.topic, &s.subscriber),
            s.deliveries
        );
    }
    header(
        out,
        "jisr_bus_redeliveries_total",
        "counter",
        "Deliveries sent by this node that were not the event's first (attempt > 1).",
    );
    for s in subs {
        let _ = writeln!(
            out,
            "jisr_bus_redeliveries_total{{{}}} {}",
            labels(&s.topic, &s.subscriber),
            s.redeliveries
        );
    }
    let (events, dead) = figures.trimmed_totals();
    header(out, "jisr_bus_trimmed_events_total", "counter", "Events removed by retention on this node (acknowledged by every subscription and past bus.retention_ms).");
    let _ = writeln!(out, "jisr_bus_trimmed_events_total {events}");
    header(
        out,
        "jisr_bus_trimmed_dead_letters_total",
        "counter",
        "Dead letters removed by retention on this node (past bus.dead_letter_retention_ms).",
    );
    let _ = writeln!(out, "jisr_bus_trimmed_dead_letters_total {dead}");
    header(out, "jisr_bus_data_lost", "gauge", "Subscriptions whose Redis consumer group this node had to make again since start because Redis lost its data (events may be lost, see /readyz); 0 when none.");
    let lost = figures.loss().map_or(0, |l| l.subscriptions.len());
    let _ = writeln!(out, "jisr_bus_data_lost {lost}");
}

fn labels(topic: &str, subscriber: &str) -> String {
    format!(
        "topic=\"{}\",subscriber=\"{}\"",
        escape(topic),
        escape(subscriber)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::store::{SubscriptionState, TopicState};

    #[test]
    fn bus_figures_are_rendered_and_a_loss_is_reported_without_unreadiness() {
        let subs = [("deaths".to_owned(), "tax".to_owned())];
        let figures = Figures::new(&subs);
        let mut out = String::new();
        lines(&mut out, &figures, 0);
        assert!(out.contains("jisr_bus_data_lost 0\n"), "{out}");
        assert!(
            out.contains("jisr_bus_deliveries_total{topic=\"deaths\",subscriber=\"tax\"} 0\n"),
            "{out}"
        );

        figures.delivered("deaths", "tax", 1);
        figures.delivered("deaths", "tax", 2);
        figures.data_lost("deaths", "tax", 5_000_000);
        let state = TopicState {
            trimmed: 7,
            trimmed_dead: 1,
            length: 3,
            subscriptions: vec![SubscriptionState {
                subscriber: "tax".into(),
                oldest_owed_unix_micros: Some(1_000_000),
                dead_letters: 2,
            }],
        };
        figures.trimmed("deaths", state);
        let mut out = String::new();
        lines(&mut out, &figures, 4_500_000);
        for want in [
            "jisr_bus_stream_length{topic=\"deaths\"} 3\n",
            "jisr_bus_oldest_unacknowledged_age_seconds{topic=\"deaths\",subscriber=\"tax\"} 3.5\n",
            "jisr_bus_dead_letters{topic=\"deaths\",subscriber=\"tax\"} 2\n",
            "jisr_bus_deliveries_total{topic=\"deaths\",subscriber=\"tax\"} 2\n",
            "jisr_bus_redeliveries_total{topic=\"deaths\",subscriber=\"tax\"} 1\n",
            "jisr_bus_trimmed_events_total 7\n",
            "jisr_bus_trimmed_dead_letters_total 1\n",
            "jisr_bus_data_lost 1\n",
        ] {
            assert!(out.contains(want), "no {want:?} in {out}");
        }
        let line = check(&figures.loss().expect("a loss"));
        assert!(!line.needed && !line.ok);
        assert!(line.detail.contains("deaths/tax"), "{}", line.detail);
        assert!(super::super::ready::is_ready(&[line]));
    }
}
