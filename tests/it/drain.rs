//! The drain at shutdown, black-box: the node turns not ready (`/readyz`)
//! and `NOT_SERVING` (grpc.health) as the drain starts, and a call still in flight when the drain timeout ends is cut
//! off rather than holding the shutdown (a hung provider, whose own route
//! timeout is far longer, holds it).

use crate::support::echo::Echo;
use crate::support::*;
use std::time::{Duration, Instant};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// The next status a grpc.health watch reports (within 30 s).
async fn next_status(watch: &mut tonic::Streaming<HealthCheckResponse>) -> ServingStatus {
    let next = tokio::time::timeout(Duration::from_secs(30), watch.message())
        .await
        .expect("a health status in time")
        .expect("the watch is open")
        .expect("a health status, not the end of the watch");
    ServingStatus::try_from(next.status).unwrap()
}

/// The drain timeout of these tests' gateway.
const DRAIN: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_reports_not_ready_and_not_serving_and_its_timeout_cuts_a_hung_call_off() {
    let pki = Pki::new();
    let hung = Echo::hanging(&pki.dir, "civil-status").await;
    let up = Upstreams {
        civil_status: hung.addr.to_string(),
        tax: "127.0.0.1:9".into(),
        health: "127.0.0.1:9".into(),
    };
    let upstream = format!("upstream = \"{}\"", up.civil_status);
    // The provider's route timeout (10 min) is far beyond the drain's: only
    // the drain timeout can end the hung call within this test.
    let config = gateway_config(&pki, &up, "", "")
        .replace(
            "drain_timeout_ms = 5000",
            &format!("drain_timeout_ms = {}", DRAIN.as_millis()),
        )
        .replacen(&upstream, &format!("{upstream}\ntimeout_ms = 600000"), 1);
    let (gateway, addr) = start_gateway(&pki, "gateway", &config);
    let admin = gateway.admin.clone();
    let (status, body) = admin::get(&admin, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    let body = birth(CITIZEN);
    let in_flight = tokio::spawn(async move {
        call_raw(&education, RawCall::new(BIRTH, body, "bac-candidature")).await
    });
    hung.wait_received(1).await;
    // A health checker watching grpc.health (a stream opened before the
    // drain: a draining node takes no new calls) sees SERVING, then
    // NOT_SERVING as the drain starts.
    let watcher = channel(&addr, &pki.files("tax")).await.unwrap();
    let mut health = HealthClient::new(watcher)
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next_status(&mut health).await, ServingStatus::Serving);

    // Shut down (what SIGTERM does), off this runtime: `stop` returns once
    // the drain and the audit log's close are done.
    let drain_started = Instant::now();
    let stopping = std::thread::spawn(move || gateway.stop());
    let (status, body) = admin::wait_readyz(&admin, "the node is shutting down").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("FAIL serving"), "{body}");
    assert_eq!(next_status(&mut health).await, ServingStatus::NotServing);

    // The hung call is cut off when the drain times out: not answered, and
    // not by the provider's route timeout (10 min, which would fail the
    // 60 s detector below).
    let result = tokio::time::timeout(Duration::from_secs(60), in_flight)
        .await
        .expect("the hung call outlived the drain timeout")
        .unwrap();
    let status = result.expect_err("a hung provider cannot answer");
    assert_ne!(
        client::reason(&status),
        "PROVIDER_TIMEOUT",
        "the route timeout ended it, not the drain: {status:?}"
    );
    let stopped = tokio::task::spawn_blocking(move || stopping.join())
        .await
        .unwrap();
    assert!(stopped.is_ok(), "the gateway panicked while draining");
    // The drain waited for the call first (a lower bound, true on any
    // machine).
    assert!(
        drain_started.elapsed() >= DRAIN,
        "the drain gave up after {:?}, before its {DRAIN:?}",
        drain_started.elapsed()
    );
}
