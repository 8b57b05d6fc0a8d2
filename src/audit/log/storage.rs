//! The seam between the writer's queue and where the log's bytes go.
//!
//! The queue ([`super::queue`]) batches appends, acknowledges them and
//! decides when to sign a checkpoint; it knows nothing about files. A
//! [`Storage`] target knows nothing about callers: it is handed whole
//! batches and signed checkpoints. The log's own files
//! ([`super::files::SegmentFiles`]) are the first target.

use super::SignedCheckpoint;
use crate::audit::AuditError;

/// Where the log's entries and checkpoints are kept.
///
/// The queue calls, on its one writer thread and in this order per batch:
/// [`append`](Self::append), then [`sync`](Self::sync) only if the append
/// succeeded, then acknowledges the batch, then [`seal`](Self::seal)
/// between batches. [`checkpoint`](Self::checkpoint) is called at the
/// signing interval and on close. Calls are per batch, never per entry:
/// the queue is generic over the target, so there is no dynamic dispatch
/// on the hot path.
///
/// Failures mean different things per method, and the queue relies on it:
/// - `append` failing refuses this batch only; the target must have undone
///   what it wrote of it, and the next batch is tried again.
/// - `sync` failing stops the log for good ("no audit, no data"): after a
///   failed fsync the page cache can no longer be trusted. Nothing of the
///   batch is acknowledged.
/// - A target that loses durability where it cannot report it (while
///   sealing between batches, or after the entries are already durable)
///   stops the log itself with [`super::Shared::fail`]; the queue checks
///   before every batch and calls nothing but `checkpoint` afterwards.
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
/// replica) returns its `sync` failure and so stops the log with it.
pub(super) trait Storage {
    /// Writes `batch`, entries `first..first + batch.len()` in order. They
    /// need not be durable yet.
    fn append(&mut self, first: u64, batch: &[Vec<u8>]) -> Result<(), AuditError>;

    /// Makes everything appended durable; only then does the queue
    /// acknowledge the batch.
    fn sync(&mut self) -> Result<(), AuditError>;

    /// Between batches, off the acknowledgement path: closes what is
    /// complete (a full segment) and prepares for the next batch. Failures
    /// are retried at the next call, or stop the log as said above.
    fn seal(&mut self);

    /// Keeps a signed checkpoint durably; it is published only after.
    fn checkpoint(&mut self, signed: &SignedCheckpoint) -> Result<(), AuditError>;
}
