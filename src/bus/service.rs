//! The `jisr.bus.v1.Bus` gRPC service: the owner publishes, subscribers
//! stream or pull and acknowledge, and dead letters are listed and replayed.
//!
//! Each Subscribe stream is driven by its own task that fetches at most a
//! small batch at a time and hands deliveries to a bounded channel: a slow
//! subscriber fills its own channel and in-flight bound and waits there,
//! while the publisher and every other subscription go on.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use tokio::sync::watch;
use tonic::Status;

use super::deliver::{self, ConsentSource, Prepared, Receiver};
use super::store::{BusError, BusStore, Pending};
use super::{Topic, Topics};
use crate::audit::record::Recorder;
use crate::config::Role;
use crate::identity::AgencyId;
use crate::proto::jisr::bus::v1 as pb;
use crate::refusal::{Reason, Refusal};

/// Deliveries buffered per Subscribe stream before its task waits.
const STREAM_BUFFER: usize = 16;
/// Events fetched at a time by a stream.
pub(super) const BATCH: u32 = 32;
/// How often an idle stream looks for due redeliveries (and, with Redis,
/// for events published through other replicas).
pub(super) const POLL: Duration = Duration::from_millis(100);

pub(super) const SUBSCRIBE: &str = "/jisr.bus.v1.Bus/Subscribe";
const PULL: &str = "/jisr.bus.v1.Bus/Pull";
const PUBLISH: &str = "/jisr.bus.v1.Bus/Publish";
const REPLAY: &str = "/jisr.bus.v1.Bus/Replay";

/// What a call without a caller identity is told.
const HOW_TO_CALL: &str = "call the bus over the gateway's mutual TLS";

/// The bus API of a node.
#[derive(Clone)]
pub struct BusService {
    inner: Arc<Inner>,
}

pub(super) struct Inner {
    topics: Topics,
    pub(super) store: Arc<dyn BusStore>,
    recorder: Recorder,
    roles: HashMap<AgencyId, Vec<Role>>,
    consents: ConsentSource,
    timeout: Duration,
    ack_deadline: Duration,
    pub(super) max_in_flight: u32,
    /// Bumped on each publish through this node, per topic.
    pub(super) wake: HashMap<String, watch::Sender<u64>>,
    /// Set at the start of a drain: open streams end.
    pub(super) closing: watch::Sender<bool>,
    /// Deliveries counted, what retention found, data lost.
    figures: Arc<super::Figures>,
}

impl std::fmt::Debug for BusService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BusService")
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

/// What [`BusService::new`] needs.
#[derive(Debug)]
pub struct BusParts {
    /// The compiled topics.
    pub topics: Topics,
    /// The store.
    pub store: Arc<dyn BusStore>,
    /// The audit log.
    pub recorder: Recorder,
    /// Roles by agency.
    pub roles: HashMap<AgencyId, Vec<Role>>,
    /// Consents, for consent-based subscribers.
    pub consents: ConsentSource,
    /// Bound on each store operation.
    pub timeout: Duration,
    /// The ack deadline (reported in deliveries).
    pub ack_deadline: Duration,
    /// The in-flight bound per subscription.
    pub max_in_flight: u32,
    /// How long what no subscription owes is kept.
    pub retention: super::Retention,
    /// The bus's figures (the store was given them too).
    pub figures: Arc<super::Figures>,
}

/// The one place a store failure becomes a refusal; why the store failed
/// goes to the log, not to the caller.
fn store_refusal(e: BusError) -> Refusal {
    match e {
        BusError::Invalid(message) => Refusal::new(Reason::InvalidRequest, message),
        BusError::Unavailable(why) => {
            tracing::error!(error = %why, "bus store failure");
            Refusal::new(
                Reason::BusUnavailable,
                "the bus store cannot be reached; retry shortly",
            )
        }
    }
}

pub(super) fn now_micros() -> i64 {
    crate::consent::artefact::now_micros()
}

type DeliveryStream = Pin<Box<dyn Stream<Item = Result<pb::Delivery, Status>> + Send>>;

impl BusService {
    /// A service over these parts.
    pub fn new(parts: BusParts) -> Self {
        let wake = parts
            .topics
            .names()
            .into_iter()
            .map(|n| (n.to_owned(), watch::channel(0).0))
            .collect();
        let closing = watch::channel(false).0;
        super::retention::start(
            Arc::downgrade(&parts.store),
            parts.figures.clone(),
            super::retention::Plan {
                topics: parts.topics.with_subscribers(),
                retention: parts.retention,
            },
            closing.subscribe(),
        );
        Self {
            inner: Arc::new(Inner {
                topics: parts.topics,
                store: parts.store,
                recorder: parts.recorder,
                roles: parts.roles,
                consents: parts.consents,
                timeout: parts.timeout,
                ack_deadline: parts.ack_deadline,
                max_in_flight: parts.max_in_flight,
                wake,
                closing,
                figures: parts.figures,
            }),
        }
    }

    /// The bus's figures, for metrics and readiness.
    pub fn figures(&self) -> Arc<super::Figures> {
        self.inner.figures.clone()
    }

    /// Ends every open Subscribe stream (at the start of a drain), so that
    /// long-lived streams do not hold the shutdown for the whole grace period.
    pub fn close_streams(&self) {
        self.inner.closing.send_replace(true);
    }
}

impl Inner {
    fn topic(&self, name: &str) -> Result<Arc<Topic>, Refusal> {
        self.topics.get(name).cloned().ok_or_else(|| {
            Refusal::new(
                Reason::UnknownTopic,
                format!(
                    "no topic `{name}` on this gateway; topics: {}",
                    self.topics.names().join(", ")
                ),
            )
        })
    }

    pub(super) async fn bounded<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, BusError>>,
    ) -> Result<T, Refusal> {
        self.bounded_for(Duration::ZERO, work).await
    }

    /// [`Inner::bounded`] for work that may wait `extra` on purpose (a
    /// blocked read).
    pub(super) async fn bounded_for<T>(
        &self,
        extra: Duration,
        work: impl std::future::Future<Output = Result<T, BusError>>,
    ) -> Result<T, Refusal> {
        let bound = self.timeout + extra;
        match tokio::time::timeout(bound, work).await {
            Ok(r) => r.map_err(store_refusal),
            Err(_) => Err(store_refusal(BusError::Unavailable(format!(
                "no answer within {bound:?}"
            )))),
        }
    }

    /// The id `subscriber` acknowledges the store's delivery `id` with.
    pub(super) fn ack_id(&self, topic: &str, subscriber: &str, id: &str) -> String {
        super::ack_id::mint(&self.recorder.pseudonyms, topic, subscriber, id)
    }

    pub(super) async fn prepare_all(
        &self,
        topic: &Topic,
        rx: Receiver<'_>,
        batch: Vec<Pending>,
    ) -> Result<Vec<pb::Delivery>, Refusal> {
        // Prepared together, so their audit entries share one fsync.
        let prepared = futures_util::future::join_all(batch.iter().map(|p| {
            deliver::prepare(
                &self.recorder,
                &self.recorder.pseudonyms,
                &self.consents,
                topic,
                rx,
                p,
                self.ack_deadline,
            )
        }))
        .await;
        let mut out = Vec::new();
        let (mut refused, mut later) = (Vec::new(), Vec::new());
        for (p, prepared) in batch.into_iter().zip(prepared) {
            match prepared {
                Prepared::Send(d) => {
                    self.figures.delivered(&topic.name, rx.agency, d.attempt);
                    out.push(*d);
                }
                Prepared::Refused => refused.push(p.id),
                Prepared::Later => later.push(p.id),
            }
        }
        if !refused.is_empty() {
            self.bounded(self.store.ack(&topic.name, rx.agency, &refused))
                .await?;
        }
        if !later.is_empty() {
            self.bounded(self.store.release(&topic.name, rx.agency, &later, false))
                .await?;
        }
        Ok(out)
    }
}

pub(crate) mod checks;
mod rpc;
