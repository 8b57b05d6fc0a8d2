//! Connections to a provider's back-end: several HTTP/2 connections over
//! mutual TLS, opened lazily, reused across calls and reopened when they
//! close. One connection is driven by one task, so a single connection would
//! cap throughput; calls are spread round-robin over the pool.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls_pki_types::ServerName;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::identity::AgencyId;

/// How long opening one connection (TCP + TLS + HTTP/2) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a call could not be delivered to the provider.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// TCP connect failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The upstream address.
        addr: String,
        /// The error.
        source: std::io::Error,
    },
    /// Connecting took too long.
    #[error("connecting to {addr} took more than {CONNECT_TIMEOUT:?}")]
    ConnectTimeout {
        /// The upstream address.
        addr: String,
    },
    /// The TLS handshake with the provider failed.
    #[error("TLS handshake with {addr} failed: {reason}")]
    Tls {
        /// The upstream address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// HTTP/2 failed on the connection.
    #[error("HTTP/2 error with {addr}: {source}")]
    Http {
        /// The upstream address.
        addr: String,
        /// The error.
        source: hyper::Error,
    },
}

type Sender = SendRequest<Full<Bytes>>;

/// The connection pool of one provider.
pub struct Upstream {
    provider: AgencyId,
    addr: String,
    server_name: ServerName<'static>,
    tls: TlsConnector,
    slots: Box<[Slot]>,
    next: AtomicUsize,
}

#[derive(Default)]
struct Slot {
    /// The live sender; a plain mutex held only to clone it.
    sender: Mutex<Option<Sender>>,
    /// Serialises reconnection so a burst of calls opens one connection.
    connecting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("provider", &self.provider)
            .field("addr", &self.addr)
            .field("connections", &self.slots.len())
            .finish()
    }
}

impl Upstream {
    /// A pool of `connections` connections to `addr` (`host:port`); the TLS
    /// config must verify the provider's identity.
    pub fn new(
        provider: AgencyId,
        addr: String,
        connections: usize,
        tls: Arc<rustls::ClientConfig>,
    ) -> Self {
        let host = addr.rsplit_once(':').map_or(addr.as_str(), |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        // The provider is authenticated by its SPIFFE id, not by this name;
        // it is only sent as SNI.
        let server_name = ServerName::try_from(host.to_owned()).unwrap_or_else(|_| {
            ServerName::try_from("provider.invalid").expect("a valid DNS name")
        });
        Self {
            provider,
            addr,
            server_name,
            tls: TlsConnector::from(tls),
            slots: (0..connections.max(1)).map(|_| Slot::default()).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// The provider agency.
    pub fn provider(&self) -> &AgencyId {
        &self.provider
    }

    /// The `host:port` of the provider.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends a request on one of the pool's connections. A request that a
    /// closed connection never started is retried once on a new connection.
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let slot = &self.slots[index];
        let mut sender = self.sender(slot).await?;
        match sender.try_send_request(request).await {
            Ok(response) => Ok(response),
            Err(mut failed) => match failed.take_message() {
                Some(request) => {
                    self.discard(slot, &sender);
                    let mut sender = self.sender(slot).await?;
                    sender
                        .send_request(request)
                        .await
                        .map_err(|source| self.http(source))
                }
                None => Err(self.http(failed.into_error())),
            },
        }
    }

    fn http(&self, source: hyper::Error) -> UpstreamError {
        UpstreamError::Http {
            addr: self.addr.clone(),
            source,
        }
    }

    fn live(slot: &Slot) -> Option<Sender> {
        let guard = slot.sender.lock().unwrap_or_else(|e| e.into_inner());
        guard.as_ref().filter(|s| !s.is_closed()).cloned()
    }

    fn discard(&self, slot: &Slot, dead: &Sender) {
        let mut guard = slot.sender.lock().unwrap_or_else(|e| e.into_inner());
        if guard
            .as_ref()
            .is_some_and(|s| s.is_closed() || dead.is_closed())
        {
            *guard = None;
        }
    }

    async fn sender(&self, slot: &Slot) -> Result<Sender, UpstreamError> {
        if let Some(sender) = Self::live(slot) {
            return Ok(sender);
        }
        let _connecting = slot.connecting.lock().await;
        if let Some(sender) = Self::live(slot) {
            return Ok(sender);
        }
        let sender = tokio::time::timeout(CONNECT_TIMEOUT, self.connect())
            .await
            .map_err(|_| UpstreamError::ConnectTimeout {
                addr: self.addr.clone(),
            })??;
        *slot.sender.lock().unwrap_or_else(|e| e.into_inner()) = Some(sender.clone());
        Ok(sender)
    }

    async fn connect(&self) -> Result<Sender, UpstreamError> {
        let tcp =
            TcpStream::connect(&self.addr)
                .await
                .map_err(|source| UpstreamError::Connect {
                    addr: self.addr.clone(),
                    source,
                })?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| UpstreamError::Tls {
                addr: self.addr.clone(),
                reason: crate::tls::handshake_failure_reason(&e),
            })?;
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .adaptive_window(true)
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_while_idle(true)
            .handshake(TokioIo::new(tls))
            .await
            .map_err(|source| self.http(source))?;
        let provider = self.provider.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%provider, error = %e, "upstream connection closed");
            }
        });
        tracing::debug!(provider = %self.provider, addr = %self.addr, "upstream connection opened");
        Ok(sender)
    }
}
