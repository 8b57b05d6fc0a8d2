//! Losing whole segments, black-box, on a log of four entries per segment
//! with an archive beside it: a sealed segment deleted from the live log
//! is refused at start-up, naming the file and the archive that holds it,
//! and copying it back is all it takes; a log cut exactly at a segment
//! boundary is refused, then recovered with `--accept-loss`, the loss
//! recorded, and the archive's own copies of what was lost set aside so
//! that the archive verifies again afterwards.

use crate::faults::{records, start};
use crate::routing::echo_network_with;
use crate::support::*;
use jisr::audit::log::{segment, FORMAT_FILE};
use jisr::proto::jisr::audit::v1::{AuditRecord, Kind};
use prost::Message as _;
use std::path::Path;

/// Entries per segment: small, so ten calls seal two segments.
const RPS: u64 = 4;
const EXTRA: &str =
    "[audit]\ndir = \"gw-audit\"\nsigning_key = \"gw-audit.key\"\narchive_dir = \"gw-archive\"\n";

/// A gateway whose log was created with `RPS` entries per segment, after
/// `calls` calls and a clean stop; the PKI (holding config, log, archive).
async fn stopped_after(calls: usize) -> Pki {
    let (pki, gateway, addr, _echoes) = echo_network_with("", EXTRA, |pki, name, config| {
        // A log directory that exists tells the node it has run before, so
        // the keys and consent store it would create on a first start are
        // made here (the store empty, as its error advises for a new one).
        let loaded = jisr::config::Config::load(&write_config(pki, name, config)).unwrap();
        let domain = &loaded.node.trust_domain;
        jisr::consent::artefact::ConsentSigner::load_or_create(
            &loaded.consent.signing_key,
            &format!("{domain}/jisr/consents"),
        )
        .unwrap();
        jisr::audit::keys::load_or_create_signer(
            &loaded.audit.signing_key,
            &format!("{domain}/jisr/{}", loaded.node.id),
        )
        .unwrap();
        jisr::audit::keys::Pseudonymizer::load_or_create(&loaded.audit.pseudonym_key).unwrap();
        std::fs::File::create(pki.root().join(format!("{name}-consents.redb"))).unwrap();
        let dir = pki.root().join("gw-audit");
        std::fs::create_dir_all(&dir).unwrap();
        let layout = format!("jisr audit log v1\nrecords_per_segment {RPS}\n");
        std::fs::write(dir.join(FORMAT_FILE), layout).unwrap();
        start_gateway(pki, name, config)
    })
    .await;
    let client = channel(&addr, &pki.files("education")).await.unwrap();
    for _ in 0..calls {
        call_raw(
            &client,
            RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature"),
        )
        .await
        .unwrap();
    }
    drop(client);
    gateway.stop();
    pki
}

/// `jisr <args>`: success, and what it printed.
fn run(args: &[&str]) -> (bool, String) {
    let out = jisr().args(args).output().unwrap();
    outcome(&out)
}

fn verify(dir: &Path) -> (bool, String) {
    run(&["audit", "verify", dir.to_str().unwrap()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_segment_lost_from_the_live_log_is_named_and_restored_from_the_archive() {
    let pki = stopped_after(10).await;
    let (live, archive) = (pki.root().join("gw-audit"), pki.root().join("gw-archive"));
    let config = pki.root().join("gateway.toml");
    let before = records(&live);
    assert_eq!(segment::list(&live).unwrap(), [0, 4, 8]);
    let (ok, said) = verify(&archive);
    assert!(ok && said.contains("archive: 8 entries"), "{said}");

    let lost = segment::segment_path(&live, 4);
    std::fs::remove_file(&lost).unwrap();
    let refused = start(&config).unwrap_err();
    assert!(
        refused.contains(&format!(
            "{} is damaged: it is missing: it holds entries 4..8",
            lost.display()
        )) && refused.contains("restore the segment from the archive (`[audit] archive_dir`)"),
        "{refused}"
    );
    // `audit verify` names the same file, and checks the segment before it.
    let (ok, said) = verify(&live);
    assert!(
        !ok && said.contains(&format!("{}: it is missing", lost.display())),
        "{said}"
    );

    std::fs::copy(segment::segment_path(&archive, 4), &lost).unwrap();
    start(&config).expect("the node starts once the segment is back");
    assert_eq!(records(&live)[..before.len()], before[..]);
    let (ok, said) = verify(&live);
    assert!(ok, "{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_cut_at_a_segment_boundary_is_recovered_and_its_archive_still_verifies() {
    let pki = stopped_after(10).await;
    let (live, archive) = (pki.root().join("gw-audit"), pki.root().join("gw-archive"));
    let config = pki.root().join("gateway.toml");
    let before = records(&live);
    let n = before.len();
    assert!(n >= 10, "{n} entries");
    // Everything from entry 8 on is gone: the whole tail segment.
    let kept = 8;
    std::fs::remove_file(segment::segment_path(&live, 8)).unwrap();
    let _ = std::fs::remove_file(segment::index_path(&live, 8));
    let refused = start(&config).unwrap_err();
    assert!(
        refused.contains("covers 10 entries but only 8 are in the log"),
        "{refused}"
    );

    let cfg = config.to_str().unwrap();
    let (ok, said) = run(&["audit", "recover", "--config", cfg]);
    assert!(!ok, "{said}");
    assert!(said.contains(&format!("keep entries 0..{kept}")), "{said}");
    let (ok, said) = run(&["audit", "recover", "--config", cfg, "--accept-loss"]);
    assert!(ok, "{said}");
    // The archive's history of the lost log is set aside with the live one.
    assert!(
        said.contains(&format!("{}/checkpoints.log.lost-", archive.display())),
        "{said}"
    );

    start(&config).expect("the node starts after the loss was accepted");
    let now = records(&live);
    assert_eq!(now[..kept], before[..kept]);
    let entry = AuditRecord::decode(now[kept].as_slice()).unwrap();
    assert_eq!(entry.kind, Kind::LogLossAccepted as i32);
    assert_eq!(entry.count, (n - kept) as u64, "{}", entry.detail);
    let (ok, said) = verify(&live);
    assert!(ok, "{said}");
    let (ok, said) = verify(&archive);
    assert!(ok && said.contains("archive: 8 entries"), "{said}");
}
