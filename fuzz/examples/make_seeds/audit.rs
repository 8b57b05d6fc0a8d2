//! Seeds of the audit-side targets, from a real log: `AuditLog` writes
//! exchange records as the gateway encodes them, then its segment, signed
//! checkpoint, receipts (as `jisr audit prove` and the citizen page write
//! them) and a witness's `add-checkpoint` body are kept as seeds.

use crate::Seeds;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use jisr::audit::log::{segment, AuditLog, LogOptions};
use jisr::audit::note::NoteSigner;
use jisr::audit::record::{Ending, Trail};
use jisr::audit::witnessing::AddCheckpoint;
use jisr::proto::jisr::audit::v1::{Kind, Outcome};
use jisr::tools::cli::audit::Receipt;
use std::time::Duration;

/// Exchange records as the gateway encodes them: allowed and refused.
fn records() -> Vec<Vec<u8>> {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "traceparent",
        format!(
            "00-{}-{:016x}-01",
            jisr::gateway::metadata::new_request_id(),
            7
        )
        .parse()
        .expect("a header value"),
    );
    (0..5)
        .map(|i| {
            let mut trail = Trail::start(
                &jisr::gateway::metadata::new_request_id(),
                "education",
                "/ma.civilstatus.v1.CivilStatus/GetBirthRecord",
                &headers,
            );
            trail.provider = "civil-status".into();
            trail.purpose = "bac-candidature".into();
            let refused = i % 2 == 1;
            let ending = Ending {
                outcome: if refused {
                    Outcome::Refused
                } else {
                    Outcome::Allowed
                },
                reason: if refused { "CONSENT_REQUIRED" } else { "" },
                grpc_status: if refused { 7 } else { 0 },
                response_digest: (!refused).then_some([i as u8; 32]),
            };
            trail.encode_record("gw-1", ending, Kind::Exchange)
        })
        .collect()
}

fn receipt(log: &AuditLog, index: u64, note: &str, size: u64, record: &[u8]) -> Receipt {
    Receipt {
        index,
        tree_size: size,
        record: B64.encode(record),
        inclusion_proof: log
            .inclusion_proof(index, size)
            .expect("a proof")
            .iter()
            .map(|h| B64.encode(h))
            .collect(),
        checkpoint: note.to_owned(),
        verifier_key: log.verifier().to_text(),
    }
}

pub fn all() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let log = AuditLog::open(LogOptions {
        dir: dir.path().join("log"),
        signer: NoteSigner::generate("fuzz.example/jisr/gw-1").expect("a key"),
        records_per_segment: 1024,
        checkpoint_interval: Duration::from_millis(10),
        archive_dir: None,
    })
    .expect("a log opens");
    let records = records();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let first = runtime
        .block_on(log.append(records[0].clone()))
        .expect("appended");
    let old = log.size();
    runtime.block_on(async {
        for r in &records[1..] {
            log.append(r.clone()).await.expect("appended");
        }
        log.close().await;
    });
    let signed = log.checkpoint();
    let size = signed.checkpoint.size;
    assert_eq!(
        size,
        records.len() as u64,
        "every record under the checkpoint"
    );

    let seeds = Seeds::of("receipt");
    for index in [first, size - 1] {
        let r = receipt(&log, index, &signed.note, size, &records[index as usize]);
        let text = serde_json::to_string_pretty(&r).expect("JSON");
        seeds.put(&format!("prove-{index}.json"), text.as_bytes());
    }
    // The citizen page's file: the same fields and the node.
    let r = receipt(&log, 1, &signed.note, size, &records[1]);
    let mut page = serde_json::to_value(&r).expect("JSON");
    page["node"] = "gw-1".into();
    seeds.put("citizen-page-1.json", page.to_string().as_bytes());

    Seeds::of("signed_note").put("checkpoint", signed.note.as_bytes());

    let request = AddCheckpoint {
        old_size: old,
        proof: log.consistency_proof(old, size).expect("a proof"),
        checkpoint: signed.note.clone(),
    };
    let seeds = Seeds::of("witness_request");
    seeds.put("add-checkpoint", request.to_body().as_bytes());
    let first_time = AddCheckpoint {
        old_size: 0,
        proof: vec![],
        checkpoint: signed.note.clone(),
    };
    seeds.put("add-checkpoint-first", first_time.to_body().as_bytes());

    let seeds = Seeds::of("audit_segment");
    for entry in std::fs::read_dir(dir.path().join("log")).expect("the log directory") {
        let path = entry.expect("an entry").path();
        let Ok(scan) = segment::scan(&path, |_, _| {}) else {
            continue;
        };
        if scan.problem.is_none() && !scan.offsets.is_empty() {
            let bytes = std::fs::read(&path).expect("a segment");
            // Without the zero padding of the tail: a few KB, not the block.
            seeds.put("segment", &bytes[..scan.valid_len as usize]);
        }
    }
}
