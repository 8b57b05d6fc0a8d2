//! What the audit log learns about an exchange, gathered as the call goes,
//! and the recorder that turns it into a durable entry.

use crate::audit::{AuditError, AuditLog, Pseudonymizer};
use crate::proto::jisr::audit::v1::{AuditRecord, Kind, Outcome};
use prost::Message as _;
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
        let record = trail.to_record(&self.node, ending, kind);
        self.log.append(record.encode_to_vec()).await
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
        }
    }
}
