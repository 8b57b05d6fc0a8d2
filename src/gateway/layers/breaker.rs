//! Outlier ejection of one provider instance (a circuit breaker), as in
//! Envoy's consecutive-failure outlier detection: after `breaker_failures`
//! consecutive failures (transport errors, timeouts) the instance is ejected
//! for `breaker_cooldown`; then one probe call is let through, and its
//! outcome closes the breaker or ejects the instance again.
//!
//! `Eject` is the tower layer: it picks an instance whose breaker lets the
//! call through and reports the call's outcome back to that breaker.
//!
//! All state is atomics: a call on a healthy instance costs one load on
//! admission and, on success, one load (the failure count is written only
//! when it is not already zero).

use super::stack::{Admitted, Answer, Targeted};
use crate::gateway::upstream::{Target, Upstream};
use crate::refusal::{Reason, Refusal};
use futures_util::future::Either;
use pin_project_lite::pin_project;
use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service};

const CLOSED: u8 = 0;
const OPEN: u8 = 1;
const HALF_OPEN: u8 = 2;

/// What a probe-less caller is told while a probe is out.
const PROBE_RETRY: Duration = Duration::from_millis(500);

/// A breaker's state, for operators and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// The instance is ejected until its cooldown ends.
    Open,
    /// One probe call is out; others are kept away until it ends.
    HalfOpen,
}

impl BreakerState {
    /// The name used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half-open",
        }
    }

    /// Whether it keeps calls away from its instance (open, or probing).
    pub fn ejects(self) -> bool {
        self != Self::Closed
    }
}

/// Whether a call may go to the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Yes, as an ordinary call.
    Call,
    /// Yes, as the probe after a cooldown.
    Probe,
    /// No; retry after this long.
    Ejected(Duration),
}

/// The breaker of one instance.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: AtomicU8,
    failures: AtomicU32,
    /// When (in milliseconds on the node's monotonic clock,
    /// [`crate::clock::Clock::monotonic_ms`]) the cooldown ends.
    retry_at: AtomicU64,
    ejections: AtomicU64,
}

impl Breaker {
    /// A closed breaker that opens after `threshold` consecutive failures.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            state: AtomicU8::new(CLOSED),
            failures: AtomicU32::new(0),
            retry_at: AtomicU64::new(0),
            ejections: AtomicU64::new(0),
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        match self.state.load(Ordering::Acquire) {
            CLOSED => BreakerState::Closed,
            OPEN => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        }
    }

    /// How many times the instance was ejected.
    pub fn ejections(&self) -> u64 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Whether a call may go; `now` is read only when the breaker is not
    /// closed, so a healthy instance costs no clock read.
    pub(crate) fn admit(&self, now: impl FnOnce() -> u64) -> Admit {
        match self.state.load(Ordering::Acquire) {
            CLOSED => Admit::Call,
            OPEN => {
                let now = now();
                let at = self.retry_at.load(Ordering::Acquire);
                if now < at {
                    return Admit::Ejected(Duration::from_millis(at - now));
                }
                match self.state.compare_exchange(
                    OPEN,
                    HALF_OPEN,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => Admit::Probe,
                    Err(_) => Admit::Ejected(PROBE_RETRY),
                }
            }
            _ => Admit::Ejected(PROBE_RETRY),
        }
    }

    /// The call reached the provider and it answered. Returns true when this
    /// closed the breaker.
    pub(crate) fn success(&self, probe: bool) -> bool {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        probe
            && self
                .state
                .compare_exchange(HALF_OPEN, CLOSED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// The call failed at transport level or timed out. Returns true when
    /// this ejected the instance.
    pub(crate) fn failure(&self, probe: bool, now: u64) -> bool {
        if probe {
            self.open(now);
            return true;
        }
        let n = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.threshold
            && self
                .state
                .compare_exchange(CLOSED, OPEN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.open(now);
            return true;
        }
        false
    }

    /// A probe ended without a verdict (the caller went away): let the next
    /// call probe.
    pub(crate) fn abandon(&self, now: u64) {
        self.retry_at.store(now, Ordering::Release);
        let _ = self
            .state
            .compare_exchange(HALF_OPEN, OPEN, Ordering::AcqRel, Ordering::Acquire);
    }

    fn open(&self, now: u64) {
        self.failures.store(0, Ordering::Relaxed);
        self.retry_at
            .store(now + self.cooldown.as_millis() as u64, Ordering::Release);
        self.state.store(OPEN, Ordering::Release);
        self.ejections.fetch_add(1, Ordering::Relaxed);
    }
}

/// Adds [`Eject`] in front of a service.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EjectLayer<'a> {
    upstream: &'a Upstream,
}

impl<'a> EjectLayer<'a> {
    /// Picks among `upstream`'s instances.
    pub(crate) fn new(upstream: &'a Upstream) -> Self {
        Self { upstream }
    }
}

impl<'a, S> Layer<S> for EjectLayer<'a> {
    type Service = Eject<'a, S>;

    fn layer(&self, inner: S) -> Self::Service {
        Eject {
            upstream: self.upstream,
            inner,
        }
    }
}

/// Sends each call to an instance whose breaker lets it through
/// (round-robin over those), or refuses it with `PROVIDER_UNAVAILABLE` and
/// the time until the first ejected instance may be probed. The instance
/// is then judged by the call's outcome.
#[derive(Debug, Clone)]
pub(crate) struct Eject<'a, S> {
    upstream: &'a Upstream,
    inner: S,
}

impl<'a, S> Service<Admitted<'a>> for Eject<'a, S>
where
    S: Service<Targeted<'a>, Response = Answer, Error = Refusal>,
{
    type Response = Answer;
    type Error = Refusal;
    type Future = Either<Ready<Result<Answer, Refusal>>, Judged<'a, S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Refusal>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, admitted: Admitted<'a>) -> Self::Future {
        let Admitted { call, place } = admitted;
        match self.upstream.pick() {
            Ok((target, probe)) => Either::Right(Judged {
                inner: self.inner.call(Targeted {
                    call,
                    place,
                    target,
                }),
                ticket: Some(Ticket {
                    target,
                    probe,
                    settled: false,
                }),
            }),
            Err(wait) => {
                let provider = self.upstream.provider();
                let wait = wait.max(Duration::from_millis(1));
                Either::Left(ready(Err(Refusal::new(
                    Reason::ProviderUnavailable,
                    format!("the `{provider}` service failed repeatedly and is set aside for a while; {}, and tell the platform operator if it lasts", crate::refusal::retry_in(wait)),
                )
                .retry_after(wait))))
            }
        }
    }
}

pin_project! {
    /// A call on its way to an instance; its outcome goes to the
    /// instance's breaker.
    pub(crate) struct Judged<'a, F> {
        #[pin]
        inner: F,
        ticket: Option<Ticket<'a>>,
    }
}

impl<F> Future for Judged<'_, F>
where
    F: Future<Output = Result<Answer, Refusal>>,
{
    type Output = Result<Answer, Refusal>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let Some(ticket) = this.ticket.take() {
            match &result {
                Ok(_) => ticket.succeeded(),
                Err(refusal) if is_provider_fault(refusal.reason) => ticket.failed(),
                // The consumer's doing (a malformed message, no consent):
                // says nothing about the instance.
                Err(_) => drop(ticket),
            }
        }
        Poll::Ready(result)
    }
}

/// Whether a refusal means the instance failed: it could not be reached,
/// broke off, answered nonsense or did not answer in time.
fn is_provider_fault(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::ProviderUnavailable | Reason::ProviderTimeout
    )
}

/// A call's pending verdict on its instance. Dropped without one (the
/// caller went away, or the call was refused for the consumer's doing), it
/// counts neither way, and a probe lets the next call probe.
struct Ticket<'a> {
    target: Target<'a>,
    probe: bool,
    settled: bool,
}

impl Ticket<'_> {
    /// The provider answered (whatever its gRPC status).
    fn succeeded(mut self) {
        self.settled = true;
        if self.target.breaker().success(self.probe) {
            tracing::info!(provider = %self.target.provider(), instance = %self.target.addr(), "provider instance answered its probe: back in service");
        }
    }

    /// The call failed at transport level or timed out.
    fn failed(mut self) {
        self.settled = true;
        if self
            .target
            .breaker()
            .failure(self.probe, self.target.now_ms())
        {
            let limits = self.target.limits();
            tracing::warn!(
                provider = %self.target.provider(),
                instance = %self.target.addr(),
                failures = limits.breaker_failures,
                cooldown_ms = limits.breaker_cooldown.as_millis() as u64,
                probe = self.probe,
                "provider instance ejected"
            );
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.settled && self.probe {
            self.target.breaker().abandon(self.target.now_ms());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_and_a_success_resets_the_count() {
        let b = Breaker::new(3, Duration::from_millis(100));
        assert!(!b.failure(false, 0));
        assert!(!b.failure(false, 0));
        assert!(!b.success(false));
        assert!(!b.failure(false, 0));
        assert!(!b.failure(false, 0));
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.failure(false, 10));
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.admit(|| 50), Admit::Ejected(Duration::from_millis(60)));
        assert_eq!(b.ejections(), 1);
    }

    #[test]
    fn one_probe_after_the_cooldown_decides() {
        let b = Breaker::new(1, Duration::from_millis(100));
        b.failure(false, 0);
        assert_eq!(b.admit(|| 100), Admit::Probe);
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert_eq!(b.admit(|| 100), Admit::Ejected(PROBE_RETRY));
        // A failed probe ejects again for a whole cooldown.
        assert!(b.failure(true, 120));
        assert_eq!(b.admit(|| 150), Admit::Ejected(Duration::from_millis(70)));
        assert_eq!(b.admit(|| 220), Admit::Probe);
        assert!(b.success(true));
        assert_eq!(b.state(), BreakerState::Closed);
        assert_eq!(b.admit(|| 221), Admit::Call);
        assert_eq!(b.ejections(), 2);
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_call_probe() {
        let b = Breaker::new(1, Duration::from_millis(100));
        b.failure(false, 0);
        assert_eq!(b.admit(|| 200), Admit::Probe);
        b.abandon(210);
        assert_eq!(b.state(), BreakerState::Open);
        assert_eq!(b.admit(|| 210), Admit::Probe);
    }

    fn judged<'a>(
        target: Target<'a>,
        result: Result<Answer, Refusal>,
    ) -> Judged<'a, Ready<Result<Answer, Refusal>>> {
        Judged {
            inner: ready(result),
            ticket: Some(Ticket {
                target,
                probe: false,
                settled: false,
            }),
        }
    }

    #[tokio::test]
    async fn only_the_providers_faults_count_against_its_instance() {
        crate::tls::install_crypto_provider();
        let tls = rustls::ClientConfig::builder()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let limits = crate::config::ProviderLimits {
            breaker_failures: 1,
            ..Default::default()
        };
        let up = Upstream::new(
            crate::identity::AgencyId::parse("tax").unwrap(),
            &["127.0.0.1:1".to_owned()],
            1,
            limits,
            std::sync::Arc::new(tls),
            std::sync::Arc::default(),
        );
        let (target, _) = up.pick().unwrap();
        for consumers_doing in [
            Reason::InvalidRequest,
            Reason::ConsentRevoked,
            Reason::DeadlineExceeded,
        ] {
            let refusal = Refusal::new(consumers_doing, "x");
            assert!(judged(target, Err(refusal)).await.is_err());
            assert_eq!(target.breaker().state(), BreakerState::Closed);
        }
        let refusal = Refusal::new(Reason::ProviderTimeout, "x");
        assert!(judged(target, Err(refusal)).await.is_err());
        assert_eq!(target.breaker().state(), BreakerState::Open);
        assert!(up.pick().is_err(), "the only instance is ejected");
    }
}
