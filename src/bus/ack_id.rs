//! Acknowledgement ids: what a subscriber sends back to `Ack`.
//!
//! A store's delivery id (a sequence number, a stream entry id) is
//! guessable, and acking one that was never delivered would settle an event
//! nobody received. So the id handed out is minted only when a delivery
//! leaves: the store's id followed by a tag, a keyed digest (under the
//! node's pseudonym key, with the bus's own label, as the Redis sealing key
//! is derived) of the topic, the subscription and that id, all base64url.
//! Any replica holding the same key accepts it; no one without the key can
//! make one, nor use one minted for another subscription.

use base64::Engine as _;

use crate::audit::Pseudonymizer;
use crate::refusal::{Reason, Refusal};

/// Separates the bus's digests from every other use of the key.
const LABEL: &[u8] = b"jisr-bus-ack-id-v1\0";

/// Bytes of the tag: 128 bits cannot be guessed.
const TAG: usize = 16;

/// The longest store id accepted back (Redis entry ids are ~30 bytes).
const MAX_ID: usize = 128;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn tag(keys: &Pseudonymizer, topic: &str, subscriber: &str, id: &str) -> [u8; 32] {
    let mut message =
        Vec::with_capacity(LABEL.len() + topic.len() + subscriber.len() + id.len() + 2);
    message.extend_from_slice(LABEL);
    // Topic and agency names cannot hold a NUL, so the parts cannot shift.
    for part in [topic, subscriber] {
        message.extend_from_slice(part.as_bytes());
        message.push(0);
    }
    message.extend_from_slice(id.as_bytes());
    keys.digest(&message)
}

/// The acknowledgement id of the store's delivery `id` to `subscriber`.
pub(crate) fn mint(keys: &Pseudonymizer, topic: &str, subscriber: &str, id: &str) -> String {
    let mut raw = id.as_bytes().to_vec();
    raw.extend_from_slice(&tag(keys, topic, subscriber, id)[..TAG]);
    B64.encode(raw)
}

/// The store's delivery ids behind `ids`, if every one was minted for this
/// subscription; otherwise `INVALID_REQUEST` naming the first that was not.
pub(crate) fn open_all(
    keys: &Pseudonymizer,
    topic: &str,
    subscriber: &str,
    ids: &[String],
) -> Result<Vec<String>, Refusal> {
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            open(keys, topic, subscriber, id).ok_or_else(|| {
                let shown: String = id.chars().take(64).collect();
                Refusal::new(
                    Reason::InvalidRequest,
                    format!("`ids[{i}]` (`{shown}`) is not an id delivered to `{subscriber}` on topic `{topic}`: acknowledge only the `Delivery.id` values this subscription received; nothing was acknowledged"),
                )
            })
        })
        .collect()
}

fn open(keys: &Pseudonymizer, topic: &str, subscriber: &str, id: &str) -> Option<String> {
    if id.len() > (MAX_ID + TAG) * 2 {
        return None;
    }
    let raw = B64.decode(id).ok()?;
    let split = raw.len().checked_sub(TAG)?;
    let (store_id, given) = raw.split_at(split);
    let store_id = std::str::from_utf8(store_id).ok()?;
    let expected = tag(keys, topic, subscriber, store_id);
    let same = subtle::ConstantTimeEq::ct_eq(given, &expected[..TAG]);
    bool::from(same).then(|| store_id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_minted_id_of_this_subscription_opens() {
        let keys = Pseudonymizer::new(&[7; 32]);
        let id = mint(&keys, "civil.births", "tax", "42");
        let ok = open_all(&keys, "civil.births", "tax", std::slice::from_ref(&id));
        assert_eq!(ok.ok(), Some(vec!["42".to_owned()]));
        for (topic, sub, id) in [
            ("civil.births", "health", id.as_str()),
            ("civil.deaths", "tax", id.as_str()),
            ("civil.births", "tax", "42"),
            ("civil.births", "tax", "not base64!"),
            ("civil.births", "tax", ""),
        ] {
            let refused = open_all(&keys, topic, sub, &[id.to_owned()]);
            assert!(
                refused.is_err_and(|r| r.reason == Reason::InvalidRequest),
                "{topic} {sub} {id}"
            );
        }
        let other_key = Pseudonymizer::new(&[8; 32]);
        assert!(open_all(&other_key, "civil.births", "tax", &[id]).is_err());
    }
}
