//! The gateway's monotonic clock, in plain integers so that it can live in
//! atomics: breakers, rate limits and upstream instances all count time on
//! it.

use std::sync::OnceLock;
use std::time::Instant;

/// Microseconds since the first use of the clock (monotonic).
pub fn now_us() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// Milliseconds on the same clock as [`now_us`].
pub fn now_ms() -> u64 {
    now_us() / 1000
}
