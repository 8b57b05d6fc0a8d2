use super::*;
use std::time::Duration;

fn limits() -> Limits {
    Limits {
        ack_deadline: Duration::from_millis(1000),
        max_attempts: 2,
        max_in_flight: 3,
        idempotency_window: Duration::from_secs(60),
    }
}

fn event(key: &str, at: i64) -> StoredEvent {
    StoredEvent {
        type_url: "type.googleapis.com/x.Y".into(),
        payload: key.as_bytes().to_vec(),
        subject: "C1".into(),
        publisher: "civil-status".into(),
        published_unix_micros: at,
        idempotency_key: key.into(),
    }
}

fn subs() -> Vec<String> {
    vec!["tax".into(), "health".into()]
}

#[tokio::test]
async fn publish_is_idempotent_within_the_window_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bus.redb");
    {
        let store = EmbeddedBusStore::open(&path, limits()).unwrap();
        let first = store
            .publish("t", &subs(), event("k1", 1_000))
            .await
            .unwrap();
        assert!(!first.duplicate);
        let again = store
            .publish("t", &subs(), event("k1", 2_000))
            .await
            .unwrap();
        assert_eq!(
            again,
            Published {
                event_id: first.event_id.clone(),
                duplicate: true
            }
        );
        // Past the window, the same key is a new event.
        let later = store
            .publish("t", &subs(), event("k1", 61_000_001))
            .await
            .unwrap();
        assert!(!later.duplicate);
        assert_ne!(later.event_id, first.event_id);
    }
    let store = EmbeddedBusStore::open(&path, limits()).unwrap();
    let got = store.fetch("t", "tax", 10, 100).await.unwrap();
    assert_eq!(got.len(), 2, "both events survive reopening");
    assert_eq!(got[0].event.payload, b"k1");
}

#[tokio::test]
async fn in_flight_bound_redelivery_and_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedBusStore::open(&dir.path().join("bus.redb"), limits()).unwrap();
    for i in 0..5 {
        store
            .publish("t", &subs(), event(&format!("k{i}"), 0))
            .await
            .unwrap();
    }
    let first = store.fetch("t", "tax", 10, 0).await.unwrap();
    assert_eq!(first.len(), 3, "no more than max_in_flight unacknowledged");
    assert!(store.fetch("t", "tax", 10, 10).await.unwrap().is_empty());
    // The other subscription is not held back by this one.
    assert_eq!(store.fetch("t", "health", 10, 10).await.unwrap().len(), 3);
    assert_eq!(
        store.ack("t", "tax", &[first[0].id.clone()]).await.unwrap(),
        1
    );
    let next = store.fetch("t", "tax", 10, 20).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].event_id, "4");
    // Past the deadline, unacknowledged ones come again, oldest first.
    let again = store.fetch("t", "tax", 10, 2_000_000).await.unwrap();
    let ids: Vec<_> = again
        .iter()
        .map(|p| (p.event_id.as_str(), p.attempt))
        .collect();
    assert_eq!(ids, [("2", 2), ("3", 2), ("4", 2)]);
    // After max_attempts (2), they become dead letters.
    let after = store.fetch("t", "tax", 10, 4_000_000).await.unwrap();
    assert_eq!(
        after
            .iter()
            .map(|p| p.event_id.as_str())
            .collect::<Vec<_>>(),
        ["5"]
    );
    let dead = store.dead_letters("t", "tax", 10).await.unwrap();
    assert_eq!(
        dead.iter().map(|d| d.event_id.as_str()).collect::<Vec<_>>(),
        ["2", "3", "4"]
    );
    assert_eq!(dead[0].reason, "not acknowledged after 2 attempts");
    assert_eq!(store.replay("t", "tax", &["3".into()], 0).await.unwrap(), 1);
    assert_eq!(store.dead_letters("t", "tax", 10).await.unwrap().len(), 2);
    let replayed = store.fetch("t", "tax", 10, 4_000_001).await.unwrap();
    assert_eq!(replayed[0].event_id, "3");
    assert_eq!(replayed[0].attempt, 1);
}

#[tokio::test]
async fn a_released_delivery_is_due_at_once_and_bad_ids_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedBusStore::open(&dir.path().join("bus.redb"), limits()).unwrap();
    store.publish("t", &subs(), event("k", 0)).await.unwrap();
    let got = store.fetch("t", "tax", 1, 0).await.unwrap();
    store
        .release("t", "tax", &[got[0].id.clone()], true)
        .await
        .unwrap();
    let again = store.fetch("t", "tax", 1, 1).await.unwrap();
    assert_eq!(again[0].attempt, 2);
    // Given back uncounted (it never left the gateway): the attempt is not used.
    store
        .release("t", "tax", &[again[0].id.clone()], false)
        .await
        .unwrap();
    assert_eq!(store.fetch("t", "tax", 1, 2).await.unwrap()[0].attempt, 2);
    let err = store.ack("t", "tax", &["nope".into()]).await.unwrap_err();
    assert!(err.to_string().contains("not a delivery id"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_commit_together_and_keys_stay_unique() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedBusStore::open(&dir.path().join("bus.redb"), limits()).unwrap();
    let subs = subs();
    let results = futures_util::future::join_all(
        (0..60).map(|i| store.publish("t", &subs, event(&format!("k{}", i % 10), 0))),
    )
    .await;
    let results: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    let fresh: std::collections::BTreeSet<_> = results
        .iter()
        .filter(|p| !p.duplicate)
        .map(|p| p.event_id.clone())
        .collect();
    assert_eq!(fresh.len(), 10, "one event per key");
    assert!(results.iter().all(|p| fresh.contains(&p.event_id)));
    let seen = store.fetch("t", "tax", 100, 0).await.unwrap();
    assert_eq!(seen.len(), 3, "bounded by max_in_flight");
    drop(store);
    // Dropping the store closes the file: it opens again at once.
    EmbeddedBusStore::open(&dir.path().join("bus.redb"), limits()).unwrap();
}
