//! The gateway's side of the web console: the view of the current routing
//! the console reads ([`crate::console::Backend`]), and its listener,
//! bound before [`super::run`] (to learn its address) or by `run` itself.

use super::{Gateway, Routing, StartError};
use crate::audit::service::AuditService;
use crate::config::{Config, Role};
use crate::consent::service::ConsentService;
use crate::console::{Backend, Console};
use crate::identity::AgencyId;
use crate::telemetry::Telemetry;
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What the console reads: the routing in force (its roles and audit API).
struct View {
    routing: Arc<ArcSwap<Routing>>,
    /// The audit API as built, should a routing lack its own (it never
    /// does once finished).
    fallback: AuditService,
    /// The Consents API as built; the current roles are set per request.
    consents: ConsentService,
    telemetry: Arc<Telemetry>,
}

impl Backend for View {
    fn audit(&self) -> AuditService {
        self.routing
            .load()
            .audit
            .clone()
            .unwrap_or_else(|| self.fallback.clone())
    }

    fn roles(&self, agency: &AgencyId) -> Option<Vec<Role>> {
        self.routing
            .load()
            .config
            .agency(agency)
            .map(|a| a.roles.clone())
    }

    fn labels(&self) -> crate::config::Labels {
        self.routing.load().config.labels.clone()
    }

    fn category(&self, method: &str) -> &'static str {
        self.routing
            .load()
            .catalogue
            .get(method)
            .map_or("unspecified", |m| m.category.as_str())
    }

    fn config(&self) -> Config {
        self.routing.load().config.clone()
    }

    fn catalogue(&self) -> crate::catalogue::Catalogue {
        self.routing.load().catalogue.clone()
    }

    fn consents(&self) -> ConsentService {
        let routing = self.routing.load();
        let mut consents = self.consents.clone();
        consents.roles = Arc::new(super::routing::roles(&routing.config));
        consents.purposes = Arc::new(
            routing
                .config
                .purposes
                .iter()
                .map(|p| p.code.clone())
                .collect(),
        );
        consents
    }

    fn telemetry(&self) -> Arc<Telemetry> {
        self.telemetry.clone()
    }
}

/// The console of `config`, if `[console]` turns it on.
pub(super) fn open(
    config: &Config,
    routing: &Arc<ArcSwap<Routing>>,
    (audit, consents): (&AuditService, &ConsentService),
    recorder: &crate::audit::record::Recorder,
    telemetry: &Arc<Telemetry>,
    redis: Option<&crate::redis::Shared>,
) -> Result<Option<Arc<Console>>, StartError> {
    let Some(settings) = &config.console else {
        return Ok(None);
    };
    let view = View {
        routing: routing.clone(),
        fallback: audit.clone(),
        consents: consents.clone(),
        telemetry: telemetry.clone(),
    };
    let console = Console::open(settings, Arc::new(view), recorder.clone(), redis.cloned())?;
    Ok(Some(Arc::new(console)))
}

impl Gateway {
    /// Binds `[console] listen` and returns the bound address (`None` when
    /// the console is off); [`super::run`] then serves it. Without this
    /// call, `run` binds it itself.
    pub async fn bind_console(&self) -> std::io::Result<Option<SocketAddr>> {
        let Some(settings) = &self.routing().config.console else {
            return Ok(None);
        };
        let listener = TcpListener::bind(settings.listen).await.map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {} for the console: {e}; check `console.listen` or free the port", settings.listen))
        })?;
        let addr = listener.local_addr()?;
        *self
            .console_listener
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(listener);
        Ok(Some(addr))
    }

    /// Starts serving the console, if on; the sender stops it.
    pub(super) async fn start_console(
        &self,
    ) -> Option<(
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    )> {
        let console = self.console.clone()?;
        let bound = self
            .console_listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let listener = match bound {
            Some(listener) => listener,
            None => match self.bind_console().await {
                Ok(_) => self
                    .console_listener
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()?,
                Err(e) => {
                    tracing::error!(error = %e, "the console is not served");
                    return None;
                }
            },
        };
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(url = %format!("https://{addr}/"), "console listening; sign in with `jisr console login --as <agency>`");
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(crate::console::serve(
            console,
            listener,
            stopped,
            self.drain_timeout,
        ));
        Some((stop, task))
    }
}
