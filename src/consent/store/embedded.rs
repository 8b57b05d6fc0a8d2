//! The embedded consent store: consents in a redb database on the gateway's
//! disk, for a single node (the default, and what `jisr demo` runs).
//!
//! Two tables. `consents` maps a consent id to a small protobuf record (the
//! signed encoding, the signature, and the mutable state: revocation time and
//! uses). `consents_by_subject` is an index whose keys are
//! sha256(subject) ‖ recorded time ‖ id, so listing a citizen's consents is a
//! range scan in recording order and the citizen id is never a key in clear.
//!
//! `revoke` and `use_once` each run in one write transaction, which redb
//! serialises: a use counted after a revocation committed cannot happen.
//! Every commit is durable (fsync) before the call returns, so a revocation
//! or a counted use survives a crash. redb is blocking I/O, so each operation
//! that reaches the database runs on tokio's blocking pool.
//!
//! Reads are answered from an in-memory copy of the consents read or written
//! since start (up to [`CACHE_CAPACITY`]), which keeps the disk and the
//! blocking pool off the exchange path. The copy can never show a revoked
//! consent as active: redb's lock file gives this process the database to
//! itself, so every change goes through this store, and each change updates
//! the copy before it returns, under a lock that also covers filling the copy
//! from the database on a miss (a miss cannot put back a value that a
//! concurrent revocation has just replaced).

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{
    assemble, check_new, subject_digest, ConsentStore, StoreError, StoreFuture, StoredConsent,
    UseOutcome,
};

/// Consent id → encoded [`Record`].
const CONSENTS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("consents");
/// sha256(subject) ‖ recorded time (order-preserving, 8 bytes) ‖ id → ().
const BY_SUBJECT: TableDefinition<'static, &[u8], ()> = TableDefinition::new("consents_by_subject");

/// A consent as the `consents` table holds it.
#[derive(Clone, PartialEq, Message)]
struct Record {
    #[prost(bytes = "vec", tag = "1")]
    encoded: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    signature: Vec<u8>,
    #[prost(int64, tag = "3")]
    revoked_unix_micros: i64,
    #[prost(uint32, tag = "4")]
    uses: u32,
}

/// Consents in an embedded redb database; survives restarts.
#[derive(Clone)]
pub struct EmbeddedConsentStore {
    inner: Arc<Inner>,
}

/// How many consents the in-memory copy holds before it starts over.
pub const CACHE_CAPACITY: usize = 100_000;

/// How long an operation on the embedded store may take before the call is
/// refused. `[consent] timeout_ms` (250 ms by default) is a network round
/// trip's bound; here an operation is a redb transaction on the blocking
/// pool, which a loaded CPU can queue longer than that although nothing is
/// wrong (two tests saw it at a load average of 15). This bound is for a
/// disk that has stopped answering, which still fails closed.
pub const LOCAL_DISK_BOUND: std::time::Duration = std::time::Duration::from_secs(10);

struct Inner {
    db: Database,
    path: PathBuf,
    /// Consents as last committed, by id.
    cache: RwLock<HashMap<String, StoredConsent>>,
    /// Held from a change's write transaction until the copy shows it, and
    /// while a miss fills the copy from the database.
    changes: Mutex<()>,
}

impl std::fmt::Debug for EmbeddedConsentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedConsentStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl EmbeddedConsentStore {
    /// Opens the store at `path`, creating the file and its tables if absent.
    /// Every page is checked on open: a damaged file is an error naming it
    /// and the fix, never a panic (see [`crate::embedded`]).
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        crate::embedded::open_keeping_evidence(path, || Self::open_checked(path)).map_err(|not| {
            let kept = not.kept_note();
            match not.failure {
                Ok(StoreError::Unavailable(e)) => StoreError::Unavailable(format!("{e}.{kept}")),
                Ok(other) => other,
                Err(panic) => StoreError::Unavailable(format!(
                    "the consent store {} is damaged (the storage library failed reading it: {panic}); the node did not start. Restore it from a backup: consents are kept nowhere else (the audit log's consent entries say what changed since the backup).{kept}",
                    path.display()
                )),
            }
        })
    }

    fn open_checked(path: &Path) -> Result<Self, StoreError> {
        let db = Database::builder()
            .set_check_integrity_on_open(true)
            .create(path)
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot open the consent store {}: {e}; if another gateway uses it, stop that one; if the file is damaged (corrupted), restore it from a backup: consents are kept nowhere else",
                    path.display()
                ))
            })?;
        let inner = Inner {
            db,
            path: path.to_owned(),
            cache: RwLock::default(),
            changes: Mutex::default(),
        };
        let txn = inner.db.begin_write().map_err(|e| inner.failed(e))?;
        txn.open_table(CONSENTS).map_err(|e| inner.failed(e))?;
        txn.open_table(BY_SUBJECT).map_err(|e| inner.failed(e))?;
        txn.commit().map_err(|e| inner.failed(e))?;
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Runs `f` on the blocking pool: redb does synchronous disk I/O.
    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "a consent store task failed ({e}); the call is refused (fail closed)"
                ))
            })?
    }
}

impl Inner {
    fn changing(&self) -> MutexGuard<'_, ()> {
        // A panic while holding it cannot leave the copy ahead of the
        // database (the copy is written after the commit): carry on.
        self.changes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cached(&self, id: &str) -> Option<StoredConsent> {
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        cache.get(id).cloned()
    }

    /// Records a committed state in the copy; call with `changing()` held.
    fn remember(&self, stored: &StoredConsent) {
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_CAPACITY && !cache.contains_key(&stored.consent.id) {
            cache.clear();
        }
        cache.insert(stored.consent.id.clone(), stored.clone());
    }

    /// A read that missed the copy: from the database, then into the copy.
    fn load(&self, id: &str) -> Result<Option<StoredConsent>, StoreError> {
        let _changing = self.changing();
        if let Some(stored) = self.cached(id) {
            return Ok(Some(stored));
        }
        let found = self.get(id)?;
        if let Some(stored) = &found {
            self.remember(stored);
        }
        Ok(found)
    }

    fn failed(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Unavailable(format!(
            "the consent store {} failed: {}; the call is refused (fail closed); check the disk",
            self.path.display(),
            e.into()
        ))
    }

    fn put(&self, consent: StoredConsent) -> Result<(), StoreError> {
        check_new(&consent)?;
        let _changing = self.changing();
        let c = &consent.consent;
        let record = Record {
            encoded: consent.encoded.clone(),
            signature: consent.signature.clone(),
            revoked_unix_micros: 0,
            uses: 0,
        };
        let txn = self.db.begin_write().map_err(|e| self.failed(e))?;
        {
            let mut consents = txn.open_table(CONSENTS).map_err(|e| self.failed(e))?;
            if consents
                .get(c.id.as_str())
                .map_err(|e| self.failed(e))?
                .is_some()
            {
                return Err(StoreError::Exists(c.id.clone()));
            }
            consents
                .insert(c.id.as_str(), record.encode_to_vec().as_slice())
                .map_err(|e| self.failed(e))?;
            let mut by_subject = txn.open_table(BY_SUBJECT).map_err(|e| self.failed(e))?;
            let key = subject_key(&c.subject, c.recorded_unix_micros, &c.id);
            by_subject
                .insert(key.as_slice(), ())
                .map_err(|e| self.failed(e))?;
        }
        txn.commit().map_err(|e| self.failed(e))?;
        self.remember(&StoredConsent {
            revoked_unix_micros: 0,
            uses: 0,
            ..consent
        });
        Ok(())
    }

    fn get(&self, id: &str) -> Result<Option<StoredConsent>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.failed(e))?;
        let consents = txn.open_table(CONSENTS).map_err(|e| self.failed(e))?;
        let found = consents.get(id).map_err(|e| self.failed(e))?;
        found.map(|v| decode(id, v.value())).transpose()
    }

    fn revoke(&self, id: &str, at: i64) -> Result<Option<StoredConsent>, StoreError> {
        // 0 means "not revoked": a revocation is at least 1 µs after the epoch.
        let at = at.max(1);
        let _changing = self.changing();
        let txn = self.db.begin_write().map_err(|e| self.failed(e))?;
        let stored = {
            let mut consents = txn.open_table(CONSENTS).map_err(|e| self.failed(e))?;
            let found = consents.get(id).map_err(|e| self.failed(e))?;
            let Some(mut stored) = found.map(|v| decode(id, v.value())).transpose()? else {
                return Ok(None);
            };
            let current = stored.revoked_unix_micros;
            if current != 0 && current <= at {
                // Already revoked no later than `at`: nothing to write.
                return Ok(Some(stored));
            }
            stored.revoked_unix_micros = at;
            consents
                .insert(id, record_of(&stored).encode_to_vec().as_slice())
                .map_err(|e| self.failed(e))?;
            stored
        };
        txn.commit().map_err(|e| self.failed(e))?;
        self.remember(&stored);
        Ok(Some(stored))
    }

    fn use_once(&self, id: &str) -> Result<UseOutcome, StoreError> {
        let _changing = self.changing();
        let txn = self.db.begin_write().map_err(|e| self.failed(e))?;
        let stored = {
            let mut consents = txn.open_table(CONSENTS).map_err(|e| self.failed(e))?;
            let found = consents.get(id).map_err(|e| self.failed(e))?;
            let Some(mut stored) = found.map(|v| decode(id, v.value())).transpose()? else {
                return Ok(UseOutcome::Unknown);
            };
            if stored.revoked_unix_micros != 0 {
                return Ok(UseOutcome::Revoked(stored));
            }
            let max = stored.consent.max_uses;
            if max != 0 && stored.uses >= max {
                return Ok(UseOutcome::Exhausted(stored));
            }
            stored.uses = stored.uses.saturating_add(1);
            consents
                .insert(id, record_of(&stored).encode_to_vec().as_slice())
                .map_err(|e| self.failed(e))?;
            stored
        };
        txn.commit().map_err(|e| self.failed(e))?;
        self.remember(&stored);
        Ok(UseOutcome::Counted(stored))
    }

    fn list_by_subject(&self, subject: &str) -> Result<Vec<StoredConsent>, StoreError> {
        let prefix = subject_digest(subject);
        let txn = self.db.begin_read().map_err(|e| self.failed(e))?;
        let by_subject = txn.open_table(BY_SUBJECT).map_err(|e| self.failed(e))?;
        let consents = txn.open_table(CONSENTS).map_err(|e| self.failed(e))?;
        let mut out = Vec::new();
        for row in by_subject
            .range(prefix.as_slice()..)
            .map_err(|e| self.failed(e))?
        {
            let (key, _) = row.map_err(|e| self.failed(e))?;
            let key = key.value();
            if !key.starts_with(&prefix) {
                break;
            }
            let id =
                std::str::from_utf8(&key[SUBJECT_PREFIX..]).map_err(|_| StoreError::Damaged {
                    id: String::from_utf8_lossy(&key[SUBJECT_PREFIX..]).into_owned(),
                    what: "the subject index holds an id that is not UTF-8".into(),
                })?;
            let Some(found) = consents.get(id).map_err(|e| self.failed(e))? else {
                continue;
            };
            let stored = decode(id, found.value())?;
            // The digest is the subject's; this only guards against a
            // foreign row, never expected.
            if stored.consent.subject == subject {
                out.push(stored);
            }
        }
        Ok(out)
    }
}

impl ConsentStore for EmbeddedConsentStore {
    fn put(&self, consent: StoredConsent) -> StoreFuture<'_, ()> {
        Box::pin(self.blocking(move |s| s.put(consent)))
    }

    fn get<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<StoredConsent>> {
        if let Some(stored) = self.inner.cached(id) {
            return Box::pin(std::future::ready(Ok(Some(stored))));
        }
        let id = id.to_owned();
        Box::pin(self.blocking(move |s| s.load(&id)))
    }

    fn revoke<'a>(&'a self, id: &'a str, at: i64) -> StoreFuture<'a, Option<StoredConsent>> {
        let id = id.to_owned();
        Box::pin(self.blocking(move |s| s.revoke(&id, at)))
    }

    fn use_once<'a>(&'a self, id: &'a str) -> StoreFuture<'a, UseOutcome> {
        let id = id.to_owned();
        Box::pin(self.blocking(move |s| s.use_once(&id)))
    }

    fn list_by_subject<'a>(&'a self, subject: &'a str) -> StoreFuture<'a, Vec<StoredConsent>> {
        let subject = subject.to_owned();
        Box::pin(self.blocking(move |s| s.list_by_subject(&subject)))
    }

    fn answer_bound(&self, configured: std::time::Duration) -> std::time::Duration {
        configured.max(LOCAL_DISK_BOUND)
    }
}

/// Length of the digest and time in a subject index key, before the id.
const SUBJECT_PREFIX: usize = 32 + 8;

fn subject_key(subject: &str, recorded_unix_micros: i64, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(SUBJECT_PREFIX + id.len());
    key.extend_from_slice(&subject_digest(subject));
    // Flipping the sign bit makes big-endian byte order the numeric order.
    key.extend_from_slice(&((recorded_unix_micros as u64) ^ (1 << 63)).to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

fn record_of(stored: &StoredConsent) -> Record {
    Record {
        encoded: stored.encoded.clone(),
        signature: stored.signature.clone(),
        revoked_unix_micros: stored.revoked_unix_micros,
        uses: stored.uses,
    }
}

fn decode(id: &str, bytes: &[u8]) -> Result<StoredConsent, StoreError> {
    let record = Record::decode(bytes).map_err(|e| StoreError::Damaged {
        id: id.to_owned(),
        what: format!("its record does not decode: {e}"),
    })?;
    assemble(
        id,
        record.encoded,
        record.signature,
        record.revoked_unix_micros,
        record.uses,
    )
}
