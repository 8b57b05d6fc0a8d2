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
use prost_reflect::DynamicMessage;
use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status};

use super::deliver::{self, ConsentSource, Prepared, Receiver};
use super::store::{BusError, BusStore, Pending, StoredEvent};
use super::{Subscriber, Topic, Topics};
use crate::audit::record::{Ending, Recorder, Trail};
use crate::config::Role;
use crate::identity::{AgencyId, Caller};
use crate::proto::jisr::audit::v1::{Kind, Outcome};
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
                closing: watch::channel(false).0,
            }),
        }
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
        match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r.map_err(store_refusal),
            Err(_) => Err(store_refusal(BusError::Unavailable(format!(
                "no answer within {:?}",
                self.timeout
            )))),
        }
    }

    /// Records a publish or subscription decision and waits for it.
    async fn audit(
        &self,
        trail: &Trail,
        kind: Kind,
        refused: Option<Reason>,
    ) -> Result<(), Refusal> {
        let ending = Ending {
            outcome: if refused.is_some() {
                Outcome::Refused
            } else {
                Outcome::Allowed
            },
            reason: refused.map_or("", Reason::as_str),
            grpc_status: 0,
            response_digest: None,
        };
        self.recorder
            .record_kind(trail, ending, kind)
            .await
            .map(drop)
            .map_err(|e| {
                tracing::error!(error = %e, "bus entry not recorded");
                Refusal::new(
                    Reason::AuditUnavailable,
                    "the audit log cannot record this right now, so it is not done; retry later",
                )
            })
    }

    fn trail(caller: &AgencyId, method: &str, topic: &Topic) -> Trail {
        let mut trail = Trail::start(
            &format!("{:032x}", rand::random::<u128>()),
            caller.as_str(),
            method,
            &http::HeaderMap::new(),
        );
        trail.provider = topic.owner.to_string();
        trail.topic.clone_from(&topic.name);
        trail
    }

    /// The subscriber's terms, if `caller` may receive `topic` for `purpose`;
    /// a refusal is recorded.
    async fn subscriber(
        &self,
        caller: &AgencyId,
        topic: &Topic,
        purpose: &str,
        method: &str,
    ) -> Result<Subscriber, Refusal> {
        let mut trail = Self::trail(caller, method, topic);
        trail.purpose = purpose.to_owned();
        let refusal = match topic.subscribers.get(caller) {
            None => Refusal::new(Reason::AccessDenied, format!("`{caller}` is not a subscriber of topic `{}`; the operator adds a [[topic.subscriber]] entry for it", topic.name)),
            Some(s) if !s.purposes.iter().any(|p| p == purpose) => Refusal::new(Reason::PurposeNotAllowed, format!("`{caller}` receives topic `{}` only for: {}; send one of them in `purpose`", topic.name, s.purposes.join(", "))),
            Some(terms) => {
                let terms = terms.clone();
                // A stream opening is recorded; each pull is not (its
                // deliveries are), or a polling consumer would fill the log.
                if method == SUBSCRIBE {
                    trail.basis = terms.basis.to_string();
                    self.audit(&trail, Kind::Subscribed, None).await?;
                }
                return Ok(terms);
            }
        };
        if let Err(e) = self
            .audit(&trail, Kind::Subscribed, Some(refusal.reason))
            .await
        {
            tracing::error!(error = %e.message, "refused subscription not recorded");
        }
        Err(refusal)
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
                Prepared::Send(d) => out.push(*d),
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

#[tonic::async_trait]
impl pb::bus_server::Bus for BusService {
    async fn publish(
        &self,
        request: Request<pb::PublishRequest>,
    ) -> Result<Response<pb::PublishResponse>, Status> {
        let s = &self.inner;
        let caller = Caller::of(&request, HOW_TO_CALL)?;
        let req = request.into_inner();
        let topic = s.topic(&req.topic)?;
        let mut trail = Inner::trail(&caller, PUBLISH, &topic);
        if caller != topic.owner {
            let refusal = Refusal::new(
                Reason::AccessDenied,
                format!("only `{}` publishes on topic `{}`", topic.owner, topic.name),
            );
            if let Err(e) = s
                .audit(&trail, Kind::EventPublished, Some(refusal.reason))
                .await
            {
                tracing::error!(error = %e.message, "refused publish not recorded");
            }
            return Err(refusal.into());
        }
        let stored = checked_event(&topic, &caller, req)?;
        let subject = stored.subject.clone();
        let published = s
            .bounded(s.store.publish(&topic.name, &topic.subscriber_ids, stored))
            .await?;
        trail.event_id.clone_from(&published.event_id);
        if !subject.is_empty() {
            trail.subject = Some(s.recorder.pseudonyms.pseudonym(&subject));
        }
        let ending = Ending {
            outcome: Outcome::Allowed,
            reason: if published.duplicate { "DUPLICATE" } else { "" },
            grpc_status: 0,
            response_digest: None,
        };
        s.recorder.record_kind(&trail, ending, Kind::EventPublished).await.map_err(|e| {
            tracing::error!(error = %e, event = %published.event_id, "publish stored but not recorded in the audit log");
            Refusal::new(Reason::AuditUnavailable, "the event is stored but its publish could not be recorded; retry with the same idempotency key")
        })?;
        if let Some(wake) = s.wake.get(&topic.name) {
            wake.send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(Response::new(pb::PublishResponse {
            event_id: published.event_id,
            duplicate: published.duplicate,
        }))
    }

    type SubscribeStream = DeliveryStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let caller = Caller::of(&request, HOW_TO_CALL)?;
        let req = request.into_inner();
        let topic = self.inner.topic(&req.topic)?;
        let terms = self
            .inner
            .subscriber(&caller, &topic, &req.purpose, SUBSCRIBE)
            .await?;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let inner = self.inner.clone();
        tokio::spawn(async move {
            super::stream::run(inner, topic, caller, terms, req.purpose, tx).await;
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn pull(
        &self,
        request: Request<pb::PullRequest>,
    ) -> Result<Response<pb::PullResponse>, Status> {
        let s = &self.inner;
        let caller = Caller::of(&request, HOW_TO_CALL)?;
        let req = request.into_inner();
        let topic = s.topic(&req.topic)?;
        let max = match req.max_events {
            0 => 100,
            n @ 1..=1000 => n,
            n => {
                return Err(Refusal::new(
                    Reason::InvalidRequest,
                    format!("`max_events` = {n} is too many; ask for 1 to 1000"),
                )
                .into())
            }
        };
        let wait = Duration::from_millis(u64::from(req.wait_ms.min(30_000)));
        let terms = s.subscriber(&caller, &topic, &req.purpose, PULL).await?;
        let rx = Receiver {
            agency: caller.as_str(),
            terms: &terms,
            purpose: &req.purpose,
            method: PULL,
        };
        let until = tokio::time::Instant::now() + wait;
        let mut woken = s.wake.get(&topic.name).map(watch::Sender::subscribe);
        loop {
            if let Some(w) = woken.as_mut() {
                w.borrow_and_update();
            }
            let batch = s
                .bounded(
                    s.store
                        .fetch(&topic.name, caller.as_str(), max, now_micros()),
                )
                .await?;
            let deliveries = s.prepare_all(&topic, rx, batch).await?;
            if !deliveries.is_empty() || tokio::time::Instant::now() >= until {
                return Ok(Response::new(pb::PullResponse { deliveries }));
            }
            let nap = tokio::time::sleep_until(until.min(tokio::time::Instant::now() + POLL));
            match woken.as_mut() {
                Some(w) => {
                    tokio::select! {
                        _ = w.changed() => {}
                        () = nap => {}
                    }
                }
                None => nap.await,
            }
        }
    }

    async fn ack(
        &self,
        request: Request<pb::AckRequest>,
    ) -> Result<Response<pb::AckResponse>, Status> {
        let s = &self.inner;
        let caller = Caller::of(&request, HOW_TO_CALL)?;
        let req = request.into_inner();
        let topic = s.topic(&req.topic)?;
        if !topic.subscribers.contains_key(&caller) {
            return Err(Refusal::new(
                Reason::AccessDenied,
                format!("`{caller}` is not a subscriber of topic `{}`", topic.name),
            )
            .into());
        }
        if req.ids.len() > 10_000 {
            return Err(Refusal::new(
                Reason::InvalidRequest,
                "acknowledge at most 10000 ids per call",
            )
            .into());
        }
        let acknowledged = s
            .bounded(s.store.ack(&topic.name, caller.as_str(), &req.ids))
            .await?;
        Ok(Response::new(pb::AckResponse { acknowledged }))
    }

    async fn list_dead_letters(
        &self,
        request: Request<pb::ListDeadLettersRequest>,
    ) -> Result<Response<pb::ListDeadLettersResponse>, Status> {
        let s = &self.inner;
        let caller = Caller::of(&request, HOW_TO_CALL)?;
        let req = request.into_inner();
        let (topic, sub) = s.dead_letter_target(&caller, &req.topic, &req.subscriber)?;
        let limit = if req.limit == 0 {
            100
        } else {
            req.limit.min(10_000)
        };
        let dead = s
            .bounded(s.store.dead_letters(&topic.name, sub.as_str(), limit))
            .await?;
        Ok(Response::new(pb::ListDeadLettersResponse {
            dead_letters: dead
                .into_iter()
                .map(|d| pb::DeadLetter {
                    event_id: d.event_id,
                    topic: topic.name.clone(),
                    subscriber: sub.to_string(),
                    attempts: d.attempts,
                    reason: d.reason,
                    dead_unix_micros: d.dead_unix_micros,
                    published_unix_micros: d.event.published_unix_micros,
                    event_type: d
                        .event
                        .type_url
                        .rsplit('/')
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                })
                .collect(),
        }))
    }

    async fn replay(
        &self,
        request: Request<pb::ReplayRequest>,
    ) -> Result<Response<pb::ReplayResponse>, Status> {
        let s = &self.inner;
        let caller = Caller::of(&request, HOW_TO_CALL)?;
        let req = request.into_inner();
        let (topic, sub) = s.dead_letter_target(&caller, &req.topic, &req.subscriber)?;
        let replayed = s
            .bounded(
                s.store
                    .replay(&topic.name, sub.as_str(), &req.event_ids, now_micros()),
            )
            .await?;
        tracing::info!(topic = %topic.name, subscriber = %sub, by = %caller, replayed, "dead letters replayed");
        if let Some(wake) = s.wake.get(&topic.name) {
            wake.send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(Response::new(pb::ReplayResponse { replayed }))
    }
}

impl Inner {
    /// The subscription whose dead letters `caller` may see: its own, or any
    /// for an auditor.
    fn dead_letter_target(
        &self,
        caller: &AgencyId,
        topic: &str,
        subscriber: &str,
    ) -> Result<(Arc<Topic>, AgencyId), Refusal> {
        let topic = self.topic(topic)?;
        let sub = if subscriber.is_empty() {
            caller.clone()
        } else {
            AgencyId::parse(subscriber)
                .map_err(|e| Refusal::new(Reason::InvalidRequest, format!("`subscriber`: {e}")))?
        };
        let auditor = self
            .roles
            .get(caller)
            .is_some_and(|r| r.contains(&Role::Auditor));
        if &sub != caller && !auditor {
            return Err(Refusal::new(Reason::AccessDenied, format!("`{caller}` may only see its own dead letters; an agency with the `auditor` role sees every subscriber's")));
        }
        if !topic.subscribers.contains_key(&sub) {
            return Err(Refusal::new(
                Reason::UnknownSubscription,
                format!("`{sub}` does not subscribe to topic `{}`", topic.name),
            ));
        }
        Ok((topic, sub))
    }
}

/// The publish request's event, checked against its topic: the contract's
/// type, an idempotency key, a decodable message, and the citizen it names.
fn checked_event(
    topic: &Topic,
    caller: &AgencyId,
    req: pb::PublishRequest,
) -> Result<StoredEvent, Refusal> {
    let event = req.event.ok_or_else(|| {
        Refusal::new(
            Reason::InvalidRequest,
            format!(
                "`event` is required: a `{}` packed in a google.protobuf.Any",
                topic.event.full_name()
            ),
        )
    })?;
    if event.type_url != topic.type_url {
        return Err(Refusal::new(
            Reason::InvalidRequest,
            format!(
                "topic `{}` carries `{}` events, not `{}`; pack the event with type_url `{}`",
                topic.name,
                topic.event.full_name(),
                event.type_url,
                topic.type_url
            ),
        ));
    }
    let key = req.idempotency_key;
    if key.is_empty() || key.len() > 200 {
        return Err(Refusal::new(Reason::InvalidRequest, "`idempotency_key` is required (1 to 200 characters), e.g. the act number: a retried publish with the same key is the same event"));
    }
    let decoded =
        DynamicMessage::decode(topic.event.clone(), event.value.as_slice()).map_err(|e| {
            Refusal::new(
                Reason::InvalidRequest,
                format!(
                    "the event does not decode as `{}`: {e}",
                    topic.event.full_name()
                ),
            )
        })?;
    let subject = match topic.subject_of(&decoded) {
        Some(found) if !req.subject.is_empty() && req.subject != found => {
            return Err(Refusal::new(Reason::EventSubjectMismatch, "`subject` differs from the citizen id in the event; send the same id, or leave `subject` empty"));
        }
        Some(found) => found,
        None => req.subject,
    };
    if topic.subject_path.is_some() && subject.is_empty() {
        return Err(Refusal::new(
            Reason::InvalidRequest,
            "the event's citizen id field is empty: an event about a citizen must name the citizen",
        ));
    }
    Ok(StoredEvent {
        type_url: event.type_url,
        payload: event.value,
        subject,
        publisher: caller.to_string(),
        published_unix_micros: now_micros(),
        idempotency_key: key,
    })
}
