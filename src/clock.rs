//! The gateway's monotonic clock, in plain integers so that it can live in
//! atomics: breakers, rate limits and upstream instances all count time on
//! it. [`Wall`] is the time of day, which tests can set.

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

/// The time of day (UTC) as the gateway reads it, for decisions that
/// depend on a date: the system's clock, or in tests one set by hand so
/// that a date can be passed without waiting for it. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub struct Wall {
    /// `None`: the system's clock; else microseconds since the epoch, set
    /// by [`Wall::set`].
    set: Option<std::sync::Arc<std::sync::atomic::AtomicI64>>,
}

impl Wall {
    /// The system's clock.
    pub fn system() -> Self {
        Self::default()
    }

    /// A clock that reads `unix_micros` until [`Wall::set`] moves it.
    pub fn stopped_at(unix_micros: i64) -> Self {
        Self {
            set: Some(std::sync::Arc::new(unix_micros.into())),
        }
    }

    /// Moves a stopped clock (and every clone of it) to `unix_micros`; the
    /// system's clock cannot be moved, and ignores it.
    pub fn set(&self, unix_micros: i64) {
        if let Some(at) = &self.set {
            at.store(unix_micros, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// Microseconds since the Unix epoch.
    pub fn now_unix_micros(&self) -> i64 {
        match &self.set {
            Some(at) => at.load(std::sync::atomic::Ordering::SeqCst),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
        }
    }
}
