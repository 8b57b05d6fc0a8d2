//! The audit archive, black-box: a gateway with `[audit] archive_dir`
//! copies its checkpoints and verifier key there, and `jisr audit verify`
//! checks the archive, saying what it holds and what it does not.

use crate::routing::spawned_echo_network;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_gateways_archive_verifies_and_names_its_uncovered_tail() {
    let extra = "[audit]\ndir = \"gw-audit\"\narchive_dir = \"gw-archive\"\n";
    let (pki, mut gw, addr, _echoes) = spawned_echo_network("", extra).await;
    let archive = pki.root().join("gw-archive");
    let client = channel(&addr, &pki.files("education")).await.unwrap();
    let body = birth(CITIZEN);
    for _ in 0..5 {
        call_raw(
            &client,
            RawCall::new(BIRTH, body.clone(), "bac-candidature"),
        )
        .await
        .unwrap();
    }
    drop(client);
    assert!(gw.terminate().success());

    // The stop signed a final checkpoint of every entry and archived it;
    // the entries are in the tail segment, not sealed, so not archived.
    let out = jisr()
        .args(["audit", "verify", archive.to_str().unwrap()])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("OK: the archive"), "{text}");
    assert!(text.contains("archive: 0 entries"), "{text}");
    assert!(
        text.contains("entries 0..5 not in the archive (tail segment)"),
        "{text}"
    );
    // The live log has what the archive lacks.
    let live = pki.root().join("gw-audit");
    let out = jisr()
        .args(["audit", "verify", live.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        std::fs::read(live.join("checkpoint")).unwrap(),
        std::fs::read(archive.join("checkpoint")).unwrap()
    );
}
