//! What the bus reads from outside, opened to the fuzz targets (`fuzz/`):
//! a publisher's request, an entry of the Redis store and a subscriber's
//! acknowledgement ids. Not an API: each function only forwards to the
//! code the service runs, so the targets exercise exactly that code.

use super::ack_id;
use super::service::checks;
use super::store::redis::sealed::EventSeal;
use super::store::{BusError, StoredEvent};
use super::Topic;
use crate::audit::Pseudonymizer;
use crate::identity::AgencyId;
use crate::proto::jisr::bus::v1 as pb;
use crate::refusal::Refusal;

/// The publish check: the event `caller` sends to `topic`, as stored.
pub fn checked_event(
    topic: &Topic,
    caller: &AgencyId,
    req: pb::PublishRequest,
) -> Result<StoredEvent, Refusal> {
    checks::checked_event(topic, caller, req)
}

/// An event as the Redis store seals it into a stream entry of `topic`.
pub fn seal_event(
    keys: Pseudonymizer,
    topic: &str,
    event: &StoredEvent,
) -> Result<Vec<u8>, BusError> {
    EventSeal::new(keys).seal(topic, event)
}

/// The event in a Redis stream entry of `topic` whose field `e` is `sealed`.
pub fn open_event(
    keys: Pseudonymizer,
    topic: &str,
    sealed: &[u8],
) -> Result<StoredEvent, BusError> {
    let fields = [("e".to_owned(), sealed.to_vec())].into_iter().collect();
    EventSeal::new(keys).open(topic, &fields)
}

/// The acknowledgement id handed out for the store's delivery `id`.
pub fn mint_ack_id(keys: &Pseudonymizer, topic: &str, subscriber: &str, id: &str) -> String {
    ack_id::mint(keys, topic, subscriber, id)
}

/// The store's delivery ids behind a subscriber's `Ack` ids.
pub fn open_ack_ids(
    keys: &Pseudonymizer,
    topic: &str,
    subscriber: &str,
    ids: &[String],
) -> Result<Vec<String>, Refusal> {
    ack_id::open_all(keys, topic, subscriber, ids)
}
