//! Allowed calls: bytes through unchanged both ways, metadata to the
//! provider, server streaming, onboarding a contract at runtime, the
//! gateway's own health and reflection services.

use crate::support::echo::Echo;
use crate::support::*;
use jisr::proto::ma::civilstatus::v1::civil_status_client::CivilStatusClient;
use jisr::proto::ma::civilstatus::v1::ListCivilEventsRequest;
use std::time::Duration;

/// A gateway in this process whose three providers are echo servers.
pub(crate) async fn echo_network(
    node_extra: &str,
    extra: &str,
) -> (Pki, Gateway, String, Vec<Echo>) {
    echo_network_with(node_extra, extra, start_gateway).await
}

/// [`echo_network`] with the gateway in a `jisr serve` process.
pub(crate) async fn spawned_echo_network(
    node_extra: &str,
    extra: &str,
) -> (Pki, Proc, String, Vec<Echo>) {
    echo_network_with(node_extra, extra, spawn_gateway).await
}

pub(crate) async fn echo_network_with<G>(
    node_extra: &str,
    extra: &str,
    start: impl FnOnce(&Pki, &str, &str) -> (G, String),
) -> (Pki, G, String, Vec<Echo>) {
    let pki = Pki::new();
    let cs = Echo::start(&pki.dir, "civil-status").await;
    let tax = Echo::start(&pki.dir, "tax").await;
    let health = Echo::start(&pki.dir, "health").await;
    let up = Upstreams::echoes(&cs, &tax, &health);
    let config = gateway_config(&pki, &up, node_extra, extra);
    let (gw, addr) = start(&pki, "gateway", &config);
    (pki, gw, addr, vec![cs, tax, health])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_call_returns_the_providers_bytes_unchanged() {
    let net = Network::start("", "");
    let via_gateway = net.channel("education").await;
    let direct = channel(net.provider("civil-status"), &net.pki.files("gateway"))
        .await
        .unwrap();
    let call = || RawCall::new(BIRTH, birth("AB123456"), "bac-candidature");
    let (through, metadata) = call_raw(&via_gateway, call()).await.unwrap();
    let (straight, _) = call_raw(&direct, call()).await.unwrap();
    assert_eq!(
        through, straight,
        "the gateway must not alter the provider's answer"
    );
    assert!(!through.is_empty());
    assert_eq!(metadata.get("jisr-basis").unwrap(), "law:55-19");
    assert_eq!(metadata.get("jisr-request-id").unwrap().len(), 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bytes_reach_the_provider_unchanged_with_jisr_metadata() {
    let (pki, _gw, addr, _echos) = echo_network("", "").await;
    let client = channel(&addr, &pki.files("education")).await.unwrap();
    // A valid request with an unknown field (99) and a repeated subject: the
    // provider must receive exactly these bytes.
    let mut body = birth("ZZ000000").to_vec();
    body.extend_from_slice(&[0x9a, 0x06, 0x03, b'x', b'y', b'z']);
    body.extend(birth("AB123456"));
    let call = RawCall::new(BIRTH, body.clone(), "bac-candidature")
        .with("jisr-request-id", "req-42")
        .with("jisr-official", "education.agent-7")
        .with("jisr-consumer", "health"); // a spoofing attempt: must be replaced
    let mut call = call;
    // Under the route's timeout (10 s by default), which would cap it.
    call.timeout = Some(Duration::from_secs(5));
    let (echoed, md) = call_raw(&client, call).await.unwrap();
    assert_eq!(&echoed[..], &body[..]);
    assert_eq!(md.get("x-echo-path").unwrap(), BIRTH);
    assert_eq!(md.get("x-echo-jisr-consumer").unwrap(), "education");
    assert_eq!(md.get("x-echo-jisr-request-id").unwrap(), "req-42");
    assert_eq!(md.get("jisr-request-id").unwrap(), "req-42");
    assert_eq!(md.get("x-echo-jisr-official").unwrap(), "education.agent-7");
    // The deadline is propagated, reduced by the time already spent.
    let timeout = md
        .get("x-echo-grpc-timeout")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let micros: u64 = timeout.trim_end_matches('u').parse().unwrap();
    assert!(micros > 4_000_000 && micros <= 5_000_000, "{timeout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_streaming_passes_through() {
    let net = Network::start("", "");
    let mut client = CivilStatusClient::new(net.channel("tax").await);
    let mut request = tonic::Request::new(ListCivilEventsRequest {
        citizen_id: "CD234567".into(),
    });
    request
        .metadata_mut()
        .insert("jisr-purpose", "tax-household".parse().unwrap());
    let mut stream = client
        .list_civil_events(request)
        .await
        .unwrap()
        .into_inner();
    let mut kinds = Vec::new();
    while let Some(event) = stream.message().await.unwrap() {
        assert_eq!(event.citizen_id, "CD234567");
        kinds.push(event.kind);
    }
    assert!(kinds.len() >= 2, "{kinds:?}");
    assert_eq!(kinds[0], "birth");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_onboarded_by_config_is_routed_without_rebuild() {
    let pki = Pki::new();
    let domain = jisr::identity::TrustDomain::parse(DOMAIN).unwrap();
    jisr::tools::pki::issue_agency(
        &pki.dir,
        Some(&domain),
        &jisr::identity::AgencyId::parse("social").unwrap(),
    )
    .unwrap();
    let social = Echo::start(&pki.dir, "social").await;
    let protos = pki.root().join("contracts");
    std::fs::create_dir_all(protos.join("social/v1")).unwrap();
    std::fs::write(
        protos.join("social/v1/social.proto"),
        r#"syntax = "proto3";
package ma.social.v1;
import "jisr/annotations.proto";
service Benefits {
  option (jisr.default_category) = SOCIAL;
  rpc GetEntitlements(EntitlementsRequest) returns (Entitlements);
  rpc UploadClaims(stream EntitlementsRequest) returns (Entitlements);
}
message Who { string citizen_id = 1 [(jisr.subject) = true]; }
message EntitlementsRequest { uint32 year = 1; Who who = 2; }
message Entitlements { repeated string programmes = 1; }
"#,
    )
    .unwrap();
    let up = Upstreams {
        civil_status: "127.0.0.1:9".into(),
        tax: "127.0.0.1:9".into(),
        health: "127.0.0.1:9".into(),
    };
    let extra = format!(
        r#"
[[purpose]]
code = "school-grant"
description = "School grant eligibility"

[[agency]]
id = "social"
upstream = "{}"
contracts = ["social/v1/social.proto"]

[[rule]]
consumer = "education"
methods = ["ma.social.v1.Benefits/*"]
purposes = ["school-grant"]
basis = "law:65-00"
"#,
        social.addr
    );
    let mut config = gateway_config(&pki, &up, "", &extra);
    config = config.replace(
        &format!("include = [\"{}\"]", proto_dir().display()),
        &format!(
            "include = [\"{}\", \"{}\"]",
            proto_dir().display(),
            protos.display()
        ),
    );
    let (_gw, addr) = start_gateway(&pki, "gateway", &config);
    let client = channel(&addr, &pki.files("education")).await.unwrap();
    // year = 2026, who = { citizen_id = "AB123456" }
    let mut body = vec![0x08, 0xea, 0x0f, 0x12, 10, 0x0a, 8];
    body.extend_from_slice(b"AB123456");
    let path = "/ma.social.v1.Benefits/GetEntitlements";
    let (echoed, md) = call_raw(&client, RawCall::new(path, body.clone(), "school-grant"))
        .await
        .unwrap();
    assert_eq!(&echoed[..], &body[..]);
    assert_eq!(md.get("jisr-basis").unwrap(), "law:65-00");
    // The nested subject is required.
    let (code, reason, message) = framed_status(
        call_raw(
            &client,
            RawCall::new(path, vec![0x08, 0x01], "school-grant"),
        )
        .await,
    );
    assert_eq!(
        (code, reason.as_str()),
        (tonic::Code::InvalidArgument, "INVALID_REQUEST")
    );
    assert!(message.contains("who.citizen_id"), "{message}");
    // Client-streaming methods are listed but not carried.
    let upload = "/ma.social.v1.Benefits/UploadClaims";
    let (code, reason, _) =
        framed_status(call_raw(&client, RawCall::new(upload, body, "school-grant")).await);
    assert_eq!(
        (code, reason.as_str()),
        (tonic::Code::Unimplemented, "UNSUPPORTED_STREAMING")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_are_served_by_the_gateway() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let net = Network::start("", "");
    let channel = net.channel("portal").await;
    let status = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, 1, "SERVING");

    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = ServerReflectionClient::new(channel)
        .server_reflection_info(futures_util::stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "ma.civilstatus.v1.CivilStatus",
        "ma.tax.v1.TaxRecords",
        "ma.health.v1.HealthRecords",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
}
