//! A latency histogram the exchange path can record into without a lock:
//! fixed bucket bounds, one atomic counter per bucket, plus count and sum.
//! Recording is a short linear search and three relaxed `fetch_add`s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds (Prometheus `le`, from
/// 250 µs to 10 s); larger values fall in the implicit `+Inf` bucket.
pub const BOUNDS_MICROS: [u64; 14] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 10_000_000,
];

/// Cumulative figures of a histogram at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Observations at or below each bound of [`BOUNDS_MICROS`] (cumulative).
    pub cumulative: [u64; BOUNDS_MICROS.len()],
    /// All observations.
    pub count: u64,
    /// Sum of the observations, in microseconds.
    pub sum_micros: u64,
}

/// A lock-free latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket (not cumulative); the last one is `+Inf`.
    buckets: [AtomicU64; BOUNDS_MICROS.len() + 1],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn record(&self, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let slot = BOUNDS_MICROS
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(BOUNDS_MICROS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The figures now. Counters are read one by one, so a scrape during
    /// traffic may be off by the few calls recorded meanwhile.
    pub fn snapshot(&self) -> Snapshot {
        let mut cumulative = [0; BOUNDS_MICROS.len()];
        let mut running = 0;
        for (i, c) in cumulative.iter_mut().enumerate() {
            running += self.buckets[i].load(Ordering::Relaxed);
            *c = running;
        }
        let count = running + self.buckets[BOUNDS_MICROS.len()].load(Ordering::Relaxed);
        Snapshot {
            cumulative,
            count,
            sum_micros: self.sum_micros.load(Ordering::Relaxed),
        }
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count.load(Ordering::Relaxed) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_the_first_bucket_that_holds_them() {
        let h = Histogram::default();
        h.record(Duration::from_micros(250)); // on the bound: le=250
        h.record(Duration::from_micros(251)); // le=500
        h.record(Duration::from_secs(60)); // +Inf only
        let s = h.snapshot();
        assert_eq!(s.cumulative[0], 1);
        assert_eq!(s.cumulative[1], 2);
        assert_eq!(s.cumulative[BOUNDS_MICROS.len() - 1], 2);
        assert_eq!(s.count, 3);
        assert_eq!(s.sum_micros, 250 + 251 + 60_000_000);
    }
}
