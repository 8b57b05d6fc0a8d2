//! One certificate cannot flood (issue 19, point 8): calls to the
//! gateway's own services are rate limited per agency, and refused calls
//! beyond an agency's budget are counted into signed summary entries
//! instead of one entry each — never silently dropped. Black-box, over
//! real mutual TLS, the log read back from its files.

use crate::support::*;
use jisr::audit::log::segment;
use jisr::proto::jisr::audit::v1 as pb;
use pb::audit_client::AuditClient;
use prost::Message as _;
use std::path::Path;
use std::time::Instant;
use tonic::Code;

/// The node's limits in this test: 5 calls at once to its own services,
/// then 1 a second; 3 refusals per agency recorded one by one per hour.
const LIMITS: &str =
    "own_calls_per_second = 1\nown_calls_burst = 5\nrefusals_recorded = 3\nrefusal_window_ms = 3600000";

fn entries(dir: &Path) -> Vec<pb::AuditRecord> {
    let mut out = Vec::new();
    for first in segment::list(dir).unwrap() {
        segment::scan(&segment::segment_path(dir, first), |_, p| {
            out.push(pb::AuditRecord::decode(p).unwrap());
        })
        .unwrap();
    }
    out
}

/// (refusals recorded one by one, summarised count) for `agency` and `reason`.
fn recorded(all: &[pb::AuditRecord], agency: &str, reason: &str) -> (usize, u64) {
    let mine = all
        .iter()
        .filter(|r| r.consumer == agency && r.reason == reason);
    let one_by_one = mine
        .clone()
        .filter(|r| r.kind == pb::Kind::Exchange as i32)
        .count();
    let summarised = mine
        .filter(|r| r.kind == pb::Kind::RefusalsSummarised as i32)
        .map(|r| {
            assert!(r.since_unix_micros <= r.time_unix_micros, "{r:?}");
            r.count
        })
        .sum();
    (one_by_one, summarised)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_calls_beyond_the_budget_are_summarised_and_own_services_are_limited() {
    let net = Network::start(LIMITS, "");
    // 40 refused exchanges by `tax` (no purpose): each is refused.
    let tax = net.channel("tax").await;
    let body = birth(CITIZEN);
    for _ in 0..40 {
        let status = call_raw(&tax, RawCall::new(BIRTH, body.clone(), ""))
            .await
            .unwrap_err();
        assert_eq!(client::reason(&status), "PURPOSE_REQUIRED");
    }
    // 40 calls to the audit API by `education`: the burst, then refusals.
    let mut audit = AuditClient::new(net.channel("education").await);
    let started = Instant::now();
    let (mut ok, mut limited) = (0u64, 0u64);
    for _ in 0..40 {
        match audit.get_checkpoint(pb::GetCheckpointRequest {}).await {
            Ok(_) => ok += 1,
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                assert_eq!(client::reason(&status), "RATE_LIMITED");
                limited += 1;
            }
        }
    }
    // At most the burst plus one a second of the time the calls took.
    let allowed = 5 + started.elapsed().as_secs() + 1;
    assert!(
        ok >= 5 && ok <= allowed,
        "{ok} calls passed, {allowed} allowed"
    );
    assert_eq!(ok + limited, 40);

    let Network { gateway, pki, .. } = net;
    gateway.stop();
    let all = entries(&pki.root().join("gateway-audit"));
    // 3 recorded one by one, the other 37 in summary entries.
    assert_eq!(recorded(&all, "tax", "PURPOSE_REQUIRED"), (3, 37));
    let (one_by_one, summarised) = recorded(&all, "education", "RATE_LIMITED");
    assert_eq!(one_by_one, 3);
    assert_eq!(summarised, limited - 3);
    // The log verifies, summaries included, with a final checkpoint over them.
    let report = jisr::audit::verify::verify(&pki.root().join("gateway-audit"), None);
    assert!(report.ok(), "{:?}", report.problems);
    assert_eq!(report.covered, all.len() as u64);
}
