//! The seam between the audit thread's queue and where the log's bytes go.
//!
//! The queue ([`super::queue`]) batches appends, acknowledges them and
//! decides when to sign a checkpoint; it knows nothing about files. A
//! [`Storage`] target knows nothing about callers: it is handed whole
//! batches and signed checkpoints. The log's own files
//! ([`super::files::SegmentFiles`]) are the first target.

use super::SignedCheckpoint;
use crate::audit::AuditError;

/// One fsync of what was appended; its error is the log's failure, said as
/// a sentence. A job rather than a method so that a panic in it is caught
/// as a failed sync. Boxed: one per sync, not per entry.
pub(super) type SyncJob = Box<dyn FnOnce() -> Result<(), String> + Send>;

/// Where the log's entries and checkpoints are kept.
///
/// The queue calls, on its one audit thread and one batch at a time:
/// [`append`](Self::append); then [`start_sync`](Self::start_sync) and
/// runs the job it returns; once that job succeeded,
/// [`synced`](Self::synced), and only then acknowledges the batch; then
/// [`seal`](Self::seal), after the answers. So nothing is appended while a
/// sync runs, and every sync covers everything appended.
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
///   not yet durable is acknowledged: the batch the sync covered, and
///   every one after it, are refused.
/// - A target that loses durability where it cannot report it (while
///   sealing between batches, or after the entries are already durable)
///   stops the log itself with [`super::Shared::fail`]; the queue checks
///   before every batch and before acknowledging a sync, and calls nothing
///   but `checkpoint` afterwards. Any other fsync of the records' file that
///   fails (padding, undoing a write) must stop the log the same way: it
///   may have taken the error the batch's sync would have reported.
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

    /// The fsync that makes everything appended so far durable; the queue
    /// runs it at once.
    fn start_sync(&mut self) -> SyncJob;

    /// The job from the last [`start_sync`](Self::start_sync) succeeded:
    /// brings the derived files (offset index, stored hashes) up to the
    /// entries it covered. An error stops the log.
    fn synced(&mut self) -> Result<(), AuditError>;

    /// Between batches, after the answers, with everything appended
    /// durable: closes what is complete (a full segment) and prepares for
    /// the next batch. Failures are retried at the next call, or stop the
    /// log as said above.
    fn seal(&mut self);

    /// Keeps a signed checkpoint durably; it is published only after.
    fn checkpoint(&mut self, signed: &SignedCheckpoint) -> Result<(), AuditError>;
}
