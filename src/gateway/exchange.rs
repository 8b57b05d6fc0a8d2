//! One exchange: the unary (or server-streaming) path of DESIGN.md, from the
//! routed request to the provider's answer.
//!
//! Order matters and is cheap-first: route lookup, metadata, the access
//! check (no body read for a call that is not allowed), then the body is read
//! within its size limit, walked against the contract, and forwarded as the
//! bytes that arrived. A unary answer is held until its audit entry is
//! durable (no audit, no data); a stream starts flowing only after the entry
//! recording its opening is durable.

use super::body::{read_message, Buffered, Passthrough, PREFIX};
use super::layers::rate::RateLimits;
use super::layers::stack::{self, Answer, Outbound, Prepared, Targeted, Then};
use super::metadata::{self, CallMetadata};
use super::upstream::Upstream;
use crate::audit::record::{Ending, Recorder, Trail};
use crate::catalogue::{MethodRoute, Streaming};
use crate::config::Basis;
use crate::consent::check::{self, Claim};
use crate::consent::ConsentStore;
use crate::identity::AgencyId;
use crate::policy::release::Release;
use crate::policy::{Denial, Grant, MethodAccess};
use crate::proto::jisr::audit::v1::Outcome;
use crate::refusal::{Reason, Refusal};
use crate::telemetry::{labels, ExchangeSpan, RouteMetrics, Telemetry};
use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant as StdInstant;
use tokio::time::Instant;
use tonic::body::Body;
use tower::{Layer, Service};

/// Everything one method needs at call time, resolved at load.
#[derive(Debug)]
pub struct Exchange {
    /// The method as the catalogue knows it.
    pub route: Arc<MethodRoute>,
    /// Its access rules.
    pub access: MethodAccess,
    /// Its provider's connection pool.
    pub upstream: Arc<Upstream>,
    /// Response minimisation by rule index, for rules that release only
    /// some fields.
    pub releases: HashMap<usize, Arc<Release>>,
    /// How long the provider may take to answer (`[[route]]`, else the
    /// agency's `timeout_ms`).
    pub timeout: std::time::Duration,
    /// Its counters, labels resolved at load.
    pub metrics: Arc<RouteMetrics>,
}

/// The consent store and how long a check may wait for it.
#[derive(Debug, Clone)]
pub struct Consents {
    /// Where consents live.
    pub store: Arc<dyn ConsentStore>,
    /// Bound on each store operation.
    pub timeout: std::time::Duration,
}

/// What a rule adds beyond allowing the call.
#[derive(Debug, Clone, Default)]
pub struct RuleTerms {
    /// `jisr-justification` required, exchange flagged for review.
    pub break_glass: bool,
}

/// What one call brings along: who calls, its id, the limits, the recorder.
#[derive(Debug, Clone, Copy)]
pub struct CallContext<'a> {
    /// The authenticated consumer.
    pub consumer: &'a AgencyId,
    /// The request id (given or generated).
    pub request_id: &'a str,
    /// Largest message accepted either way.
    pub max_message: usize,
    /// The audit log.
    pub recorder: &'a Recorder,
    /// The consent store.
    pub consents: &'a Consents,
    /// The terms of each rule, by rule index.
    pub terms: &'a [RuleTerms],
    /// Calls per second per consumer.
    pub limits: &'a RateLimits,
    /// Metrics and spans.
    pub telemetry: &'a Telemetry,
}

impl Exchange {
    /// Carries one call. Never fails: a refusal is a gRPC status response.
    pub async fn handle(&self, request: Request<Incoming>, cx: CallContext<'_>) -> Response<Body> {
        let started = StdInstant::now();
        let mut trail = Trail::start(
            cx.request_id,
            cx.consumer.as_str(),
            &self.route.path,
            request.headers(),
        );
        trail.provider = self.route.provider.to_string();
        let span = cx.telemetry.span(&self.route.path, request.headers());
        if let Some(span) = &span {
            trail.trace_id.clone_from(&span.trace_id);
            trail.traceparent = Some(span.traceparent.clone());
        }
        let result = self.checked(request, cx, &mut trail).await;
        finish(result, &trail, cx, started, (&self.metrics, span)).await
    }

    async fn checked(
        &self,
        request: Request<Incoming>,
        cx: CallContext<'_>,
        trail: &mut Trail,
    ) -> Result<Answer, Refusal> {
        let metadata = metadata::call_metadata(request.headers())?;
        trail.purpose.clone_from(&metadata.purpose);
        trail.procedure = metadata.procedure.clone().unwrap_or_default();
        trail.official = metadata.official.clone().unwrap_or_default();
        let route = &self.route;
        if !route.streaming.is_supported() {
            return Err(Refusal::new(
                Reason::UnsupportedStreaming,
                format!("`{}` streams requests, which this gateway does not carry; use a unary or server-streaming method", route.qualified()),
            ));
        }
        let is_grpc = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"));
        if !is_grpc {
            return Err(Refusal::new(
                Reason::InvalidRequest,
                "content-type must be application/grpc; call the gateway with a gRPC client",
            ));
        }
        let timeout = metadata::grpc_timeout(request.headers())?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let grant = self
            .access
            .check(cx.consumer, &metadata.purpose)
            .map_err(|d| self.denied(cx.consumer, &metadata, d))?;
        trail.basis = grant.basis().to_string();
        let terms = cx.terms.get(grant.rule()).cloned().unwrap_or_default();
        if terms.break_glass {
            let Some(why) = &metadata.justification else {
                return Err(Refusal::new(
                    Reason::JustificationRequired,
                    "this is an emergency (break-glass) access: say why in `jisr-justification`; the access is flagged for review",
                ));
            };
            trail.break_glass = true;
            trail.justification.clone_from(why);
        }
        let call = Outbound {
            exchange: self,
            request,
            grant,
            metadata: &metadata,
            cx,
            deadline,
            trail,
        };
        let mut leg = stack::provider_leg(self, cx.limits);
        // No layer queues (a call over a limit is refused, never held), so
        // the leg is ready at once.
        std::future::poll_fn(|ready| leg.poll_ready(ready)).await?;
        let work = leg.call(call);
        // The caller's deadline bounds the whole leg; a call it cuts short
        // says nothing about the provider's instance.
        match deadline {
            Some(at) => tokio::time::timeout_at(at, work).await.unwrap_or_else(|_| {
                Err(Refusal::new(
                    Reason::DeadlineExceeded,
                    format!("the deadline set by the caller passed before `{}` answered; retry with a longer deadline", route.provider),
                ))
            }),
            None => work.await,
        }
    }

    fn denied(&self, consumer: &AgencyId, metadata: &CallMetadata, denial: Denial) -> Refusal {
        let method = self.route.qualified();
        match denial {
            Denial::NoRule => Refusal::new(
                Reason::AccessDenied,
                format!("agency `{consumer}` may not call `{method}`: no access rule allows it; if your procedure needs this data, ask the platform operator for a rule naming the purpose and its legal basis"),
            ),
            Denial::PurposeNotAllowed { allowed } => Refusal::new(
                Reason::PurposeNotAllowed,
                format!(
                    "agency `{consumer}` may call `{method}` only for purpose(s) {}, not `{}`; send the purpose of your procedure in `jisr-purpose`, or ask the operator for a rule",
                    allowed.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", "),
                    metadata.purpose
                ),
            ),
        }
    }

    /// Sends a prepared request to its instance and reads the answer.
    async fn answer(&self, prepared: Prepared<'_>) -> Result<Answer, Refusal> {
        let Prepared {
            grant,
            cx,
            deadline,
            place: _place,
            target,
            request,
            ..
        } = prepared;
        let route = &self.route;
        let response = target.send(request).await.map_err(|e| {
            tracing::warn!(request_id = cx.request_id, provider = %route.provider, error = %e, "provider unreachable");
            Refusal::new(
                Reason::ProviderUnavailable,
                format!("the `{}` service is unreachable right now; retry later, and if it lasts tell the platform operator", route.provider),
            )
        })?;
        let (mut parts, body) = response.into_parts();
        if parts.status != StatusCode::OK {
            tracing::warn!(request_id = cx.request_id, provider = %route.provider, status = %parts.status, "provider answered with a non-gRPC HTTP status");
            return Err(Refusal::new(
                Reason::ProviderUnavailable,
                format!(
                    "the `{}` service did not answer as a gRPC service; tell the platform operator",
                    route.provider
                ),
            ));
        }
        parts
            .headers
            .insert(metadata::REQUEST_ID, request_id(cx.request_id));
        parts
            .headers
            .insert(metadata::BASIS, header(&grant.basis().to_string()));
        let release = self.releases.get(&grant.rule());
        if route.streaming == Streaming::Server && release.is_none() {
            let body = Passthrough::new(body, deadline, route.provider.to_string());
            return Ok(Answer::Stream(Response::from_parts(parts, Body::new(body))));
        }
        // A minimised answer is read whole (a stream too, within the size
        // limit): fields are cleared message by message before anything leaves.
        let (body, trailers) = self.collect(body, cx.max_message).await?;
        let body = match release {
            None => body,
            Some(release) => release.apply(&body).map_err(|e| {
                tracing::warn!(request_id = cx.request_id, provider = %route.provider, error = %e, "answer could not be minimised");
                Refusal::new(
                    Reason::ProviderUnavailable,
                    format!("the `{}` service's answer does not decode as its contract says, so it cannot be minimised and is withheld; tell the platform operator", route.provider),
                )
            })?,
        };
        if release.is_some() {
            // The length changed.
            parts.headers.remove(http::header::CONTENT_LENGTH);
        }
        let grpc_status = trailers
            .as_ref()
            .and_then(status_of)
            .or_else(|| status_of(&parts.headers))
            .unwrap_or(tonic::Code::Unknown as i32);
        Ok(Answer::Unary {
            parts,
            body,
            trailers,
            grpc_status,
        })
    }

    /// The consent check, when the rule's basis is consent.
    async fn check_consent(
        &self,
        subject: Option<&str>,
        grant: &Grant<'_>,
        metadata: &CallMetadata,
        cx: CallContext<'_>,
        deadline: Option<Instant>,
        trail: &mut Trail,
    ) -> Result<(), Refusal> {
        let Some(id) = &metadata.consent else {
            return Err(Refusal::new(
                Reason::ConsentRequired,
                format!("`{}` needs the citizen's consent: send its id in `jisr-consent` (the portal returns it when the citizen consents)", self.route.qualified()),
            ));
        };
        let Some(subject) = subject.filter(|s| !s.is_empty()) else {
            return Err(Refusal::new(
                Reason::ConsentRequired,
                "this method's contract marks no citizen (jisr.subject), so a consent cannot apply to it; ask the operator to fix the rule",
            ));
        };
        trail.consent_id.clone_from(id);
        let claim = Claim {
            consent_id: id,
            subject,
            consumer: grant.consumer(),
            route: &self.route,
            purpose: grant.purpose(),
            procedure: metadata.procedure.as_deref(),
            now: crate::consent::artefact::now_micros(),
        };
        // The store may take the configured bound, but never past the caller's deadline.
        let bound = match deadline {
            Some(at) => cx
                .consents
                .timeout
                .min(at.saturating_duration_since(Instant::now())),
            None => cx.consents.timeout,
        };
        check::check(cx.consents.store.as_ref(), claim, bound)
            .await
            .map(drop)
    }

    /// Reads a whole unary answer, bounded like requests are.
    async fn collect(
        &self,
        mut body: super::upstream::RecvBody,
        limit: usize,
    ) -> Result<(Bytes, Option<HeaderMap>), Refusal> {
        let mut data = BytesMut::new();
        let mut trailers = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                tracing::warn!(provider = %self.route.provider, error = %e, "provider answer broke off");
                Refusal::new(
                    Reason::ProviderUnavailable,
                    format!("the `{}` service stopped in the middle of its answer; retry the call", self.route.provider),
                )
            })?;
            match frame.into_data() {
                Ok(chunk) => {
                    if data.len() + chunk.len() > limit + PREFIX {
                        return Err(Refusal::new(
                            Reason::ProviderUnavailable,
                            format!("the `{}` service answered with more than {limit} bytes, more than this gateway carries; tell the platform operator", self.route.provider),
                        ));
                    }
                    data.extend_from_slice(&chunk);
                }
                Err(frame) => trailers = frame.into_trailers().ok(),
            }
        }
        Ok((data.freeze(), trailers))
    }
}

/// Adds [`Prepare`] in front of a service.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PrepareLayer;

impl<S> Layer<S> for PrepareLayer {
    type Service = Prepare<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Prepare { inner }
    }
}

/// The exchange's own work on an admitted call: reads the message within
/// its size limit, walks it to the citizen it concerns, checks the consent
/// when the rule's basis is consent, and addresses the request to its
/// instance. The message goes on as the bytes that arrived.
#[derive(Debug, Clone)]
pub(crate) struct Prepare<S> {
    inner: S,
}

type Leg<'a> = Pin<Box<dyn Future<Output = Result<Answer, Refusal>> + Send + 'a>>;

impl<'a, S> Service<Targeted<'a>> for Prepare<S>
where
    S: Service<Prepared<'a>, Response = Answer, Error = Refusal> + Clone,
{
    type Response = Answer;
    type Error = Refusal;
    type Future = Then<'a, Prepared<'a>, S, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Refusal>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Targeted<'a>) -> Self::Future {
        // The service polled ready goes with the call; a clone stays.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        Then::new(Box::pin(prepare(call)), inner)
    }
}

async fn prepare(targeted: Targeted<'_>) -> Result<Prepared<'_>, Refusal> {
    let Targeted {
        call,
        place,
        target,
    } = targeted;
    let Outbound {
        exchange,
        request,
        grant,
        metadata,
        cx,
        deadline,
        trail,
    } = call;
    let route = &exchange.route;
    let (mut parts, body) = request.into_parts();
    let message = read_message(body, cx.max_message).await?;
    let subject = route.schema.walk(&message[PREFIX..]).map_err(|e| {
        Refusal::new(
            Reason::InvalidRequest,
            format!("the request does not decode as `{}`: {e}; build it with the published contract (`jisr catalog`)", route.request_type),
        )
    })?;
    trail.request_digest = Some(cx.recorder.pseudonyms.digest(&message[PREFIX..]));
    if let Some(field) = &route.subject_field {
        match subject.filter(|s| !s.is_empty()) {
            Some(citizen) => trail.subject = Some(cx.recorder.pseudonyms.pseudonym(citizen)),
            None => {
                return Err(Refusal::new(
                    Reason::InvalidRequest,
                    format!("the citizen identifier `{field}` is empty; set it to the citizen the call is about"),
                ))
            }
        }
    }
    if *grant.basis() == Basis::Consent {
        let started = StdInstant::now();
        let checked = exchange
            .check_consent(subject, &grant, metadata, cx, deadline, trail)
            .await;
        cx.telemetry.metrics().consent_check(started.elapsed());
        checked?;
    }
    parts.uri = format!("https://{}{}", target.addr(), route.path)
        .parse()
        .map_err(|_| {
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
    headers.insert(metadata::CONSUMER, header(grant.consumer().as_str()));
    headers.insert(metadata::REQUEST_ID, request_id(cx.request_id));
    if let Some(traceparent) = &trail.traceparent {
        // The provider's spans become children of the exchange's.
        headers.insert(TRACEPARENT, traceparent.clone());
    }
    Ok(Prepared {
        exchange,
        grant,
        cx,
        deadline,
        place,
        target,
        request: Request::from_parts(parts, message),
    })
}

/// The innermost service: sends the request on one of its instance's
/// HTTP/2 connections and reads the answer (a unary answer whole,
/// minimised if the rule says so; a stream's head).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deliver;

impl<'a> Service<Prepared<'a>> for Deliver {
    type Response = Answer;
    type Error = Refusal;
    type Future = Leg<'a>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Refusal>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, prepared: Prepared<'a>) -> Self::Future {
        let exchange = prepared.exchange;
        Box::pin(exchange.answer(prepared))
    }
}

/// The W3C trace context header.
const TRACEPARENT: http::header::HeaderName = http::header::HeaderName::from_static("traceparent");

/// The `grpc-status` in a header map.
fn status_of(headers: &HeaderMap) -> Option<i32> {
    headers.get("grpc-status")?.to_str().ok()?.parse().ok()
}

/// The request id as a header value (never indexed, see
/// [`metadata::request_id_value`]); the id was validated or made here.
fn request_id(id: &str) -> HeaderValue {
    metadata::request_id_value(id).unwrap_or_else(|| HeaderValue::from_static("invalid"))
}

/// A header value from text the gateway produced or validated.
fn header(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// Records the exchange and answers: the provider's answer once the entry is
/// durable, or the refusal.
async fn finish(
    result: Result<Answer, Refusal>,
    trail: &Trail,
    cx: CallContext<'_>,
    started: StdInstant,
    (metrics, span): (&RouteMetrics, Option<ExchangeSpan>),
) -> Response<Body> {
    let (ending, answer) = match result {
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
                response_digest: Some(cx.recorder.pseudonyms.digest(&body)),
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
    };
    let entry = cx.recorder.record(trail, ending).await;
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
    log_exchange(trail, &ending, entry.as_ref().ok().copied(), elapsed);
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
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    tracing::info!(
        request_id = %trail.request_id,
        consumer = %trail.consumer,
        provider = %dash(&trail.provider),
        method = %trail.method,
        purpose = %dash(&trail.purpose),
        procedure = %dash(&trail.procedure),
        official = %dash(&trail.official),
        basis = %dash(&trail.basis),
        outcome,
        reason = %dash(ending.reason),
        grpc_status = ending.grpc_status,
        audit_entry = entry.map_or(-1, |e| e as i64),
        trace_id = %dash(&trail.trace_id),
        micros = elapsed.as_micros() as u64,
        "exchange"
    );
}
