//! Refused calls cannot flood the log: each agency's refusals are recorded
//! one by one up to `[node] refusals_recorded` per window
//! (`refusal_window_ms`); beyond that they are counted per agency and
//! reason and recorded as one `REFUSALS_SUMMARISED` entry per pair when the
//! window ends (and when the node closes) — counted, never silently
//! dropped. The caller gets its refusal either way.
//!
//! A flood from one certificate therefore adds at most `refusals_recorded`
//! entries, plus one per reason, per window to the log.

use crate::proto::jisr::audit::v1::{AuditRecord, Kind, Outcome};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The refusal budget of every agency, and what went over it.
#[derive(Debug)]
pub struct Refusals {
    per_window: u32,
    window: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// When the current window started (both clocks).
    since: Instant,
    since_micros: i64,
    /// Refusals recorded one by one in this window, per agency.
    recorded: HashMap<String, u32>,
    /// Refusals counted, per (agency, reason), in this window.
    counted: BTreeMap<(String, String), u64>,
    /// Summaries of ended windows not yet written.
    due: Vec<Summary>,
}

/// Refused calls of one agency for one reason, counted over a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The calling agency.
    pub agency: String,
    /// The refusal reason, e.g. `RATE_LIMITED`.
    pub reason: String,
    /// Calls refused and not recorded one by one.
    pub count: u64,
    /// The window, microseconds since the epoch.
    pub since_micros: i64,
    /// Its end.
    pub until_micros: i64,
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl Refusals {
    /// A budget of `per_window` recorded refusals per agency per `window`.
    pub fn new(per_window: u32, window: Duration) -> Self {
        Self {
            per_window,
            window: window.max(Duration::from_millis(1)),
            state: Mutex::new(State {
                since: Instant::now(),
                since_micros: now_micros(),
                recorded: HashMap::new(),
                counted: BTreeMap::new(),
                due: Vec::new(),
            }),
        }
    }

    /// How long a window lasts (the flusher wakes this often).
    pub fn window(&self) -> Duration {
        self.window
    }

    /// Whether a refusal of `agency` for `reason` is recorded one by one
    /// (`true`) or only counted for the window's summary (`false`).
    pub fn admit(&self, agency: &str, reason: &str) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.since.elapsed() >= self.window {
            state.roll();
        }
        let recorded = state.recorded.entry(agency.to_owned()).or_insert(0);
        if *recorded < self.per_window {
            *recorded += 1;
            return true;
        }
        *state
            .counted
            .entry((agency.to_owned(), reason.to_owned()))
            .or_insert(0) += 1;
        false
    }

    /// The summaries to write now: those of ended windows, and with
    /// `closing` the current window's too.
    pub fn take(&self, closing: bool) -> Vec<Summary> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if closing || state.since.elapsed() >= self.window {
            state.roll();
        }
        std::mem::take(&mut state.due)
    }
}

impl State {
    /// Ends the window: its counts become summaries, budgets start again.
    fn roll(&mut self) {
        let until = now_micros();
        let since = self.since_micros;
        self.due
            .extend(std::mem::take(&mut self.counted).into_iter().map(
                |((agency, reason), count)| Summary {
                    agency,
                    reason,
                    count,
                    since_micros: since,
                    until_micros: until,
                },
            ));
        self.recorded.clear();
        self.since = Instant::now();
        self.since_micros = until;
    }
}

impl Summary {
    /// The `REFUSALS_SUMMARISED` entry, written by node `node`.
    pub fn record(&self, node: &str) -> AuditRecord {
        AuditRecord {
            time_unix_micros: self.until_micros,
            node: node.to_owned(),
            kind: Kind::RefusalsSummarised as i32,
            consumer: self.agency.clone(),
            outcome: Outcome::Refused as i32,
            reason: self.reason.clone(),
            count: self.count,
            since_unix_micros: self.since_micros,
            detail: format!(
                "{} calls of `{}` refused with {} beyond the refusals recorded one by one in this window",
                self.count, self.agency, self.reason
            ),
            ..AuditRecord::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beyond_the_budget_refusals_are_counted_per_agency_and_reason() {
        let r = Refusals::new(2, Duration::from_secs(3600));
        assert!(r.admit("tax", "ACCESS_DENIED"));
        assert!(r.admit("tax", "ACCESS_DENIED"));
        assert!(!r.admit("tax", "ACCESS_DENIED"));
        assert!(!r.admit("tax", "RATE_LIMITED"));
        assert!(!r.admit("tax", "RATE_LIMITED"));
        // Another agency has its own budget.
        assert!(r.admit("ghost", "ACCESS_DENIED"));
        assert!(r.take(false).is_empty(), "the window has not ended");
        let mut got: Vec<_> = r
            .take(true)
            .into_iter()
            .map(|s| (s.agency, s.reason, s.count))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("tax".into(), "ACCESS_DENIED".into(), 1),
                ("tax".into(), "RATE_LIMITED".into(), 2),
            ]
        );
        // A new window: the budget is back, nothing is due twice.
        assert!(r.admit("tax", "ACCESS_DENIED"));
        assert!(r.take(true).is_empty());
    }
}
