//! The audit log, black-box: every exchange recorded before data leaves,
//! receipts that verify offline, access to the audit API by role, crash
//! safety under SIGKILL, tamper detection, and a full disk.

use crate::routing::{echo_network, spawned_echo_network};
use crate::support::checkpoints;
use crate::support::*;
use jisr::proto::jisr::audit::v1 as pb;
use pb::audit_client::AuditClient;
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};
use tonic::Code;

fn run(args: &[&str]) -> Output {
    jisr().args(args).output().unwrap()
}

async fn audit_client(
    addr: &str,
    pki: &Pki,
    agency: &str,
) -> AuditClient<tonic::transport::Channel> {
    AuditClient::new(channel(addr, &pki.files(agency)).await.unwrap())
}

/// Waits (up to 10 s) until the latest checkpoint covers `size` entries.
async fn checkpoint_at_least(
    client: &mut AuditClient<tonic::transport::Channel>,
    size: u64,
) -> pb::SignedCheckpoint {
    checkpoints::checkpoint_at_least(client, size, Duration::from_secs(10)).await
}

fn audit_dir(pki: &Pki, name: &str) -> PathBuf {
    pki.root().join(format!("{name}-audit"))
}

// Multi-threaded: connections must keep answering while the test blocks on
// the gateway's exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exchange_is_recorded_and_receipts_verify_offline() {
    // Spawned: the gateway's log must not name the citizen either.
    let (pki, mut gw, addr, _echos) = spawned_echo_network("", "").await;
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    let call = RawCall::new(BIRTH, birth("AB123456"), "bac-candidature")
        .with("jisr-procedure", "bac-2027")
        .with("jisr-request-id", "ok-1");
    call_raw(&education, call).await.unwrap();
    let refused =
        RawCall::new(BIRTH, birth("AB123456"), "tax-household").with("jisr-request-id", "no-1");
    assert!(call_raw(&education, refused).await.is_err());
    // A malformed request id is refused, and recorded under an id of the gateway's.
    let malformed = RawCall::new(BIRTH, birth("AB123456"), "bac-candidature")
        .with("jisr-request-id", "not a valid id!");
    let status = call_raw(&education, malformed)
        .await
        .expect_err("a malformed request id is refused");
    let given = status
        .metadata()
        .get("jisr-request-id")
        .expect("the refusal names the id it was recorded under")
        .to_str()
        .unwrap()
        .to_owned();

    let mut cndp = audit_client(&addr, &pki, "cndp").await;
    let cp = checkpoint_at_least(&mut cndp, 3).await;
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
    let bad = records
        .iter()
        .find(|r| r.request_id == given)
        .expect("the refusal of a malformed request id is recorded");
    assert_eq!(
        (bad.outcome, bad.reason.as_str()),
        (pb::Outcome::Refused as i32, "INVALID_REQUEST")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
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
            ..Default::default()
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
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(proof.hashes.len(), 1);
}

/// Starts load on `addr` as education: `workers` tasks calling until `stop`;
/// returns the request ids of the calls that succeeded.
fn load(
    addr: String,
    pki_files: jisr::tls::TlsFiles,
    round: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Vec<String>> {
    tokio::spawn(async move {
        let Ok(client) = channel(&addr, &pki_files).await else {
            return Vec::new();
        };
        let mut workers = Vec::new();
        for w in 0..8 {
            let client = client.clone();
            let stop = stop.clone();
            workers.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..100_000 {
                    if *stop.borrow() {
                        break;
                    }
                    let id = format!("r{round}-w{w}-{i}");
                    let call = RawCall::new(BIRTH, birth("AB123456"), "bac-candidature")
                        .with("jisr-request-id", &id);
                    match call_raw(&client, call).await {
                        Ok(_) => acked.push(id),
                        Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                }
                acked
            }));
        }
        let mut all = Vec::new();
        for w in workers {
            all.extend(w.await.unwrap_or_default());
        }
        all
    })
}

/// Every request id in the log, read through the audit API as the auditor.
async fn logged_ids(addr: &str, pki: &Pki) -> std::collections::HashSet<String> {
    let mut cndp = audit_client(addr, pki, "cndp").await;
    let mut ids = std::collections::HashSet::new();
    let mut token = String::new();
    loop {
        let page = cndp
            .query(pb::QueryRequest {
                page_size: 1000,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        ids.extend(
            page.entries
                .into_iter()
                .filter_map(|e| e.record.map(|r| r.request_id)),
        );
        if page.next_page_token.is_empty() {
            return ids;
        }
        token = page.next_page_token;
    }
}

// Multi-threaded: load keeps running while the test kills the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_exchange_is_lost_when_the_gateway_is_killed_under_load() {
    let (pki, gw, addr, _echos) = spawned_echo_network("", "").await;
    let config = std::fs::read_to_string(pki.root().join("gateway.toml")).unwrap();
    let mut gw = gw;
    let mut addr = addr;
    let mut acked = Vec::new();
    let mut seen: Vec<(u64, Vec<u8>)> = Vec::new();
    for round in 0..3 {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let load = load(addr.clone(), pki.files("education"), round, stopped);
        // Killed once the load has recorded exchanges past the last
        // checkpoint (not after a fixed time).
        let mut cndp = audit_client(&addr, &pki, "cndp").await;
        let mut checkpoint = async || {
            cndp.get_checkpoint(pb::GetCheckpointRequest {})
                .await
                .unwrap()
                .into_inner()
        };
        let before = checkpoint().await.size;
        let deadline = Instant::now() + Duration::from_secs(20);
        let cp = loop {
            let cp = checkpoint().await;
            if cp.size >= before + 30 {
                break cp;
            }
            assert!(
                Instant::now() < deadline,
                "no 30 exchanges recorded in 20 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        seen.push((cp.size, cp.root_hash));
        gw.kill(); // SIGKILL, mid-load
        let _ = stop.send(true);
        acked.extend(load.await.unwrap());
        let (restarted, new_addr) = spawn_gateway(&pki, "gateway", &config);
        gw = restarted;
        addr = new_addr;
    }
    assert!(
        acked.len() > 50,
        "the load produced only {} calls",
        acked.len()
    );
    let logged = logged_ids(&addr, &pki).await;
    let lost: Vec<&String> = acked.iter().filter(|id| !logged.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged exchanges are missing from the log, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    // Every checkpoint seen before a kill is consistent with today's tree.
    let mut cndp = audit_client(&addr, &pki, "cndp").await;
    let now = checkpoint_at_least(&mut cndp, logged.len() as u64).await;
    let now_root: [u8; 32] = now.root_hash.clone().try_into().unwrap();
    for (size, root) in &seen {
        let proof = cndp
            .get_consistency_proof(pb::GetConsistencyProofRequest {
                old_size: *size,
                new_size: now.size,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let hashes: Vec<[u8; 32]> = proof
            .hashes
            .iter()
            .map(|h| h.clone().try_into().unwrap())
            .collect();
        let old: [u8; 32] = root.clone().try_into().unwrap();
        jisr::audit::merkle::verify_consistency(&hashes, now.size, &now_root, *size, &old).unwrap();
    }
    gw.terminate();
    let dir = audit_dir(&pki, "gateway");
    let vkey = dir.join("verifier.key");
    let out = run(&[
        "audit",
        "verify",
        dir.to_str().unwrap(),
        "--key",
        vkey.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
}

/// A closed log with `n` entries, and its verifier key.
async fn closed_log(n: usize) -> (Pki, PathBuf) {
    let (pki, gw, addr, _echos) = echo_network("", "").await;
    let client = channel(&addr, &pki.files("education")).await.unwrap();
    for i in 0..n {
        let call = RawCall::new(BIRTH, birth("AB123456"), "bac-candidature")
            .with("jisr-request-id", &format!("t-{i}"));
        call_raw(&client, call).await.unwrap();
    }
    drop(client);
    gw.stop();
    let dir = audit_dir(&pki, "gateway");
    (pki, dir)
}

/// Byte ranges of the frames of a segment.
pub(crate) fn frames(bytes: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break; // the tail's zero padding: the records end here
        }
        out.push(pos..pos + 8 + len);
        pos += 8 + len;
    }
    out
}

pub(crate) fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.path().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_and_locates_every_kind_of_tampering() {
    let (pki, dir) = closed_log(6).await;
    let vkey = dir.join("verifier.key");
    let out = run(&[
        "audit",
        "verify",
        dir.to_str().unwrap(),
        "--key",
        vkey.to_str().unwrap(),
    ]);
    assert!(
        out.status.success() && text(&out).contains("OK:"),
        "{}",
        text(&out)
    );
    let segment = "00000000000000000000.log";
    let original = std::fs::read(dir.join(segment)).unwrap();
    let f = frames(&original);
    assert_eq!(f.len(), 6);
    let mut swapped = original[..f[2].start].to_vec();
    swapped.extend_from_slice(&original[f[3].clone()]);
    swapped.extend_from_slice(&original[f[2].clone()]);
    swapped.extend_from_slice(&original[f[4].start..]);
    let mut deleted = original[..f[3].start].to_vec();
    deleted.extend_from_slice(&original[f[4].start..]);
    let mut flipped = original.clone();
    flipped[f[1].start + 20] ^= 0x01;
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "flipped",
            flipped,
            &format!("checksum mismatch at offset {}", f[1].start),
        ),
        (
            "deleted",
            deleted,
            "entry 3 is not the entry that was appended",
        ),
        (
            "swapped",
            swapped,
            "entry 2 is not the entry that was appended",
        ),
        (
            "truncated",
            original[..f[4].start].to_vec(),
            "covers more entries than the log holds (4)",
        ),
    ];
    for (name, bytes, expected) in cases {
        let copy = pki.root().join(format!("tampered-{name}"));
        copy_dir(&dir, &copy);
        std::fs::write(copy.join(segment), bytes).unwrap();
        let out = run(&[
            "audit",
            "verify",
            copy.to_str().unwrap(),
            "--key",
            vkey.to_str().unwrap(),
        ]);
        assert!(
            !out.status.success(),
            "{name}: verify passed:\n{}",
            text(&out)
        );
        assert!(
            text(&out).contains(expected),
            "{name}: expected {expected:?} in:\n{}",
            text(&out)
        );
    }
}

/// The fault hook's proof on a real full disk. Mounting a tmpfs needs root:
/// `scripts/test.sh` runs this as root; elsewhere it is listed as ignored
/// (audit_faults.rs proves the same refusals without root).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root (mounts a tmpfs); scripts/test.sh runs it as root"]
async fn a_full_or_read_only_disk_gives_audit_unavailable_not_a_crash_as_root() {
    assert!(
        is_root(),
        "this test mounts a small tmpfs, which needs root: run it as root \
         (scripts/test.sh does when it runs as root)"
    );
    let pki = Pki::new();
    let mnt = pki.root().join("small-disk");
    std::fs::create_dir_all(&mnt).unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "mount -t tmpfs failed although running as root"
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let echo = crate::support::echo::Echo::start(&pki.dir, "civil-status").await;
    let up = Upstreams {
        civil_status: echo.addr.to_string(),
        tax: "127.0.0.1:9".into(),
        health: "127.0.0.1:9".into(),
    };
    let config = format!(
        "{}\n[audit]\ndir = \"{}/audit\"\n",
        gateway_config(&pki, &up, "", ""),
        mnt.display()
    );
    // Spawned: a crash would end the process, and the last step starts
    // `jisr serve` on a read-only disk.
    let (mut gw, addr) = spawn_gateway(&pki, "gateway", &config);
    let client = channel(&addr, &pki.files("education")).await.unwrap();
    let ok = || RawCall::new(BIRTH, birth("AB123456"), "bac-candidature");
    call_raw(&client, ok()).await.unwrap();
    // Fill the disk.
    let filler = mnt.join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 512 * 1024]);
    let mut refusal = None;
    for _ in 0..2000 {
        if let Err(status) = call_raw(&client, ok()).await {
            refusal = Some(status);
            break;
        }
    }
    let status = refusal.expect("the disk never filled up");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    use tonic_types::StatusExt as _;
    assert_eq!(
        status.get_details_error_info().unwrap().reason,
        "AUDIT_UNAVAILABLE"
    );
    assert!(
        status.message().contains("releases no data"),
        "{}",
        status.message()
    );
    assert!(
        gw.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "the gateway crashed"
    );
    // Space comes back: the gateway records again without a restart.
    std::fs::remove_file(&filler).unwrap();
    call_raw(&client, ok())
        .await
        .expect("recording resumes once space is freed");
    // The failed writes left no gap: the log verifies and restarts.
    drop(client);
    assert!(gw.terminate().success());
    let dir = mnt.join("audit");
    let out = run(&[
        "audit",
        "verify",
        dir.to_str().unwrap(),
        "--key",
        dir.join("verifier.key").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let (mut gw, addr) = spawn_gateway(&pki, "gateway", &config);
    let client = channel(&addr, &pki.files("education")).await.unwrap();
    call_raw(&client, ok())
        .await
        .expect("the log restarts after a full disk");
    drop(client);
    // A read-only disk: the node refuses to start and says why, rather
    // than serve without an audit log.
    gw.kill();
    let status = std::process::Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(status.success(), "remount read-only failed");
    let path = pki.root().join("gateway.toml");
    let out = jisr()
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Read-only file system") && stderr.contains("small-disk"),
        "{stderr}"
    );
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_queries_tails_and_reindexes_the_log() {
    let (pki, gw, addr, _echos) = echo_network("", "").await;
    let education = channel(&addr, &pki.files("education")).await.unwrap();
    for i in 0..3 {
        let call = RawCall::new(BIRTH, birth("AB123456"), "bac-candidature")
            .with("jisr-procedure", &format!("proc-{i}"));
        call_raw(&education, call).await.unwrap();
    }
    assert!(call_raw(
        &education,
        RawCall::new(BIRTH, birth("AB123456"), "tax-household")
    )
    .await
    .is_err());
    let pki_dir = pki.dir.to_str().unwrap().to_owned();
    let base = ["--gateway", &addr, "--pki", &pki_dir, "--as", "cndp"];
    let mut args = vec!["audit", "query"];
    args.extend(base);
    args.extend(["--outcome", "refused", "--json"]);
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["reason"], "PURPOSE_NOT_ALLOWED");
    let mut args = vec!["audit", "query"];
    args.extend(base);
    args.extend(["--citizen", "AB123456"]);
    let out = run(&args);
    // The refused call too (issue 18): a call refused on its metadata has
    // its message read only to record its citizen, whose history shows it.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        4,
        "{}",
        text(&out)
    );
    let mut args = vec!["audit", "tail"];
    args.extend(base);
    args.extend(["--lines", "2"]);
    let out = run(&args);
    let tail = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(tail.lines().count(), 2, "{tail}");
    assert!(
        tail.lines().last().unwrap().contains("refused"),
        "oldest first, newest last: {tail}"
    );
    // Offline: rebuild the indexes, then the gateway answers the same.
    drop(education);
    gw.stop();
    let dir = audit_dir(&pki, "gateway");
    std::fs::remove_file(dir.join("index.redb")).unwrap();
    let out = run(&["audit", "reindex", dir.to_str().unwrap()]);
    assert!(
        out.status.success() && text(&out).contains("reindexed 4 entries"),
        "{}",
        text(&out)
    );
    let config = std::fs::read_to_string(pki.root().join("gateway.toml")).unwrap();
    let (_gw, addr) = start_gateway(&pki, "gateway", &config);
    let args = [
        "audit",
        "query",
        "--gateway",
        &addr,
        "--pki",
        &pki_dir,
        "--as",
        "cndp",
        "--procedure",
        "proc-1",
        "--json",
    ];
    let out = run(&args);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        1,
        "{}",
        text(&out)
    );
}
