//! The archive target: a copy of the sealed segments, the signed
//! checkpoints and the verifier key in another directory (`[audit]
//! archive_dir`, another volume or network storage), so that losing a
//! replica's disk loses at most its unsealed tail segment.
//!
//! [`Archived`] composes it with the segment files as the storage design
//! says: the segment files first, then a nudge to the archive. The copying
//! itself happens on a thread of its own ([`copy::Archiver`]), so neither
//! the append path nor the writer between batches waits for the archive's
//! volume: a nudge is a non-blocking send on a channel of one slot.
//!
//! What an archive failure means: nothing for the log. Entries are
//! acknowledged once durable on the node's own disk, as without an
//! archive; a failed copy is logged, counted
//! (`jisr_audit_archive_failures_total`) and retried at the next seal or
//! checkpoint, after [`RETRY`] when nothing else happens, and at start-up.
//! What is not copied yet is the backlog: the archiver works out what is
//! missing from both directories rather than queueing, so a backlog costs
//! no memory and survives restarts. `jisr_audit_archive_lag_segments` says
//! how many full segments the archive lacks.

use super::storage::{Storage, SyncJob};
use super::{Shared, SignedCheckpoint};
use crate::audit::AuditError;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

mod copy;

/// How long the archiver waits before retrying a failed copy when no seal
/// or checkpoint nudges it sooner.
const RETRY: Duration = Duration::from_secs(5);

/// The name of the file marking a directory as an archive (not a live log
/// directory): `jisr audit verify` expects no tail segment there.
pub const ARCHIVE_FILE: &str = "ARCHIVE";

/// How the archive is doing, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveStats {
    /// Full segments of the log not (yet) in the archive.
    pub lag_segments: u64,
    /// Archive passes that failed (each is retried).
    pub failures: u64,
    /// Segments copied since start-up.
    pub segments_copied: u64,
    /// The last failure, until a pass succeeds.
    pub last_error: Option<String>,
}

/// The segment files, then the archive: the [`Storage`] the queue writes to.
pub(super) struct Archived<S> {
    files: S,
    shared: Arc<Shared>,
    /// Wakes the archiver; `None` when no archive is configured.
    nudge: Option<SyncSender<()>>,
    /// Full segments when the archiver was last nudged at a seal.
    full: u64,
}

impl<S: Storage> Archived<S> {
    /// `files` alone, or with the archive that `archiver` runs.
    pub(super) fn new(files: S, shared: Arc<Shared>, nudge: Option<SyncSender<()>>) -> Self {
        let full = shared.size.load(Ordering::Acquire) / shared.records_per_segment;
        Self {
            files,
            shared,
            nudge,
            full,
        }
    }

    fn nudge(&self) {
        if let Some(tx) = &self.nudge {
            // A full slot means a pass is already due, which will see this
            // change too; a gone archiver has logged why.
            let _ = tx.try_send(());
        }
    }
}

impl<S: Storage> Storage for Archived<S> {
    fn append(&mut self, first: u64, batch: &[Vec<u8>]) -> Result<(), AuditError> {
        self.files.append(first, batch)
    }

    fn start_sync(&mut self) -> SyncJob {
        self.files.start_sync()
    }

    fn synced(&mut self) -> Result<(), AuditError> {
        self.files.synced()
    }

    /// Seals locally, then nudges the archiver when a segment filled: one
    /// load and compare per batch otherwise.
    fn seal(&mut self) {
        self.files.seal();
        let full = self.shared.size.load(Ordering::Acquire) / self.shared.records_per_segment;
        if full != self.full {
            self.full = full;
            self.nudge();
        }
    }

    /// Keeps the checkpoint locally (durably) first, then nudges the
    /// archiver to copy it.
    fn checkpoint(&mut self, signed: &SignedCheckpoint) -> Result<(), AuditError> {
        self.files.checkpoint(signed)?;
        self.nudge();
        Ok(())
    }
}

/// The running archiver, held by the log.
#[derive(Debug)]
pub(super) struct Handle {
    pub(super) stats: Arc<Mutex<ArchiveStats>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Handle {
    /// Starts the archiver copying `shared.dir` into `dir`; returns it and
    /// the sender that nudges it. Its first pass (at once) copies whatever
    /// the archive misses from earlier runs.
    pub(super) fn start(
        shared: Arc<Shared>,
        dir: PathBuf,
    ) -> Result<(Self, SyncSender<()>), AuditError> {
        let stats = Arc::new(Mutex::new(ArchiveStats::default()));
        let (tx, rx) = mpsc::sync_channel(1);
        let archiver = copy::Archiver::new(shared, dir, stats.clone());
        let thread = std::thread::Builder::new()
            .name("jisr-audit-archive".into())
            .spawn(move || run(archiver, &rx))
            .map_err(|e| {
                AuditError::Unavailable(format!("cannot start the archive thread: {e}"))
            })?;
        let handle = Self {
            stats,
            thread: Mutex::new(Some(thread)),
        };
        Ok((handle, tx))
    }

    /// The archive's figures.
    pub(super) fn stats(&self) -> ArchiveStats {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits (up to `limit`) for the archiver's last pass once the writer
    /// is gone, so that the final checkpoint is archived before the node
    /// exits. A hung archive volume must not hang the shutdown: after
    /// `limit` the thread is left behind and what it misses is copied at
    /// the next start.
    pub(super) async fn finish(&self, limit: Duration) {
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(thread) = thread else { return };
        let joined = tokio::task::spawn_blocking(move || thread.join());
        if tokio::time::timeout(limit, joined).await.is_err() {
            tracing::warn!("audit archive: still copying at shutdown; what it misses is copied at the next start");
        }
    }

    /// Waits for the archiver to end (the writer is gone), blocking.
    #[cfg(test)]
    pub(super) fn join(&self) {
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

/// The archiver's loop: a pass at start, then one per nudge (or after
/// [`RETRY`] while behind); a last pass once the writer is gone.
fn run(mut archiver: copy::Archiver, rx: &Receiver<()>) {
    loop {
        let behind = !archiver.pass();
        let woken = if behind {
            rx.recv_timeout(RETRY)
        } else {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        };
        if woken == Err(RecvTimeoutError::Disconnected) {
            // The writer closed (a final checkpoint may have been nudged
            // into a slot already read): one last pass.
            archiver.pass();
            return;
        }
    }
}

#[cfg(test)]
mod tests;
