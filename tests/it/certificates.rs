//! The TLS edge: every bad certificate is refused at the handshake, and the
//! gateway's log says why.

use crate::support::*;
use jisr::proto::ma::civilstatus::v1::GetBirthRecordRequest;
use prost::Message as _;

const BIRTH: &str = "/ma.civilstatus.v1.CivilStatus/GetBirthRecord";

async fn try_call(addr: &str, files: &jisr::tls::TlsFiles) -> Result<(), String> {
    let channel = channel(addr, files)
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let body = GetBirthRecordRequest {
        citizen_id: "AB123456".into(),
    }
    .encode_to_vec();
    call_raw(&channel, RawCall::new(BIRTH, body, "bac-candidature"))
        .await
        .map(drop)
        .map_err(|s| format!("{s:?}"))
}

#[tokio::test]
async fn bad_certificates_are_refused_with_the_reason_logged() {
    let crl = |pki: &Pki| format!("crls = [\"{}/ca.crl\"]", pki.dir.display());
    let net = Network::spawn("", "");
    // Restart-free check: the standard network has no CRL; a second gateway
    // with the CRL checks revocation.
    let cases = [
        ("untrusted", "not issued by a trusted CA"),
        ("expired", "certificate expired"),
        ("not-yet-valid", "not yet valid"),
        ("no-san", "no spiffe:// URI"),
        ("foreign", "foreign trust domain"),
        ("gateway", "only agencies may"),
    ];
    for (fixture, reason) in cases {
        let result = try_call(&net.addr, &net.pki.files(fixture)).await;
        assert!(result.is_err(), "{fixture} was let in");
        net.gateway.wait_log(reason);
    }
    // The good certificate still works afterwards.
    try_call(&net.addr, &net.pki.files("education"))
        .await
        .unwrap();

    let config = std::fs::read_to_string(net.pki.root().join("gateway.toml")).unwrap();
    let key_line = format!("key = \"{}/gateway.key\"", net.pki.dir.display());
    let with_crl = config
        .replace(&key_line, &format!("{key_line}\n{}", crl(&net.pki)))
        .replace("gateway-audit", "gateway-crl-audit")
        .replace("gateway-consents", "gateway-crl-consents");
    assert_ne!(config, with_crl);
    let (gw2, addr2) = spawn_gateway(&net.pki, "gateway-crl", &with_crl);
    assert!(try_call(&addr2, &net.pki.files("revoked")).await.is_err());
    gw2.wait_log("certificate revoked");
    try_call(&addr2, &net.pki.files("education")).await.unwrap();
}

#[tokio::test]
async fn a_client_without_certificate_is_refused() {
    let net = Network::spawn("", "");
    let ca = std::fs::read(net.pki.dir.join("ca.crt")).unwrap();
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ca))
        .domain_name("localhost");
    let endpoint = tonic::transport::Endpoint::from_shared(format!("https://{}", net.addr))
        .unwrap()
        .tls_config(tls)
        .unwrap();
    if let Ok(channel) = endpoint.connect().await {
        let body = GetBirthRecordRequest {
            citizen_id: "AB123456".into(),
        }
        .encode_to_vec();
        assert!(
            call_raw(&channel, RawCall::new(BIRTH, body, "bac-candidature"))
                .await
                .is_err()
        );
    }
    net.gateway.wait_log("no client certificate");
}

#[tokio::test]
async fn the_gateway_verifies_the_providers_identity() {
    // civil-status's upstream is actually the tax provider: same CA, wrong
    // agency. The gateway must refuse to talk to it.
    let pki = Pki::new();
    let (_tax, tax_addr) = start_provider(&pki, "tax");
    let up = Upstreams {
        civil_status: tax_addr.clone(),
        tax: tax_addr,
        health: "127.0.0.1:9".into(),
    };
    let (gw, addr) = spawn_gateway(&pki, "gateway", &gateway_config(&pki, &up, "", ""));
    let client = channel(&addr, &pki.files("education")).await.unwrap();
    let body = GetBirthRecordRequest {
        citizen_id: "AB123456".into(),
    }
    .encode_to_vec();
    let (code, reason, _) =
        framed_status(call_raw(&client, RawCall::new(BIRTH, body, "bac-candidature")).await);
    assert_eq!(
        (code, reason.as_str()),
        (tonic::Code::Unavailable, "PROVIDER_UNAVAILABLE")
    );
    gw.wait_log("not agency `civil-status`");
}
