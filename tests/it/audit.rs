//! The audit log, black-box: every exchange recorded before data leaves,
//! receipts that verify offline, access to the audit API by role, crash
//! safety under SIGKILL, tamper detection, and a full disk.

use crate::routing::echo_network;
use crate::support::*;
use jisr::proto::jisr::audit::v1 as pb;
use jisr::proto::ma::civilstatus::v1::GetBirthRecordRequest;
use pb::audit_client::AuditClient;
use prost::Message as _;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};
use tonic::Code;

const BIRTH: &str = "/ma.civilstatus.v1.CivilStatus/GetBirthRecord";

fn birth(citizen: &str) -> Vec<u8> {
    GetBirthRecordRequest {
        citizen_id: citizen.into(),
    }
    .encode_to_vec()
}

fn run(args: &[&str]) -> Output {
    jisr().args(args).output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn audit_client(
    addr: &str,
    pki: &Pki,
    agency: &str,
) -> AuditClient<tonic::transport::Channel> {
    AuditClient::new(channel(addr, &pki.files(agency)).await.unwrap())
}

/// Waits until the latest checkpoint covers `size` entries.
async fn checkpoint_at_least(
    client: &mut AuditClient<tonic::transport::Channel>,
    size: u64,
) -> pb::SignedCheckpoint {
    let start = Instant::now();
    loop {
        let cp = client
            .get_checkpoint(pb::GetCheckpointRequest {})
            .await
            .unwrap()
            .into_inner();
        if cp.size >= size {
            return cp;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no checkpoint of {size} entries after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn audit_dir(pki: &Pki, name: &str) -> PathBuf {
    pki.root().join(format!("{name}-audit"))
}

#[tokio::test]
async fn every_exchange_is_recorded_and_receipts_verify_offline() {
    let (pki, mut gw, addr, _echos) = echo_network("", "").await;
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    let call = RawCall::new(BIRTH, birth("AB123456"), "bac-candidature")
        .with("jisr-procedure", "bac-2027")
        .with("jisr-request-id", "ok-1");
    call_raw(&education, call).await.unwrap();
    let refused =
        RawCall::new(BIRTH, birth("AB123456"), "tax-household").with("jisr-request-id", "no-1");
    assert!(call_raw(&education, refused).await.is_err());

    let mut cndp = audit_client(&addr, &pki, "cndp").await;
    let cp = checkpoint_at_least(&mut cndp, 2).await;
    assert!(
        cp.note
            .contains(&format!("{DOMAIN}/jisr/gw-1\n{}\n", cp.size)),
        "{}",
        cp.note
    );
    let page = cndp
        .query(pb::QueryRequest::default())
        .await
        .unwrap()
        .into_inner();
    let records: Vec<&pb::AuditRecord> = page
        .entries
        .iter()
        .filter_map(|e| e.record.as_ref())
        .collect();
    let ok = records
        .iter()
        .find(|r| r.request_id == "ok-1")
        .expect("the allowed call is recorded");
    assert_eq!(ok.outcome, pb::Outcome::Allowed as i32);
    assert_eq!(
        (
            ok.consumer.as_str(),
            ok.provider.as_str(),
            ok.basis.as_str()
        ),
        ("education", "civil-status", "law:55-19")
    );
    assert_eq!(ok.procedure, "bac-2027");
    assert_eq!(ok.subject.len(), 32, "a pseudonym, not the id");
    assert_eq!(ok.request_digest.len(), 32);
    assert_eq!(ok.response_digest.len(), 32);
    let no = records
        .iter()
        .find(|r| r.request_id == "no-1")
        .expect("the refusal is recorded");
    assert_eq!(
        (no.outcome, no.reason.as_str()),
        (pb::Outcome::Refused as i32, "PURPOSE_NOT_ALLOWED")
    );

    // A receipt for the allowed exchange verifies offline, and fails when altered.
    let index = page
        .entries
        .iter()
        .find(|e| e.record.as_ref().is_some_and(|r| r.request_id == "ok-1"))
        .unwrap()
        .index;
    let receipt = pki.root().join("receipt.json");
    let out = run(&[
        "audit",
        "prove",
        "--gateway",
        &addr,
        "--pki",
        pki.dir.to_str().unwrap(),
        "--as",
        "education",
        &index.to_string(),
        "--out",
        receipt.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let vkey = audit_dir(&pki, "gateway").join("verifier.key");
    let out = run(&[
        "audit",
        "check-receipt",
        receipt.to_str().unwrap(),
        "--key",
        vkey.to_str().unwrap(),
    ]);
    assert!(
        out.status.success() && text(&out).contains("OK: entry"),
        "{}",
        text(&out)
    );
    let mut forged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&receipt).unwrap()).unwrap();
    forged["index"] = serde_json::json!(index + 1);
    std::fs::write(&receipt, forged.to_string()).unwrap();
    let out = run(&[
        "audit",
        "check-receipt",
        receipt.to_str().unwrap(),
        "--key",
        vkey.to_str().unwrap(),
    ]);
    assert!(
        !out.status.success() && text(&out).contains("FAIL"),
        "{}",
        text(&out)
    );

    // Citizen ids never appear in clear in the log's files or the gateway's log.
    gw.terminate();
    for entry in std::fs::read_dir(audit_dir(&pki, "gateway")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(8).any(|w| w == b"AB123456"),
                "citizen id in clear in {}",
                path.display()
            );
        }
    }
    assert!(!gw.logs().contains("AB123456"));
    let out = run(&[
        "audit",
        "verify",
        audit_dir(&pki, "gateway").to_str().unwrap(),
        "--key",
        vkey.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test]
async fn the_audit_api_shows_each_caller_only_what_it_may_see() {
    let (pki, _gw, addr, _echos) = echo_network("", "").await;
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    call_raw(
        &education,
        RawCall::new(BIRTH, birth("AB123456"), "bac-candidature"),
    )
    .await
    .unwrap();
    let tax = channel(&addr, &pki.files("tax")).await.unwrap();
    let family = "/ma.civilstatus.v1.CivilStatus/GetFamilyRecord";
    call_raw(
        &tax,
        RawCall::new(family, birth("CD234567"), "tax-household"),
    )
    .await
    .unwrap();

    let mut as_tax = audit_client(&addr, &pki, "tax").await;
    let mut as_cndp = audit_client(&addr, &pki, "cndp").await;
    checkpoint_at_least(&mut as_cndp, 2).await;
    let mine = as_tax
        .query(pb::QueryRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.entries.len(), 1);
    assert!(mine
        .entries
        .iter()
        .all(|e| e.record.as_ref().unwrap().consumer == "tax"));
    let status = as_tax
        .query(pb::QueryRequest {
            agency: "education".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let all = as_cndp
        .query(pb::QueryRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.entries.len(), 2);
    let education_entry = all
        .entries
        .iter()
        .find(|e| e.record.as_ref().unwrap().consumer == "education")
        .unwrap()
        .index;
    let status = as_tax
        .get_entry(pb::GetEntryRequest {
            index: education_entry,
            tree_size: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    // civil-status was the provider of both: it sees both.
    let mut as_cs = audit_client(&addr, &pki, "civil-status").await;
    let provided = as_cs
        .query(pb::QueryRequest {
            side: pb::Side::Provider as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(provided.entries.len(), 2);
    // A citizen's history: the portal (consent-manager) and auditors only.
    let mut portal = audit_client(&addr, &pki, "portal").await;
    let history = portal
        .citizen_history(pb::CitizenHistoryRequest {
            citizen_id: "AB123456".into(),
            ..Default::default()
        })
        .await;
    let history = history.unwrap().into_inner();
    assert_eq!(history.entries.len(), 1);
    assert_eq!(
        history.entries[0].record.as_ref().unwrap().consumer,
        "education"
    );
    let status = as_tax
        .citizen_history(pb::CitizenHistoryRequest {
            citizen_id: "AB123456".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    // Consistency proofs between any two sizes.
    let proof = as_tax
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            old_size: 1,
            new_size: 2,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(proof.hashes.len(), 1);
}
