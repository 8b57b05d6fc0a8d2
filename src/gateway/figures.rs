//! What the gateway shows telemetry of itself, through the views telemetry
//! defines ([`GatewayView`], [`Probe`]): telemetry is handed these at start
//! and never names a gateway type. Read per scrape, not per call.

use super::reload::ReloadStatus;
use super::routing::Routing;
use crate::consent::ConsentStore;
use crate::telemetry::view::{ProbeFuture, ReloadFigures};
use crate::telemetry::{GatewayView, InstanceFigures, Probe, ProviderFigures};
use arc_swap::ArcSwap;
use std::sync::Arc;

/// The reload status and the routing state in force, as metrics see them.
#[derive(Debug)]
pub(super) struct Figures {
    pub(super) reload: Arc<ReloadStatus>,
    /// Swapped by reloads: each scrape reads the pools in force then.
    pub(super) routing: Arc<ArcSwap<Routing>>,
}

impl GatewayView for Figures {
    fn reloads(&self) -> ReloadFigures {
        ReloadFigures {
            reloads: self.reload.reloads(),
            failures: self.reload.failures(),
            last_ok: self.reload.last_error().is_none(),
        }
    }

    fn providers(&self) -> Vec<ProviderFigures> {
        self.routing
            .load()
            .upstream_stats()
            .into_iter()
            .map(|s| ProviderFigures {
                provider: s.provider.as_str().to_owned(),
                in_flight: s.in_flight,
                shed: s.shed,
                instances: s
                    .instances
                    .into_iter()
                    .map(|i| InstanceFigures {
                        addr: i.addr,
                        state: i.state.as_str(),
                        ejected: i.state.ejects(),
                        ejections: i.ejections,
                    })
                    .collect(),
            })
            .collect()
    }
}

/// Readiness's question to a shared consent store: does it answer now?
/// Asked through the store, so the answer reads as its callers' errors do.
#[derive(Debug)]
pub(super) struct StoreProbe(pub(super) Arc<dyn ConsentStore>);

impl Probe for StoreProbe {
    fn probe(&self) -> ProbeFuture<'_> {
        Box::pin(async move { self.0.ping().await.map_err(|e| e.to_string()) })
    }
}
