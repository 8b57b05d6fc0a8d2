//! The exchange's work between admission and delivery: read the message
//! within its size limit, walk it against the contract to the citizen it
//! concerns, check the call's basis (yielding the
//! [`Consented`](crate::gateway::layers::consent::Consented) permit that
//! delivery requires), and address the request to its instance. The message
//! goes on as the bytes that arrived.

use crate::audit::record::{Recorder, Trail};
use crate::catalogue::MethodRoute;
use crate::gateway::body::{read_message, PREFIX};
use crate::gateway::layers::stack::{Outbound, Prepared, Targeted};
use crate::gateway::metadata;
use crate::gateway::upstream::Target;
use crate::policy::Grant;
use crate::refusal::{Reason, Refusal};
use bytes::Bytes;
use http::header::{HeaderName, HOST};
use http::request::Parts;
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Uri};
use std::time::Instant as StdInstant;

/// The W3C trace context header.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Turns a targeted call into one ready to send; see the module docs.
pub(crate) async fn prepare(targeted: Targeted<'_>) -> Result<Prepared<'_>, Refusal> {
    let Targeted {
        call,
        place,
        target,
    } = targeted;
    let Outbound {
        exchange,
        request,
        permit,
        metadata,
        cx,
        deadline,
        trail,
    } = call;
    let route = &exchange.route;
    let (parts, body) = request.into_parts();
    let message = read_message(body, cx.max_message).await?;
    let subject = walk(route, &message, cx.recorder, trail)?;
    // Only a check that asks the store is timed: a law basis is decided
    // on the spot.
    let started = permit.needs_consent().then(StdInstant::now);
    let consented = permit
        .consent(subject, route, metadata, cx.consents, deadline, trail)
        .await;
    if let Some(started) = started {
        cx.telemetry.metrics().consent_check(started.elapsed());
    }
    let permit = consented?;
    let request = address(
        parts,
        message,
        &target,
        &exchange.uri_path,
        permit.grant(),
        cx.request_id,
        trail,
    )?;
    Ok(Prepared {
        exchange,
        permit,
        cx,
        deadline,
        place,
        target,
        request,
    })
}

/// Walks the message against the contract to the citizen it concerns,
/// which the audit entry records as a pseudonym (never the id itself).
pub(super) fn walk<'m>(
    route: &MethodRoute,
    message: &'m Bytes,
    recorder: &Recorder,
    trail: &mut Trail,
) -> Result<Option<&'m str>, Refusal> {
    let subject = route.schema.walk(&message[PREFIX..]).map_err(|e| {
        Refusal::new(
            Reason::InvalidRequest,
            format!("the request does not decode as `{}`: {e}; build it with the published contract (`jisr catalog`)", route.request_type),
        )
    })?;
    trail.request_digest = Some(recorder.pseudonyms.digest(&message[PREFIX..]));
    if let Some(field) = &route.subject_field {
        match subject.filter(|s| !s.is_empty()) {
            Some(citizen) => trail.subject = Some(recorder.pseudonyms.pseudonym(citizen)),
            None => {
                return Err(Refusal::new(
                    Reason::InvalidRequest,
                    format!("the citizen identifier `{field}` is empty; set it to the citizen the call is about"),
                ))
            }
        }
    }
    Ok(subject)
}

/// The request for the provider: sent to `target`, naming the consumer and
/// the request id, carrying the trace, and without the justification.
fn address(
    mut parts: Parts,
    message: Bytes,
    target: &Target<'_>,
    path: &PathAndQuery,
    grant: &Grant<'_>,
    request_id: &str,
    trail: &Trail,
) -> Result<Request<Bytes>, Refusal> {
    // From parts parsed at load: no per-call formatting or parsing.
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(Scheme::HTTPS);
    uri.authority = target.authority().cloned();
    uri.path_and_query = Some(path.clone());
    parts.uri = Uri::from_parts(uri).map_err(|_| {
        Refusal::new(
            Reason::ProviderUnavailable,
            "the provider's address is invalid; tell the operator",
        )
    })?;
    let headers = &mut parts.headers;
    headers.remove(HOST);
    headers.remove(metadata::CONSUMER);
    // The justification may name people; it stays in the audit log.
    headers.remove(metadata::JUSTIFICATION);
    headers.insert(
        metadata::CONSUMER,
        metadata::header(grant.consumer().as_str()),
    );
    headers.insert(
        metadata::REQUEST_ID,
        metadata::request_id_header(request_id),
    );
    if let Some(traceparent) = &trail.traceparent {
        // The provider's spans become children of the exchange's.
        headers.insert(TRACEPARENT, traceparent.clone());
    }
    Ok(Request::from_parts(parts, message))
}
