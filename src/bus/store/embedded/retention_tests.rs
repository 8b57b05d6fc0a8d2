//! Retention in the embedded store, on a clock the tests set: the file and
//! its tables stay bounded by what the retention holds, not by what was
//! published; what a subscription owes and dead letters stay.

use super::*;
use std::time::Duration;

const SECOND: i64 = 1_000_000;

fn limits() -> Limits {
    Limits {
        ack_deadline: Duration::from_secs(1),
        max_attempts: 2,
        max_in_flight: 1_000,
        idempotency_window: Duration::from_secs(1),
    }
}

fn retention() -> Retention {
    Retention {
        events: Duration::from_secs(1),
        dead_letters: Duration::from_secs(10),
    }
}

fn event(key: &str, at: i64, size: usize) -> StoredEvent {
    StoredEvent {
        type_url: "type.googleapis.com/x.Y".into(),
        payload: vec![b'x'; size],
        subject: "C1".into(),
        publisher: "civil-status".into(),
        published_unix_micros: at,
        idempotency_key: key.into(),
    }
}

fn subs() -> Vec<String> {
    vec!["tax".into(), "health".into()]
}

async fn ack_all(store: &EmbeddedBusStore, sub: &str, now: i64) -> usize {
    let got = store.fetch("t", sub, 1_000, now).await.unwrap();
    let ids: Vec<String> = got.iter().map(|p| p.id.clone()).collect();
    store.ack("t", sub, &ids).await.unwrap();
    ids.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_run_with_short_retention_keeps_the_file_and_tables_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bus.redb");
    let store = EmbeddedBusStore::open(&path, limits()).unwrap();
    let (rounds, per_round, size, step): (i64, usize, usize, i64) = (200, 50, 2_048, SECOND / 10);
    // Within the retention: the rounds of the last second, and this one.
    let live = (micros(retention().events) / step + 1) as u64 * per_round as u64;
    let subs = subs();
    let mut trimmed = 0;
    for round in 0..rounds {
        let now = round * step;
        let published = futures_util::future::join_all(
            (0..per_round)
                .map(|i| store.publish("t", &subs, event(&format!("k{round}-{i}"), now, size))),
        )
        .await;
        assert!(published
            .iter()
            .all(|p| p.as_ref().is_ok_and(|p| !p.duplicate)));
        for sub in &subs {
            assert_eq!(ack_all(&store, sub, now).await, per_round);
        }
        let state = store.trim("t", &subs, retention(), now).await.unwrap();
        assert!(
            state.length <= live,
            "{} events held at round {round}",
            state.length
        );
        trimmed += state.trimmed;
    }
    let [events, pending, idem, dead] = store.inner.rows();
    assert!(
        events <= live && idem <= live,
        "{events} events, {idem} keys held"
    );
    assert_eq!((pending, dead), (0, 0));
    let total = rounds as u64 * per_round as u64;
    assert_eq!(trimmed + events, total);
    // What the retention holds, with room for redb's pages, free lists and
    // growth steps (it plateaus near 4.5 MB from the 25th round on);
    // everything published (20 MB of payload) would not fit.
    let bound = 1_048_576 + 4 * live * size as u64;
    let file = std::fs::metadata(&path).unwrap().len();
    assert!(file < bound, "bus.redb is {file} bytes, more than {bound}");
    assert!(bound < total * size as u64 / 2);
}

#[tokio::test]
async fn what_is_owed_in_flight_or_dead_stays_and_goes_only_in_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedBusStore::open(&dir.path().join("bus.redb"), limits()).unwrap();
    for key in ["a", "b", "c"] {
        store.publish("t", &subs(), event(key, 0, 8)).await.unwrap();
    }
    assert_eq!(ack_all(&store, "tax", 0).await, 3);
    let health = store.fetch("t", "health", 2, 0).await.unwrap();
    store
        .ack("t", "health", &[health[0].id.clone()])
        .await
        .unwrap();
    // Within the retention nothing goes, and a key still counts.
    let state = store
        .trim("t", &subs(), retention(), SECOND / 2)
        .await
        .unwrap();
    assert_eq!((state.trimmed, state.length), (0, 3));
    assert!(
        store
            .publish("t", &subs(), event("a", SECOND / 2, 8))
            .await
            .unwrap()
            .duplicate
    );

    // Past it, only `a` (acknowledged by both) goes: health still has `b`
    // in flight and was never sent `c`.
    let state = store
        .trim("t", &subs(), retention(), 5 * SECOND)
        .await
        .unwrap();
    assert_eq!((state.trimmed, state.length), (1, 2));
    let owed: Vec<_> = state
        .subscriptions
        .iter()
        .map(|s| (s.subscriber.as_str(), s.oldest_owed_unix_micros))
        .collect();
    assert_eq!(owed, [("tax", None), ("health", Some(0))]);
    // A subscriber dropped from the configuration keeps its backlog.
    let state = store
        .trim("t", &["tax".into()], retention(), 5 * SECOND)
        .await
        .unwrap();
    assert_eq!(state.length, 2);

    // `b` runs out of attempts: a dead letter, which keeps its event.
    // (`c` is delivered and runs out too.)
    for at in [2, 4, 6] {
        store.fetch("t", "health", 10, at * SECOND).await.unwrap();
    }
    assert_eq!(
        store.dead_letters("t", "health", 10).await.unwrap().len(),
        2
    );
    let state = store
        .trim("t", &subs(), retention(), 10 * SECOND)
        .await
        .unwrap();
    assert_eq!((state.trimmed, state.trimmed_dead, state.length), (0, 0, 2));
    assert_eq!(state.subscriptions[1].dead_letters, 2);
    // A replay within the dead letters' retention still finds the event.
    assert_eq!(
        store.replay("t", "health", &["2".into()], 0).await.unwrap(),
        1
    );
    assert_eq!(ack_all(&store, "health", 10 * SECOND).await, 1);

    // A subscriber added later gets what is published from then on, and
    // retention waits for it.
    let later = vec!["tax".into(), "health".into(), "social".into()];
    store
        .publish("t", &later, event("d", 10 * SECOND, 8))
        .await
        .unwrap();
    ack_all(&store, "tax", 10 * SECOND).await;
    ack_all(&store, "health", 10 * SECOND).await;
    let state = store
        .trim("t", &later, retention(), 12 * SECOND)
        .await
        .unwrap();
    assert_eq!(
        (state.trimmed, state.length),
        (1, 2),
        "`b` goes, `c` (dead) and `d` stay"
    );
    assert_eq!(ack_all(&store, "social", 12 * SECOND).await, 1);

    // Past the dead letters' retention, `c` goes, then its event.
    let state = store
        .trim("t", &later, retention(), 17 * SECOND)
        .await
        .unwrap();
    assert_eq!((state.trimmed_dead, state.trimmed, state.length), (1, 2, 0));
    assert_eq!(store.inner.rows(), [0, 0, 0, 0]);
}
