//! `jisr audit verify` over a whole deployment, black-box: online, asked of
//! any of three replicas over mutual TLS, every node's signed checkpoint
//! is checked, keys are pinned in the auditor's state file and each log
//! must extend what the last run saw (a rolled-back or rewritten log and a
//! changed key are caught, a node that does not answer makes the run
//! partial); offline, several nodes' log directories at once.

use crate::audit::{copy_dir, frames};
use crate::replicas_audit::checkpointed;
use crate::support::replicas::{Replicas, NODES};
use crate::support::*;
use std::path::Path;

/// Makes `n` calls about the citizen through replica `node`.
async fn calls(r: &Replicas, node: usize, n: usize) {
    let education = channel(&r.addrs[node], &r.pki.files("education"))
        .await
        .unwrap();
    for _ in 0..n {
        call_raw(
            &education,
            RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature"),
        )
        .await
        .unwrap();
    }
}

/// `jisr audit verify --gateway` through replica `node`, as the CNDP.
fn verify_online(r: &Replicas, node: usize, state: &Path) -> (bool, String) {
    let out = jisr()
        .args(["audit", "verify", "--gateway", &r.addrs[node], "--pki"])
        .arg(&r.pki.dir)
        .args(["--as", "cndp", "--state"])
        .arg(state)
        .output()
        .unwrap();
    (out.status.success(), text(&out))
}

/// The line of `node` in a run's output.
fn line<'a>(out: &'a str, node: &str) -> &'a str {
    let tag = format!(" {node}: ");
    out.lines()
        .find(|l| l.contains(&tag))
        .unwrap_or_else(|| panic!("no line for {node} in:\n{out}"))
}

fn state_size(state: &Path, node: &str) -> u64 {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state).unwrap()).unwrap();
    json["nodes"][node]["size"].as_u64().unwrap()
}

/// Replaces replica `node`'s log directory with `from` (it must be stopped).
fn replace_log(r: &Replicas, node: usize, from: Option<&Path>) {
    let dir = r.pki.root().join(format!("{}-audit", NODES[node]));
    std::fs::remove_dir_all(&dir).unwrap();
    match from {
        Some(from) => copy_dir(from, &dir),
        None => {
            std::fs::remove_file(r.pki.root().join(format!("{}-audit.key", NODES[node]))).unwrap()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_every_replica_against_what_the_auditor_saw_before() {
    let mut r = Replicas::start().await;
    let state = r.pki.root().join("cndp-state.json");
    for node in 0..3 {
        calls(&r, node, 2).await;
    }
    checkpointed(&r, &[2, 2, 2]).await;
    // First run: every node new, its key pinned.
    let (ok, out) = verify_online(&r, 0, &state);
    assert!(ok, "{out}");
    for node in NODES {
        assert!(line(&out, node).starts_with("NEW "), "{out}");
        assert_eq!(state_size(&state, node), 2);
    }
    assert!(out.contains("OK: every node of the deployment verifies (3 nodes)"));
    // A copy of gw-1's log as it is now, for the rollback below.
    r.stop(0);
    let backup = r.pki.root().join("gw-1-backup");
    copy_dir(&r.pki.root().join("gw-1-audit"), &backup);
    r.restart(0);

    // The logs grew: each is proved to extend what was seen, through any replica.
    calls(&r, 0, 2).await;
    calls(&r, 1, 1).await;
    checkpointed(&r, &[4, 3, 2]).await;
    let (ok, out) = verify_online(&r, 1, &state);
    assert!(ok, "{out}");
    assert!(
        line(&out, "gw-1").starts_with("OK gw-1: 4 entries, consistent with the 2 seen before"),
        "{out}"
    );
    assert!(
        line(&out, "gw-3").starts_with("OK gw-3: 2 entries, unchanged"),
        "{out}"
    );
    assert_eq!(state_size(&state, "gw-1"), 4);

    // gw-3 down: the run is partial, names it, and keeps what was seen of it.
    r.stop(2);
    let (ok, out) = verify_online(&r, 0, &state);
    assert!(!ok, "a partial run must fail:\n{out}");
    assert!(
        line(&out, "gw-3").starts_with("MISSING gw-3: did not answer"),
        "{out}"
    );
    assert!(line(&out, "gw-1").starts_with("OK "), "{out}");
    assert!(
        out.contains("PARTIAL: 1 node(s) not checked: gw-3"),
        "{out}"
    );
    assert_eq!(state_size(&state, "gw-3"), 2);
    r.restart(2);

    // gw-1 rolled back to the copy: fewer entries than were signed before.
    r.stop(0);
    replace_log(&r, 0, Some(&backup));
    r.restart(0);
    checkpointed(&r, &[2, 3, 2]).await;
    let (ok, out) = verify_online(&r, 2, &state);
    assert!(!ok, "{out}");
    assert!(
        line(&out, "gw-1").starts_with(
            "FAIL gw-1: rolled back: its checkpoint covers 2 entries, but 4 were signed before"
        ),
        "{out}"
    );
    assert!(line(&out, "gw-2").starts_with("OK "), "{out}");
    assert_eq!(
        state_size(&state, "gw-1"),
        4,
        "a failed node's state must not move"
    );
    // ...and grown again past the old size: another history, caught by the
    // consistency proof.
    calls(&r, 0, 3).await;
    checkpointed(&r, &[5, 3, 2]).await;
    let (ok, out) = verify_online(&r, 0, &state);
    assert!(!ok, "{out}");
    assert!(
        line(&out, "gw-1")
            .starts_with("FAIL gw-1: its log of 5 entries does not extend the 4 seen before"),
        "{out}"
    );

    // gw-2 with a new key (and so a new log): the pinned key catches it.
    r.stop(1);
    replace_log(&r, 1, None);
    r.restart(1);
    let (ok, out) = verify_online(&r, 0, &state);
    assert!(!ok, "{out}");
    assert!(
        line(&out, "gw-2").starts_with("FAIL gw-2: its verifier key changed: pinned"),
        "{out}"
    );
    assert!(line(&out, "gw-3").starts_with("OK "), "{out}");
    // No temporary file is left beside the state.
    let leftovers: Vec<_> = std::fs::read_dir(r.pki.root())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(".jisr-audit-state-")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_checks_several_nodes_logs_offline() {
    let mut r = Replicas::start().await;
    for node in 0..3 {
        calls(&r, node, 3).await;
    }
    checkpointed(&r, &[3, 3, 3]).await;
    for node in 0..3 {
        r.stop(node);
    }
    let dirs: Vec<_> = NODES
        .iter()
        .map(|n| r.pki.root().join(format!("{n}-audit")))
        .collect();
    let keys: Vec<_> = dirs.iter().map(|d| d.join("verifier.key")).collect();
    let run = |dirs: &[&Path], keys: &[&Path]| {
        let mut cmd = jisr();
        cmd.args(["audit", "verify"]).args(dirs);
        for k in keys {
            cmd.arg("--key").arg(k);
        }
        let out = cmd.output().unwrap();
        (out.status.success(), text(&out))
    };
    let all: Vec<&Path> = dirs.iter().map(|d| d.as_path()).collect();
    let (ok, out) = run(&all, &[]);
    assert!(ok, "{out}");
    for node in NODES {
        assert!(
            line(&out, node).starts_with(&format!("OK {node}: ")),
            "{out}"
        );
        assert!(out.contains(&format!("[{node}] 3 entries")), "{out}");
    }
    assert!(out.contains("OK: the logs of 3 nodes verify"), "{out}");
    // The published keys, given in any order, are matched by name.
    let published: Vec<&Path> = keys.iter().rev().map(|k| k.as_path()).collect();
    let (ok, out) = run(&all, &published);
    assert!(ok, "{out}");
    // One key short: refused, naming the origin without a key.
    let (ok, out) = run(&all, &published[..2]);
    assert!(!ok);
    assert!(
        out.contains("no --key is named `interop.gov.ma/jisr/gw-1`"),
        "{out}"
    );
    // Two directories of one node: refused before anything is checked.
    let copy = r.pki.root().join("gw-1-copy");
    copy_dir(&dirs[0], &copy);
    let (ok, out) = run(&[&dirs[0], &copy, &dirs[1]], &[]);
    assert!(!ok);
    assert!(
        out.contains("both hold the log of `interop.gov.ma/jisr/gw-1`"),
        "{out}"
    );
    // One node's entry altered: that node fails, the others verify.
    let segment = dirs[1].join("00000000000000000000.log");
    let mut bytes = std::fs::read(&segment).unwrap();
    let f = frames(&bytes);
    bytes[f[1].start + 20] ^= 0x01;
    std::fs::write(&segment, bytes).unwrap();
    let (ok, out) = run(&all, &[]);
    assert!(!ok, "{out}");
    assert!(line(&out, "gw-2").starts_with("FAIL gw-2: "), "{out}");
    assert!(out.contains("[gw-2] FAIL: "), "{out}");
    assert!(line(&out, "gw-1").starts_with("OK gw-1: "), "{out}");
    assert!(line(&out, "gw-3").starts_with("OK gw-3: "), "{out}");
    assert!(
        out.contains("FAIL: 1 of 3 nodes do not verify: gw-2"),
        "{out}"
    );
}
