//! The gateway's monotonic clock, in plain integers so that it can live in
//! atomics: breakers, rate limits and upstream instances all count time on
//! it. [`Clock`] is a node's own reading of both clocks: the time of day it
//! decides dates on (consent validity, deferred disclosure), which tests
//! pin instead of waiting, and the monotonic time its breakers and rate
//! limits count on, which tests advance instead of waiting.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Microseconds since the first use of the clock (monotonic).
pub fn now_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// Milliseconds on the same clock as [`now_us`].
pub fn now_ms() -> u64 {
    now_us() / 1000
}

/// Wall-clock time, in microseconds since the Unix epoch, as a node reads
/// it where a date decides: a consent's validity (`not_after` is wall-clock
/// time) and a deferred disclosure's date.
///
/// It is the system's time unless pinned: a test pins it to either side of
/// an expiry or a disclosure date instead of waiting for the system's clock
/// to cross it, which a loaded machine makes late and a fast one makes
/// early. A node owns one (`Gateway::clock`, or injected through
/// `Gateway::build_with_clock`); nothing in the gateway pins it.
///
/// Its monotonic reading ([`Clock::monotonic_us`]) is [`now_us`] plus how
/// far it was advanced: a test passes a breaker's cooldown or a rate
/// limit's refill with [`Clock::advance`] instead of sleeping through the
/// hinted delay. It only ever moves forward, so what counts on it (a
/// bucket's arrival time, a breaker's reopening time) stays consistent.
#[derive(Debug)]
pub struct Clock {
    /// The pinned time; [`UNPINNED`] while the system's clock is read.
    pinned: AtomicI64,
    /// Microseconds added to [`now_us`] by [`Clock::advance`].
    ahead_us: AtomicU64,
}

/// [`Clock::pinned`] when the clock follows the system's.
const UNPINNED: i64 = i64::MIN;

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl Clock {
    /// A clock that follows the system's.
    pub fn system() -> Self {
        Self {
            pinned: AtomicI64::new(UNPINNED),
            ahead_us: AtomicU64::new(0),
        }
    }

    /// A clock pinned at `unix_micros` until moved by [`Clock::pin`].
    pub fn stopped_at(unix_micros: i64) -> Self {
        let clock = Self::system();
        clock.pin(unix_micros);
        clock
    }

    /// Microseconds since the Unix epoch: the pinned time, else the
    /// system's (0 if the system's clock is before the epoch).
    pub fn unix_micros(&self) -> i64 {
        match self.pinned.load(Ordering::Acquire) {
            UNPINNED => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
            pinned => pinned,
        }
    }

    /// Stops the clock at `unix_micros` until [`Clock::release`].
    pub fn pin(&self, unix_micros: i64) {
        // i64::MIN is before any time a test can mean.
        let at = unix_micros.max(UNPINNED + 1);
        self.pinned.store(at, Ordering::Release);
    }

    /// Follows the system's clock again.
    pub fn release(&self) {
        self.pinned.store(UNPINNED, Ordering::Release);
    }

    /// Microseconds on the monotonic clock: [`now_us`], plus how far the
    /// clock was advanced.
    pub fn monotonic_us(&self) -> u64 {
        now_us().saturating_add(self.ahead_us.load(Ordering::Acquire))
    }

    /// Milliseconds on the same clock as [`Clock::monotonic_us`].
    pub fn monotonic_ms(&self) -> u64 {
        self.monotonic_us() / 1000
    }

    /// Moves the monotonic reading `by` forward (never back): what waits
    /// on it (a breaker's cooldown, a bucket's refill) sees the time pass.
    /// The time of day is not moved (pin it for that).
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_micros()).unwrap_or(u64::MAX);
        self.ahead_us.fetch_add(by, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::Clock;

    #[test]
    fn a_pinned_clock_stays_put_and_a_released_one_follows_the_system() {
        let clock = Clock::system();
        let before = clock.unix_micros();
        assert!(before > 1_600_000_000_000_000, "{before}");
        clock.pin(42);
        assert_eq!(clock.unix_micros(), 42);
        assert_eq!(clock.unix_micros(), 42);
        clock.release();
        assert!(clock.unix_micros() >= before);
        // The default clock is the system's, not one pinned at the epoch.
        assert!(Clock::default().unix_micros() >= before);
        let stopped = Clock::stopped_at(7);
        assert_eq!(stopped.unix_micros(), 7);
        stopped.pin(8);
        assert_eq!(stopped.unix_micros(), 8);
    }

    #[test]
    fn an_advanced_clock_is_ahead_of_the_process_clock_and_never_goes_back() {
        let clock = Clock::system();
        let before = clock.monotonic_us();
        assert!(before <= super::now_us() + 1);
        clock.advance(std::time::Duration::from_secs(60));
        let after = clock.monotonic_us();
        assert!(after >= before + 60_000_000, "{before} {after}");
        // Ahead of the process clock by the minute, not more than a
        // moment's work on top.
        assert!(after >= super::now_us() + 59_000_000, "{after}");
        assert!(clock.monotonic_ms() >= after / 1000);
        // The time of day is not moved by it.
        let (ours, system) = (clock.unix_micros(), Clock::system().unix_micros());
        assert!(ours <= system, "{ours} {system}");
        // Another node's clock is not advanced.
        assert!(Clock::system().monotonic_us() < after);
    }
}
