//! The seam between the writer's queue and where the log's bytes go.
//!
//! The queue ([`super::queue`]) batches appends, acknowledges them and
//! decides when to sign a checkpoint; it knows nothing about files. A
//! [`Storage`] target knows nothing about callers: it is handed whole
//! batches and signed checkpoints. The log's own files
//! ([`super::files::SegmentFiles`]) are the first target.

use super::SignedCheckpoint;
use crate::audit::AuditError;

/// One fsync of what was appended, run off the writer thread so that the
/// writer can write the next batch meanwhile; its error is the log's
/// failure, said as a sentence. Boxed: one per sync, not per entry.
pub(super) type SyncJob = Box<dyn FnOnce() -> Result<(), String> + Send>;

/// Where the log's entries and checkpoints are kept.
///
/// The queue calls, on its one writer thread: [`append`](Self::append) for
/// each batch as it arrives; [`start_sync`](Self::start_sync) when no sync
/// is in flight and something is appended, and runs the job it returns on
/// another thread; once that job succeeded, [`synced`](Self::synced), and
/// only then acknowledges the batches the sync covered, in log order. So
/// one batch is written while the previous one's fsync is in flight; a
/// batch for which [`overlaps`](Self::overlaps) says no is appended only
/// once nothing is in flight and everything appended is durable.
/// [`seal`](Self::seal) runs in the same quiet moments, after the answers.
/// [`checkpoint`](Self::checkpoint) is called at the signing interval and
/// on close, with the durable entries only. Calls are per batch, never per
/// entry: the queue is generic over the target, so there is no dynamic
/// dispatch on the hot path (the sync job's one boxed call aside).
///
/// Failures mean different things per method, and the queue relies on it:
/// - `append` failing refuses this batch only; the target must have undone
///   what it wrote of it (and nothing written before it), and the next
///   batch is tried again.
/// - The sync job failing stops the log for good ("no audit, no data"):
///   after a failed fsync the page cache can no longer be trusted. Nothing
///   not yet durable is acknowledged: the batches the sync covered, and
///   those written after it, are all refused.
/// - A target that loses durability where it cannot report it (while
///   sealing between batches, or after the entries are already durable)
///   stops the log itself with [`super::Shared::fail`]; the queue checks
///   before every batch and before acknowledging a sync, and calls nothing
///   but `checkpoint` afterwards. Any other fsync of the records' file that
///   fails (padding, undoing a write) must stop the log the same way: it
///   may have taken the error the sync in flight would have reported.
///
/// # Adding a second target
///
/// An archive copy of sealed segments and checkpoints, or a replica, is
/// another implementation next to `SegmentFiles`, composed with it by a
/// small wrapper that implements `Storage` by calling the segment files
/// first and the second target after them (so a segment is sealed on disk
/// before the archive's `seal` copies it, and a checkpoint is durable
/// locally before it is copied). The queue does not change: `AuditLog::open`
/// builds the wrapper instead of `SegmentFiles` alone. A target whose loss
/// must not stop the log (an asynchronous archive) logs its failures and
/// returns `Ok`; one that must hold every acknowledged entry (a synchronous
/// replica) makes its sync job fail with it and so stops the log.
pub(super) trait Storage {
    /// Writes `batch`, entries `first..first + batch.len()` in order, after
    /// the entries appended before. They need not be durable yet.
    fn append(&mut self, first: u64, batch: &[Vec<u8>]) -> Result<(), AuditError>;

    /// Whether `batch` may be appended while a sync is in flight; if not
    /// (it starts or crosses a segment boundary, or outgrows the padding),
    /// the queue first waits until everything appended is durable.
    fn overlaps(&self, batch: &[Vec<u8>]) -> bool;

    /// The fsync that makes everything appended so far durable, to run off
    /// the writer thread; the writer goes on appending meanwhile.
    fn start_sync(&mut self) -> SyncJob;

    /// The job from the last [`start_sync`](Self::start_sync) succeeded:
    /// brings the derived files (offset index, stored hashes) up to the
    /// entries it covered. An error stops the log.
    fn synced(&mut self) -> Result<(), AuditError>;

    /// Between batches, off the acknowledgement path and with nothing in
    /// flight: closes what is complete (a full segment) and prepares for
    /// the next batch. Failures are retried at the next call, or stop the
    /// log as said above.
    fn seal(&mut self);

    /// Keeps a signed checkpoint durably; it is published only after.
    fn checkpoint(&mut self, signed: &SignedCheckpoint) -> Result<(), AuditError>;
}
