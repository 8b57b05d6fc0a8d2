use std::sync::Arc;

use prost::Message;

use super::EmbeddedConsentStore;
use crate::consent::store::{ConsentStore, StoreError, StoredConsent, UseOutcome};
use crate::proto::jisr::consent::v1::Consent;

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

fn store() -> (tempfile::TempDir, EmbeddedConsentStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedConsentStore::open(&dir.path().join("consents.redb")).unwrap();
    (dir, store)
}

#[tokio::test]
async fn put_then_get_and_duplicate_refused() {
    let (_dir, store) = store();
    let c = consent("c1", "AB123456", 10, 0);
    store.put(c.clone()).await.unwrap();
    assert_eq!(store.get("c1").await.unwrap(), Some(c.clone()));
    assert_eq!(store.get("nope").await.unwrap(), None);
    let again = store.put(c).await.unwrap_err();
    assert!(
        matches!(again, StoreError::Exists(ref id) if id == "c1"),
        "{again}"
    );
}

#[tokio::test]
async fn put_refuses_a_decoded_form_unlike_its_encoding() {
    let (_dir, store) = store();
    let mut c = consent("c1", "AB123456", 10, 0);
    c.consent.purpose = "something-else".into();
    let err = store.put(c).await.unwrap_err();
    assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
    assert_eq!(store.get("c1").await.unwrap(), None);
}

#[tokio::test]
async fn revoke_is_idempotent_and_keeps_the_earlier_time() {
    let (_dir, store) = store();
    store.put(consent("c1", "AB123456", 10, 0)).await.unwrap();
    let first = store.revoke("c1", 500).await.unwrap().unwrap();
    assert_eq!(first.revoked_unix_micros, 500);
    let later = store.revoke("c1", 900).await.unwrap().unwrap();
    assert_eq!(later.revoked_unix_micros, 500);
    let earlier = store.revoke("c1", 300).await.unwrap().unwrap();
    assert_eq!(earlier.revoked_unix_micros, 300);
    assert_eq!(
        store.get("c1").await.unwrap().unwrap().revoked_unix_micros,
        300
    );
    assert_eq!(store.revoke("nope", 1).await.unwrap(), None);
}

#[tokio::test]
async fn use_once_counts_until_max_uses_then_exhausted() {
    let (_dir, store) = store();
    store.put(consent("c1", "AB123456", 10, 3)).await.unwrap();
    for n in 1..=3 {
        match store.use_once("c1").await.unwrap() {
            UseOutcome::Counted(c) => assert_eq!(c.uses, n),
            other => panic!("use {n}: {other:?}"),
        }
    }
    match store.use_once("c1").await.unwrap() {
        UseOutcome::Exhausted(c) => assert_eq!(c.uses, 3),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.get("c1").await.unwrap().unwrap().uses, 3);
}

#[tokio::test]
async fn use_once_unlimited_revoked_and_unknown() {
    let (_dir, store) = store();
    store.put(consent("c1", "AB123456", 10, 0)).await.unwrap();
    for _ in 0..5 {
        assert!(matches!(
            store.use_once("c1").await.unwrap(),
            UseOutcome::Counted(_)
        ));
    }
    store.revoke("c1", 42).await.unwrap();
    match store.use_once("c1").await.unwrap() {
        UseOutcome::Revoked(c) => assert_eq!((c.uses, c.revoked_unix_micros), (5, 42)),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.use_once("nope").await.unwrap(), UseOutcome::Unknown);
}

#[tokio::test]
async fn list_by_subject_is_oldest_first_and_only_theirs() {
    let (_dir, store) = store();
    store
        .put(consent("late", "AB123456", 300, 0))
        .await
        .unwrap();
    store
        .put(consent("early", "AB123456", -5, 0))
        .await
        .unwrap();
    store
        .put(consent("middle", "AB123456", 100, 0))
        .await
        .unwrap();
    store
        .put(consent("other", "CD999999", 200, 0))
        .await
        .unwrap();
    let ids: Vec<_> = store
        .list_by_subject("AB123456")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.consent.id)
        .collect();
    assert_eq!(ids, ["early", "middle", "late"]);
    assert!(store.list_by_subject("ZZ").await.unwrap().is_empty());
}

#[tokio::test]
async fn survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("consents.redb");
    {
        let store = EmbeddedConsentStore::open(&path).unwrap();
        store.put(consent("c1", "AB123456", 10, 5)).await.unwrap();
        store.put(consent("c2", "AB123456", 20, 0)).await.unwrap();
        store.use_once("c1").await.unwrap();
        store.use_once("c1").await.unwrap();
        store.revoke("c2", 77).await.unwrap();
    }
    let store = EmbeddedConsentStore::open(&path).unwrap();
    let c1 = store.get("c1").await.unwrap().unwrap();
    assert_eq!((c1.uses, c1.revoked_unix_micros), (2, 0));
    let c2 = store.get("c2").await.unwrap().unwrap();
    assert_eq!(c2.revoked_unix_micros, 77);
    assert_eq!(store.list_by_subject("AB123456").await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_use_once_counts_exactly_max_uses() {
    let (_dir, store) = store();
    let store = Arc::new(store);
    store.put(consent("c1", "AB123456", 10, 10)).await.unwrap();
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.use_once("c1").await.unwrap() })
        })
        .collect();
    let mut counted = Vec::new();
    let mut exhausted = 0;
    for task in tasks {
        match task.await.unwrap() {
            UseOutcome::Counted(c) => counted.push(c.uses),
            UseOutcome::Exhausted(_) => exhausted += 1,
            other => panic!("{other:?}"),
        }
    }
    counted.sort_unstable();
    assert_eq!(counted, (1..=10).collect::<Vec<_>>());
    assert_eq!(exhausted, 30);
}

/// The in-memory copy under concurrent uses, revocations and first reads
/// (a reopened store starts with an empty copy): once `revoke` returned,
/// every read sees it, and at the end the copy equals the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_copy_never_shows_a_revoked_consent_as_active() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("consents.redb");
    let ids: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    {
        let store = EmbeddedConsentStore::open(&path).unwrap();
        for (i, id) in ids.iter().enumerate() {
            store
                .put(consent(id, "AB123456", i as i64, (i % 2) as u32 * 1000))
                .await
                .unwrap();
        }
    }
    let store = Arc::new(EmbeddedConsentStore::open(&path).unwrap());
    let mut tasks = Vec::new();
    for id in ids.clone() {
        for _ in 0..3 {
            let (store, id) = (Arc::clone(&store), id.clone());
            tasks.push(tokio::spawn(async move {
                for _ in 0..5 {
                    store.get(&id).await.unwrap().unwrap();
                    store.use_once(&id).await.unwrap();
                }
            }));
        }
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store.get(&id).await.unwrap();
            store.revoke(&id, 99).await.unwrap().unwrap();
            let after = store.get(&id).await.unwrap().unwrap();
            assert_eq!(
                after.revoked_unix_micros, 99,
                "{id} read as active after its revocation returned"
            );
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for id in &ids {
        let cached = store
            .inner
            .cached(id)
            .expect("read or written, so in the copy");
        let on_disk = store.inner.get(id).unwrap().unwrap();
        assert_eq!(cached, on_disk, "{id}");
        assert_eq!(on_disk.revoked_unix_micros, 99);
    }
}

#[tokio::test]
async fn a_damaged_file_is_an_error_naming_it_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("consents.redb");
    {
        let store = EmbeddedConsentStore::open(&path).unwrap();
        store.put(consent("c1", "AB123456", 10, 5)).await.unwrap();
    }
    let pristine = std::fs::read(&path).unwrap();
    // A byte of the stored consent itself: a page redb uses.
    let at = pristine
        .windows(15)
        .position(|w| w == b"bac-candidature")
        .expect("the consent is in the file");
    let mut damaged = pristine;
    damaged[at + 3] ^= 0x01;
    std::fs::write(&path, &damaged).unwrap();
    let err = EmbeddedConsentStore::open(&path).unwrap_err().to_string();
    assert!(
        err.contains(&path.display().to_string()) && err.contains("restore it from a backup"),
        "{err}"
    );
}

impl EmbeddedConsentStore {
    /// Stalls every change (a write transaction) until the returned guard
    /// is dropped, as a disk that is slow to answer would: the tests'
    /// store that yields slowly, with no timing in it.
    pub(crate) fn stall_changes(&self) -> Stall {
        let inner = Arc::clone(&self.inner);
        let (held, release) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
        let thread = std::thread::spawn(move || {
            let _changing = inner.changing();
            let _ = held.0.send(());
            // Until the guard is dropped (which sends or hangs up).
            let _ = release.1.recv();
        });
        // The lock is held once the thread says so (or it died, failing the
        // test that relies on it at its first change).
        let _ = held.1.recv();
        Stall {
            release: Some(release.0),
            thread: Some(thread),
        }
    }
}

/// Holds the embedded store's changes until dropped.
pub(crate) struct Stall {
    release: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Stall {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
