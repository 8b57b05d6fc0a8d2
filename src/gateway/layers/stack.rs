//! The provider leg of an exchange as a tower stack: one layer per concern,
//! assembled in [`provider_leg`]. It starts once the access rules allowed
//! the call and its rule's terms are met (a [`Justified`] grant) and ends
//! with the provider's answer or a [`Refusal`]; either way
//! [`crate::gateway::exchange`] records it.
//!
//! Each step hands the next a richer request type, so a later step cannot
//! run without the earlier ones: [`Outbound`] (allowed) → [`Admitted`]
//! (holds a place among the provider's in-flight calls) → [`Targeted`]
//! (an instance the breaker lets through) → [`Prepared`] (read, walked,
//! its basis checked into a [`Consented`] permit, addressed).
//!
//! The stack holds only references and is built per call: building it
//! costs nothing, and a reload swaps what the references point to between
//! calls, never during one. The layers whose refusals are decided on the
//! spot answer with a ready future and the next layer's future otherwise
//! (no allocation); the exchange's own steps, which await the body, the
//! consent store and the provider, are boxed once each.

use super::breaker::{Eject, EjectLayer};
use super::consent::{Consented, Justified};
use super::deliver::Deliver;
use super::prepare::{Prepare, PrepareLayer};
use super::rate::{RateLimit, RateLimitLayer, RateLimits};
use super::shed::{InFlight, Shed, ShedLayer};
use super::timeout::{RouteTimeout, RouteTimeoutLayer};
use crate::audit::record::Trail;
use crate::gateway::exchange::{CallContext, Exchange};
use crate::gateway::metadata::CallMetadata;
use crate::gateway::upstream::Target;
use crate::refusal::Refusal;
use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::Instant;
use tonic::body::Body;
use tower::{Service, ServiceBuilder};

/// A call the access rules allowed, on its way to the provider.
pub(crate) struct Outbound<'a> {
    /// The method's route, rules and provider.
    pub(crate) exchange: &'a Exchange,
    /// The request as it arrived; its body is not read yet.
    pub(crate) request: Request<Incoming>,
    /// What the access check allowed, on what basis, its rule's terms met.
    pub(crate) permit: Justified<'a>,
    /// The call's `jisr-*` metadata.
    pub(crate) metadata: &'a CallMetadata,
    /// Who calls, the limits, the recorder.
    pub(crate) cx: CallContext<'a>,
    /// The caller's deadline, if it set one.
    pub(crate) deadline: Option<Instant>,
    /// What the audit entry will say.
    pub(crate) trail: &'a mut Trail,
}

/// A call with its place among the provider's in-flight calls.
pub(crate) struct Admitted<'a> {
    /// The call.
    pub(crate) call: Outbound<'a>,
    /// Its place, given back when dropped.
    pub(crate) place: InFlight<'a>,
}

/// An admitted call and the provider instance it goes to.
pub(crate) struct Targeted<'a> {
    /// The call.
    pub(crate) call: Outbound<'a>,
    /// Its place among the in-flight calls.
    pub(crate) place: InFlight<'a>,
    /// The instance the breaker let it through to.
    pub(crate) target: Target<'a>,
}

/// A call ready to send: its message read and checked, its headers set.
pub(crate) struct Prepared<'a> {
    /// The method's route, rules and provider.
    pub(crate) exchange: &'a Exchange,
    /// The checked basis: without it a call cannot be built to deliver.
    pub(crate) permit: Consented<'a>,
    /// Who calls, the limits.
    pub(crate) cx: CallContext<'a>,
    /// The caller's deadline, if it set one.
    pub(crate) deadline: Option<Instant>,
    /// Its place among the in-flight calls.
    pub(crate) place: InFlight<'a>,
    /// Where it goes.
    pub(crate) target: Target<'a>,
    /// The request for the provider: the bytes that arrived.
    pub(crate) request: Request<Bytes>,
}

/// What came back from the provider.
pub(crate) enum Answer {
    /// A whole unary answer, held until its audit entry is durable.
    Unary {
        /// Status and headers.
        parts: http::response::Parts,
        /// The message(s), minimised if the rule says so.
        body: Bytes,
        /// The gRPC trailers.
        trailers: Option<HeaderMap>,
        /// The gRPC status the provider gave.
        grpc_status: i32,
    },
    /// A stream, passed through once its opening is recorded.
    Stream(Response<Body>),
}

/// The provider leg's type, as [`provider_leg`] assembles it.
pub(crate) type ProviderLeg<'a> =
    RateLimit<'a, Shed<'a, Eject<'a, Prepare<RouteTimeout<Deliver>>>>>;

/// The provider leg for `exchange`, outermost layer first.
pub(crate) fn provider_leg<'a>(exchange: &'a Exchange, limits: &'a RateLimits) -> ProviderLeg<'a> {
    ServiceBuilder::new()
        // The consumer's rate first: one compare-and-swap, decided before
        // anything is read or held, so a consumer over its rate cannot
        // take the provider's in-flight places from the others.
        .layer(RateLimitLayer::new(limits))
        // Then the provider's in-flight limit: a saturated provider sheds
        // the call before an instance is chosen or its body is read.
        .layer(ShedLayer::new(exchange.upstream.in_flight()))
        // The breaker picks an instance that is not ejected, and judges it
        // only by what the layers below report: transport errors and
        // timeouts, never a refusal that is the consumer's doing.
        .layer(EjectLayer::new(&exchange.upstream))
        // The exchange's own work: the body within its size limit, the
        // subject walk, the consent check that yields the `Consented`
        // permit delivery requires. Below admission, so a shed call reads
        // nothing; above the timeout, so a slow upload or consent store is
        // not held against the provider.
        .layer(PrepareLayer)
        // The route's timeout covers the provider's answer, and tells the
        // provider how long it has (`grpc-timeout`).
        .layer(RouteTimeoutLayer::new(exchange.timeout))
        // Send on one of the instance's HTTP/2 connections, read the
        // answer; it takes only a `Prepared` call, which holds the permit.
        .service(Deliver)
}

/// A boxed step that must be awaited before a layer can call the next.
pub(crate) type Step<'a, T> = Pin<Box<dyn Future<Output = Result<T, Refusal>> + Send + 'a>>;

pin_project! {
    /// A layer's future when the layer awaits something first (Redis, the
    /// body, the consent store): the boxed step yields the next layer's
    /// request, then the next layer's future runs in place.
    #[project = ThenProj]
    pub(crate) enum Then<'a, T, S, F> {
        /// Awaiting the step, with the next layer kept for the call.
        First {
            step: Step<'a, T>,
            inner: Option<S>,
        },
        /// The next layer's future.
        Next {
            #[pin]
            future: F,
        },
    }
}

impl<'a, T, S, F> Then<'a, T, S, F> {
    /// Runs `step`, then calls `inner` (already polled ready) with its result.
    pub(crate) fn new(step: Step<'a, T>, inner: S) -> Self {
        Self::First {
            step,
            inner: Some(inner),
        }
    }
}

impl<T, S, F> Future for Then<'_, T, S, F>
where
    S: Service<T, Response = Answer, Error = Refusal, Future = F>,
    F: Future<Output = Result<Answer, Refusal>>,
{
    type Output = Result<Answer, Refusal>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                ThenProj::First { step, inner } => {
                    let next = match std::task::ready!(step.as_mut().poll(cx)) {
                        Ok(next) => next,
                        Err(refusal) => return Poll::Ready(Err(refusal)),
                    };
                    // Taken once: the state moves to `Next` right after.
                    let mut inner = inner.take().expect("the next layer is called once");
                    let future = inner.call(next);
                    self.set(Self::Next { future });
                }
                ThenProj::Next { future } => return future.poll(cx),
            }
        }
    }
}
