//! Per-route timeouts: how long a provider may take to answer
//! (`[[route]] timeout_ms`, else the agency's `timeout_ms`). A call past it
//! is refused with `PROVIDER_TIMEOUT` and a retry hint, and the breaker
//! above counts it as the instance's failure. The provider is told the
//! sooner of the caller's deadline and this timeout in `grpc-timeout`, so
//! it can stop working on a call nobody awaits.

use super::stack::{Answer, Prepared};
use super::OVERLOAD_RETRY;
use crate::gateway::metadata;
use crate::identity::AgencyId;
use crate::refusal::{Reason, Refusal};
use http::HeaderValue;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Instant;
use tower::{Layer, Service};

/// Adds [`RouteTimeout`] in front of a service.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteTimeoutLayer {
    timeout: Duration,
}

impl RouteTimeoutLayer {
    /// Gives the provider `timeout` to answer.
    pub(crate) fn new(timeout: Duration) -> Self {
        Self { timeout }
    }
}

impl<S> Layer<S> for RouteTimeoutLayer {
    type Service = RouteTimeout<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RouteTimeout {
            timeout: self.timeout,
            inner,
        }
    }
}

/// Bounds the provider's answer by the route's timeout.
#[derive(Debug, Clone)]
pub(crate) struct RouteTimeout<S> {
    timeout: Duration,
    inner: S,
}

impl<'a, S> Service<Prepared<'a>> for RouteTimeout<S>
where
    S: Service<Prepared<'a>, Response = Answer, Error = Refusal>,
{
    type Response = Answer;
    type Error = Refusal;
    type Future = TimedOut<'a, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Refusal>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut call: Prepared<'a>) -> Self::Future {
        let now = Instant::now();
        let at = now + self.timeout;
        let left = call
            .deadline
            .map_or(at, |deadline| deadline.min(at))
            .saturating_duration_since(now);
        if let Ok(value) = HeaderValue::from_str(&metadata::format_timeout(left)) {
            call.request
                .headers_mut()
                .insert(metadata::GRPC_TIMEOUT, value);
        }
        let why = Why {
            request_id: call.cx.request_id,
            provider: &call.exchange.route.provider,
            instance: call.target.addr(),
            timeout: self.timeout,
        };
        TimedOut {
            inner: tokio::time::timeout_at(at, self.inner.call(call)),
            why,
        }
    }
}

/// What a timeout refusal and its log line name.
struct Why<'a> {
    request_id: &'a str,
    provider: &'a AgencyId,
    instance: &'a str,
    timeout: Duration,
}

pin_project! {
    /// The provider's answer, or `PROVIDER_TIMEOUT` when the route's time
    /// ran out first.
    pub(crate) struct TimedOut<'a, F> {
        #[pin]
        inner: tokio::time::Timeout<F>,
        why: Why<'a>,
    }
}

impl<F> Future for TimedOut<'_, F>
where
    F: Future<Output = Result<Answer, Refusal>>,
{
    type Output = Result<Answer, Refusal>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        match std::task::ready!(this.inner.poll(cx)) {
            Ok(answer) => Poll::Ready(answer),
            Err(_) => {
                let why = this.why;
                let millis = why.timeout.as_millis() as u64;
                tracing::warn!(request_id = why.request_id, provider = %why.provider, instance = why.instance, timeout_ms = millis, "provider did not answer within the route's timeout");
                Poll::Ready(Err(Refusal::new(
                    Reason::ProviderTimeout,
                    format!("the `{}` service did not answer within {millis} ms, this route's limit; retry later, and tell the platform operator if it lasts", why.provider),
                )
                .retry_after(OVERLOAD_RETRY)))
            }
        }
    }
}
