//! One HTTP/2 connection to a provider instance: opening it (TCP, TLS,
//! the HTTP/2 handshake), keeping it checked with PINGs, starting a call on
//! it, and reading the answer body.

use bytes::Bytes;
use http::Request;
use http_body::{Body, Frame};
use rustls_pki_types::ServerName;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{Upstream, UpstreamError};
use crate::identity::AgencyId;

/// How often an HTTP/2 PING checks that a provider connection still
/// answers, busy or idle: a peer gone silently (a host down, a firewall that
/// forgot the flow) would otherwise keep the connection "open" for ever.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// How long a keep-alive PING may wait for its answer before the
/// connection is dropped (and reopened by the next call).
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// One HTTP/2 connection: its request handle, and whether its connection
/// task has ended. The h2 client is used directly rather than through
/// hyper's: a request is then sent from the calling task (hyper hands each
/// one to the connection task over a channel and spawns a task per request
/// body).
#[derive(Clone)]
pub(super) struct Sender {
    send: h2::client::SendRequest<Bytes>,
    closed: Arc<AtomicBool>,
}

impl Sender {
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

pub(super) async fn connect(
    tls: &TlsConnector,
    server_name: &ServerName<'static>,
    addr: &str,
    provider: &AgencyId,
) -> Result<Sender, UpstreamError> {
    let tls = handshake(tls, server_name, addr).await?;
    let (send, connection) = h2::client::Builder::new()
        .initial_window_size(crate::gateway::STREAM_WINDOW)
        .initial_connection_window_size(crate::gateway::CONNECTION_WINDOW)
        .handshake::<_, Bytes>(tls)
        .await
        .map_err(|source| Upstream::http(addr, source))?;
    let closed = Arc::new(AtomicBool::new(false));
    let owner = provider.clone();
    let ended = closed.clone();
    let mut connection = connection;
    let pings = connection.ping_pong();
    tokio::spawn(async move {
        // The connection runs until it closes or stops answering pings;
        // dropping it then closes the socket and fails its calls.
        let outcome = match pings {
            Some(pings) => tokio::select! {
                result = &mut connection => result.map_err(|e| e.to_string()),
                why = keep_alive(pings) => {
                    tracing::warn!(provider = %owner, reason = %why, "upstream connection dropped");
                    Ok(())
                }
            },
            None => (&mut connection).await.map_err(|e| e.to_string()),
        };
        ended.store(true, Ordering::Release);
        if let Err(why) = outcome {
            tracing::debug!(provider = %owner, error = %why, "upstream connection closed");
        }
    });
    let sender = Sender { send, closed };
    tracing::debug!(%provider, %addr, "upstream connection opened");
    Ok(sender)
}

/// TCP and mutual TLS to one instance (the provider's identity checked).
pub(super) async fn handshake(
    tls: &TlsConnector,
    server_name: &ServerName<'static>,
    addr: &str,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, UpstreamError> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|source| UpstreamError::Connect {
            addr: addr.to_owned(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    tls.connect(server_name.clone(), tcp)
        .await
        .map_err(|e| UpstreamError::Tls {
            addr: addr.to_owned(),
            reason: crate::tls::handshake_failure_reason(&e),
        })
}

/// Pings the provider every [`KEEP_ALIVE_INTERVAL`]; returns why the
/// connection should be dropped.
async fn keep_alive(mut pings: h2::PingPong) -> String {
    loop {
        tokio::time::sleep(KEEP_ALIVE_INTERVAL).await;
        match tokio::time::timeout(KEEP_ALIVE_TIMEOUT, pings.ping(h2::Ping::opaque())).await {
            Ok(Ok(_pong)) => {}
            Ok(Err(e)) => return format!("keep-alive ping failed: {e}"),
            Err(_) => {
                return format!(
                    "no answer to a keep-alive ping within {} s; the connection is dropped",
                    KEEP_ALIVE_TIMEOUT.as_secs()
                )
            }
        }
    }
}

/// Waits until the connection may open one more stream; an error means the
/// connection is gone and nothing was sent on it.
pub(super) async fn ready(sender: &Sender) -> Result<h2::client::SendRequest<Bytes>, h2::Error> {
    sender.send.clone().ready().await
}

/// Opens a stream on a ready connection and sends the request on it
/// (headers and, if any, the whole body). The head is moved into h2, which
/// encodes it, rather than copied.
pub(super) async fn start(
    mut send: h2::client::SendRequest<Bytes>,
    request: Request<Bytes>,
) -> Result<h2::client::ResponseFuture, h2::Error> {
    let (parts, body) = request.into_parts();
    let head = Request::from_parts(parts, ());
    let (response, mut stream) = send.send_request(head, body.is_empty())?;
    if !body.is_empty() {
        // Wait for the stream to be given window before queueing the body.
        // Data queued earlier is held by h2 without waking the connection's
        // task, so it went out only at that connection's next event (another
        // call, a frame from the provider): milliseconds at moderate rates.
        stream.reserve_capacity(body.len());
        while stream.capacity() == 0 {
            match std::future::poll_fn(|cx| stream.poll_capacity(cx)).await {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        // Buffered by h2 and sent as the provider's window allows.
        stream.send_data(body, true)?;
    }
    Ok(response)
}

/// A provider's answer body: data frames, then trailers. Received bytes are
/// handed back to HTTP/2 flow control as they are read.
#[derive(Debug)]
pub struct RecvBody {
    stream: h2::RecvStream,
    data_done: bool,
    finished: bool,
}

impl RecvBody {
    pub(super) fn new(stream: h2::RecvStream) -> Self {
        Self {
            stream,
            data_done: false,
            finished: false,
        }
    }
}

impl Body for RecvBody {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
        if !this.data_done {
            match this.stream.poll_data(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    let _ = this.stream.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.finished = true;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(None) => this.data_done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
        match this.stream.poll_trailers(cx) {
            Poll::Ready(result) => {
                this.finished = true;
                Poll::Ready(result.transpose().map(|r| r.map(Frame::trailers)))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished
    }
}
