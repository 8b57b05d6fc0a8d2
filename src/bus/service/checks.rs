//! What the service checks before it acts: whether a caller may receive a
//! topic, whose dead letters it may see, and whether a published event fits
//! its topic. Refused subscriptions are recorded here too.

use std::sync::Arc;

use prost_reflect::DynamicMessage;

use super::{now_micros, Inner, SUBSCRIBE};
use crate::audit::record::{Ending, Trail};
use crate::bus::store::StoredEvent;
use crate::bus::{Subscriber, Topic};
use crate::config::Role;
use crate::identity::AgencyId;
use crate::proto::jisr::audit::v1::{Kind, Outcome};
use crate::proto::jisr::bus::v1 as pb;
use crate::refusal::{Reason, Refusal};

impl Inner {
    /// Records a publish or subscription decision and waits for it.
    pub(super) async fn audit(
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

    pub(super) fn trail(caller: &AgencyId, method: &str, topic: &Topic) -> Trail {
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
    pub(super) async fn subscriber(
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

    /// The subscription whose dead letters `caller` may see: its own, or any
    /// for an auditor.
    pub(super) fn dead_letter_target(
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
pub(crate) fn checked_event(
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
    let subject = event_subject(topic, &event.value, req.subject)?;
    Ok(StoredEvent {
        type_url: event.type_url,
        payload: event.value,
        subject,
        publisher: caller.to_string(),
        published_unix_micros: now_micros(),
        idempotency_key: key,
    })
}

/// The citizen the event names: decoded from the event when its topic
/// says where, which must then agree with the `claimed` subject.
fn event_subject(topic: &Topic, value: &[u8], claimed: String) -> Result<String, Refusal> {
    let decoded = DynamicMessage::decode(topic.event.clone(), value).map_err(|e| {
        Refusal::new(
            Reason::InvalidRequest,
            format!(
                "the event does not decode as `{}`: {e}",
                topic.event.full_name()
            ),
        )
    })?;
    let subject = match topic.subject_of(&decoded) {
        Some(found) if !claimed.is_empty() && claimed != found => {
            return Err(Refusal::new(Reason::EventSubjectMismatch, "`subject` differs from the citizen id in the event; send the same id, or leave `subject` empty"));
        }
        Some(found) => found,
        None => claimed,
    };
    if topic.subject_path.is_some() && subject.is_empty() {
        return Err(Refusal::new(
            Reason::InvalidRequest,
            "the event's citizen id field is empty: an event about a citizen must name the citizen",
        ));
    }
    Ok(subject)
}
