//! The Redis consent store against real redis-server processes that each
//! test starts on free loopback ports: every operation, two replicas sharing
//! one Redis, Redis killed and restarted under a live store, a revoke/use
//! race, and a three-node Redis Cluster (`support::redis_server` starts them).

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jisr::audit::keys::Pseudonymizer;
use jisr::consent::store::redis::RedisConsentStore;
use jisr::consent::{ConsentStore, StoreError, StoredConsent, UseOutcome};
use jisr::proto::jisr::consent::v1::Consent;
use prost::Message;

// The Redis helpers live in `support::redis_server`; re-exported for the modules
// that still import them from here.
pub(crate) use crate::support::redis_server::{Cluster, Redis};

const TIMEOUT: Duration = Duration::from_millis(250);

fn consent(id: &str, subject: &str, recorded: i64, max_uses: u32) -> StoredConsent {
    let consent = Consent {
        id: id.into(),
        subject: subject.into(),
        consumer: "education".into(),
        methods: vec!["civil.v1.Births/GetBirthRecord".into()],
        purpose: "bac-candidature".into(),
        not_before_unix_micros: 1,
        not_after_unix_micros: i64::MAX,
        max_uses,
        recorded_by: "portal".into(),
        recorded_unix_micros: recorded,
        ..Consent::default()
    };
    StoredConsent {
        encoded: consent.encode_to_vec(),
        signature: vec![7; 64],
        consent,
        revoked_unix_micros: 0,
        uses: 0,
    }
}

/// The pseudonym key the test's replicas share, as `[audit] pseudonym_key`.
fn shared_key() -> Pseudonymizer {
    Pseudonymizer::new(&[9; 32])
}

async fn connect(url: &str) -> RedisConsentStore {
    RedisConsentStore::connect_with_timeout(url, TIMEOUT, shared_key())
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

/// Every operation of the trait, as the embedded store's unit tests check it.
async fn exercise(store: &dyn ConsentStore, tag: &str) {
    let id = |n: &str| format!("{tag}-{n}");
    let subject = format!("AB{tag}");
    let c1 = consent(&id("c1"), &subject, 300, 3);
    store.put(c1.clone()).await.unwrap();
    assert_eq!(store.get(&id("c1")).await.unwrap(), Some(c1.clone()));
    assert_eq!(store.get(&id("nope")).await.unwrap(), None);
    let again = store.put(c1.clone()).await.unwrap_err();
    assert!(matches!(again, StoreError::Exists(_)), "{again}");

    for n in 1..=3 {
        match store.use_once(&id("c1")).await.unwrap() {
            UseOutcome::Counted(c) => assert_eq!(c.uses, n),
            other => panic!("use {n}: {other:?}"),
        }
    }
    assert!(
        matches!(store.use_once(&id("c1")).await.unwrap(), UseOutcome::Exhausted(c) if c.uses == 3)
    );
    assert_eq!(
        store.use_once(&id("nope")).await.unwrap(),
        UseOutcome::Unknown
    );

    let c2 = consent(&id("c2"), &subject, 100, 0);
    store.put(c2).await.unwrap();
    for _ in 0..4 {
        assert!(matches!(
            store.use_once(&id("c2")).await.unwrap(),
            UseOutcome::Counted(_)
        ));
    }
    assert_eq!(
        store
            .revoke(&id("c2"), 500)
            .await
            .unwrap()
            .unwrap()
            .revoked_unix_micros,
        500
    );
    assert_eq!(
        store
            .revoke(&id("c2"), 900)
            .await
            .unwrap()
            .unwrap()
            .revoked_unix_micros,
        500
    );
    assert_eq!(
        store
            .revoke(&id("c2"), 400)
            .await
            .unwrap()
            .unwrap()
            .revoked_unix_micros,
        400
    );
    assert_eq!(store.revoke(&id("nope"), 1).await.unwrap(), None);
    match store.use_once(&id("c2")).await.unwrap() {
        UseOutcome::Revoked(c) => assert_eq!((c.uses, c.revoked_unix_micros), (4, 400)),
        other => panic!("{other:?}"),
    }

    store
        .put(consent(&id("c0"), &subject, -7, 0))
        .await
        .unwrap();
    store
        .put(consent(&id("x"), "someone-else", 200, 0))
        .await
        .unwrap();
    let listed: Vec<_> = store.list_by_subject(&subject).await.unwrap();
    let ids: Vec<_> = listed.iter().map(|c| c.consent.id.clone()).collect();
    assert_eq!(ids, [id("c0"), id("c2"), id("c1")]);
    assert_eq!(listed[1].revoked_unix_micros, 400);
    assert!(store.list_by_subject("nobody").await.unwrap().is_empty());
}

#[tokio::test]
async fn redis_store_does_every_operation() {
    let redis = Redis::start();
    let store = connect(&redis.url()).await;
    exercise(&store, "one").await;
}

#[tokio::test]
async fn a_revocation_through_one_replica_is_seen_by_the_other_at_once() {
    let redis = Redis::start();
    let (a, b) = (connect(&redis.url()).await, connect(&redis.url()).await);
    a.put(consent("shared", "AB123456", 1, 0)).await.unwrap();
    assert!(matches!(b.use_once("shared").await.unwrap(), UseOutcome::Counted(c) if c.uses == 1));
    a.revoke("shared", 1_000).await.unwrap().unwrap();
    assert_eq!(
        b.get("shared").await.unwrap().unwrap().revoked_unix_micros,
        1_000
    );
    assert!(matches!(b.use_once("shared").await.unwrap(), UseOutcome::Revoked(c) if c.uses == 1));
    assert!(matches!(
        a.use_once("shared").await.unwrap(),
        UseOutcome::Revoked(_)
    ));
}

/// `max_uses` holds across replicas: two stores (two gateways) on one Redis
/// using the same consent at once count exactly `max_uses` uses, each
/// number once, and refuse the rest as exhausted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_uses_through_two_replicas_count_exactly_max_uses() {
    let redis = Redis::start();
    // A generous bound: this test is about counting, not about time, and
    // 40 uses at once on a loaded machine may queue past TIMEOUT.
    let replica = || async {
        RedisConsentStore::connect_with_timeout(&redis.url(), Duration::from_secs(10), shared_key())
            .await
            .unwrap()
    };
    let stores = [Arc::new(replica().await), Arc::new(replica().await)];
    stores[0]
        .put(consent("limited", "AB123456", 1, 10))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = Arc::clone(&stores[i % 2]);
            tokio::spawn(async move { store.use_once("limited").await.unwrap() })
        })
        .collect();
    let mut counted = Vec::new();
    let mut exhausted = 0;
    for task in tasks {
        match task.await.unwrap() {
            UseOutcome::Counted(c) => counted.push(c.uses),
            UseOutcome::Exhausted(c) => {
                assert_eq!(c.uses, 10);
                exhausted += 1;
            }
            other => panic!("{other:?}"),
        }
    }
    counted.sort_unstable();
    assert_eq!(counted, (1..=10).collect::<Vec<_>>());
    assert_eq!(exhausted, 30);
    let stored = stores[1].get("limited").await.unwrap().unwrap();
    assert_eq!(stored.uses, 10);
}

/// A replica with another pseudonym key cannot read what the others
/// sealed: every read fails with the cause named, nothing is changed, and the
/// replicas with the shared key still read it.
#[tokio::test]
async fn a_replica_with_another_pseudonym_key_fails_closed_naming_the_cause() {
    let redis = Redis::start();
    let good = connect(&redis.url()).await;
    let stray = RedisConsentStore::connect_with_timeout(
        &redis.url(),
        TIMEOUT,
        Pseudonymizer::new(&[3; 32]),
    )
    .await
    .unwrap();
    good.put(consent("sealed", "AB123456", 1, 2)).await.unwrap();
    let undecryptable = |e: StoreError| {
        assert!(
            matches!(e, StoreError::Undecryptable(ref id) if id == "sealed"),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .contains("every replica must share `[audit] pseudonym_key`"),
            "{e}"
        );
    };
    undecryptable(stray.get("sealed").await.unwrap_err());
    // Called directly, the script counts the use before this node finds it
    // cannot open the consent; a gateway reads (`get`) first and so never
    // gets that far with a stray key.
    undecryptable(stray.use_once("sealed").await.unwrap_err());
    // Its index is under another pseudonym: it finds nothing, reads nothing.
    assert!(stray.list_by_subject("AB123456").await.unwrap().is_empty());
    let seen = good.get("sealed").await.unwrap().unwrap();
    assert_eq!((seen.uses, seen.revoked_unix_micros), (1, 0));
    assert_eq!(seen.consent.subject, "AB123456");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_fails_closed_in_time_and_the_same_store_recovers() {
    let mut redis = Redis::start();
    let store = connect(&redis.url()).await;
    store
        .put(consent("before", "AB123456", 1, 0))
        .await
        .unwrap();

    redis.kill();
    // Each operation is refused, failing closed, several times over (the
    // connection's retries do not turn a refusal into a success or a hang).
    // How soon it is refused is a figure for a benchmark, not a test: the
    // outer timeout here only tells a hang (40 times the store's own
    // timeout) from a refusal.
    for round in 0..3 {
        for op in 0..3 {
            let result = tokio::time::timeout(TIMEOUT * 40, async {
                match op {
                    0 => store.use_once("before").await.map(|_| ()),
                    1 => store.get("before").await.map(|_| ()),
                    _ => store.revoke("before", 5).await.map(|_| ()),
                }
            })
            .await
            .unwrap_or_else(|_| panic!("op {op} (round {round}) hung with Redis down"));
            match result {
                Err(StoreError::Unavailable(why)) => assert!(why.contains("fail closed"), "{why}"),
                other => panic!("op {op} with Redis down: {other:?}"),
            }
        }
    }

    redis.restart();
    let back = Instant::now();
    // Nothing was persisted, so the restarted Redis is empty: the store
    // works again once `put` succeeds.
    loop {
        match store.put(consent("after", "AB123456", 2, 0)).await {
            Ok(()) => break,
            Err(StoreError::Unavailable(why)) if back.elapsed() < Duration::from_secs(5) => {
                let _ = why;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the store did not recover within 5 s of Redis returning: {e}"),
        }
    }
    println!("recovered {:?} after Redis returned", back.elapsed());
    assert!(matches!(
        store.use_once("after").await.unwrap(),
        UseOutcome::Counted(_)
    ));
    exercise(&store, "back").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_use_is_counted_after_a_revocation_returned() {
    let redis = Redis::start();
    let a = Arc::new(connect(&redis.url()).await);
    let b = Arc::new(connect(&redis.url()).await);
    a.put(consent("raced", "AB123456", 1, 0)).await.unwrap();

    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..8)
        .map(|n| {
            let store = if n % 2 == 0 {
                Arc::clone(&a)
            } else {
                Arc::clone(&b)
            };
            let (stop, made) = (Arc::clone(&stop), Arc::clone(&made));
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let outcome = store.use_once("raced").await.unwrap();
                    seen.push((started, matches!(outcome, UseOutcome::Counted(_))));
                    made.fetch_add(1, Ordering::Relaxed);
                }
                seen
            })
        })
        .collect();
    // Counted uses made before the revocation, then as many after it (by
    // count, not by time: a loaded machine makes fewer in a given time).
    let until_made = |at_least: usize| {
        let made = Arc::clone(&made);
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while made.load(Ordering::Relaxed) < at_least {
                assert!(
                    Instant::now() < deadline,
                    "the workers made no {at_least} uses"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    until_made(40).await;
    b.revoke("raced", 42).await.unwrap().unwrap();
    let revoked = Instant::now();
    until_made(made.load(Ordering::Relaxed) + 40).await;
    stop.store(true, Ordering::Relaxed);

    let (mut before, mut after) = (0, 0);
    for worker in workers {
        for (started, counted) in worker.await.unwrap() {
            if started > revoked {
                assert!(
                    !counted,
                    "a use started {:?} after the revocation returned was counted",
                    started - revoked
                );
                after += 1;
            } else if counted {
                before += 1;
            }
        }
    }
    assert!(
        before > 0 && after > 0,
        "the race did not happen: {before} counted before, {after} calls after"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_store_does_every_operation() {
    let cluster = Cluster::start();
    let store = RedisConsentStore::connect_with_timeout(
        &cluster.url(),
        Duration::from_secs(1),
        shared_key(),
    )
    .await
    .unwrap_or_else(|e| panic!("connect to the cluster: {e}"));
    // Several tags put the consents in different slots, on different nodes.
    for tag in ["k1", "k2", "k3", "k4"] {
        exercise(&store, tag).await;
    }
    let holding = cluster
        .ports()
        .into_iter()
        .filter(|p| dbsize(*p) > 0)
        .count();
    assert!(
        holding >= 2,
        "the consents all landed on one node: the test does not cover slots"
    );
    // A second replica on the cluster sees the first one's revocation.
    let other = RedisConsentStore::connect_with_timeout(
        &cluster.url(),
        Duration::from_secs(1),
        shared_key(),
    )
    .await
    .unwrap();
    store.put(consent("c-shared", "AB1", 1, 0)).await.unwrap();
    store.revoke("c-shared", 9).await.unwrap();
    assert!(matches!(
        other.use_once("c-shared").await.unwrap(),
        UseOutcome::Revoked(_)
    ));
}

fn dbsize(port: u16) -> u64 {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "dbsize"])
        .output()
        .expect("run redis-cli dbsize");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}
