//! One exchange: the unary (or server-streaming) path of DESIGN.md, from the
//! routed request to the provider's answer.
//!
//! Order matters and is cheap-first: route lookup, metadata, the access
//! check (no body read for a call that is not allowed), then the body is read
//! within its size limit, walked against the contract, and forwarded as the
//! bytes that arrived. A unary answer is held until its audit entry is
//! durable (no audit, no data); a stream starts flowing only after the entry
//! recording its opening is durable.
//!
//! Here: the top of the call ([`Exchange::handle`]) and the checks made
//! before the provider leg, which end in a [`Justified`] grant. `prepare`
//! is the work inside the leg (body, subject, consent, address); `finish`
//! awaits the audit entry and releases or withholds the answer. The leg
//! itself is assembled in `layers::stack::provider_leg`.

mod finish;
pub(crate) mod prepare;

pub use finish::{refused_early, unknown_method};

use super::layers::consent::Justified;
use super::layers::rate::RateLimits;
use super::layers::stack::{self, Answer, Outbound};
use super::metadata::{self, CallMetadata};
use super::upstream::Upstream;
use crate::audit::record::{Recorder, Trail};
use crate::catalogue::MethodRoute;
use crate::consent::ConsentStore;
use crate::gateway::body::read_message;
use crate::identity::AgencyId;
use crate::policy::release::Release;
use crate::policy::{Denial, MethodAccess};
use crate::refusal::{Reason, Refusal};
use crate::telemetry::{RouteMetrics, Telemetry};
use finish::finish;
use http::header::CONTENT_TYPE;
use http::{Request, Response};
use hyper::body::Incoming;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant as StdInstant;
use tokio::time::Instant;
use tonic::body::Body;
use tower::Service;

/// How long a call refused on its metadata may take to send the message
/// read only to record whom it was about (`Exchange::refused_unread`);
/// a gRPC client sends it with the headers.
const UNREAD_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

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
    /// `route.path` as the provider request's path, built once at load:
    /// cloning it per call shares its bytes instead of formatting and
    /// parsing a URI.
    pub uri_path: http::uri::PathAndQuery,
    /// The `jisr-basis` answer header of each rule, by rule index, built
    /// once at load rather than formatted per call.
    pub bases: HashMap<usize, http::HeaderValue>,
}

/// The consent store and how long a check may wait for it.
#[derive(Debug, Clone)]
pub struct Consents {
    /// Where consents live.
    pub store: Arc<dyn ConsentStore>,
    /// Bound on each store operation.
    pub timeout: std::time::Duration,
    /// The time a consent's validity is checked against.
    pub clock: Arc<crate::clock::Clock>,
}

/// What a rule adds beyond allowing the call.
#[derive(Debug, Clone, Default)]
pub struct RuleTerms {
    /// `jisr-justification` required, exchange flagged for review.
    pub break_glass: bool,
    /// Deferred disclosure: the citizen sees the exchange from this time
    /// on (microseconds since the epoch).
    pub disclose_from: Option<i64>,
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
    /// The consumer's `[[agency]]`, if declared (its officials' namespace).
    pub agency: Option<&'a crate::config::AgencyConfig>,
    /// Metrics and spans.
    pub telemetry: &'a Telemetry,
}

/// Refuses a `jisr-official` outside the consumer's namespace: the value is
/// the consumer's own assertion, so it may name only the consumer's people.
fn official_in_namespace(official: &str, cx: CallContext<'_>) -> Result<(), Refusal> {
    let (admitted, form) = match cx.agency {
        Some(agency) => (agency.admits_official(official), agency.official_form()),
        None => {
            let rest = official
                .strip_prefix(cx.consumer.as_str())
                .and_then(|r| r.strip_prefix('.'));
            (
                rest.is_some_and(|r| !r.is_empty()),
                format!("{}.…", cx.consumer),
            )
        }
    };
    if admitted {
        return Ok(());
    }
    Err(Refusal::new(
        Reason::InvalidRequest,
        format!("`jisr-official` `{official}` is not in `{}`'s namespace: send it as `{form}` (an official of your own agency)", cx.consumer),
    ))
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

    /// The checks before the provider leg, then the leg within the
    /// caller's deadline.
    async fn checked(
        &self,
        request: Request<Incoming>,
        cx: CallContext<'_>,
        trail: &mut Trail,
    ) -> Result<Answer, Refusal> {
        let metadata = match metadata::call_metadata(request.headers()) {
            Ok(metadata) => metadata,
            Err(refusal) => {
                let refusal = self.without_purpose(cx.consumer, refusal);
                return Err(self.refused_unread(request, cx, trail, refusal).await);
            }
        };
        let (deadline, permit) = match self.admit(&request, &metadata, cx, trail) {
            Ok(admitted) => admitted,
            Err(refusal) => return Err(self.refused_unread(request, cx, trail, refusal).await),
        };
        let call = Outbound {
            exchange: self,
            request,
            permit,
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
                    format!("the deadline set by the caller passed before `{}` answered; retry with a longer deadline", self.route.provider),
                ))
            }),
            None => work.await,
        }
    }

    /// The checks made on the call's metadata alone, cheap-first: the
    /// official, that the call is carried, its deadline, the access rule
    /// and its terms (a break-glass call without a reason is refused before
    /// it takes a rate token or a place at the provider).
    fn admit<'a>(
        &'a self,
        request: &Request<Incoming>,
        metadata: &'a CallMetadata,
        cx: CallContext<'a>,
        trail: &mut Trail,
    ) -> Result<(Option<Instant>, Justified<'a>), Refusal> {
        trail.purpose.clone_from(&metadata.purpose);
        trail.procedure = metadata.procedure.clone().unwrap_or_default();
        trail.official = metadata.official.clone().unwrap_or_default();
        if let Some(official) = &metadata.official {
            official_in_namespace(official, cx)?;
        }
        self.carried(request)?;
        let timeout = metadata::grpc_timeout(request.headers())?;
        let deadline = timeout.map(|t| Instant::now() + t);
        let grant = self
            .access
            .check(cx.consumer, &metadata.purpose)
            .map_err(|d| self.denied(cx.consumer, metadata, d))?;
        trail.basis = grant.basis().to_string();
        let permit = Justified::check(grant, cx.terms, metadata, trail)?;
        Ok((deadline, permit))
    }

    /// A call refused on its metadata: its message is read anyway (within
    /// the size limit and [`UNREAD_WAIT`]) only to find the citizen it was
    /// about, whose history must show the refused attempt too. Nothing else
    /// is done with it; a message that does not come or does not decode
    /// leaves the entry without a subject, and the refusal stands.
    async fn refused_unread(
        &self,
        request: Request<Incoming>,
        cx: CallContext<'_>,
        trail: &mut Trail,
        refusal: Refusal,
    ) -> Refusal {
        let read = read_message(request.into_body(), cx.max_message);
        if let Ok(Ok(message)) = tokio::time::timeout(UNREAD_WAIT, read).await {
            let _not_about_anyone = prepare::walk(&self.route, &message, cx.recorder, trail);
        }
        refusal
    }

    /// Whether this gateway carries the call at all: a method that streams
    /// requests is not carried, nor a call that is not gRPC.
    fn carried(&self, request: &Request<Incoming>) -> Result<(), Refusal> {
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
        Ok(())
    }

    /// A call without `jisr-purpose`: the refusal names the purposes the
    /// rules of this gateway allow this consumer for this method, so the
    /// caller learns what to send rather than a made-up example.
    fn without_purpose(&self, consumer: &AgencyId, refusal: Refusal) -> Refusal {
        if refusal.reason != Reason::PurposeRequired {
            return refusal;
        }
        let method = self.route.qualified();
        let allowed = self.access.purposes_of(consumer);
        let hint = if allowed.is_empty() {
            format!("no access rule of this gateway lets agency `{consumer}` call `{method}` yet; ask the platform operator for a rule naming your purpose and its legal basis")
        } else {
            format!(
                "the rules of this gateway let agency `{consumer}` call `{method}` for {}",
                allowed
                    .iter()
                    .map(|p| format!("`{p}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        Refusal::new(
            Reason::PurposeRequired,
            format!("every call must state its purpose: set the `jisr-purpose` metadata to the purpose code of your procedure; {hint}"),
        )
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
}
