//! What the bus shows in metrics and readiness: deliveries and redeliveries
//! counted as they leave (a relaxed atomic add each), and what the last
//! retention run found per topic (stream length, per subscription the
//! oldest event still owed and the dead letters), so that a scrape reads
//! memory and never asks the store. The retention run is on a bounded
//! schedule (see [`super::retention`]), which bounds how stale the gauges are.
//!
//! It also remembers when the Redis behind the bus lost its data (a
//! consumer group had to be made again): the bus works again, but events
//! published before then and not yet acknowledged may be gone, which
//! `/readyz` and `jisr_bus_data_lost` say until the node restarts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::store::TopicState;

/// Delivery counters of one subscription.
#[derive(Debug, Default)]
struct Counters {
    deliveries: AtomicU64,
    redeliveries: AtomicU64,
}

/// One subscription's figures, for export.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionFigures {
    /// The topic.
    pub topic: String,
    /// The subscribing agency.
    pub subscriber: String,
    /// Deliveries sent since start (first attempts and redeliveries).
    pub deliveries: u64,
    /// Of which redeliveries (attempt > 1).
    pub redeliveries: u64,
    /// When the oldest event it still owes (not acknowledged) was
    /// published, µs since the epoch, as of the last retention run.
    pub oldest_owed_unix_micros: Option<i64>,
    /// Its dead letters, as of the last retention run.
    pub dead_letters: u64,
}

/// When Redis lost the bus's data, as far as this node saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    /// When this node last found a group gone (µs since the epoch).
    pub at_unix_micros: i64,
    /// The subscriptions whose groups were made again, `topic/subscriber`.
    pub subscriptions: Vec<String>,
}

/// The bus's figures; see the module documentation.
#[derive(Debug, Default)]
pub struct Figures {
    /// Counters per topic, per subscriber: fixed at start like the topics.
    counters: HashMap<String, HashMap<String, Counters>>,
    trimmed: AtomicU64,
    trimmed_dead: AtomicU64,
    /// Topic name → what the last retention run found.
    state: Mutex<Vec<(String, TopicState)>>,
    loss: Mutex<Option<Loss>>,
}

impl Figures {
    /// Figures for these (topic, subscriber) subscriptions.
    pub fn new(subscriptions: &[(String, String)]) -> Self {
        let mut counters: HashMap<String, HashMap<String, Counters>> = HashMap::new();
        for (topic, sub) in subscriptions {
            counters
                .entry(topic.clone())
                .or_default()
                .insert(sub.clone(), Counters::default());
        }
        Self {
            counters,
            ..Self::default()
        }
    }

    /// Whether the node has no subscription and has trimmed no topic (no
    /// topic configured): nothing to show.
    pub fn is_empty(&self) -> bool {
        self.counters.is_empty() && self.lengths().is_empty()
    }

    /// Counts a delivery sent to `sub` on `topic`.
    pub fn delivered(&self, topic: &str, sub: &str, attempt: u32) {
        if let Some(c) = self.counters.get(topic).and_then(|t| t.get(sub)) {
            c.deliveries.fetch_add(1, Ordering::Relaxed);
            if attempt > 1 {
                c.redeliveries.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Keeps what a retention run of `topic` found.
    pub fn trimmed(&self, topic: &str, state: TopicState) {
        self.trimmed.fetch_add(state.trimmed, Ordering::Relaxed);
        self.trimmed_dead
            .fetch_add(state.trimmed_dead, Ordering::Relaxed);
        let mut all = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match all.iter_mut().find(|(t, _)| t == topic) {
            Some((_, s)) => *s = state,
            None => all.push((topic.to_owned(), state)),
        }
    }

    /// Remembers that Redis lost `topic`'s group of `sub` at `now`.
    pub fn data_lost(&self, topic: &str, sub: &str, now: i64) {
        let name = format!("{topic}/{sub}");
        let mut loss = self.loss.lock().unwrap_or_else(|e| e.into_inner());
        let loss = loss.get_or_insert_with(|| Loss {
            at_unix_micros: now,
            subscriptions: Vec::new(),
        });
        loss.at_unix_micros = loss.at_unix_micros.max(now);
        if !loss.subscriptions.contains(&name) {
            loss.subscriptions.push(name);
        }
    }

    /// The last loss of data seen since start, if any.
    pub fn loss(&self) -> Option<Loss> {
        self.loss.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Events and dead letters removed by retention since start.
    pub fn trimmed_totals(&self) -> (u64, u64) {
        (
            self.trimmed.load(Ordering::Relaxed),
            self.trimmed_dead.load(Ordering::Relaxed),
        )
    }

    /// Each topic's event count, as of its last retention run.
    pub fn lengths(&self) -> Vec<(String, u64)> {
        let mut out: Vec<_> = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(t, s)| (t.clone(), s.length))
            .collect();
        out.sort();
        out
    }

    /// Every subscription's figures, sorted.
    pub fn subscriptions(&self) -> Vec<SubscriptionFigures> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for (topic, subs) in &self.counters {
            let found = state.iter().find(|(t, _)| t == topic).map(|(_, s)| s);
            for (sub, c) in subs {
                let seen =
                    found.and_then(|s| s.subscriptions.iter().find(|x| &x.subscriber == sub));
                out.push(SubscriptionFigures {
                    topic: topic.clone(),
                    subscriber: sub.clone(),
                    deliveries: c.deliveries.load(Ordering::Relaxed),
                    redeliveries: c.redeliveries.load(Ordering::Relaxed),
                    oldest_owed_unix_micros: seen.and_then(|s| s.oldest_owed_unix_micros),
                    dead_letters: seen.map_or(0, |s| s.dead_letters),
                });
            }
        }
        out.sort_by(|a, b| (&a.topic, &a.subscriber).cmp(&(&b.topic, &b.subscriber)));
        out
    }
}
