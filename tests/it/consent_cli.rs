//! `jisr consent …` against a running gateway: grant with a receipt, list,
//! verify (and refuse a tampered receipt), revoke, and the revocation's effect.

use crate::consent::CONSENT_RULES;
use crate::routing::echo_network;
use crate::support::*;
use base64::Engine as _;
use jisr::proto::jisr::consent::v1 as pb;
use prost::Message as _;
use std::process::Output;
use tonic::Code;

fn consent(addr: &str, pki: &Pki, args: &[&str]) -> Output {
    let (command, rest) = args.split_first().unwrap();
    jisr()
        .args(["consent", command, "--gateway", addr, "--pki"])
        .arg(&pki.dir)
        .args(rest)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consent_cli_grants_lists_verifies_and_revokes() {
    let (pki, _gw, addr, _echos) = echo_network("", CONSENT_RULES).await;
    let receipt = pki.root().join("receipt.json");
    let receipt_arg = receipt.to_str().unwrap();

    let out = consent(
        &addr,
        &pki,
        &[
            "grant",
            "--subject",
            "AB123456",
            "--consumer",
            "education",
            "--method",
            "ma.civilstatus.v1.CivilStatus/GetBirthRecord",
            "--purpose",
            "school-enrolment",
            "--valid-for",
            "12h",
            "--granted-by",
            "guardian",
            "--out",
            receipt_arg,
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut words = stdout.split_whitespace();
    let id = words.next().unwrap().to_owned();
    assert_eq!(words.next(), Some("ACTIVE"), "{stdout}");
    assert_eq!(id.len(), 32, "{stdout}");

    // Listed, as a table and as JSON.
    let out = consent(&addr, &pki, &["list", "--subject", "AB123456"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&id) && text(&out).contains("ACTIVE"));
    let out = consent(&addr, &pki, &["list", "--subject", "AB123456", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let listed: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(listed["id"], id.as_str());
    assert_eq!(listed["granted_by"], "guardian");
    assert_eq!(listed["status"], "ACTIVE");

    // The receipt verifies, also for an agency without a role.
    let out = consent(&addr, &pki, &["verify", receipt_arg, "--as", "education"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("OK"), "{}", text(&out));

    // A tampered receipt does not.
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&receipt).unwrap()).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut forged = pb::Consent::decode(
        b64.decode(json["consent"].as_str().unwrap())
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    forged.subject = "CD234567".into();
    json["consent"] = b64.encode(forged.encode_to_vec()).into();
    let tampered = pki.root().join("tampered.json");
    std::fs::write(&tampered, json.to_string()).unwrap();
    let out = consent(&addr, &pki, &["verify", tampered.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("FAIL"), "{}", text(&out));

    // The consent works, then its revocation is effective on the next call.
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    let call = || RawCall::new(BIRTH, birth(CITIZEN), "school-enrolment").with("jisr-consent", &id);
    call_raw(&education, call()).await.unwrap();
    let out = consent(&addr, &pki, &["revoke", &id]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("REVOKED"), "{}", text(&out));
    let (code, reason, _) = framed_status(call_raw(&education, call()).await);
    assert_eq!(
        (code, reason.as_str()),
        (Code::PermissionDenied, "CONSENT_REVOKED")
    );

    // Errors name the code, the reason and the message.
    let out = consent(&addr, &pki, &["revoke", &id, "--as", "education"]);
    assert!(!out.status.success());
    let err = text(&out);
    assert!(
        err.contains("PermissionDenied") && err.contains("ACCESS_DENIED"),
        "{err}"
    );
}
