//! Turning a pending event into a delivery for one subscriber: the consent
//! check (when the subscriber's basis is consent), field minimisation, and
//! the audit entry that must be durable before the delivery leaves.

use bytes::{BufMut, BytesMut};

use super::store::Pending;
use super::{Subscriber, Topic};
use crate::audit::record::{Ending, Recorder, Trail};
use crate::audit::Pseudonymizer;
use crate::config::Basis;
use crate::consent::ConsentStore;
use crate::proto::jisr::audit::v1::{Kind, Outcome};
use crate::proto::jisr::bus::v1::Delivery;
use std::time::Duration;

/// What to do with a pending event.
#[derive(Debug)]
pub enum Prepared {
    /// Send it; its audit entry is durable.
    Send(Box<Delivery>),
    /// Refused for this subscriber for good (no consent): acknowledge it so
    /// it is not retried; the refusal is recorded.
    Refused,
    /// Cannot be decided now (consent store or audit log unavailable):
    /// release it for a later attempt. Nothing was sent.
    Later,
}

/// Who receives, on which terms.
#[derive(Debug, Clone, Copy)]
pub struct Receiver<'a> {
    /// The subscribing agency.
    pub agency: &'a str,
    /// Its terms for the topic.
    pub terms: &'a Subscriber,
    /// The purpose of this subscription.
    pub purpose: &'a str,
    /// The API path (Subscribe or Pull), for the audit entry.
    pub method: &'a str,
}

/// Consents, for subscribers whose basis is consent.
#[derive(Debug, Clone)]
pub struct ConsentSource {
    /// The store.
    pub store: std::sync::Arc<dyn ConsentStore>,
    /// Bound on one lookup.
    pub timeout: Duration,
}

fn now_micros() -> i64 {
    crate::consent::artefact::now_micros()
}

/// A consent of the event's citizen to this receiver, for this purpose and
/// the topic's data category, valid now. `Err` when the store cannot answer.
async fn consent_for(
    consents: &ConsentSource,
    topic: &Topic,
    subject: &str,
    rx: &Receiver<'_>,
) -> Result<Option<String>, ()> {
    let bound = consents.store.answer_bound(consents.timeout);
    let all = match tokio::time::timeout(bound, consents.store.list_by_subject(subject)).await {
        Ok(Ok(all)) => all,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "consent store unavailable: event delivery waits (fail closed)");
            return Err(());
        }
        Err(_) => {
            tracing::error!("consent store did not answer: event delivery waits (fail closed)");
            return Err(());
        }
    };
    let now = now_micros();
    Ok(all
        .into_iter()
        .find(|s| {
            let c = &s.consent;
            s.revoked_unix_micros == 0
                && c.not_before_unix_micros <= now
                && now < c.not_after_unix_micros
                && (c.max_uses == 0 || s.uses < c.max_uses)
                && c.consumer == rx.agency
                && c.purpose == rx.purpose
                && c.categories
                    .iter()
                    .any(|cat| cat == topic.category.as_str())
        })
        .map(|s| s.consent.id))
}

fn minimise(terms: &Subscriber, payload: &[u8]) -> Result<Vec<u8>, String> {
    let Some(release) = &terms.release else {
        return Ok(payload.to_vec());
    };
    let mut framed = BytesMut::with_capacity(payload.len() + 5);
    framed.put_u8(0);
    framed.put_u32(u32::try_from(payload.len()).map_err(|_| "event too large".to_owned())?);
    framed.put_slice(payload);
    let out = release.apply(&framed).map_err(|e| e.to_string())?;
    Ok(out.get(5..).unwrap_or_default().to_vec())
}

/// Prepares one delivery; see [`Prepared`].
pub async fn prepare(
    recorder: &Recorder,
    pseudonyms: &Pseudonymizer,
    consents: &ConsentSource,
    topic: &Topic,
    rx: Receiver<'_>,
    pending: &Pending,
    ack_deadline: Duration,
) -> Prepared {
    let event = &pending.event;
    let mut trail = trail_of(pseudonyms, topic, rx, pending);
    let mut refusal = None;
    if matches!(rx.terms.basis, Basis::Consent) {
        match consent_for(consents, topic, &event.subject, &rx).await {
            Err(()) => return Prepared::Later,
            Ok(Some(id)) => trail.consent_id = id,
            Ok(None) => refusal = Some("CONSENT_REQUIRED"),
        }
    }
    let payload = match minimise(rx.terms, &event.payload) {
        Ok(p) => p,
        Err(why) => {
            tracing::error!(topic = %topic.name, event = %pending.event_id, error = %why, "event cannot be minimised: not delivered");
            refusal = Some("INVALID_EVENT");
            Vec::new()
        }
    };
    let ending = Ending {
        outcome: if refusal.is_some() {
            Outcome::Refused
        } else {
            Outcome::Allowed
        },
        reason: refusal.unwrap_or(""),
        grpc_status: 0,
        response_digest: None,
    };
    if let Err(e) = recorder
        .record_kind(&trail, ending, Kind::EventDelivered)
        .await
    {
        tracing::error!(error = %e, "event delivery not recorded in the audit log: not delivered");
        return Prepared::Later;
    }
    if refusal.is_some() {
        return Prepared::Refused;
    }
    Prepared::Send(Box::new(delivery(topic, pending, payload, ack_deadline)))
}

/// The audit trail of delivering `pending` to `rx`.
fn trail_of(
    pseudonyms: &Pseudonymizer,
    topic: &Topic,
    rx: Receiver<'_>,
    pending: &Pending,
) -> Trail {
    let event = &pending.event;
    let mut trail = Trail::start(
        &format!("{:032x}", rand::random::<u128>()),
        rx.agency,
        rx.method,
        &http::HeaderMap::new(),
    );
    trail.provider.clone_from(&event.publisher);
    trail.purpose = rx.purpose.to_owned();
    trail.basis = rx.terms.basis.to_string();
    trail.topic.clone_from(&topic.name);
    trail.event_id.clone_from(&pending.event_id);
    if !event.subject.is_empty() {
        trail.subject = Some(pseudonyms.pseudonym(&event.subject));
    }
    trail
}

/// The delivery of `pending` with its (minimised) payload.
fn delivery(
    topic: &Topic,
    pending: &Pending,
    payload: Vec<u8>,
    ack_deadline: Duration,
) -> Delivery {
    let event = &pending.event;
    let deadline = now_micros() + i64::try_from(ack_deadline.as_micros()).unwrap_or(i64::MAX);
    Delivery {
        id: pending.id.clone(),
        topic: topic.name.clone(),
        event: Some(prost_types::Any {
            type_url: event.type_url.clone(),
            value: payload,
        }),
        subject: event.subject.clone(),
        publisher: event.publisher.clone(),
        published_unix_micros: event.published_unix_micros,
        attempt: pending.attempt,
        ack_deadline_unix_micros: deadline,
        event_id: pending.event_id.clone(),
    }
}
