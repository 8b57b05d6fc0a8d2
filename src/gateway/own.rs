//! The gateway's own services (audit, consents, bus, health, reflection)
//! are rate limited per agency like the exchange path is (`[node]`
//! `own_calls_per_second`, `own_calls_burst`, on this node): one
//! certificate cannot hammer the audit log's queries or the consent store.
//! A call over the limit is refused with `RATE_LIMITED` before it reaches
//! the service, and recorded — one by one within the agency's budget of
//! recorded refusals, beyond it in a summary entry (`audit::summary`).

use super::layers::rate::Bucket;
use super::metadata;
use crate::audit::record::{Ending, Recorder, Trail};
use crate::clock::Clock;
use crate::config::FloodLimits;
use crate::identity::AgencyId;
use crate::proto::jisr::audit::v1::Outcome;
use crate::refusal::Refusal;
use http::{HeaderMap, Response};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tonic::body::Body;

/// One bucket per agency that called the gateway's own services. Only
/// declared agencies get this far (others are refused after the
/// handshake), so the map is bounded by the configuration.
#[derive(Debug)]
pub(super) struct OwnLimits {
    per_second: u32,
    burst: u32,
    buckets: Mutex<HashMap<AgencyId, Arc<Bucket>>>,
    /// The node's clock, whose monotonic reading the buckets refill on.
    clock: Arc<Clock>,
}

impl OwnLimits {
    pub(super) fn new(limits: &FloodLimits, clock: Arc<Clock>) -> Self {
        Self {
            per_second: limits.own_per_second,
            burst: limits.own_burst,
            buckets: Mutex::new(HashMap::new()),
            clock,
        }
    }

    /// Takes one call of `consumer`, or the refusal.
    pub(super) fn check(&self, consumer: &AgencyId) -> Result<(), Refusal> {
        let bucket = {
            let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
            buckets
                .entry(consumer.clone())
                .or_insert_with(|| Arc::new(Bucket::local(consumer, self.per_second, self.burst)))
                .clone()
        };
        bucket.check(consumer, &self.clock)
    }
}

/// Answers a refused call to an own service, recording it if the agency's
/// budget of recorded refusals allows (else it is counted for a summary).
pub(super) async fn refuse(
    path: &str,
    headers: &HeaderMap,
    consumer: &AgencyId,
    refusal: Refusal,
    recorder: &Recorder,
) -> Response<Body> {
    let request_id = metadata::request_id(headers).unwrap_or_else(|_| metadata::new_request_id());
    if recorder
        .refusals
        .admit(consumer.as_str(), refusal.reason.as_str())
    {
        let trail = Trail::start(&request_id, consumer.as_str(), path, headers);
        let ending = Ending {
            outcome: Outcome::Refused,
            reason: refusal.reason.as_str(),
            grpc_status: refusal.reason.code() as i32,
            response_digest: None,
        };
        if let Err(e) = recorder.record(&trail, ending).await {
            tracing::error!(request_id = %request_id, error = %e, "refusal not recorded in the audit log");
        }
    }
    tracing::info!(%consumer, method = path, reason = refusal.reason.as_str(), "call to the gateway's own service refused");
    metadata::refusal_response(&refusal, &request_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::refusal::Reason;
    use std::time::Duration;

    fn limits(per_second: u32, burst: u32, clock: Arc<Clock>) -> OwnLimits {
        let flood = FloodLimits {
            own_per_second: per_second,
            own_burst: burst,
            refusals_recorded: 100,
            refusal_window: Duration::from_secs(60),
        };
        OwnLimits::new(&flood, clock)
    }

    #[test]
    fn an_own_services_bucket_refills_when_the_nodes_clock_is_advanced() {
        let clock = Arc::new(Clock::system());
        // One call a second, a burst of two: the third is refused until
        // the node's clock moves (advanced here, never waited for).
        let own = limits(1, 2, clock.clone());
        let id = AgencyId::parse("education").expect("a valid agency id");
        own.check(&id).expect("first call of the burst");
        own.check(&id).expect("second call of the burst");
        let refusal = own.check(&id).expect_err("the burst is spent");
        assert_eq!(refusal.reason, Reason::RateLimited);
        let wait = refusal.retry_after.expect("a retry hint");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        clock.advance(wait);
        own.check(&id).expect("refilled after the hinted delay");
        assert!(own.check(&id).is_err(), "one call per refill");
        // Another agency has its own bucket.
        let other = AgencyId::parse("tax").expect("a valid agency id");
        own.check(&other).expect("another agency's first call");
    }
}
