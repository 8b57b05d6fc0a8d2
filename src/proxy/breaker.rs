//! Outlier ejection of one provider instance (a circuit breaker), as in
//! Envoy's consecutive-failure outlier detection: after `breaker_failures`
//! consecutive failures (transport errors, timeouts) the instance is ejected
//! for `breaker_cooldown`; then one probe call is let through, and its
//! outcome closes the breaker or ejects the instance again.
//!
//! All state is atomics: a call on a healthy instance costs one load on
//! admission and, on success, one load (the failure count is written only
//! when it is not already zero).

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// What a probe-less caller is told while a probe is out.
const PROBE_RETRY: Duration = Duration::from_millis(500);

/// Microseconds since the first use of the clock (monotonic).
pub(crate) fn now_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// Milliseconds on the same clock as [`now_us`].
pub(crate) fn now_ms() -> u64 {
    now_us() / 1000
}

/// A breaker's state, for operators and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// The instance is ejected until its cooldown ends.
    Open,
    /// One probe call is out; others are kept away until it ends.
    HalfOpen,
}

impl BreakerState {
    /// The name used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half-open",
        }
    }
}

/// Whether a call may go to the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Yes, as an ordinary call.
    Call,
    /// Yes, as the probe after a cooldown.
    Probe,
    /// No; retry after this long.
    Ejected(Duration),
}

/// The breaker of one instance.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: AtomicU8,
    failures: AtomicU32,
    /// When (in [`now_ms`]) the cooldown ends.
    retry_at: AtomicU64,
    ejections: AtomicU64,
}

impl Breaker {
    /// A closed breaker that opens after `threshold` consecutive failures.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            state: AtomicU8::new(CLOSED),
            failures: AtomicU32::new(0),
            retry_at: AtomicU64::new(0),
            ejections: AtomicU64::new(0),
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        match self.state.load(Ordering::Acquire) {
            CLOSED => BreakerState::Closed,
            OPEN => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        }
    }

    /// How many times the instance was ejected.
    pub fn ejections(&self) -> u64 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Whether a call may go; `now` is read only when the breaker is not
    /// closed, so a healthy instance costs no clock read.
    pub(crate) fn admit(&self, now: impl FnOnce() -> u64) -> Admit {
        match self.state.load(Ordering::Acquire) {
            CLOSED => Admit::Call,
            OPEN => {
                let now = now();
                let at = self.retry_at.load(Ordering::Acquire);
                if now < at {
                    return Admit::Ejected(Duration::from_millis(at - now));
                }
                match self.state.compare_exchange(
                    OPEN,
                    HALF_OPEN,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => Admit::Probe,
                    Err(_) => Admit::Ejected(PROBE_RETRY),
                }
            }
            _ => Admit::Ejected(PROBE_RETRY),
        }
    }

    /// The call reached the provider and it answered. Returns true when this
    /// closed the breaker.
    pub(crate) fn success(&self, probe: bool) -> bool {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        probe
            && self
                .state
                .compare_exchange(HALF_OPEN, CLOSED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// The call failed at transport level or timed out. Returns true when
    /// this ejected the instance.
    pub(crate) fn failure(&self, probe: bool, now: u64) -> bool {
        if probe {
            self.open(now);
            return true;
        }
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.threshold
            && self
                .state
                .compare_exchange(CLOSED, OPEN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.open(now);
            return true;
        }
        false
    }

    /// A probe ended without a verdict (the caller went away): let the next
    /// call probe.
    pub(crate) fn abandon(&self, now: u64) {
        self.retry_at.store(now, Ordering::Release);
        let _ = self
            .state
            .compare_exchange(HALF_OPEN, OPEN, Ordering::AcqRel, Ordering::Acquire);
    }

    fn open(&self, now: u64) {
        self.failures.store(0, Ordering::Relaxed);
        self.retry_at
            .store(now + self.cooldown.as_millis() as u64, Ordering::Release);
        self.state.store(OPEN, Ordering::Release);
        self.ejections.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_a_success_resets_the_count() {
        let b = Breaker::new(3, Duration::from_millis(100));
        assert!(!b.failure(false, 0));
        assert!(!b.failure(false, 0));
        assert!(!b.success(false));
        assert!(!b.failure(false, 0));
        assert!(!b.failure(false, 0));
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.failure(false, 10));
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.admit(|| 50), Admit::Ejected(Duration::from_millis(60)));
        assert_eq!(b.ejections(), 1);
    }

    #[test]
    fn one_probe_after_the_cooldown_decides() {
        let b = Breaker::new(1, Duration::from_millis(100));
        b.failure(false, 0);
        assert_eq!(b.admit(|| 100), Admit::Probe);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.admit(|| 100), Admit::Ejected(PROBE_RETRY));
        // A failed probe ejects again for a whole cooldown.
        assert!(b.failure(true, 120));
        assert_eq!(b.admit(|| 150), Admit::Ejected(Duration::from_millis(70)));
        assert_eq!(b.admit(|| 220), Admit::Probe);
        assert!(b.success(true));
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.admit(|| 221), Admit::Call);
        assert_eq!(b.ejections(), 2);
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_call_probe() {
        let b = Breaker::new(1, Duration::from_millis(100));
        b.failure(false, 0);
        assert_eq!(b.admit(|| 200), Admit::Probe);
        b.abandon(210);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.admit(|| 210), Admit::Probe);
    }
}
