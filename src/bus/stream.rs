//! One Subscribe stream: a task that fetches small batches for the
//! subscription, prepares each delivery (consent, minimisation, audit) and
//! hands it to the stream's bounded buffer. A subscriber that stops reading
//! fills its own buffer and in-flight bound and waits there; the publisher
//! and every other subscription go on.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tonic::Status;

use super::deliver::Receiver;
use super::service::{now_micros, Inner, BATCH, POLL, SUBSCRIBE};
use super::{Subscriber, Topic};
use crate::identity::AgencyId;
use crate::proto::jisr::bus::v1 as pb;

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
    let rx = Receiver {
        agency: caller.as_str(),
        terms: &terms,
        purpose: &purpose,
        method: SUBSCRIBE,
    };
    let mut woken = inner.wake.get(&topic.name).map(watch::Sender::subscribe);
    let mut closing = inner.closing.subscribe();
    let cap = usize::try_from(inner.max_in_flight).unwrap_or(usize::MAX);
    let mut sent: VecDeque<String> = VecDeque::new();
    'outer: loop {
        if *closing.borrow() || tx.is_closed() {
            break;
        }
        if let Some(w) = woken.as_mut() {
            w.borrow_and_update();
        }
        let batch = match inner
            .bounded(
                inner
                    .store
                    .fetch(&topic.name, caller.as_str(), BATCH, now_micros()),
            )
            .await
        {
            Ok(b) => b,
            Err(refusal) => {
                let _ = tx.send(Err(refusal.into())).await;
                break;
            }
        };
        if batch.is_empty() {
            let nap = tokio::time::sleep(POLL);
            tokio::select! {
                () = nap => {}
                () = tx.closed() => break,
                _ = closing.changed() => break,
                _ = async { match woken.as_mut() { Some(w) => { let _ = w.changed().await; } None => std::future::pending().await } } => {}
            }
            continue;
        }
        let deliveries = match inner.prepare_all(&topic, rx, batch).await {
            Ok(d) => d,
            Err(refusal) => {
                let _ = tx.send(Err(refusal.into())).await;
                break;
            }
        };
        if deliveries.is_empty() {
            // Everything was refused or put back (audit log or consent store
            // unavailable): wait before trying again rather than spin.
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                () = tx.closed() => break,
                _ = closing.changed() => break,
            }
            continue;
        }
        let mut unsent: Vec<String> = Vec::new();
        let mut it = deliveries.into_iter();
        while let Some(d) = it.next() {
            let id = d.id.clone();
            tokio::select! {
                r = tx.send(Ok(d)) => {
                    if r.is_err() {
                        unsent.push(id);
                        unsent.extend(it.map(|d| d.id));
                        release(&inner, &topic.name, caller.as_str(), unsent).await;
                        break 'outer;
                    }
                    sent.push_back(id);
                    if sent.len() > cap {
                        sent.pop_front();
                    }
                }
                _ = closing.changed() => {
                    unsent.push(id);
                    unsent.extend(it.map(|d| d.id));
                    release(&inner, &topic.name, caller.as_str(), unsent).await;
                    break 'outer;
                }
            }
        }
    }
    release(
        &inner,
        &topic.name,
        caller.as_str(),
        sent.into_iter().collect(),
    )
    .await;
    tracing::debug!(topic = %topic.name, subscriber = %caller, "subscription stream ended");
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
