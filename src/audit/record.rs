//! What the audit log learns about an exchange, gathered as the call goes,
//! and the recorder that turns it into a durable entry.

use crate::audit::{AuditError, AuditLog, Pseudonymizer};
use crate::proto::jisr::audit::v1::{AuditRecord, Kind, Outcome};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// The node's audit log and pseudonym key.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// The log.
    pub log: Arc<AuditLog>,
    /// Turns citizen ids into pseudonyms.
    pub pseudonyms: Pseudonymizer,
    /// This node's id.
    pub node: String,
    /// How many refusals per agency are recorded one by one; the rest are
    /// summarised ([`crate::audit::summary`]).
    pub refusals: Arc<crate::audit::summary::Refusals>,
}

/// The facts of one exchange, filled in step by step.
#[derive(Debug, Default)]
pub struct Trail {
    /// Microseconds since the epoch when the call arrived.
    pub time_unix_micros: i64,
    /// Request id.
    pub request_id: String,
    /// W3C trace id, if the caller sent a traceparent.
    pub trace_id: String,
    /// Consumer agency.
    pub consumer: String,
    /// Provider agency (empty for an unknown method).
    pub provider: String,
    /// gRPC path.
    pub method: String,
    /// `jisr-purpose`.
    pub purpose: String,
    /// `jisr-procedure`.
    pub procedure: String,
    /// `jisr-official`.
    pub official: String,
    /// The basis of the grant.
    pub basis: String,
    /// Pseudonym of the subject, once read.
    pub subject: Option<[u8; 32]>,
    /// Keyed digest of the request message.
    pub request_digest: Option<[u8; 32]>,
    /// The consent relied on.
    pub consent_id: String,
    /// An emergency access.
    pub break_glass: bool,
    /// Why (break-glass).
    pub justification: String,
    /// The `traceparent` sent to the provider (the exchange's span), when
    /// traces are exported; otherwise the caller's passes through.
    pub traceparent: Option<http::HeaderValue>,
    /// Bus entries: the topic.
    pub topic: String,
    /// Bus entries: the event's id in its topic.
    pub event_id: String,
    /// Deferred disclosure: when the citizen may see the exchange, in
    /// microseconds since the epoch (0: at once).
    pub disclose_from_unix_micros: i64,
}

impl Trail {
    /// A trail for a call that just arrived.
    pub fn start(
        request_id: &str,
        consumer: &str,
        method: &str,
        headers: &http::HeaderMap,
    ) -> Self {
        let time_unix_micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        Self {
            time_unix_micros,
            request_id: request_id.to_owned(),
            trace_id: trace_id(headers).unwrap_or_default(),
            consumer: consumer.to_owned(),
            method: method.to_owned(),
            ..Self::default()
        }
    }
}

/// The trace id of a W3C `traceparent` header (`00-<32 hex>-<16 hex>-<2 hex>`).
fn trace_id(headers: &http::HeaderMap) -> Option<String> {
    let value = headers.get("traceparent")?.to_str().ok()?;
    let mut parts = value.split('-');
    let (_version, id) = (parts.next()?, parts.next()?);
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_ascii_lowercase())
}

/// How the exchange ended, for the record.
#[derive(Debug, Clone, Copy)]
pub struct Ending<'a> {
    /// Allowed, refused or failed.
    pub outcome: Outcome,
    /// Refusal or failure reason code ("" when allowed).
    pub reason: &'a str,
    /// The gRPC status the consumer gets.
    pub grpc_status: i32,
    /// Keyed digest of the response body, for unary answers.
    pub response_digest: Option<[u8; 32]>,
}

impl Recorder {
    /// Appends the exchange's entry and waits until it is durable.
    pub async fn record(&self, trail: &Trail, ending: Ending<'_>) -> Result<u64, AuditError> {
        self.record_kind(trail, ending, Kind::Exchange).await
    }

    /// Appends an entry of `kind` and waits until it is durable.
    pub async fn record_kind(
        &self,
        trail: &Trail,
        ending: Ending<'_>,
        kind: Kind,
    ) -> Result<u64, AuditError> {
        self.log
            .append(trail.encode_record(&self.node, ending, kind))
            .await
    }

    /// Writes the summaries of refusals that went over their budget: those
    /// of ended windows, and with `closing` the current one's too.
    pub async fn write_summaries(&self, closing: bool) {
        write_summaries(&self.refusals, &self.log, &self.node, closing).await;
    }

    /// Writes the summaries every window while the log and the budget are
    /// alive (held weakly: the task never keeps a closed node's log open).
    pub fn spawn_summaries(&self) {
        let refusals = Arc::downgrade(&self.refusals);
        let log = Arc::downgrade(&self.log);
        let node = self.node.clone();
        let window = self.refusals.window();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(window);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let (Some(refusals), Some(log)) = (refusals.upgrade(), log.upgrade()) else {
                    return;
                };
                write_summaries(&refusals, &log, &node, false).await;
            }
        });
    }
}

async fn write_summaries(
    refusals: &crate::audit::summary::Refusals,
    log: &AuditLog,
    node: &str,
    closing: bool,
) {
    use prost::Message as _;
    for summary in refusals.take(closing) {
        let record = summary.record(node);
        match log.append(record.encode_to_vec()).await {
            Ok(index) => {
                tracing::warn!(agency = %summary.agency, reason = %summary.reason, count = summary.count, audit_entry = index, "refused calls over the agency's budget of recorded refusals, recorded as one summary entry")
            }
            Err(e) => {
                tracing::error!(agency = %summary.agency, reason = %summary.reason, count = summary.count, error = %e, "refusal summary not recorded in the audit log")
            }
        }
    }
}

impl Trail {
    /// The encoded `AuditRecord` of this exchange, written by node `node`:
    /// the bytes `to_record(..).encode_to_vec()` gives, encoded straight
    /// from the trail's fields without copying each string into an owned
    /// record first (one allocation per call instead of one per field;
    /// `wire_tests` pins the bytes against prost's encoding).
    pub fn encode_record(&self, node: &str, ending: Ending<'_>, kind: Kind) -> Vec<u8> {
        // Fields in tag order, as prost writes them; defaults are skipped.
        let fields: [(u32, Field<'_>); 24] = [
            (1, Field::Varint(self.time_unix_micros as u64)),
            (2, Field::Bytes(node.as_bytes())),
            (3, Field::Varint(kind as i32 as i64 as u64)),
            (4, Field::Bytes(self.request_id.as_bytes())),
            (5, Field::Bytes(self.trace_id.as_bytes())),
            (6, Field::Bytes(self.consumer.as_bytes())),
            (7, Field::Bytes(self.official.as_bytes())),
            (8, Field::Bytes(self.provider.as_bytes())),
            (9, Field::Bytes(self.method.as_bytes())),
            (10, Field::Bytes(self.purpose.as_bytes())),
            (11, Field::Bytes(self.procedure.as_bytes())),
            (12, Field::Bytes(self.basis.as_bytes())),
            (13, Field::Bytes(self.consent_id.as_bytes())),
            (14, Field::Bytes(digest(&self.subject))),
            (15, Field::Varint(ending.outcome as i32 as i64 as u64)),
            (16, Field::Bytes(ending.reason.as_bytes())),
            (17, Field::Varint(i64::from(ending.grpc_status) as u64)),
            (18, Field::Bytes(digest(&self.request_digest))),
            (19, Field::Bytes(digest(&ending.response_digest))),
            (20, Field::Varint(u64::from(self.break_glass))),
            (21, Field::Bytes(self.justification.as_bytes())),
            (22, Field::Bytes(self.topic.as_bytes())),
            (23, Field::Bytes(self.event_id.as_bytes())),
            // 24 to 26 are for entries about the node itself, never a trail.
            (27, Field::Varint(self.disclose_from_unix_micros as u64)),
        ];
        let len = fields.iter().map(|(tag, f)| f.encoded_len(*tag)).sum();
        let mut buf = Vec::with_capacity(len);
        for (tag, field) in &fields {
            field.encode(*tag, &mut buf);
        }
        buf
    }

    /// The audit record of this exchange, written by node `node`.
    pub fn to_record(&self, node: &str, ending: Ending<'_>, kind: Kind) -> AuditRecord {
        AuditRecord {
            time_unix_micros: self.time_unix_micros,
            node: node.to_owned(),
            kind: kind as i32,
            request_id: self.request_id.clone(),
            trace_id: self.trace_id.clone(),
            consumer: self.consumer.clone(),
            official: self.official.clone(),
            provider: self.provider.clone(),
            method: self.method.clone(),
            purpose: self.purpose.clone(),
            procedure: self.procedure.clone(),
            basis: self.basis.clone(),
            consent_id: self.consent_id.clone(),
            subject: self.subject.map(|s| s.to_vec()).unwrap_or_default(),
            outcome: ending.outcome as i32,
            reason: ending.reason.to_owned(),
            grpc_status: ending.grpc_status,
            request_digest: self.request_digest.map(|d| d.to_vec()).unwrap_or_default(),
            response_digest: ending
                .response_digest
                .map(|d| d.to_vec())
                .unwrap_or_default(),
            break_glass: self.break_glass,
            justification: self.justification.clone(),
            topic: self.topic.clone(),
            event_id: self.event_id.clone(),
            // Entries about the node itself fill these (`audit::log::loss`,
            // the refusal summaries); an exchange's trail has none.
            detail: String::new(),
            count: 0,
            since_unix_micros: 0,
            disclose_from_unix_micros: self.disclose_from_unix_micros,
        }
    }
}

/// A digest's bytes, empty when there is none.
fn digest(d: &Option<[u8; 32]>) -> &[u8] {
    d.as_ref().map_or(&[], |d| &d[..])
}

/// One proto3 field of the record, borrowed from the trail.
enum Field<'a> {
    /// `int64`, `int32`, enum or `bool`: a varint (negative values
    /// sign-extended to 64 bits, as protobuf encodes them).
    Varint(u64),
    /// `string` or `bytes`.
    Bytes(&'a [u8]),
}

impl Field<'_> {
    /// Proto3 leaves a field at its default value out.
    fn is_default(&self) -> bool {
        match self {
            Field::Varint(v) => *v == 0,
            Field::Bytes(b) => b.is_empty(),
        }
    }

    fn encoded_len(&self, tag: u32) -> usize {
        use prost::encoding::{encoded_len_varint, key_len};
        match self {
            _ if self.is_default() => 0,
            Field::Varint(v) => key_len(tag) + encoded_len_varint(*v),
            Field::Bytes(b) => key_len(tag) + encoded_len_varint(b.len() as u64) + b.len(),
        }
    }

    fn encode(&self, tag: u32, buf: &mut Vec<u8>) {
        use prost::encoding::{encode_key, encode_varint, WireType};
        match self {
            _ if self.is_default() => {}
            Field::Varint(v) => {
                encode_key(tag, WireType::Varint, buf);
                encode_varint(*v, buf);
            }
            Field::Bytes(b) => {
                encode_key(tag, WireType::LengthDelimited, buf);
                encode_varint(b.len() as u64, buf);
                buf.extend_from_slice(b);
            }
        }
    }
}

#[cfg(test)]
mod wire_tests {
    use super::*;
    use prost::Message as _;

    fn full() -> Trail {
        let text = |s: &str| s.to_owned();
        Trail {
            time_unix_micros: 1_765_000_000_123_456,
            request_id: text("req-1"),
            trace_id: text("4bf92f3577b34da6a3ce929d0e0e4736"),
            consumer: text("education"),
            provider: text("civil-status"),
            method: text("/ma.civilstatus.v1.CivilStatus/GetBirthRecord"),
            purpose: text("bac-candidature"),
            procedure: text("proc-7"),
            official: text("education.agent-1"),
            basis: text("law:2-00-01 art. 4 — é"),
            subject: Some([7; 32]),
            request_digest: Some([8; 32]),
            consent_id: text("c-1"),
            break_glass: true,
            justification: text("x".repeat(300).as_str()),
            traceparent: None,
            topic: text("civil-status.death-registered"),
            event_id: text("42"),
            disclose_from_unix_micros: 1_814_313_600_000_000,
        }
    }

    /// The borrowed encoding is byte for byte prost's encoding of the
    /// owned record: every field set, none set, and negative numbers.
    #[test]
    fn encode_record_is_prosts_encoding_of_to_record() {
        let endings = [
            Ending {
                outcome: Outcome::Allowed,
                reason: "",
                grpc_status: 0,
                response_digest: Some([9; 32]),
            },
            Ending {
                outcome: Outcome::Refused,
                reason: "ACCESS_DENIED",
                grpc_status: -7,
                response_digest: None,
            },
        ];
        let mut negative = full();
        negative.time_unix_micros = -1;
        for trail in [full(), Trail::default(), negative] {
            for ending in endings {
                for (node, kind) in [("node-a", Kind::Exchange), ("", Kind::default())] {
                    assert_eq!(
                        trail.encode_record(node, ending, kind),
                        trail.to_record(node, ending, kind).encode_to_vec(),
                        "{trail:?} {ending:?} {kind:?}"
                    );
                }
            }
        }
    }
}
