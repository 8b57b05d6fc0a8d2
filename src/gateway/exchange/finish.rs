//! The end of every exchange, allowed or refused: its audit entry is
//! awaited, then the answer is released — or withheld when the entry could
//! not be made (no audit, no data) — and the exchange is counted, its span
//! ended and one log line written. Calls refused before the exchange's own
//! checks (an unknown method, a malformed request id) end here too.

use super::CallContext;
use crate::audit::record::{Ending, Recorder, Trail};
use crate::gateway::body::Buffered;
use crate::gateway::layers::stack::Answer;
use crate::gateway::metadata;
use crate::proto::jisr::audit::v1::Outcome;
use crate::refusal::{Reason, Refusal};
use crate::telemetry::{labels, ExchangeSpan, RouteMetrics};
use http::{HeaderMap, Response};
use std::time::Instant as StdInstant;
use tonic::body::Body;

/// Records the exchange and answers: the provider's answer once the entry is
/// durable, or the refusal.
pub(super) async fn finish(
    result: Result<Answer, Refusal>,
    trail: &Trail,
    cx: CallContext<'_>,
    started: StdInstant,
    (metrics, span): (&RouteMetrics, Option<ExchangeSpan>),
) -> Response<Body> {
    let (ending, answer) = ending_of(result, cx.recorder);
    // A refusal over the agency's budget is counted for a summary entry
    // instead (`audit::summary`): a flood cannot grow the log one by one.
    let entry = match &answer {
        Err(refusal)
            if !cx
                .recorder
                .refusals
                .admit(cx.consumer.as_str(), refusal.reason.as_str()) =>
        {
            Ok(None)
        }
        _ => cx.recorder.record(trail, ending).await.map(Some),
    };
    // What the caller gets: an allowed answer whose entry failed is withheld.
    let (reason, grpc_status) = match (&answer, &entry) {
        (Ok(_), Err(_)) => (
            Some(Reason::AuditUnavailable),
            Reason::AuditUnavailable.code() as i32,
        ),
        (Ok(_), Ok(_)) => (None, ending.grpc_status),
        (Err(refusal), _) => (Some(refusal.reason), ending.grpc_status),
    };
    let elapsed = started.elapsed();
    let telemetry = cx.telemetry.metrics();
    telemetry.exchange(
        metrics,
        telemetry.consumer_slot(cx.consumer.as_str()),
        reason,
        elapsed,
    );
    if let Some(span) = span {
        span.end(trail, reason, labels::outcome(reason), grpc_status);
    }
    log_exchange(
        trail,
        &ending,
        entry.as_ref().ok().copied().flatten(),
        elapsed,
    );
    match (answer, entry) {
        (Ok(response), Ok(_)) => response,
        (Ok(_), Err(e)) => {
            tracing::error!(request_id = cx.request_id, error = %e, "exchange not recorded: answer withheld");
            metadata::refusal_response(&audit_unavailable(), cx.request_id)
        }
        (Err(refusal), Ok(_)) => metadata::refusal_response(&refusal, cx.request_id),
        (Err(refusal), Err(e)) => {
            // No data leaves on a refusal; the caller gets the real reason.
            tracing::error!(request_id = cx.request_id, error = %e, "refusal not recorded in the audit log");
            metadata::refusal_response(&refusal, cx.request_id)
        }
    }
}

/// What the audit entry says of the call's end, and what the caller gets
/// if the entry is made.
fn ending_of(
    result: Result<Answer, Refusal>,
    recorder: &Recorder,
) -> (Ending<'static>, Result<Response<Body>, Refusal>) {
    match result {
        Ok(Answer::Unary {
            parts,
            body,
            trailers,
            grpc_status,
        }) => {
            let ending = Ending {
                outcome: Outcome::Allowed,
                reason: "",
                grpc_status,
                response_digest: Some(recorder.pseudonyms.digest(&body)),
            };
            (
                ending,
                Ok(Response::from_parts(
                    parts,
                    Body::new(Buffered::new(body, trailers)),
                )),
            )
        }
        Ok(Answer::Stream(response)) => {
            let ending = Ending {
                outcome: Outcome::Allowed,
                reason: "",
                grpc_status: 0,
                response_digest: None,
            };
            (ending, Ok(response))
        }
        Err(refusal) => {
            let ending = Ending {
                outcome: labels::outcome(Some(refusal.reason)),
                reason: refusal.reason.as_str(),
                grpc_status: refusal.reason.code() as i32,
                response_digest: None,
            };
            (ending, Err(refusal))
        }
    }
}

fn audit_unavailable() -> Refusal {
    Refusal::new(
        Reason::AuditUnavailable,
        "the gateway cannot record this exchange in its audit log right now, so it releases no data; retry later, and tell the platform operator if it lasts",
    )
}

/// Refuses (and records) a call whose path is not in the catalogue.
pub async fn unknown_method(
    path: &str,
    headers: &HeaderMap,
    cx: CallContext<'_>,
) -> Response<Body> {
    let refusal = Refusal::new(
        Reason::UnknownMethod,
        format!("no onboarded contract provides `{path}`; check the service and method names, or ask the operator whether the agency is onboarded (`jisr catalog`)"),
    );
    let metrics = cx.telemetry.metrics().unknown_route().clone();
    refused_early(path, headers, refusal, &metrics, cx).await
}

/// Refuses (and records, and counts under `metrics`) a call stopped before
/// the exchange's own checks, such as one with a malformed `jisr-request-id`.
pub async fn refused_early(
    path: &str,
    headers: &HeaderMap,
    refusal: Refusal,
    metrics: &RouteMetrics,
    cx: CallContext<'_>,
) -> Response<Body> {
    let started = StdInstant::now();
    let mut trail = Trail::start(cx.request_id, cx.consumer.as_str(), path, headers);
    let span = cx.telemetry.span(path, headers);
    if let Some(span) = &span {
        trail.trace_id.clone_from(&span.trace_id);
    }
    if let Ok(md) = metadata::call_metadata(headers) {
        trail.purpose = md.purpose;
        trail.procedure = md.procedure.unwrap_or_default();
        trail.official = md.official.unwrap_or_default();
    }
    finish(Err(refusal), &trail, cx, started, (metrics, span)).await
}

/// One info line per exchange; never the citizen id.
fn log_exchange(
    trail: &Trail,
    ending: &Ending<'_>,
    entry: Option<u64>,
    elapsed: std::time::Duration,
) {
    let outcome = labels::outcome_label(ending.outcome);
    // A fixed target, not this file's module path: operators filter their
    // log pipelines on it, and it must not move when the module is split.
    tracing::info!(
        target: "jisr::gateway::exchange",
        request_id = %trail.request_id,
        consumer = %trail.consumer,
        provider = %Dash(&trail.provider),
        method = %trail.method,
        purpose = %Dash(&trail.purpose),
        procedure = %Dash(&trail.procedure),
        official = %Dash(&trail.official),
        basis = %Dash(&trail.basis),
        outcome,
        reason = %Dash(ending.reason),
        grpc_status = ending.grpc_status,
        audit_entry = entry.map_or(-1, |e| e as i64),
        trace_id = %Dash(&trail.trace_id),
        micros = elapsed.as_micros() as u64,
        "exchange"
    );
}

/// A log value: the text, or `-` when empty. Written in place, where a
/// `String` per field would cost an allocation and a copy per call.
struct Dash<'a>(&'a str);

impl std::fmt::Display for Dash<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "-" } else { self.0 })
    }
}
