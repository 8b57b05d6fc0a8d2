//! Bounds on client connections: a node-wide cap on open ones, a deadline
//! for the first request, an idle time after which a connection is sent
//! GOAWAY, and the drain at shutdown. Without them a client that completes
//! the TLS handshake and then says nothing holds a file descriptor and
//! memory for ever (issue 19: 1,500 such connections took the RSS from 21
//! to 62 MB).

use crate::config::ConnectionLimits;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::{watch, Notify};
use tokio::time::{Duration, Instant};

/// How often, at most, a refused connection is logged: a flood of them
/// must not become a flood of log lines.
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// The node's open client connections.
#[derive(Debug)]
pub(super) struct Connections {
    open: AtomicUsize,
    closed: Notify,
    draining: watch::Sender<bool>,
    limits: ConnectionLimits,
    refused: AtomicU64,
    last_logged: Mutex<Option<Instant>>,
}

impl Connections {
    pub(super) fn new(limits: ConnectionLimits) -> Arc<Self> {
        Arc::new(Self {
            open: AtomicUsize::new(0),
            closed: Notify::new(),
            draining: watch::Sender::new(false),
            limits,
            refused: AtomicU64::new(0),
            last_logged: Mutex::new(None),
        })
    }

    /// A place for a connection just accepted from `peer`, or `None` (and,
    /// at most every ten seconds, a warning) when `max_connections` are open.
    pub(super) fn admit(self: &Arc<Self>, peer: SocketAddr) -> Option<Place> {
        let before = self.open.fetch_add(1, Ordering::AcqRel);
        let place = Place(self.clone());
        if before < self.limits.max {
            return Some(place);
        }
        drop(place);
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let now = Instant::now();
        let mut last = self.last_logged.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| now.duration_since(at) >= REFUSAL_LOG_EVERY) {
            *last = Some(now);
            tracing::warn!(%peer, max_connections = self.limits.max, refused_since_start = refused, "connection refused: the node already has [node] max_connections open; find the client holding them (the gateway's connection count is in its metrics) or raise the limit");
        }
        None
    }

    /// Open connections now.
    pub(super) fn count(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Tells every open connection to finish its calls and close (GOAWAY).
    pub(super) fn drain(&self) {
        self.draining.send_replace(true);
    }

    /// Whether the node is draining, and a receiver that says when it starts.
    pub(super) fn draining(&self) -> watch::Receiver<bool> {
        self.draining.subscribe()
    }

    /// Returns once no connection is open.
    pub(super) async fn all_closed(&self) {
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            if self.count() == 0 {
                return;
            }
            closed.await;
        }
    }
}

/// One open connection's place under the cap; given back when dropped.
#[derive(Debug)]
pub(super) struct Place(Arc<Connections>);

impl Place {
    /// The node's connection limits.
    pub(super) fn limits(&self) -> ConnectionLimits {
        self.0.limits
    }

    /// Says when the node starts draining.
    pub(super) fn draining(&self) -> watch::Receiver<bool> {
        self.0.draining()
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.closed.notify_waiters();
        }
    }
}

/// Why a connection's time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expired {
    /// No request arrived within `first_request_timeout_ms` of the accept.
    NoRequest,
    /// No call has been in flight for `idle_timeout_ms`.
    Idle,
}

/// The calls on one connection: whether one has come, how many run, and
/// since when none has.
#[derive(Debug)]
pub(super) struct Activity {
    accepted: Instant,
    started: AtomicBool,
    calls: AtomicUsize,
    idle_since: Mutex<Instant>,
}

impl Activity {
    pub(super) fn new(accepted: Instant) -> Arc<Self> {
        Arc::new(Self {
            accepted,
            started: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
            idle_since: Mutex::new(accepted),
        })
    }

    /// When to look again, or why the connection's time has run out.
    pub(super) fn next(&self, limits: ConnectionLimits) -> Result<Instant, Expired> {
        let now = Instant::now();
        if !self.started.load(Ordering::Acquire) {
            let deadline = self.accepted + limits.first_request;
            return if now >= deadline {
                Err(Expired::NoRequest)
            } else {
                Ok(deadline)
            };
        }
        if self.calls.load(Ordering::Acquire) > 0 {
            return Ok(now + limits.idle);
        }
        let since = *self.idle_since.lock().unwrap_or_else(|e| e.into_inner());
        if now >= since + limits.idle {
            Err(Expired::Idle)
        } else {
            Ok(since + limits.idle)
        }
    }
}

/// A call in flight on a connection, from its request's headers until its
/// response body is done or dropped.
#[derive(Debug)]
pub(super) struct Busy(Arc<Activity>);

impl Busy {
    pub(super) fn new(activity: &Arc<Activity>) -> Self {
        activity.calls.fetch_add(1, Ordering::AcqRel);
        activity.started.store(true, Ordering::Release);
        Self(activity.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        *self.0.idle_since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.0.calls.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its call counted as in flight until hyper
/// has sent (or dropped) it: a server-streaming call is not idle.
pub(super) struct Tracked<B> {
    pub(super) body: B,
    pub(super) _busy: Busy,
}

impl<B> Body for Tracked<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
