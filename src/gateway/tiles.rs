//! The gateway's side of the tiles (`[audit.tiles]`): their TLS config,
//! loaded at build, and their listener, bound before [`super::run`] (to
//! learn its address) or by `run` itself, like the console's.

use super::{Gateway, StartError};
use crate::audit::tiles::Tiles;
use crate::config::Config;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What serving the tiles needs: the log's view and the certificate.
pub(super) struct Served {
    tiles: Tiles,
    tls: Arc<rustls::ServerConfig>,
    listen: SocketAddr,
}

/// The tiles of `config`, if `[audit.tiles]` turns them on.
pub(super) fn open(
    config: &Config,
    log: &Arc<crate::audit::AuditLog>,
    witnessing: &Arc<crate::audit::witnessing::Witnessing>,
) -> Result<Option<Served>, StartError> {
    let Some(settings) = &config.audit.tiles else {
        return Ok(None);
    };
    Ok(Some(Served {
        tiles: Tiles::new(log.clone(), Some(witnessing.clone())),
        tls: crate::tls::web_server_config(&settings.cert, &settings.key)?,
        listen: settings.listen,
    }))
}

impl Gateway {
    /// Binds `[audit.tiles] listen` and returns the bound address (`None`
    /// when the tiles are not served); [`super::run`] then serves them.
    /// Without this call, `run` binds it itself.
    pub async fn bind_tiles(&self) -> std::io::Result<Option<SocketAddr>> {
        let Some(served) = &self.tiles else {
            return Ok(None);
        };
        let listener = TcpListener::bind(served.listen).await.map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {} for the tiles: {e}; check `[audit.tiles] listen` or free the port", served.listen))
        })?;
        let addr = listener.local_addr()?;
        *self
            .tiles_listener
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(listener);
        Ok(Some(addr))
    }

    /// Starts serving the tiles, if on; the sender stops them.
    pub(super) async fn start_tiles(
        &self,
    ) -> Option<(
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    )> {
        let served = self.tiles.as_ref()?;
        let bound = self
            .tiles_listener
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let listener = match bound {
            Some(listener) => listener,
            None => match self.bind_tiles().await {
                Ok(_) => self
                    .tiles_listener
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()?,
                Err(e) => {
                    tracing::error!(error = %e, "the tiles are not served");
                    return None;
                }
            },
        };
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(url = %format!("https://{addr}/checkpoint"), "serving the audit log as tlog-tiles");
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(crate::audit::tiles::serve(
            served.tiles.clone(),
            served.tls.clone(),
            listener,
            stopped,
            self.drain_timeout,
        ));
        Some((stop, task))
    }
}
