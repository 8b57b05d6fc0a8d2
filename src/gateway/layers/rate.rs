//! Per-consumer rate limits (`[[rate_limit]]`): a GCRA token bucket per
//! consumer, one atomic compare-and-swap per call. A call over the limit is
//! refused at once with `RATE_LIMITED` and the time after which a retry
//! will pass, never queued.
//!
//! A `shared` limit is counted in Redis (the consent store's connection,
//! one script call per call, on Redis's clock) so that it holds across
//! every replica.
//! If Redis fails or does not answer in time, the node falls back to its
//! own bucket for that call rather than refuse or let everything through.

use super::stack::{Answer, Outbound, Then};
use crate::clock::Clock;
use crate::config::RateLimitConfig;
use crate::identity::AgencyId;
use crate::redis::Shared;
use crate::refusal::{Reason, Refusal};
use futures_util::future::Either;
use std::collections::HashMap;
use std::future::{ready, Ready};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tower::{Layer, Service};

/// One consumer's bucket, in the generic cell rate algorithm's form: the
/// theoretical arrival time of the next call.
#[derive(Debug)]
pub struct Bucket {
    /// Microseconds between calls at the sustained rate.
    interval: u64,
    /// How far ahead of now the arrival time may run (burst × interval).
    tolerance: u64,
    /// Theoretical arrival time, microseconds on the node's monotonic
    /// clock ([`Clock::monotonic_us`]).
    tat: AtomicU64,
    limited: AtomicU64,
    fallbacks: AtomicU64,
    config: RateLimitConfig,
}

impl Bucket {
    fn new(config: &RateLimitConfig) -> Self {
        let interval = (1_000_000 / u64::from(config.per_second.max(1))).max(1);
        Self {
            interval,
            tolerance: interval * u64::from(config.burst.max(1)),
            tat: AtomicU64::new(0),
            limited: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            config: config.clone(),
        }
    }

    /// Takes one call at `now` (µs); `Err` with the wait when over the limit.
    fn take(&self, now: u64) -> Result<(), Duration> {
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let next = tat.max(now) + self.interval;
            if next - now > self.tolerance {
                self.limited.fetch_add(1, Ordering::Relaxed);
                return Err(Duration::from_micros(next - now - self.tolerance));
            }
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(current) => tat = current,
            }
        }
    }

    /// A bucket of this node only, for a limit that is not a
    /// `[[rate_limit]]` entry (the gateway's own services).
    pub(crate) fn local(consumer: &AgencyId, per_second: u32, burst: u32) -> Self {
        Self::new(&RateLimitConfig {
            consumer: consumer.clone(),
            per_second,
            burst,
            shared: false,
            at: crate::config::Location {
                file: std::path::PathBuf::new(),
                line: 0,
                column: 0,
            },
        })
    }

    /// Takes one call of `consumer` now on the node's `clock`, or the
    /// `RATE_LIMITED` refusal (the gateway's own services' limits; the same
    /// clock as the `[[rate_limit]]` buckets, so a test advances it rather
    /// than waiting for a refill).
    pub(crate) fn check(&self, consumer: &AgencyId, clock: &Clock) -> Result<(), Refusal> {
        self.take(clock.monotonic_us())
            .map_err(|wait| over(self, consumer, wait))
    }

    /// Calls refused so far.
    pub fn limited(&self) -> u64 {
        self.limited.load(Ordering::Relaxed)
    }

    /// Calls of a shared limit counted locally because Redis failed.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// The shared count in Redis; on failure, this node's own bucket.
    async fn take_shared(
        &self,
        redis: &Shared,
        consumer: &AgencyId,
        clock: &Clock,
    ) -> Result<(), Duration> {
        match take_redis(redis, consumer, self.interval, self.tolerance).await {
            Ok(0) => Ok(()),
            Ok(wait) => {
                self.limited.fetch_add(1, Ordering::Relaxed);
                Err(Duration::from_micros(wait))
            }
            Err(e) => {
                let n = self.fallbacks.fetch_add(1, Ordering::Relaxed);
                // Once, then every 1000th: Redis trouble is logged by the
                // consent path too.
                if n.is_multiple_of(1000) {
                    tracing::warn!(%consumer, error = %e, fallbacks = n + 1, "shared rate limit unavailable: counting on this node");
                }
                self.take(clock.monotonic_us())
            }
        }
    }
}

/// The buckets of every limited consumer.
#[derive(Debug, Default, Clone)]
pub struct RateLimits {
    buckets: HashMap<AgencyId, Arc<Bucket>>,
    redis: Option<Shared>,
    /// The node's clock, whose monotonic reading the buckets refill on.
    clock: Arc<Clock>,
}

impl RateLimits {
    /// Buckets for `limits`, refilling on `clock`; a consumer whose limit
    /// did not change keeps its bucket from `previous` (a reload does not
    /// hand out a new burst).
    pub fn new(
        limits: &[RateLimitConfig],
        previous: Option<&RateLimits>,
        redis: Option<&Shared>,
        clock: Arc<Clock>,
    ) -> Self {
        let buckets = limits
            .iter()
            .map(|l| {
                let kept = previous
                    .and_then(|p| p.buckets.get(&l.consumer))
                    .filter(|b| same_limit(&b.config, l))
                    .cloned();
                (
                    l.consumer.clone(),
                    kept.unwrap_or_else(|| Arc::new(Bucket::new(l))),
                )
            })
            .collect();
        Self {
            buckets,
            redis: redis.cloned(),
            clock,
        }
    }

    /// What can be decided without waiting: a consumer without a limit
    /// passes, a local bucket answers at once, a shared one asks Redis.
    fn decide(&self, consumer: &AgencyId) -> Decision<'_> {
        if self.buckets.is_empty() {
            return Decision::Pass;
        }
        let Some(bucket) = self.buckets.get(consumer) else {
            return Decision::Pass;
        };
        match (&self.redis, bucket.config.shared) {
            (Some(redis), true) => Decision::Shared(bucket, redis),
            _ => match bucket.take(self.clock.monotonic_us()) {
                Ok(()) => Decision::Pass,
                Err(wait) => Decision::Over(over(bucket, consumer, wait)),
            },
        }
    }

    /// The bucket of a consumer, for statistics.
    pub fn bucket(&self, consumer: &AgencyId) -> Option<&Arc<Bucket>> {
        self.buckets.get(consumer)
    }
}

/// The outcome of a rate check that did not have to wait.
enum Decision<'a> {
    Pass,
    Over(Refusal),
    Shared(&'a Bucket, &'a Shared),
}

/// KEYS[1] a consumer's rate key; ARGV[1] interval and ARGV[2] tolerance in
/// microseconds. A GCRA bucket on Redis's clock (so replicas' clocks do not
/// matter): 0 if the call is let through, else the microseconds to wait.
static RATE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new = tat + interval
local ahead = new - now
if ahead > tolerance then return ahead - tolerance end
redis.call('SET', KEYS[1], string.format('%d', new), 'PX', math.ceil(ahead / 1000) + 1)
return 0
",
    )
});

/// Takes one call from `consumer`'s bucket in Redis (one round trip, bounded
/// by the connection's timeout): `Ok(0)` if let through, else the
/// microseconds to wait. The key's hash tag keeps a bucket in one slot.
async fn take_redis(
    redis: &Shared,
    consumer: &AgencyId,
    interval: u64,
    tolerance: u64,
) -> Result<u64, crate::redis::Error> {
    redis
        .call("count a call against a rate limit", |mut conn| async move {
            RATE.key(format!("jisr:rate:{{{consumer}}}"))
                .arg(interval)
                .arg(tolerance)
                .invoke_async(&mut conn)
                .await
        })
        .await
}

fn over(bucket: &Bucket, consumer: &AgencyId, wait: Duration) -> Refusal {
    let wait = wait.max(Duration::from_millis(1));
    Refusal::new(
        Reason::RateLimited,
        format!(
            "agency `{consumer}` may make {} calls per second (bursts of {}) and is over it; {}, and spread the calls out",
            bucket.config.per_second,
            bucket.config.burst,
            crate::refusal::retry_in(wait)
        ),
    )
    .retry_after(wait)
}

/// Adds [`RateLimit`] in front of a service.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RateLimitLayer<'a> {
    limits: &'a RateLimits,
}

impl<'a> RateLimitLayer<'a> {
    /// Limits each consumer to its `[[rate_limit]]`.
    pub(crate) fn new(limits: &'a RateLimits) -> Self {
        Self { limits }
    }
}

impl<'a, S> Layer<S> for RateLimitLayer<'a> {
    type Service = RateLimit<'a, S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimit {
            limits: self.limits,
            inner,
        }
    }
}

/// Refuses a call over its consumer's rate with `RATE_LIMITED`. A local
/// bucket decides on the spot (no allocation); a shared one awaits Redis.
#[derive(Debug, Clone)]
pub(crate) struct RateLimit<'a, S> {
    limits: &'a RateLimits,
    inner: S,
}

type Answered = Result<Answer, Refusal>;

impl<'a, S> Service<Outbound<'a>> for RateLimit<'a, S>
where
    S: Service<Outbound<'a>, Response = Answer, Error = Refusal> + Clone,
{
    type Response = Answer;
    type Error = Refusal;
    type Future = Either<Either<Ready<Answered>, S::Future>, Then<'a, Outbound<'a>, S, S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Refusal>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, call: Outbound<'a>) -> Self::Future {
        let consumer = call.cx.consumer;
        match self.limits.decide(consumer) {
            Decision::Pass => Either::Left(Either::Right(self.inner.call(call))),
            Decision::Over(refusal) => Either::Left(Either::Left(ready(Err(refusal)))),
            Decision::Shared(bucket, redis) => {
                // The service polled ready goes with the call; a clone stays.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let clock = &self.limits.clock;
                let check = async move {
                    bucket
                        .take_shared(redis, consumer, clock)
                        .await
                        .map_err(|wait| over(bucket, consumer, wait))?;
                    Ok(call)
                };
                Either::Right(Then::new(Box::pin(check), inner))
            }
        }
    }
}

fn same_limit(a: &RateLimitConfig, b: &RateLimitConfig) -> bool {
    (a.per_second, a.burst, a.shared) == (b.per_second, b.burst, b.shared)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Location;

    fn limit(per_second: u32, burst: u32) -> RateLimitConfig {
        RateLimitConfig {
            consumer: AgencyId::parse("education").unwrap(),
            per_second,
            burst,
            shared: false,
            at: Location {
                file: "x.toml".into(),
                line: 1,
                column: 1,
            },
        }
    }

    #[test]
    fn a_burst_passes_then_calls_pass_at_the_rate() {
        let b = Bucket::new(&limit(10, 3));
        let t = 5_000_000;
        for _ in 0..3 {
            b.take(t).unwrap();
        }
        let wait = b.take(t).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert!(b.take(t + 99_000).is_err());
        b.take(t + 100_000).unwrap();
        assert_eq!(b.limited(), 2);
    }

    /// A local limit's decision as a result (these tests have no Redis).
    fn check(limits: &RateLimits, consumer: &AgencyId) -> Result<(), Refusal> {
        match limits.decide(consumer) {
            Decision::Pass => Ok(()),
            Decision::Over(refusal) => Err(refusal),
            Decision::Shared(..) => panic!("no shared limit here"),
        }
    }

    #[test]
    fn a_bucket_refills_when_the_nodes_clock_is_advanced() {
        let clock = Arc::new(Clock::system());
        let limits = RateLimits::new(&[limit(1, 1)], None, None, clock.clone());
        let id = AgencyId::parse("education").unwrap();
        check(&limits, &id).unwrap();
        let wait = check(&limits, &id).unwrap_err().retry_after.unwrap();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        clock.advance(wait);
        check(&limits, &id).expect("refilled after the hinted delay");
        assert!(check(&limits, &id).is_err(), "one call per refill");
    }

    #[test]
    fn a_reload_keeps_an_unchanged_bucket_and_replaces_a_changed_one() {
        let one = RateLimits::new(&[limit(10, 1)], None, None, Arc::default());
        let id = AgencyId::parse("education").unwrap();
        check(&one, &id).unwrap();
        let same = RateLimits::new(&[limit(10, 1)], Some(&one), None, Arc::default());
        assert!(Arc::ptr_eq(
            one.bucket(&id).unwrap(),
            same.bucket(&id).unwrap()
        ));
        let refusal = check(&same, &id).unwrap_err();
        assert_eq!(refusal.reason, Reason::RateLimited);
        assert!(refusal.retry_after.is_some());
        let changed = RateLimits::new(&[limit(20, 1)], Some(&one), None, Arc::default());
        check(&changed, &id).unwrap();
        let other = AgencyId::parse("tax").unwrap();
        for _ in 0..100 {
            check(&changed, &other).unwrap();
        }
    }
}
