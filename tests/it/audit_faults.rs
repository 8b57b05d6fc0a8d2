//! "No audit, no data", black-box, on any machine: the audit writer's fault
//! hook (`jisr::audit::log::Faults`) fails its writes and fsyncs as a full
//! or failing disk would, and each test checks that the provider answered
//! and that its answer never reached the caller. (The same with a real
//! full tmpfs and a real failing loop device needs root: `…_as_root` in
//! `audit.rs` and `telemetry.rs`.)

use crate::support::client::{reason, RawCodec};
use crate::support::echo::Echo;
use crate::support::*;
use bytes::Bytes;
use jisr::proto::ma::civilstatus::v1::ListCivilEventsRequest;
use prost::Message as _;
use std::time::{Duration, Instant};
use tonic::{Code, Status};

const EVENTS: &str = "/ma.civilstatus.v1.CivilStatus/ListCivilEvents";

/// An in-process gateway whose civil-status provider is an echo.
async fn gateway_with_echo(pki: &Pki) -> (Gateway, Echo) {
    let echo = Echo::start(&pki.dir, "civil-status").await;
    let up = Upstreams {
        civil_status: echo.addr.to_string(),
        tax: "127.0.0.1:9".into(),
        health: "127.0.0.1:9".into(),
    };
    let (gateway, _) = start_gateway(pki, "gateway", &gateway_config(pki, &up, "", ""));
    (gateway, echo)
}

/// A unary birth-record call from education; the provider echoes it.
async fn birth(client: &tonic::transport::Channel) -> Result<Bytes, Status> {
    let body = crate::support::birth(CITIZEN);
    let call = client::RawCall::new(BIRTH, body, "bac-candidature");
    client::call_raw(client, call).await.map(|(bytes, _)| bytes)
}

/// A server-streaming call from tax; returns every message it received.
async fn events(client: &tonic::transport::Channel) -> Result<Vec<Bytes>, Status> {
    let mut grpc = tonic::client::Grpc::new(client.clone());
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let body = ListCivilEventsRequest {
        citizen_id: "CD234567".into(),
    }
    .encode_to_vec();
    let mut request = tonic::Request::new(Bytes::from(body));
    request
        .metadata_mut()
        .insert("jisr-purpose", "tax-household".parse().unwrap());
    let path = http::uri::PathAndQuery::from_static(EVENTS);
    let mut stream = grpc
        .server_streaming(request, path, RawCodec)
        .await?
        .into_inner();
    let mut messages = Vec::new();
    while let Some(message) = stream.message().await? {
        messages.push(message);
    }
    Ok(messages)
}

/// Checks that `status` is the audit refusal, which says no data leaves.
fn assert_audit_refusal(status: &Status) {
    assert_eq!(
        (status.code(), reason(status).as_str()),
        (Code::Unavailable, "AUDIT_UNAVAILABLE"),
        "{status:?}"
    );
    assert!(
        status.message().contains("releases no data"),
        "{}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_withholds_a_unary_answer_the_provider_gave_and_recording_resumes() {
    let pki = Pki::new();
    let (gateway, echo) = gateway_with_echo(&pki).await;
    let client = client::channel(&gateway.addr, &pki.files("education"))
        .await
        .unwrap();
    let answer = birth(&client).await.unwrap();
    assert!(!answer.is_empty());
    assert_eq!(echo.answered(), 1);

    gateway.audit_faults.fill_disk();
    let status = birth(&client).await.unwrap_err();
    assert_audit_refusal(&status);
    assert!(status.message().len() < 400, "{}", status.message());
    // The provider answered; the caller got the refusal, not the answer.
    assert_eq!(echo.answered(), 2);

    // A full disk stops nothing for good: once space is back, the next call
    // is recorded and answered, without a restart.
    gateway.audit_faults.free_disk();
    assert_eq!(birth(&client).await.unwrap(), answer);
    assert_eq!(echo.answered(), 3);
    let admin = gateway.admin.clone();
    let (status, body) = admin::get(&admin, "/readyz").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_writes_withhold_a_stream_the_provider_opened() {
    let pki = Pki::new();
    let (gateway, echo) = gateway_with_echo(&pki).await;
    let client = client::channel(&gateway.addr, &pki.files("tax"))
        .await
        .unwrap();
    // The echo answers a stream with one message: the request's bytes.
    let messages = events(&client).await.unwrap();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(echo.answered(), 1);

    gateway.audit_faults.fail_writes(true);
    let status = events(&client).await.unwrap_err();
    assert_audit_refusal(&status);
    assert_eq!(echo.answered(), 2, "the provider was not reached");

    gateway.audit_faults.fail_writes(false);
    assert_eq!(events(&client).await.unwrap(), messages);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_withholds_every_answer_and_the_node_reports_not_ready() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let pki = Pki::new();
    let (gateway, echo) = gateway_with_echo(&pki).await;
    let client = client::channel(&gateway.addr, &pki.files("education"))
        .await
        .unwrap();
    birth(&client).await.unwrap();
    let health = || async {
        HealthClient::new(client.clone())
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .status
    };
    assert_eq!(health().await, 1, "SERVING");

    gateway.audit_faults.fail_next_fsync();
    assert_audit_refusal(&birth(&client).await.unwrap_err());
    assert_eq!(echo.answered(), 2);
    // Only one fsync failed, yet the log stays stopped: after a failed
    // fsync the page cache cannot be trusted. Every later answer is
    // withheld too (the provider is still called: the check is the
    // record's, after the answer).
    for _ in 0..3 {
        assert_audit_refusal(&birth(&client).await.unwrap_err());
    }
    assert_eq!(echo.answered(), 5);

    let (status, body) = admin::wait_readyz(&gateway.admin, "FAIL audit").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("the audit log stopped"), "{body}");
    assert!(body.contains("fsync"), "{body}");
    admin::wait_metric(&gateway.admin, "jisr_audit_up 0").await;
    // grpc.health turns NOT_SERVING (2) once the gateway's watch sees it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while health().await != 2 {
        assert!(
            Instant::now() < deadline,
            "grpc.health still SERVING after the audit log stopped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
