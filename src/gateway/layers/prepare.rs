//! The exchange's own work on an admitted call, as a layer: reads the
//! message within its size limit, walks it to the citizen it concerns,
//! checks the call's basis (the consent, when it is consent) and addresses
//! the request to its instance; see [`crate::gateway::exchange::prepare`].
//! The message goes on as the bytes that arrived.

use super::stack::{Answer, Prepared, Targeted, Then};
use crate::gateway::exchange::prepare::prepare;
use crate::refusal::Refusal;
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Adds [`Prepare`] in front of a service.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PrepareLayer;

impl<S> Layer<S> for PrepareLayer {
    type Service = Prepare<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Prepare { inner }
    }
}

/// Turns a [`Targeted`] call into a [`Prepared`] one, then calls the next
/// layer with it. The step awaits the body and the consent store, so it is
/// boxed, once per call.
#[derive(Debug, Clone)]
pub(crate) struct Prepare<S> {
    inner: S,
}

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
