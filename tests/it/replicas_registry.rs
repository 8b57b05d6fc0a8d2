//! Replicas that find each other through the registry of the Redis they
//! share, without `[cluster] peers`: any of them answers a citizen's
//! history for all, a gateway certificate of the CA that is not a live node
//! cannot read, and a node that stopped cleanly (so left the registry) is
//! still named missing rather than silently dropped.

use crate::replicas_audit::{checkpointed, pairs, walk_history};
use crate::support::redis_server::Redis;
use crate::support::replicas::{issue_gateway, Replicas, NODES};
use crate::support::*;
use jisr::proto::jisr::audit::v1 as pb;
use pb::audit_client::AuditClient;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// Makes three calls about the citizen through each replica and waits
/// until each has checkpointed them.
async fn three_calls_each(r: &Replicas) {
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
    checkpointed(r, &[3, 3, 3]).await;
}

/// The entries `nodes` hold: three each, indexes 0..3.
fn expected(nodes: &[&str]) -> BTreeSet<(String, u64)> {
    nodes
        .iter()
        .flat_map(|n| (0..3).map(move |i| ((*n).to_owned(), i)))
        .collect()
}

/// Asks replica `asked` for the citizen's history until it holds `want`
/// and names exactly `missing` (the registry is read every second, so a
/// change shows within a few), or fails after 15 s.
async fn answers(r: &Replicas, asked: usize, want: &BTreeSet<(String, u64)>, missing: &[&str]) {
    let mut portal = r.client(asked, "portal").await;
    let start = Instant::now();
    loop {
        let (entries, named) = walk_history(&mut portal, 2).await;
        let named: BTreeSet<&str> = named.iter().map(|m| m.node.as_str()).collect();
        if pairs(&entries) == *want && named == missing.iter().copied().collect() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{} answered {:?} missing {named:?}, not {want:?} missing {missing:?}",
            NODES[asked],
            pairs(&entries),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Whether a gateway presenting `cert`'s certificate may read replica
/// `asked`'s log for the portal, as a peer does.
async fn reads_as_peer(r: &Replicas, asked: usize, cert: &str) -> bool {
    let mut request = tonic::Request::new(pb::CitizenHistoryRequest {
        citizen_id: CITIZEN.into(),
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("jisr-on-behalf-of", "portal".parse().unwrap());
    match channel(&r.addrs[asked], &r.pki.files(cert)).await {
        Err(_) => false,
        Ok(ch) => AuditClient::new(ch).citizen_history(request).await.is_ok(),
    }
}

fn registered(redis: &Redis, node: &str) -> bool {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let value: Option<String> = redis::cmd("GET")
        .arg(format!("jisr:node:{{{node}}}"))
        .query(&mut conn)
        .unwrap();
    value.is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_one_redis_find_each_other_and_remember_a_stopped_one() {
    let redis = Redis::start();
    let mut r = Replicas::on_registry(&redis.url(), "").await;
    // Calls about one citizen spread across the three.
    three_calls_each(&r).await;
    let all = expected(&NODES);
    for asked in 0..3 {
        answers(&r, asked, &all, &[]).await;
    }

    // A live node reads as a peer; a gateway certificate of the same CA
    // whose node is not registered cannot.
    assert!(reads_as_peer(&r, 0, "gw-3").await);
    issue_gateway(&r.pki, "gw-9");
    assert!(!reads_as_peer(&r, 0, "gw-9").await);

    // gw-3 stops cleanly and leaves the registry; the others answer in
    // full for themselves.
    r.stop(2);
    assert!(!registered(&redis, "gw-3"), "gw-3 did not deregister");
    // Once gw-1 has read the registry without it, gw-3's certificate no
    // longer reads as a peer...
    let start = Instant::now();
    while reads_as_peer(&r, 0, "gw-3").await {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "gw-1 still admits gw-3 after it left the registry"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ...yet gw-3 is still asked, and named missing: its log exists.
    let live = expected(&NODES[..2]);
    for asked in 0..2 {
        answers(&r, asked, &live, &["gw-3"]).await;
    }

    // Back under the same id: complete again.
    r.restart(2);
    for asked in 0..3 {
        answers(&r, asked, &all, &[]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_memory_a_cleanly_stopped_replica_is_no_longer_named_missing() {
    let redis = Redis::start();
    let mut r = Replicas::on_registry(&redis.url(), "remember_departed_ms = 0").await;
    three_calls_each(&r).await;
    answers(&r, 0, &expected(&NODES), &[]).await;
    r.stop(2);
    assert!(!registered(&redis, "gw-3"), "gw-3 did not deregister");
    // Once read without it, gw-3 is forgotten at once: complete for the
    // live nodes, nobody missing.
    answers(&r, 0, &expected(&NODES[..2]), &[]).await;
    answers(&r, 1, &expected(&NODES[..2]), &[]).await;
}
