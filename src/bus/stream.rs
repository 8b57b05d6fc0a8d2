//! One Subscribe stream: a task that fetches small batches for the
//! subscription, prepares each delivery (consent, minimisation, audit) and
//! hands it to the stream's bounded buffer. A subscriber that stops reading
//! fills its own buffer and in-flight bound and waits there; the publisher
//! and every other subscription go on. An idle stream waits in the store
//! when it can (Redis: a blocked read, woken by a publish through any
//! replica), else for a publish through this node or its poll interval.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tonic::Status;

use super::deliver::Receiver;
use super::service::{now_micros, Inner, BATCH, POLL, SUBSCRIBE};
use super::store::{Pending, Waiter};
use super::{Subscriber, Topic};
use crate::identity::AgencyId;
use crate::proto::jisr::bus::v1 as pb;
use crate::refusal::Refusal;

/// Drives one Subscribe stream until the subscriber goes away or the node
/// drains; deliveries it sent and that are still unacknowledged when it ends
/// are released, so they are redelivered without waiting for the deadline.
pub(super) async fn run(
    inner: Arc<Inner>,
    topic: Arc<Topic>,
    caller: AgencyId,
    terms: Subscriber,
    purpose: String,
    tx: mpsc::Sender<Result<pb::Delivery, Status>>,
) {
    let mut stream = Subscription {
        inner: &inner,
        topic: &topic,
        caller: &caller,
        rx: Receiver {
            agency: caller.as_str(),
            terms: &terms,
            purpose: &purpose,
            method: SUBSCRIBE,
        },
        tx: &tx,
        woken: inner.wake.get(&topic.name).map(watch::Sender::subscribe),
        waiter: inner.store.waiter(),
        closing: inner.closing.subscribe(),
        cap: usize::try_from(inner.max_in_flight).unwrap_or(usize::MAX),
        sent: VecDeque::new(),
    };
    while stream.turn().await {}
    // Closes the blocked reader's connection before the release below.
    drop(stream.waiter.take());
    let sent = stream.sent.into_iter().collect();
    release(&inner, &topic.name, caller.as_str(), sent).await;
    tracing::debug!(topic = %topic.name, subscriber = %caller, "subscription stream ended");
}

/// The state of one stream between its turns.
struct Subscription<'a> {
    inner: &'a Inner,
    topic: &'a Topic,
    caller: &'a AgencyId,
    rx: Receiver<'a>,
    tx: &'a mpsc::Sender<Result<pb::Delivery, Status>>,
    /// Publishes through this node wake the stream before its next poll.
    woken: Option<watch::Receiver<u64>>,
    /// Waits in the store when nothing is due, if the store can.
    waiter: Option<Box<dyn Waiter>>,
    closing: watch::Receiver<bool>,
    /// How many sent ids are remembered: no more can be in flight.
    cap: usize,
    /// Deliveries sent and maybe not yet acknowledged, released at the end.
    sent: VecDeque<String>,
}

impl Subscription<'_> {
    /// One turn: fetch a batch, prepare it, send it. Returns whether the
    /// stream goes on.
    async fn turn(&mut self) -> bool {
        if *self.closing.borrow() || self.tx.is_closed() {
            return false;
        }
        if let Some(w) = self.woken.as_mut() {
            w.borrow_and_update();
        }
        let (inner, topic) = (self.inner, self.topic);
        let batch = match self.fetch().await {
            Some(Ok(b)) => b,
            Some(Err(refusal)) => {
                let _ = self.tx.send(Err(refusal.into())).await;
                return false;
            }
            None => return false,
        };
        if batch.is_empty() {
            // A waiter has waited already; without one, wait here.
            return self.waiter.is_some() || self.idle().await;
        }
        let deliveries = match inner.prepare_all(topic, self.rx, batch).await {
            Ok(d) => d,
            Err(refusal) => {
                let _ = self.tx.send(Err(refusal.into())).await;
                return false;
            }
        };
        if deliveries.is_empty() {
            // Everything was refused or put back (audit log or consent store
            // unavailable): wait before trying again rather than spin.
            return tokio::select! {
                () = tokio::time::sleep(POLL) => true,
                () = self.tx.closed() => false,
                _ = self.closing.changed() => false,
            };
        }
        self.send_all(deliveries).await
    }

    /// The next batch, through the waiter if there is one; `None` when the
    /// subscriber goes or the node drains meanwhile (a blocked read is
    /// abandoned then: its connection closes with the stream).
    async fn fetch(&mut self) -> Option<Result<Vec<Pending>, Refusal>> {
        let (inner, topic, sub) = (self.inner, self.topic, self.caller.as_str());
        let Some(waiter) = self.waiter.as_mut() else {
            let fetch = inner.store.fetch(&topic.name, sub, BATCH, now_micros());
            return Some(inner.bounded(fetch).await);
        };
        let extra = waiter.longest_wait();
        let fetch = waiter.fetch_waiting(&topic.name, sub, BATCH, now_micros());
        tokio::select! {
            r = inner.bounded_for(extra, fetch) => Some(r),
            () = self.tx.closed() => None,
            _ = self.closing.changed() => None,
        }
    }

    /// Nothing is due: waits for a poll interval or a publish.
    async fn idle(&mut self) -> bool {
        let nap = tokio::time::sleep(POLL);
        let woken = &mut self.woken;
        tokio::select! {
            () = nap => true,
            () = self.tx.closed() => false,
            _ = self.closing.changed() => false,
            _ = async { match woken.as_mut() { Some(w) => { let _ = w.changed().await; } None => std::future::pending().await } } => true,
        }
    }

    /// Hands the deliveries to the stream's buffer; if the subscriber goes
    /// or the node drains meanwhile, the rest are released.
    async fn send_all(&mut self, deliveries: Vec<pb::Delivery>) -> bool {
        let mut it = deliveries.into_iter();
        while let Some(mut d) = it.next() {
            // The store's id is kept to release with; the subscriber gets
            // the id it acknowledges with.
            let minted = self
                .inner
                .ack_id(&self.topic.name, self.caller.as_str(), &d.id);
            let id = std::mem::replace(&mut d.id, minted);
            let delivered = tokio::select! {
                r = self.tx.send(Ok(d)) => r.is_ok(),
                _ = self.closing.changed() => false,
            };
            if !delivered {
                let mut unsent = vec![id];
                unsent.extend(it.map(|d| d.id));
                release(self.inner, &self.topic.name, self.caller.as_str(), unsent).await;
                return false;
            }
            self.sent.push_back(id);
            if self.sent.len() > self.cap {
                self.sent.pop_front();
            }
        }
        true
    }
}

async fn release(inner: &Inner, topic: &str, sub: &str, ids: Vec<String>) {
    if ids.is_empty() {
        return;
    }
    if let Err(e) = inner
        .bounded(inner.store.release(topic, sub, &ids, true))
        .await
    {
        tracing::warn!(error = %e.message, "could not release deliveries; they are redelivered after their ack deadline");
    }
}
