//! What the bus reads from outside: a publisher's `PublishRequest` (checked
//! against its topic by the code `Publish` runs), a Redis stream entry (an
//! event sealed under the pseudonym key) and a subscriber's `Ack` ids.
//!
//! A checked event has the topic's type, an idempotency key of 1 to 200
//! bytes, a payload that decodes as the topic's event and the citizen that
//! event names; a refusal is `INVALID_REQUEST` or `EVENT_SUBJECT_MISMATCH`.
//! A stored event seals and opens back to itself, under its topic only;
//! bytes the fuzzer makes never open as an entry nor as an ack id, while an
//! id minted for a delivery opens to it.
//!
//! The first input byte picks the topic, the rest is the request.

#![no_main]

#[path = "common.rs"]
mod common;

use jisr::audit::Pseudonymizer;
use jisr::bus::fuzzing;
use jisr::bus::BusError;
use jisr::proto::jisr::bus::v1::PublishRequest;
use jisr::refusal::Reason;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use prost_reflect::DynamicMessage;

fn keys() -> Pseudonymizer {
    Pseudonymizer::new(&common::PSEUDONYM_KEY)
}

fn publish(name: &str, request: PublishRequest) {
    let topic = common::DEPLOYMENT.topics.get(name).expect("a fuzz topic");
    let claimed = request.subject.clone();
    match fuzzing::checked_event(topic, &topic.owner, request) {
        Ok(event) => {
            assert_eq!(event.type_url, topic.type_url);
            assert!((1..=200).contains(&event.idempotency_key.len()));
            assert_eq!(event.publisher, topic.owner.as_str());
            let decoded = DynamicMessage::decode(topic.event.clone(), event.payload.as_slice())
                .expect("a checked event decodes as its topic's type");
            match topic.subject_of(&decoded) {
                Some(found) => assert_eq!(event.subject, found),
                None => assert_eq!(event.subject, claimed),
            }
            if topic.subject_path.is_some() {
                assert!(!event.subject.is_empty());
            }
            if !claimed.is_empty() {
                assert_eq!(event.subject, claimed);
            }
            store(name, &event);
        }
        Err(refusal) => assert!(
            matches!(
                refusal.reason,
                Reason::InvalidRequest | Reason::EventSubjectMismatch
            ),
            "{refusal:?}"
        ),
    }
}

/// An accepted event goes through the Redis store's sealing unchanged.
fn store(name: &str, event: &jisr::bus::store::StoredEvent) {
    let sealed = fuzzing::seal_event(keys(), name, event).expect("an event seals");
    assert_eq!(
        fuzzing::open_event(keys(), name, &sealed).ok().as_ref(),
        Some(event)
    );
    let moved = common::TOPICS
        .iter()
        .find(|t| **t != name)
        .expect("another topic");
    assert!(matches!(
        fuzzing::open_event(keys(), moved, &sealed),
        Err(BusError::Unavailable(_))
    ));
}

fn ack_ids(data: &[u8]) {
    let keys = keys();
    let (topic, subscriber) = ("civil-status.birth-registered", "tax");
    let text = String::from_utf8_lossy(data).into_owned();
    let refused = fuzzing::open_ack_ids(&keys, topic, subscriber, std::slice::from_ref(&text));
    assert!(
        refused.is_err_and(|r| r.reason == Reason::InvalidRequest),
        "an id nobody minted opened: {text:?}"
    );
    // A store's delivery id (Redis entry ids are ~30 bytes, 128 at most).
    let mut id = text;
    while id.len() > 128 {
        id.pop();
    }
    let minted = fuzzing::mint_ack_id(&keys, topic, subscriber, &id);
    let opened = fuzzing::open_ack_ids(&keys, topic, subscriber, std::slice::from_ref(&minted));
    assert_eq!(opened.ok(), Some(vec![id]));
    assert!(fuzzing::open_ack_ids(&keys, topic, "health", &[minted]).is_err());
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let name = common::TOPICS[usize::from(pick) % common::TOPICS.len()];
    if let Ok(request) = PublishRequest::decode(rest) {
        publish(name, request);
    }
    // Bytes read back from Redis that the node did not seal.
    assert!(matches!(
        fuzzing::open_event(keys(), name, rest),
        Err(BusError::Unavailable(_))
    ));
    ack_ids(rest);
});
