//! The listener: TLS handshakes, the caller's identity (read once per
//! connection), HTTP/2 serving and graceful shutdown.

use super::connections::{Activity, Busy, Connections, Expired, Place, Tracked};
use super::lanes::Lanes;
use super::Gateway;
use crate::identity::{AgencyId, PeerIdentity};
use crate::telemetry::TlsFailure;
use crate::tls;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a connection sent GOAWAY for idleness may take to close
/// before it is cut.
const GOAWAY_GRACE: Duration = Duration::from_secs(10);
/// Concurrent calls per connection.
const MAX_STREAMS: u32 = 1024;

/// Serves a built gateway on `listener`, and `/metrics`, `/healthz` and
/// `/readyz` on `admin` (none when `None`), until `shutdown` resolves:
/// [`listen`] then [`Listening::serve`].
///
/// This is what `jisr serve`, the demo and the black-box tests run, each
/// after [`Gateway::build`]: the gateway is built before any port is bound,
/// so a config error is reported first (not hidden by a busy port), and a
/// test learns of it before it has an address to call.
pub async fn run(
    gateway: Gateway,
    listener: TcpListener,
    admin: Option<TcpListener>,
    shutdown: impl Future<Output = ()>,
) {
    listen(gateway, listener, admin).await.serve(shutdown).await;
}

/// A gateway about to serve: its SIGHUP handler is installed, its listener
/// advertised to the other replicas and its admin listener answering.
/// Whatever tells the outside world the node is up (`serve --addr-file`)
/// comes after [`listen`], so a SIGHUP sent once it is seen is a reload,
/// never lost nor the signal's default action (terminate).
#[derive(Debug)]
pub struct Listening {
    gateway: Arc<Gateway>,
    listener: TcpListener,
    hangup: Option<tokio::signal::unix::Signal>,
}

/// Readies a built gateway to serve on `listener` (and the admin listener):
/// see [`Listening`].
pub async fn listen(
    gateway: Gateway,
    listener: TcpListener,
    admin: Option<TcpListener>,
) -> Listening {
    // First, before any await: from here on SIGHUP is queued for the watcher.
    let hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; reload on file change only");
            None
        }
    };
    let node = gateway.routing().config.node.id.clone();
    match listener.local_addr() {
        Ok(addr) => {
            tracing::info!(%node, %addr, methods = gateway.routing().methods(), "gateway listening");
            gateway.advertise(addr).await;
        }
        Err(e) => {
            tracing::warn!(%node, error = %e, "gateway listening on an address it cannot name")
        }
    }
    // The first answer before `/readyz` is served, then one in the
    // background every interval: a `/readyz` request never waits on Redis.
    gateway.telemetry.ready().probe_store().await;
    let telemetry = gateway.telemetry.clone();
    tokio::spawn(async move {
        let stopped = telemetry.stopped();
        telemetry.ready().probe_store_until(stopped).await;
    });
    if let Some(admin) = admin {
        if let Ok(addr) = admin.local_addr() {
            tracing::info!(%addr, "admin listener (/metrics, /healthz, /readyz)");
        }
        gateway.spawn_admin(admin);
    }
    Listening {
        gateway: Arc::new(gateway),
        listener,
        hangup,
    }
}

impl Listening {
    /// The gateway about to serve (its reload status, telemetry, …).
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// Serves until `shutdown` resolves, reloading the configuration on
    /// SIGHUP and when its files change (see [`super::reload`]). Then stops
    /// accepting, lets in-flight calls finish within the drain timeout,
    /// closes the audit log with a final checkpoint, and returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        serve(self.gateway, self.listener, self.hangup, shutdown).await;
    }
}

/// Accepts connections until `shutdown` resolves, then drains and closes.
async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    hangup: Option<tokio::signal::unix::Signal>,
    shutdown: impl Future<Output = ()>,
) {
    let connections = Connections::new(gateway.routing().config.node.connections);
    let watcher_task = super::reload::spawn_watcher(gateway.clone(), hangup);
    tokio::spawn(gateway.clone().watch_audit());
    tokio::pin!(shutdown);
    let lanes = start_lanes(&gateway);
    let console = gateway.start_console().await;
    let tiles = gateway.start_tiles().await;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let accepted = Instant::now();
                    // Over the cap: closed at once, before any TLS work.
                    let Some(place) = connections.admit(peer) else {
                        drop(tcp);
                        continue;
                    };
                    let gateway = gateway.clone();
                    // Looked up per connection so reloaded certificates
                    // apply to the next handshake; open connections keep theirs.
                    let acceptor = TlsAcceptor::from(gateway.routing().server_tls().clone());
                    let connection = move |tcp| async move {
                        let deadline = accepted + place.limits().first_request;
                        if let Some((stream, consumer)) = handshake(&gateway, &acceptor, tcp, (peer, deadline)).await {
                            let activity = Activity::new(accepted);
                            serve_connection(gateway, stream, consumer, (place, activity)).await;
                        }
                    };
                    match &lanes {
                        Some(lanes) => on_lane(lanes, tcp, peer, connection),
                        None => drop(tokio::spawn(connection(tcp))),
                    }
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off, don't spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    watcher_task.abort();
    // Their pages and tiles finish within the drain timeout, before the
    // log closes.
    for (stop, task) in console.into_iter().chain(tiles) {
        let _ = stop.send(true);
        let _ = task.await;
    }
    drain(&gateway, &connections, lanes).await;
}

/// The lanes' threads, or none (and an error line) when they cannot start:
/// the node then serves on the shared runtime rather than not at all.
fn start_lanes(gateway: &Gateway) -> Option<Lanes> {
    match Lanes::start(gateway.lanes) {
        Ok(lanes) => {
            tracing::info!(
                lanes = lanes.count(),
                "serving connections on one thread per lane"
            );
            gateway.telemetry.metrics().set_lanes(lanes.open_counts());
            Some(lanes)
        }
        Err(e) => {
            tracing::error!(error = %e, lanes = gateway.lanes, "cannot start the lanes' threads; serving on the shared runtime instead (slower); check the process's thread limit (ulimit -u)");
            None
        }
    }
}

/// Stops serving: `NOT_SERVING`, the open connections' calls finish within
/// the drain timeout, the rest are closed, then the audit log is closed
/// with a final checkpoint.
async fn drain(gateway: &Gateway, connections: &Connections, lanes: Option<Lanes>) {
    gateway.set_not_serving().await;
    tracing::info!(
        connections = connections.count(),
        "draining in-flight calls"
    );
    connections.drain();
    match tokio::time::timeout(gateway.drain_timeout, connections.all_closed()).await {
        Ok(()) => tracing::info!("drained; gateway stopped"),
        Err(_) => {
            tracing::warn!(timeout = ?gateway.drain_timeout, "drain timed out; closing the remaining connections")
        }
    }
    if let Some(lanes) = lanes {
        // Cancels what the drain left: the remaining connections close.
        lanes.stop().await;
    }
    gateway.close().await;
    tracing::info!("audit log closed with a final checkpoint");
}

/// Moves an accepted connection to a lane: the socket leaves this
/// runtime's reactor and joins the lane's, where `serve` runs.
fn on_lane<F, Fut>(lanes: &Lanes, tcp: TcpStream, peer: SocketAddr, serve: F)
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let tcp = match tcp.into_std() {
        Ok(tcp) => tcp,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "accepted connection dropped: it could not be handed to a lane");
            return;
        }
    };
    lanes.spawn(async move {
        match TcpStream::from_std(tcp) {
            Ok(tcp) => serve(tcp).await,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "accepted connection dropped: its lane could not watch it");
            }
        }
    });
}

/// Who is on the other end of a connection.
#[derive(Clone, Debug)]
enum Connected {
    /// An agency: every call it makes is checked against the rules.
    Agency(AgencyId),
    /// A configured peer replica: audit reads only (see [`super::peer`]).
    Peer(AgencyId),
}

/// Completes the TLS handshake and reads the caller's identity; `None` (and
/// a log line saying why) when the peer is refused.
async fn handshake(
    gateway: &Arc<Gateway>,
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    (peer, deadline): (SocketAddr, Instant),
) -> Option<(TlsStream<TcpStream>, Connected)> {
    let _ = tcp.set_nodelay(true);
    // The handshake counts towards `first_request_timeout_ms`.
    let stream = match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                // Load balancers' and orchestrators' TCP probes connect and
                // close: routine, not a refused peer.
                tracing::debug!(%peer, "connection closed before the TLS handshake completed");
                gateway.telemetry.metrics().tls_failure(TlsFailure::Closed);
            } else {
                gateway.telemetry.metrics().tls_failure(TlsFailure::of(&e));
                tracing::warn!(%peer, reason = %tls::handshake_failure_reason(&e), "TLS handshake refused");
            }
            return None;
        }
        Err(_) => {
            gateway.telemetry.metrics().tls_failure(TlsFailure::Timeout);
            tracing::warn!(%peer, "TLS handshake timed out");
            return None;
        }
    };
    let certs = stream.get_ref().1.peer_certificates();
    let identity = tls::peer_identity(certs, &gateway.domain);
    let consumer = match identity {
        Ok(PeerIdentity::Agency(id)) if gateway.routing().config.agency(&id).is_some() => {
            if let Some(leaf) = certs.and_then(|c| c.first()) {
                let seen = gateway.telemetry.metrics().certificates();
                seen.saw(&id, tls::seen::Side::Caller, leaf);
            }
            Connected::Agency(id)
        }
        Ok(PeerIdentity::Agency(id)) => {
            // Refused before any request: an agency the node does not know
            // can neither call its services nor add entries to its log.
            gateway
                .telemetry
                .metrics()
                .tls_failure(TlsFailure::Undeclared);
            tracing::warn!(%peer, agency = %id, "connection refused: the agency's certificate is valid but the configuration does not declare it; add an [[agency]] for it (`jisr agency add`) if it should call");
            return None;
        }
        Ok(PeerIdentity::Gateway(node)) if gateway.admits_peer(&node) => {
            tracing::debug!(%peer, %node, "peer node connected");
            return Some((stream, Connected::Peer(node)));
        }
        Ok(other) => {
            gateway
                .telemetry
                .metrics()
                .tls_failure(TlsFailure::Identity);
            tracing::warn!(%peer, identity = ?other, "connection refused: only agencies and peer nodes ([cluster] peers, else nodes live in the replica registry) may call the gateway");
            return None;
        }
        Err(e) => {
            gateway
                .telemetry
                .metrics()
                .tls_failure(TlsFailure::Identity);
            tracing::warn!(%peer, reason = %e, "connection refused");
            return None;
        }
    };
    tracing::debug!(%peer, ?consumer, "agency connected");
    Some((stream, consumer))
}

/// Serves HTTP/2 on an authenticated connection until it closes, the
/// gateway drains, no request comes within `first_request_timeout_ms`, or
/// no call runs for `idle_timeout_ms`.
async fn serve_connection(
    gateway: Arc<Gateway>,
    stream: TlsStream<TcpStream>,
    consumer: Connected,
    (place, activity): (Place, Arc<Activity>),
) {
    let limits = place.limits();
    let mut draining = place.draining();
    if *draining.borrow_and_update() {
        return;
    }
    let calls = activity.clone();
    let service = service_fn(move |request| {
        let gateway = gateway.clone();
        let consumer = consumer.clone();
        let busy = Busy::new(&calls);
        // Boxed: the call's future is several kilobytes, and hyper moves
        // what it is given into the stream's task (a copy per move).
        Box::pin(async move {
            let response = match &consumer {
                Connected::Agency(agency) => gateway.dispatch(request, agency).await,
                Connected::Peer(node) => gateway.dispatch_peer(request, node).await,
            };
            Ok::<_, Infallible>(response.map(|body| Tracked { body, _busy: busy }))
        })
    });
    let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        // Static windows wide enough for the largest message: the adaptive
        // window's bandwidth probes cost a PING round per burst of calls.
        .initial_stream_window_size(super::STREAM_WINDOW)
        .initial_connection_window_size(super::CONNECTION_WINDOW)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let (mut goaway_sent, mut cut_at) = (false, None);
    loop {
        let wake = match (cut_at, activity.next(limits)) {
            (Some(at), _) | (None, Ok(at)) => at,
            (None, Err(Expired::NoRequest)) => {
                tracing::debug!(timeout = ?limits.first_request, "connection closed: no request within first_request_timeout_ms");
                return;
            }
            (None, Err(Expired::Idle)) => {
                tracing::debug!(timeout = ?limits.idle, "idle connection sent GOAWAY (idle_timeout_ms)");
                if !goaway_sent {
                    connection.as_mut().graceful_shutdown();
                    goaway_sent = true;
                }
                cut_at = Some(Instant::now() + GOAWAY_GRACE);
                continue;
            }
        };
        tokio::select! {
            ended = connection.as_mut() => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = draining.changed(), if !goaway_sent => {
                connection.as_mut().graceful_shutdown();
                goaway_sent = true;
            }
            () = tokio::time::sleep_until(wake) => {
                if cut_at.is_some_and(|at| at <= Instant::now()) {
                    tracing::debug!("connection cut: still open after GOAWAY");
                    return;
                }
            }
        }
    }
}
