//! What telemetry is shown of the parts it reports on but does not own: the
//! gateway's reloads and provider pools ([`GatewayView`]) and the shared
//! Redis readiness asks after ([`Probe`]). Telemetry defines these and the
//! gateway implements them, so telemetry knows nothing of the gateway's
//! types and the dependency points one way. Neither is read on the
//! exchange path: the view when metrics are scraped, the probe by
//! readiness's background task (never by a `/readyz` request).

use std::future::Future;
use std::pin::Pin;

/// How reloads went since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReloadFigures {
    /// Reloads applied.
    pub reloads: u64,
    /// Reloads rejected.
    pub failures: u64,
    /// Whether the last reload attempt (if any) was applied.
    pub last_ok: bool,
}

/// One provider pool's load, shedding and breakers, now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderFigures {
    /// The provider agency's id.
    pub provider: String,
    /// Calls in flight to it now.
    pub in_flight: usize,
    /// Calls shed since start because its `max_in_flight` were in flight.
    pub shed: u64,
    /// Each of its instances.
    pub instances: Vec<InstanceFigures>,
}

/// One provider instance's breaker, now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceFigures {
    /// Its `host:port`.
    pub addr: String,
    /// Its breaker's state as named in metrics (`closed`, `open`, …).
    pub state: &'static str,
    /// Whether the breaker keeps calls away from it (any state but closed).
    pub ejected: bool,
    /// How many times it was ejected.
    pub ejections: u64,
}

/// The gateway as metrics see it: asked once per scrape or export.
pub trait GatewayView: Send + Sync + std::fmt::Debug {
    /// How reloads went.
    fn reloads(&self) -> ReloadFigures;
    /// Each provider pool of the routing state in force, by provider.
    fn providers(&self) -> Vec<ProviderFigures>;
}

/// The future of a [`Probe`]: `Err` says what is wrong and what to do.
pub type ProbeFuture<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// A dependency readiness asks whether it answers now (the consent store's
/// Redis).
pub trait Probe: Send + Sync + std::fmt::Debug {
    /// Asks it, bounded by its own timeout.
    fn probe(&self) -> ProbeFuture<'_>;
}
