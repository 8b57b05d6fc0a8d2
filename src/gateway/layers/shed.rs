//! Load shedding: at most `max_in_flight` calls are on their way to one
//! provider through this gateway at a time. A call over the limit is refused
//! at once with `OVERLOADED` and a retry hint, never queued: a queue in
//! front of a saturated provider only turns its slowness into every
//! caller's, and holds their memory while it grows.

use super::stack::{Admitted, Answer, Outbound};
use super::OVERLOAD_RETRY;
use crate::refusal::{Reason, Refusal};
use futures_util::future::Either;
use std::future::{ready, Ready};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// The in-flight count of one provider, shared by all its calls.
#[derive(Debug)]
pub struct InFlightLimit {
    max: usize,
    in_flight: AtomicUsize,
    shed: AtomicU64,
}

impl InFlightLimit {
    /// A limit of `max` calls at a time.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            in_flight: AtomicUsize::new(0),
            shed: AtomicU64::new(0),
        }
    }

    /// A place among the in-flight calls, or `None` (counted as shed) when
    /// all are taken. Nothing waits.
    pub fn try_acquire(&self) -> Option<InFlight<'_>> {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.shed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(InFlight(self))
    }

    /// The limit.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Calls shed so far.
    pub fn shed(&self) -> u64 {
        self.shed.load(Ordering::Relaxed)
    }
}

/// A place among a provider's in-flight calls, given back when dropped:
/// when the answer is in (unary) or has started (a stream).
#[derive(Debug)]
pub struct InFlight<'a>(&'a InFlightLimit);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Adds [`Shed`] in front of a service.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShedLayer<'a> {
    limit: &'a InFlightLimit,
}

impl<'a> ShedLayer<'a> {
    /// Sheds calls over `limit`.
    pub(crate) fn new(limit: &'a InFlightLimit) -> Self {
        Self { limit }
    }
}

impl<'a, S> Layer<S> for ShedLayer<'a> {
    type Service = Shed<'a, S>;

    fn layer(&self, inner: S) -> Self::Service {
        Shed {
            limit: self.limit,
            inner,
        }
    }
}

/// Lets a call through with its place among the provider's in-flight calls
/// ([`Admitted`]), or refuses it with `OVERLOADED`.
#[derive(Debug, Clone)]
pub(crate) struct Shed<'a, S> {
    limit: &'a InFlightLimit,
    inner: S,
}

impl<'a, S> Service<Outbound<'a>> for Shed<'a, S>
where
    S: Service<Admitted<'a>, Response = Answer, Error = Refusal>,
{
    type Response = Answer;
    type Error = Refusal;
    type Future = Either<Ready<Result<Answer, Refusal>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Refusal>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Outbound<'a>) -> Self::Future {
        match self.limit.try_acquire() {
            Some(place) => Either::Right(self.inner.call(Admitted { call, place })),
            None => {
                let provider = &call.exchange.route.provider;
                Either::Left(ready(Err(Refusal::new(
                    Reason::Overloaded,
                    format!("the `{provider}` service already has {} calls in flight through this gateway, its limit; {}", self.limit.max, crate::refusal::retry_in(OVERLOAD_RETRY)),
                )
                .retry_after(OVERLOAD_RETRY))))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_over_the_limit_are_shed_and_a_finished_call_frees_its_place() {
        let limit = InFlightLimit::new(2);
        let a = limit.try_acquire().unwrap();
        let b = limit.try_acquire().unwrap();
        assert!(limit.try_acquire().is_none());
        assert_eq!((limit.in_flight(), limit.shed()), (2, 1));
        drop(a);
        let c = limit.try_acquire().unwrap();
        assert!(limit.try_acquire().is_none());
        drop((b, c));
        assert_eq!((limit.in_flight(), limit.shed()), (0, 2));
    }
}
