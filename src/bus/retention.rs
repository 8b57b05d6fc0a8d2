//! The retention task: every topic is trimmed ([`BusStore::trim`]) on a
//! schedule, in the background, never on the publish path. Each run's work
//! is bounded by the store; runs are spaced by a quarter of the shorter
//! retention, from 250 ms to a minute, so nothing is kept much longer than
//! its retention and an idle node costs one trim call per topic a minute.
//! Several replicas may run it at once: each store's trim is atomic (one
//! script per call on Redis, one transaction per batch embedded), and a
//! second trimmer finds nothing left.
//!
//! Each run also refreshes the bus's gauges ([`Figures`]): stream length,
//! oldest event owed and dead letters per subscription.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::watch;

use super::figures::Figures;
use super::store::{BusStore, Retention};

/// The time between two runs for `retention`.
pub fn period(retention: Retention) -> Duration {
    (retention.events.min(retention.dead_letters) / 4)
        .clamp(Duration::from_millis(250), Duration::from_secs(60))
}

/// What the task trims: each topic with its configured subscribers.
pub(super) struct Plan {
    pub(super) topics: Vec<(String, Vec<String>)>,
    pub(super) retention: Retention,
}

/// Starts the task; it ends when `closing` turns true or its sender goes
/// (the bus service was dropped). It holds the store weakly, so a dropped
/// gateway closes its store file at once.
pub(super) fn start(
    store: Weak<dyn BusStore>,
    figures: Arc<Figures>,
    plan: Plan,
    mut closing: watch::Receiver<bool>,
) {
    if plan.topics.is_empty() {
        return;
    }
    let every = period(plan.retention);
    tokio::spawn(async move {
        loop {
            {
                let Some(store) = store.upgrade() else {
                    return;
                };
                run(&*store, &figures, &plan).await;
            }
            tokio::select! {
                changed = closing.changed() => {
                    if changed.is_err() || *closing.borrow() {
                        return;
                    }
                }
                () = tokio::time::sleep(every) => {}
            }
        }
    });
}

/// One run over every topic; a failure is logged and retried next run.
async fn run(store: &dyn BusStore, figures: &Figures, plan: &Plan) {
    for (topic, subscribers) in &plan.topics {
        let now = super::service::now_micros();
        match store.trim(topic, subscribers, plan.retention, now).await {
            Ok(state) => {
                if state.trimmed > 0 || state.trimmed_dead > 0 {
                    tracing::debug!(
                        topic,
                        events = state.trimmed,
                        dead_letters = state.trimmed_dead,
                        "bus retention removed what no subscription owes"
                    );
                }
                figures.trimmed(topic, state);
            }
            Err(e) => tracing::warn!(
                topic,
                error = %e,
                "bus retention could not trim the topic; it tries again at its next run"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_a_quarter_of_the_shorter_retention_within_bounds() {
        let r = |events: u64, dead: u64| Retention {
            events: Duration::from_millis(events),
            dead_letters: Duration::from_millis(dead),
        };
        assert_eq!(period(r(2_000, 86_400_000)), Duration::from_millis(500));
        assert_eq!(period(r(1_000, 1_000)), Duration::from_millis(250));
        assert_eq!(period(r(86_400_000, 604_800_000)), Duration::from_secs(60));
    }
}
