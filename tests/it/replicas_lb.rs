//! Three `jisr serve` processes behind a real haproxy in TCP mode (mutual
//! TLS end to end), on one redis-server (AOF on) or a 3-master Redis
//! Cluster, finding each other through the registry: an agency's calls
//! spread over the replicas, and the audit answer (asked through haproxy or
//! of any replica) lists each exchange once with a proof against its own
//! node's checkpoint; a SIGKILLed replica is named missing, in the API and
//! by `jisr audit`, until it is back; a consent granted, used and revoked
//! through three different replicas is refused everywhere at once. Both
//! on the standalone Redis and on the Cluster.

use crate::consent::{call, grant, portal, reason_of, CONSENT_RULES};
use crate::replicas_audit::{pairs, verify, walk_history};
use crate::support::fleet::{Fleet, NODES};
use crate::support::redis_server::{Cluster, Redis};
use crate::support::{birth, BIRTH, CITIZEN};
use crate::support::{call_raw, jisr, RawCall};
use jisr::proto::jisr::audit::v1 as pb;
use jisr::proto::jisr::consent::v1 as cpb;
use pb::audit_client::AuditClient;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic::Code;

type Pairs = BTreeSet<(String, u64)>;

/// The administrative procedure the calls belong to (`jisr-procedure`).
const PROCEDURE: &str = "bac-2026-file-8812";

/// `n` law-based calls about the citizen through haproxy, each on a new
/// connection (round robin spreads them); waits until the replicas'
/// checkpoints cover all of them, and returns the `(node, index)` of every
/// entry.
async fn spread_calls(f: &Fleet, n: u64) -> Pairs {
    for _ in 0..n {
        let education = f.channel(&f.lb.addr, "education").await;
        call_raw(
            &education,
            RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature")
                .with("jisr-procedure", PROCEDURE),
        )
        .await
        .unwrap();
    }
    let mut cndp = AuditClient::new(f.channel(&f.lb.addr, "cndp").await);
    let start = Instant::now();
    loop {
        let listed = cndp
            .list_checkpoints(pb::ListCheckpointsRequest {})
            .await
            .unwrap()
            .into_inner();
        if listed.missing.is_empty() && listed.checkpoints.iter().map(|c| c.size).sum::<u64>() == n
        {
            let all: Pairs = listed
                .checkpoints
                .iter()
                .flat_map(|c| (0..c.size).map(|i| (c.node.clone(), i)))
                .collect();
            let nodes: BTreeSet<_> = all.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(nodes, NODES.into(), "haproxy did not spread the calls");
            return all;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the checkpoints never covered {n} entries: {listed:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every page of `procedure`'s trail, asked as the auditor.
async fn walk_trail(
    client: &mut AuditClient<Channel>,
    procedure: &str,
) -> (Vec<pb::Entry>, Vec<pb::MissingNode>) {
    let (mut all, mut missing, mut token) = (Vec::new(), Vec::new(), String::new());
    for _ in 0..100 {
        let page = client
            .query(pb::QueryRequest {
                procedure: procedure.into(),
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        all.extend(page.entries);
        missing.extend(page.missing);
        if page.next_page_token.is_empty() {
            return (all, missing);
        }
        token = page.next_page_token;
    }
    panic!("trail paging did not end in 100 pages");
}

/// Lists each entry once: no `(node, index)` twice.
fn once(entries: &[pb::Entry], asked: &str) -> Pairs {
    let set = pairs(entries);
    assert_eq!(set.len(), entries.len(), "{asked} listed an entry twice");
    set
}

/// What `addr` answers for the citizen's history and the procedure's
/// trail: the entries, each listed once, and the nodes named missing.
async fn answer(f: &Fleet, addr: &str) -> (Pairs, Pairs, BTreeSet<String>) {
    let mut portal = AuditClient::new(f.channel(addr, "portal").await);
    let mut cndp = AuditClient::new(f.channel(addr, "cndp").await);
    let (history, m1) = walk_history(&mut portal, 2).await;
    let (trail, m2) = walk_trail(&mut cndp, PROCEDURE).await;
    let missing = m1.iter().chain(&m2).map(|m| m.node.clone()).collect();
    (once(&history, addr), once(&trail, addr), missing)
}

/// Polls `addr` (up to 15 s) until its history and trail are `want` and
/// it names exactly `missing`.
async fn answers(f: &Fleet, addr: &str, want: &Pairs, missing: &[&str]) {
    let missing: BTreeSet<String> = missing.iter().map(|m| (*m).to_owned()).collect();
    let start = Instant::now();
    loop {
        let got = answer(f, addr).await;
        if (&got.0, &got.1, &got.2) == (want, want, &missing) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{addr} answered {got:?}, not {want:?} missing {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every entry's inclusion proof, fetched from `addr`, verifies against
/// its node's signed checkpoint, signed by that node's own key.
async fn proofs_verify(f: &Fleet, addr: &str, want: &Pairs) {
    let mut cndp = AuditClient::new(f.channel(addr, "cndp").await);
    let listed = cndp
        .list_checkpoints(pb::ListCheckpointsRequest {})
        .await
        .unwrap()
        .into_inner();
    let checkpoints: HashMap<_, _> = listed
        .checkpoints
        .into_iter()
        .map(|c| (c.node.clone(), c))
        .collect();
    for (node, index) in want {
        let key = &checkpoints[node].verifier_key;
        assert!(
            key.starts_with(&format!("interop.gov.ma/jisr/{node}+")),
            "{node}'s checkpoint is signed by {key}"
        );
        let entry = cndp
            .get_entry(pb::GetEntryRequest {
                index: *index,
                tree_size: checkpoints[node].size,
                node: node.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!((&entry.node, entry.index), (node, *index));
        verify(&entry, &checkpoints);
    }
}

/// `jisr audit <args>` against `addr` as the CLI runs it: exit status,
/// stdout, stderr.
async fn cli(f: &Fleet, addr: &str, args: &[&str]) -> (bool, String, String) {
    let mut cmd = jisr();
    cmd.arg("audit")
        .arg(args[0])
        .args(["--gateway", addr, "--pki"])
        .arg(&f.pki.dir)
        .args(&args[1..]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Issue 16's first scenario: every endpoint answers for all, each entry once
/// and provable.
async fn any_endpoint_answers_for_all(f: &Fleet) -> Pairs {
    let all = spread_calls(f, 9).await;
    for addr in f.endpoints() {
        answers(f, &addr, &all, &[]).await;
        proofs_verify(f, &addr, &all).await;
    }
    all
}

/// Granted through replica 1, used through 2, revoked through 3: refused
/// through every replica and through haproxy.
async fn consent_across_replicas(f: &Fleet) {
    let addr = |i: usize| f.replicas[i].addr.clone();
    let mut portal1 = portal(&addr(0), &f.pki).await;
    let id = grant(
        &mut portal1,
        CITIZEN,
        "school-enrolment",
        0,
        Duration::from_secs(3600),
    )
    .await;
    let on2 = f.channel(&addr(1), "education").await;
    call_raw(&on2, call("school-enrolment", CITIZEN, Some(&id)))
        .await
        .unwrap();
    let mut portal3 = portal(&addr(2), &f.pki).await;
    portal3
        .revoke(cpb::RevokeRequest { id: id.clone() })
        .await
        .unwrap();
    // Three connections through haproxy: one to each replica.
    let endpoints = f.endpoints();
    let through = std::iter::repeat_n(&endpoints[0], 3).chain(&endpoints[1..]);
    for addr in through {
        let education = f.channel(addr, "education").await;
        assert_eq!(
            reason_of(&education, call("school-enrolment", CITIZEN, Some(&id))).await,
            (Code::PermissionDenied, "CONSENT_REVOKED".into()),
            "through {addr}"
        );
    }
}

/// gw-2 killed: haproxy takes it out; the others answer what they have
/// and name it, in the API and in the CLI's output and exit status. Back
/// on the same address: complete again, everywhere.
async fn a_killed_replica_is_named_until_it_is_back(f: &mut Fleet, all: &Pairs) {
    f.kill(1);
    let live: Pairs = all.iter().filter(|(n, _)| n != "gw-2").cloned().collect();
    for addr in [&f.lb.addr, &f.replicas[0].addr, &f.replicas[2].addr] {
        answers(f, addr, &live, &["gw-2"]).await;
    }
    let lb = f.lb.addr.clone();
    let query = ["query", "--as", "portal", "--citizen", CITIZEN];
    let (ok, stdout, stderr) = cli(f, &lb, &query).await;
    assert!(!ok, "a partial answer must fail the command: {stdout}");
    assert!(
        stderr.contains("partial: node gw-2 did not answer"),
        "{stderr}"
    );
    assert_eq!(stdout.lines().count(), live.len(), "{stdout}");
    let (ok, stdout, stderr) = cli(f, &lb, &["checkpoints"]).await;
    assert!(!ok && stderr.contains("partial: node gw-2 did not answer"));
    assert!(
        stdout.contains("gw-1") && stdout.contains("gw-3") && !stdout.contains("gw-2"),
        "{stdout}"
    );

    f.restart(1).await;
    for addr in f.endpoints() {
        answers(f, &addr, all, &[]).await;
    }
    let (ok, stdout, stderr) = cli(f, &lb, &query).await;
    assert!(ok, "{stderr}");
    assert_eq!(stdout.lines().count(), all.len(), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_haproxy_any_replica_answers_for_all_and_names_a_killed_one() {
    let redis = Redis::with_aof();
    let mut f = Fleet::start(&redis.url(), CONSENT_RULES).await;
    let all = any_endpoint_answers_for_all(&f).await;
    a_killed_replica_is_named_until_it_is_back(&mut f, &all).await;
    consent_across_replicas(&f).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_haproxy_on_a_redis_cluster_the_audit_answer_and_consents_hold_across_a_kill() {
    let cluster = Cluster::start();
    let mut f = Fleet::start(&cluster.url(), CONSENT_RULES).await;
    let all = any_endpoint_answers_for_all(&f).await;
    a_killed_replica_is_named_until_it_is_back(&mut f, &all).await;
    consent_across_replicas(&f).await;
}

#[test]
fn the_shipped_haproxy_config_is_valid_and_checks_readyz_in_tcp_mode() {
    let cfg = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/haproxy.cfg");
    let out = std::process::Command::new("haproxy")
        .arg("-c")
        .arg("-f")
        .arg(&cfg)
        .output()
        .expect("haproxy is installed by scripts/test.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&cfg).unwrap();
    for line in [
        "mode tcp",
        "option httpchk GET /readyz",
        "timeout check",
        "option redispatch",
    ] {
        assert!(text.contains(line), "deploy/haproxy.cfg lacks `{line}`");
    }
    assert!(
        !text.lines().any(|l| l.trim() == "mode http"),
        "TLS must pass through"
    );
}
