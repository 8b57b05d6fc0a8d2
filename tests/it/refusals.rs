//! Every refusal: its gRPC code, its stable `ErrorInfo` reason, a message
//! that says what to do, and a gateway that keeps serving afterwards.

use crate::routing::echo_network;
use crate::support::client::reason;
use crate::support::*;
use tonic::Code;

async fn refused(channel: &tonic::transport::Channel, call: RawCall<'_>) -> (Code, String, String) {
    framed_status(call_raw(channel, call).await)
}

#[tokio::test]
async fn access_rules_refuse_with_reasons() {
    // Spawned: the refusal's log line is checked too.
    let net = Network::spawn("", "");
    let education = net.channel("education").await;
    let tax = net.channel("tax").await;

    let (code, reason, message) =
        refused(&education, RawCall::new(BIRTH, birth("AB123456"), "")).await;
    assert_eq!(
        (code, reason.as_str()),
        (Code::PermissionDenied, "PURPOSE_REQUIRED")
    );
    assert!(message.contains("jisr-purpose"), "{message}");
    assert!(message.contains("for `bac-candidature`"), "{message}");

    // The purpose suggested is one the rules allow this consumer for this
    // method, never another procedure's.
    let (_, reason, message) = refused(&tax, RawCall::new(FAMILY, birth("AB123456"), "")).await;
    assert_eq!(reason, "PURPOSE_REQUIRED");
    assert!(
        message
            .contains("call `ma.civilstatus.v1.CivilStatus/GetFamilyRecord` for `tax-household`"),
        "{message}"
    );
    assert!(!message.contains("bac-candidature"), "{message}");
    let (_, reason, message) = refused(&tax, RawCall::new(BIRTH, birth("AB123456"), "")).await;
    assert_eq!(reason, "PURPOSE_REQUIRED");
    assert!(
        message.contains("no access rule of this gateway lets agency `tax` call"),
        "{message}"
    );
    assert!(!message.contains("bac-candidature"), "{message}");

    let (code, reason, message) = refused(
        &education,
        RawCall::new(BIRTH, birth("AB123456"), "tax-household"),
    )
    .await;
    assert_eq!(
        (code, reason.as_str()),
        (Code::PermissionDenied, "PURPOSE_NOT_ALLOWED")
    );
    assert!(message.contains("`bac-candidature`"), "{message}");

    // A certificate of another agency: tax may not read health records.
    let body = vaccination(CITIZEN);
    let (code, reason, message) =
        refused(&tax, RawCall::new(VACCINATION, body, "tax-household")).await;
    assert_eq!(
        (code, reason.as_str()),
        (Code::PermissionDenied, "ACCESS_DENIED")
    );
    assert!(
        message.contains(
            "agency `tax` may not call `ma.health.v1.HealthRecords/GetVaccinationRecord`"
        ),
        "{message}"
    );
    assert!(message.contains("ask the platform operator"), "{message}");

    let (code, reason, _) = refused(
        &education,
        RawCall::new(BIRTH, birth("AB123456"), "bac candidature"),
    )
    .await;
    assert_eq!(
        (code, reason.as_str()),
        (Code::InvalidArgument, "INVALID_REQUEST")
    );

    // The request id is echoed on refusals too.
    let status = call_raw(
        &tax,
        RawCall::new(BIRTH, birth("AB123456"), "tax-household").with("jisr-request-id", "r-1"),
    )
    .await
    .unwrap_err();
    assert_eq!(status.metadata().get("jisr-request-id").unwrap(), "r-1");
    let logs = net.gateway.wait_log("reason=ACCESS_DENIED");
    assert!(
        !logs.contains("AB123456"),
        "citizen ids must not appear in the gateway's log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_methods_are_unimplemented() {
    let net = Network::start("", "");
    let education = net.channel("education").await;
    for path in [
        "/ma.civilstatus.v1.CivilStatus/DeleteBirthRecord",
        "/ma.nowhere.v1.Nothing/Get",
    ] {
        let (code, reason, message) = refused(
            &education,
            RawCall::new(path, birth("AB123456"), "bac-candidature"),
        )
        .await;
        assert_eq!(
            (code, reason.as_str()),
            (Code::Unimplemented, "UNKNOWN_METHOD"),
            "{path}"
        );
        assert!(message.contains("jisr catalog"), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_bodies_are_refused_and_the_gateway_keeps_serving() {
    let (pki, _gw, addr, _echos) = echo_network("max_message_bytes = 1024", "").await;
    let client = channel(&addr, &pki.files("education")).await.unwrap();
    let bad: [(&[u8], &str); 5] = [
        (&[0x0a, 0x05, b'A'], "ends in the middle"),
        (&[0x08, 0x01], "wire type 0"),
        (&[0x0a, 0x02, 0xff, 0xfe], "UTF-8"),
        (&[0x00], "invalid tag"),
        (&[0x0a, 0x00], "is empty"),
    ];
    for (body, expected) in bad {
        let (code, reason, message) = refused(
            &client,
            RawCall::new(BIRTH, body.to_vec(), "bac-candidature"),
        )
        .await;
        assert_eq!(
            (code, reason.as_str()),
            (Code::InvalidArgument, "INVALID_REQUEST"),
            "{body:?}"
        );
        assert!(message.contains(expected), "{body:?}: {message}");
    }
    let mut big = birth(CITIZEN).to_vec();
    big.extend([0x9a, 0x06, 0x80, 0x10]); // field 99, 2048 bytes follow
    big.extend(vec![b'x'; 2048]);
    let (code, reason, message) =
        refused(&client, RawCall::new(BIRTH, big, "bac-candidature")).await;
    assert_eq!(
        (code, reason.as_str()),
        (Code::ResourceExhausted, "MESSAGE_TOO_LARGE")
    );
    assert!(message.contains("at most 1024"), "{message}");
    // Still serving.
    let (echoed, _) = call_raw(
        &client,
        RawCall::new(BIRTH, birth("AB123456"), "bac-candidature"),
    )
    .await
    .unwrap();
    assert_eq!(echoed, birth("AB123456"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_limit_is_four_mebibytes() {
    let (pki, _gw, addr, _echos) = echo_network("", "").await;
    let client = channel(&addr, &pki.files("education")).await.unwrap();
    let mut body = birth("AB123456").to_vec();
    let filler = 4 * 1024 * 1024;
    body.extend([0x9a, 0x06]);
    let mut len = filler;
    while len >= 0x80 {
        body.push((len as u8) | 0x80);
        len >>= 7;
    }
    body.push(len as u8);
    body.extend(vec![b'x'; filler]);
    let (code, reason, _) = refused(&client, RawCall::new(BIRTH, body, "bac-candidature")).await;
    assert_eq!(
        (code, reason.as_str()),
        (Code::ResourceExhausted, "MESSAGE_TOO_LARGE")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_that_is_down_gives_provider_unavailable() {
    let mut net = Network::start("", "");
    let education = net.channel("education").await;
    net.providers[0].1.kill(); // civil-status
    let (code, reason, message) = refused(
        &education,
        RawCall::new(BIRTH, birth("AB123456"), "bac-candidature"),
    )
    .await;
    assert_eq!(
        (code, reason.as_str()),
        (Code::Unavailable, "PROVIDER_UNAVAILABLE")
    );
    assert!(
        message.contains("`civil-status` service is unreachable"),
        "{message}"
    );
    // Other providers still answer.
    let body = vaccination(CITIZEN);
    call_raw(
        &education,
        RawCall::new(VACCINATION, body, "bac-candidature"),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadlines_are_honoured() {
    let (pki, _gw, addr, _echos) = echo_network("", "").await;
    // The deadline header is sent by hand: tonic's client would otherwise
    // cancel the call itself before the gateway's answer arrives.
    let started = std::time::Instant::now();
    let headers = [
        ("x-echo-delay-ms", "30000"),
        ("grpc-timeout", "300m"),
        ("jisr-purpose", "bac-candidature"),
    ];
    let status = raw_h2(
        &addr,
        &pki.files("education"),
        BIRTH,
        jisr_frame(&birth("AB123456")),
        &headers,
    )
    .await;
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(reason(&status), "DEADLINE_EXCEEDED");
    // Not the provider's answer, which comes after 30 s: the gateway did
    // not wait for it past the deadline.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the gateway waited for the provider past the deadline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unary_call_with_two_messages_is_refused() {
    let (pki, _gw, addr, _echos) = echo_network("", "").await;
    let mut two = jisr_frame(&birth("AB123456"));
    two.extend(jisr_frame(&birth("AB123456")));
    let status = raw_h2(
        &addr,
        &pki.files("education"),
        BIRTH,
        two,
        &[("jisr-purpose", "bac-candidature")],
    )
    .await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("more than one message"),
        "{status:?}"
    );
}

fn jisr_frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}
