//! Three replicas, one audit answer: each gateway has its own node id,
//! certificate and log and knows the others only from `[cluster] peers`;
//! the audit API of any of them lists every replica's entries, merged and
//! paged across all, each provable against its own node's checkpoint, and
//! says which nodes are missing when one is down.

use crate::support::replicas::{issue_gateway, Replicas, NODES};
use crate::support::*;
use jisr::proto::jisr::audit::v1 as pb;
use pb::audit_client::AuditClient;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic::Code;

/// Waits until each node's own checkpoint covers its `sizes` entries.
pub(crate) async fn checkpointed(r: &Replicas, sizes: &[u64]) {
    for (i, &size) in sizes.iter().enumerate() {
        let mut client = r.client(i, "cndp").await;
        let start = Instant::now();
        loop {
            let cp = client
                .get_checkpoint(pb::GetCheckpointRequest {})
                .await
                .unwrap()
                .into_inner();
            if cp.size >= size {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{} not checkpointed",
                NODES[i]
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub(crate) fn pairs(entries: &[pb::Entry]) -> BTreeSet<(String, u64)> {
    entries.iter().map(|e| (e.node.clone(), e.index)).collect()
}

/// Every page of a citizen's history, asked of `client` `size` at a time.
pub(crate) async fn walk_history(
    client: &mut AuditClient<Channel>,
    size: u32,
) -> (Vec<pb::Entry>, Vec<pb::MissingNode>) {
    let mut all = Vec::new();
    let mut missing = Vec::new();
    let mut token = String::new();
    for _ in 0..100 {
        let page = client
            .citizen_history(pb::CitizenHistoryRequest {
                citizen_id: CITIZEN.into(),
                page_size: size,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.entries.len() <= size as usize);
        all.extend(page.entries);
        missing.extend(page.missing);
        if page.next_page_token.is_empty() {
            return (all, missing);
        }
        token = page.next_page_token;
    }
    panic!("history paging did not end in 100 pages");
}

/// Checks `entry`'s inclusion proof against its node's signed checkpoint.
pub(crate) fn verify(entry: &pb::Entry, checkpoints: &HashMap<String, pb::SignedCheckpoint>) {
    use jisr::audit::{merkle, note};
    let cp = &checkpoints[&entry.node];
    let verifier = note::NoteVerifier::from_text(&cp.verifier_key).unwrap();
    let body = note::open_note(&entry.checkpoint_note, &verifier)
        .unwrap_or_else(|e| panic!("{}'s checkpoint does not verify: {e}", entry.node));
    let checkpoint = note::Checkpoint::parse(body).unwrap();
    assert_eq!(checkpoint.size, entry.tree_size);
    let proof: Vec<[u8; 32]> = entry
        .inclusion_proof
        .iter()
        .map(|h| h.as_slice().try_into().unwrap())
        .collect();
    merkle::verify_inclusion(
        &proof,
        entry.tree_size,
        &checkpoint.root,
        entry.index,
        &merkle::leaf_hash(&entry.record_bytes),
    )
    .unwrap_or_else(|e| panic!("entry {}/{} does not verify: {e}", entry.node, entry.index));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_replica_answers_for_all_and_says_when_one_is_missing() {
    let mut r = Replicas::start().await;
    // Three calls about the citizen through each replica, and one of tax's.
    for i in 0..3 {
        let education = channel(&r.addrs[i], &r.pki.files("education"))
            .await
            .unwrap();
        for _ in 0..3 {
            call_raw(
                &education,
                RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature"),
            )
            .await
            .unwrap();
        }
    }
    let tax = channel(&r.addrs[2], &r.pki.files("tax")).await.unwrap();
    call_raw(
        &tax,
        RawCall::new(FAMILY, birth("CD234567"), "tax-household"),
    )
    .await
    .unwrap();
    checkpointed(&r, &[3, 3, 4]).await;
    let expected: BTreeSet<(String, u64)> = NODES
        .iter()
        .flat_map(|n| (0..3).map(move |i| ((*n).to_owned(), i)))
        .collect();

    for (asked, name) in NODES.iter().enumerate() {
        let mut portal = r.client(asked, "portal").await;
        let (entries, missing) = walk_history(&mut portal, 50).await;
        assert!(missing.is_empty(), "{missing:?}");
        assert_eq!(pairs(&entries), expected, "asked {name}");
        let times: Vec<i64> = entries
            .iter()
            .map(|e| e.record.as_ref().unwrap().time_unix_micros)
            .collect();
        assert!(
            times.windows(2).all(|w| w[0] >= w[1]),
            "newest first: {times:?}"
        );
        // Small pages walk every entry exactly once.
        for size in [1, 2, 4] {
            let (paged, _) = walk_history(&mut portal, size).await;
            assert_eq!(paged.len(), 9, "page size {size}");
            assert_eq!(pairs(&paged), expected, "page size {size}");
        }
        // Every entry's proof verifies against its own node's checkpoint.
        let mut cndp = r.client(asked, "cndp").await;
        let listed = cndp
            .list_checkpoints(pb::ListCheckpointsRequest {})
            .await
            .unwrap()
            .into_inner();
        assert!(listed.missing.is_empty());
        let checkpoints: HashMap<_, _> = listed
            .checkpoints
            .into_iter()
            .map(|c| (c.node.clone(), c))
            .collect();
        assert_eq!(checkpoints.len(), 3);
        for e in &entries {
            let entry = cndp
                .get_entry(pb::GetEntryRequest {
                    index: e.index,
                    tree_size: checkpoints[&e.node].size,
                    node: e.node.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(entry.node, e.node);
            verify(&entry, &checkpoints);
        }
    }

    // Role rules hold on the merged answer: tax sees only its own exchange
    // (made through gw-3) when asking gw-1, and no citizen history.
    let mut as_tax = r.client(0, "tax").await;
    let mine = as_tax
        .query(pb::QueryRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        pairs(&mine.entries),
        BTreeSet::from([("gw-3".to_owned(), 3)])
    );
    let refused = as_tax
        .citizen_history(pb::CitizenHistoryRequest {
            citizen_id: CITIZEN.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    // An auditor's query pages across the nodes too; an old token is refused.
    let mut cndp = r.client(1, "cndp").await;
    let mut seen = BTreeSet::new();
    let mut token = String::new();
    for _ in 0..20 {
        let page = cndp
            .query(pb::QueryRequest {
                agency: "education".into(),
                page_size: 2,
                page_token: token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        for e in &page.entries {
            assert!(seen.insert((e.node.clone(), e.index)), "{e:?} listed twice");
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, expected);
    let old = cndp
        .query(pb::QueryRequest {
            page_token: "3".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(old.code(), Code::InvalidArgument);
    assert!(old.message().contains("single-node"), "{}", old.message());
    // Another node's consistency proof comes from that node; an unknown
    // node is named as such.
    let proof = cndp
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            old_size: 1,
            new_size: 3,
            node: "gw-3".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!proof.hashes.is_empty());
    let unknown = cndp
        .get_entry(pb::GetEntryRequest {
            index: 0,
            tree_size: 0,
            node: "gw-7".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(
        unknown.message().contains("gw-1, gw-2, gw-3"),
        "{}",
        unknown.message()
    );

    // gw-3 down: the others answer what they have and name it.
    drop(tax);
    r.stop(2);
    let mut portal = r.client(0, "portal").await;
    let (entries, missing) = walk_history(&mut portal, 50).await;
    assert_eq!(entries.len(), 6);
    assert_eq!(
        missing
            .iter()
            .map(|m| m.node.as_str())
            .collect::<BTreeSet<_>>(),
        BTreeSet::from(["gw-3"])
    );
    let pki_dir = r.pki.dir.to_str().unwrap().to_owned();
    let out = jisr()
        .args([
            "audit",
            "query",
            "--gateway",
            &r.addrs[1],
            "--pki",
            &pki_dir,
        ])
        .args(["--as", "portal", "--citizen", CITIZEN])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a partial answer must fail the command"
    );
    assert!(
        stderr.contains("partial: node gw-3 did not answer"),
        "{stderr}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 6);
    let out = jisr()
        .args([
            "audit",
            "checkpoints",
            "--gateway",
            &r.addrs[0],
            "--pki",
            &pki_dir,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        stdout.contains("gw-1") && stdout.contains("gw-2") && !stdout.contains("gw-3"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("partial: node gw-3 did not answer"));

    // Back: complete again.
    r.restart(2);
    let start = Instant::now();
    loop {
        let (entries, missing) = walk_history(&mut portal, 50).await;
        if missing.is_empty() {
            assert_eq!(pairs(&entries), expected);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "gw-3 still missing: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_configured_peers_may_read_for_an_agency_and_only_the_audit_api() {
    let r = Replicas::start().await;
    let education = channel(&r.addrs[0], &r.pki.files("education"))
        .await
        .unwrap();
    call_raw(
        &education,
        RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature"),
    )
    .await
    .unwrap();
    checkpointed(&r, &[1, 0, 0]).await;
    let history = |agency: &str| {
        let mut request = tonic::Request::new(pb::CitizenHistoryRequest {
            citizen_id: CITIZEN.into(),
            ..Default::default()
        });
        request
            .metadata_mut()
            .insert("jisr-on-behalf-of", agency.parse().unwrap());
        request
    };
    // gw-2, a peer of gw-1, reads gw-1's log for the portal...
    let as_peer = channel(&r.addrs[0], &r.pki.files("gw-2")).await.unwrap();
    let mut peer = AuditClient::new(as_peer.clone());
    let page = peer
        .citizen_history(history("portal"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        pairs(&page.entries),
        BTreeSet::from([("gw-1".to_owned(), 0)])
    );
    // ...but not for an agency without the role,
    let refused = peer.citizen_history(history("tax")).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    // nor without naming one, nor to call a service.
    let unnamed = peer
        .citizen_history(pb::CitizenHistoryRequest {
            citizen_id: CITIZEN.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unnamed.code(), Code::Unauthenticated, "{unnamed:?}");
    let call = call_raw(
        &as_peer,
        RawCall::new(BIRTH, birth(CITIZEN), "bac-candidature"),
    )
    .await
    .unwrap_err();
    assert_eq!(call.code(), Code::PermissionDenied, "{call:?}");
    // A gateway certificate of the same CA that is not a configured peer
    // cannot connect at all, so its on-behalf-of is never read.
    issue_gateway(&r.pki, "gw-9");
    let stranger = match channel(&r.addrs[0], &r.pki.files("gw-9")).await {
        Err(_) => None,
        Ok(ch) => Some(AuditClient::new(ch).citizen_history(history("cndp")).await),
    };
    assert!(
        !matches!(stranger, Some(Ok(_))),
        "a non-peer gateway read the log: {stranger:?}"
    );
}
