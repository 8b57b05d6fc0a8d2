//! What the Redis bus store writes about a citizen, made unreadable to
//! whoever reads Redis without the operator's pseudonym key.
//!
//! An event's encoding holds its message and subject, so the field `e` of
//! every stream entry (events, replayed and dead letters) is sealed with
//! `crate::redis::seal` under a key derived from the pseudonym key with the
//! bus's own label, and the topic as associated data: the entry id is only
//! known once the publish script appended it, and an entry keeps its sealed
//! bytes when it moves between a topic's streams. A publisher's idempotency
//! key (free text, which may name a citizen) appears in a key name only as
//! its keyed digest, never in clear nor as a plain hash.
//!
//! An entry that does not open fails the fetch or listing closed, as
//! `BUS_UNAVAILABLE` naming the cause: nothing is delivered in its place,
//! and the entry stays in Redis for a node with the right key.

use prost::Message;

use super::reply::Fields;
use crate::audit::keys::{hex, Pseudonymizer};
use crate::bus::store::{BusError, StoredEvent};
use crate::redis::seal::{SealError, Sealer};

/// The label the bus's sealing key is derived under.
const LABEL: &[u8] = b"jisr-redis-bus-v1";

/// Prefixed to an idempotency key before its keyed digest, so the name it
/// gets differs from any other digest of the same text.
const IDEMPOTENCY_LABEL: &[u8] = b"jisr-redis-bus-idempotency-v1\0";

/// Seals events and names idempotency keys with keys derived from the
/// node's pseudonym key.
pub(crate) struct EventSeal {
    sealer: Sealer,
    pseudonyms: Pseudonymizer,
}

impl std::fmt::Debug for EventSeal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventSeal(<redacted>)")
    }
}

impl EventSeal {
    pub(crate) fn new(pseudonyms: Pseudonymizer) -> Self {
        Self {
            sealer: Sealer::new(LABEL, |label| pseudonyms.digest(label)),
            pseudonyms,
        }
    }

    /// The sealed encoding of an event of `topic`.
    pub(crate) fn seal(&self, topic: &str, event: &StoredEvent) -> Result<Vec<u8>, BusError> {
        self.sealer
            .seal(topic.as_bytes(), &event.encode_to_vec())
            .map_err(|e| BusError::Invalid(format!("the event cannot be stored: {e}")))
    }

    /// The event in the field `e` of an entry of `topic`.
    pub(crate) fn open(&self, topic: &str, fields: &Fields) -> Result<StoredEvent, BusError> {
        let sealed = fields.get("e").map_or(&[][..], Vec::as_slice);
        let clear = self
            .sealer
            .open(topic.as_bytes(), sealed)
            .map_err(|e| damaged(topic, &e))?;
        StoredEvent::decode(clear.as_slice()).map_err(|e| {
            BusError::Unavailable(format!(
                "bus store: an event of topic `{topic}` in Redis is damaged: {e}"
            ))
        })
    }

    /// How an idempotency key appears in a Redis key name: the hex of its
    /// keyed digest.
    pub(super) fn idempotency_name(&self, key: &str) -> String {
        let mut message = IDEMPOTENCY_LABEL.to_vec();
        message.extend_from_slice(key.as_bytes());
        hex(&self.pseudonyms.digest(&message))
    }
}

fn damaged(topic: &str, e: &SealError) -> BusError {
    let what = match e {
        SealError::Unsealed => {
            format!("{e}; events published before the upgrade are not delivered (see CHANGELOG)")
        }
        _ => e.to_string(),
    };
    BusError::Unavailable(format!(
        "bus store: an event of topic `{topic}` in Redis cannot be read: {what}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> StoredEvent {
        StoredEvent {
            type_url: "t".into(),
            payload: b"AB123456".to_vec(),
            subject: "AB123456".into(),
            publisher: "p".into(),
            published_unix_micros: 1,
            idempotency_key: "AB123456-k".into(),
        }
    }

    fn fields(sealed: Vec<u8>) -> Fields {
        [("e".to_owned(), sealed)].into_iter().collect()
    }

    #[test]
    fn an_event_opens_under_its_topic_and_key_only() {
        let a = EventSeal::new(Pseudonymizer::new(&[1; 32]));
        let sealed = a.seal("births", &event()).unwrap();
        assert!(!sealed.windows(8).any(|w| w == b"AB123456".as_slice()));
        assert_eq!(a.open("births", &fields(sealed.clone())).unwrap(), event());
        let moved = a.open("deaths", &fields(sealed.clone())).unwrap_err();
        assert!(moved.to_string().contains("pseudonym_key"), "{moved}");
        let other = EventSeal::new(Pseudonymizer::new(&[2; 32]));
        let err = other.open("births", &fields(sealed)).unwrap_err();
        assert!(matches!(err, BusError::Unavailable(_)));
        assert!(
            err.to_string()
                .contains("every replica must share `[audit] pseudonym_key`"),
            "{err}"
        );
        let old = a
            .open("births", &fields(event().encode_to_vec()))
            .unwrap_err();
        assert!(old.to_string().contains("earlier version"), "{old}");
    }

    #[test]
    fn an_idempotency_key_is_named_by_a_keyed_digest() {
        let a = EventSeal::new(Pseudonymizer::new(&[1; 32]));
        let name = a.idempotency_name("AB123456");
        assert_eq!(name.len(), 64);
        assert!(!name.contains("AB123456"));
        assert_eq!(name, a.idempotency_name("AB123456"));
        let b = EventSeal::new(Pseudonymizer::new(&[2; 32]));
        assert_ne!(name, b.idempotency_name("AB123456"));
    }
}
