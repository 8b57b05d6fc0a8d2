//! How entries read on a terminal: a table row or a JSON object.

use crate::proto::jisr::audit::v1 as pb;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The entry kind's name, e.g. `EVENT_DELIVERED`.
fn kind_name(kind: i32) -> &'static str {
    pb::Kind::try_from(kind).map_or("UNKNOWN", |k| k.as_str_name())
}

/// Microseconds since the epoch as RFC 3339.
pub fn format_time(micros: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| micros.to_string())
}

pub(super) fn parse_time(text: &str) -> anyhow::Result<i64> {
    let t = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
        anyhow::anyhow!("`{text}` is not an RFC 3339 time ({e}); write e.g. 2026-11-23T08:00:00Z")
    })?;
    Ok((t.unix_timestamp_nanos() / 1000) as i64)
}

fn outcome_name(outcome: i32) -> &'static str {
    match pb::Outcome::try_from(outcome).unwrap_or(pb::Outcome::Unspecified) {
        pb::Outcome::Allowed => "allowed",
        pb::Outcome::Refused => "refused",
        pb::Outcome::Failed => "failed",
        pb::Outcome::Unspecified => "-",
    }
}

/// One entry as a table row or a JSON object.
pub fn render(index: u64, r: &pb::AuditRecord, json: bool) -> String {
    if json {
        return serde_json::json!({
            "index": index,
            "time": format_time(r.time_unix_micros),
            "node": r.node,
            "request_id": r.request_id,
            "consumer": r.consumer,
            "official": r.official,
            "provider": r.provider,
            "method": r.method,
            "purpose": r.purpose,
            "procedure": r.procedure,
            "basis": r.basis,
            "consent_id": r.consent_id,
            "subject": crate::audit::keys::hex(&r.subject),
            "outcome": outcome_name(r.outcome),
            "reason": r.reason,
            "grpc_status": r.grpc_status,
            "break_glass": r.break_glass,
            "kind": kind_name(r.kind),
            "topic": r.topic,
            "event_id": r.event_id,
        })
        .to_string();
    }
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    let bus = if r.topic.is_empty() {
        String::new()
    } else {
        format!(
            "  {} {} event {}",
            kind_name(r.kind),
            r.topic,
            dash(&r.event_id)
        )
    };
    // The node first: with several replicas, an index is only unique within
    // its node's log.
    format!(
        "{:<8} {index:>7}  {}  {:<12} → {:<12} {:<48} {:<16} {:<18} {:<8} {}{bus}",
        dash(&r.node),
        format_time(r.time_unix_micros),
        r.consumer,
        dash(&r.provider),
        r.method,
        dash(&r.purpose),
        dash(&r.basis),
        outcome_name(r.outcome),
        dash(&r.reason),
    )
}
