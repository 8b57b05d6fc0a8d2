//! Opening the log: recovery of the segments, the stored hashes and the last
//! signed checkpoint; then the read side (entries, proofs) that the audit
//! API and `jisr audit` use while the writer appends.

pub mod archive;
pub(crate) mod aside;
mod faults;
pub(crate) mod files;
pub(crate) mod hashes;
pub mod history;
pub mod loss;
mod queue;
mod recover;
pub mod segment;
mod storage;
mod survey;

use crate::audit::merkle::{self, Hash};
use crate::audit::note::{Checkpoint, NoteSigner, NoteVerifier};
use crate::audit::AuditError;
use archive::Archived;
pub use faults::Faults;
use files::SegmentFiles;
use hashes::HashFile;
use queue::{Ack, Intake, Queue};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::oneshot;

/// The file naming the log's format and layout.
pub const FORMAT_FILE: &str = "FORMAT";

/// Records per segment file in production.
pub const RECORDS_PER_SEGMENT: u64 = 1 << 16;
/// How long closing the log waits for the archive's last copy.
const ARCHIVE_AT_CLOSE: Duration = Duration::from_secs(10);
/// Appends waiting for the audit thread before callers wait for room.
const QUEUE: usize = 16 * 1024;

/// How to open a log.
#[derive(Debug)]
pub struct LogOptions {
    /// The log directory.
    pub dir: PathBuf,
    /// The checkpoint signer; its name is the log's origin.
    pub signer: NoteSigner,
    /// Records per segment (tests use small ones).
    pub records_per_segment: u64,
    /// How often to sign a checkpoint while entries arrive.
    pub checkpoint_interval: Duration,
    /// Where sealed segments and checkpoints are copied, if anywhere.
    pub archive_dir: Option<PathBuf>,
}

/// A checkpoint and its signed note text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The parsed checkpoint.
    pub checkpoint: Checkpoint,
    /// The signed note, as published.
    pub note: String,
}

/// State shared by the writer thread and readers.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) dir: PathBuf,
    pub(super) records_per_segment: u64,
    /// Entries that are durable (fsynced) and hashed.
    pub(super) size: AtomicU64,
    pub(super) hashes: HashFile,
    pub(super) checkpoint: RwLock<SignedCheckpoint>,
    /// The size of each checkpoint as it is published, for those who act
    /// on a new one (the witness pushes) without polling for it.
    pub(super) published: tokio::sync::watch::Sender<u64>,
    pub(super) verifier: NoteVerifier,
    /// Why the log stopped taking entries, once it has.
    pub(super) failure: Mutex<Option<String>>,
    /// What the writer has done, for metrics and benchmarks.
    pub(super) stats: Mutex<WriterStats>,
    /// Failures tests make the writer meet (none in production).
    pub(super) faults: Arc<Faults>,
}

impl Shared {
    /// Stops the log taking entries, for good: the queue refuses every
    /// batch from now on.
    pub(super) fn fail(&self, why: String) {
        tracing::error!(reason = %why, "audit log stopped taking entries; restart the node once the cause is fixed");
        *self.failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }

    /// Why the log stopped taking entries, once it has.
    pub(super) fn failed(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Counters of the writer's work.
#[derive(Debug, Clone)]
pub struct WriterStats {
    /// The archive's figures, when there is one.
    pub archive: Option<archive::ArchiveStats>,
    /// Batches committed (one fsync each, more at segment boundaries).
    pub batches: u64,
    /// Entries committed.
    pub entries: u64,
    /// Bytes written to segments (frames).
    pub segment_bytes: u64,
    /// fsync latency in microseconds.
    pub fsync_micros: hdrhistogram::Histogram<u64>,
    /// Entries per batch.
    pub batch_sizes: hdrhistogram::Histogram<u64>,
}

impl Default for WriterStats {
    fn default() -> Self {
        // Bounds cover 1 µs to 60 s and batches up to 1 M: construction cannot fail.
        Self {
            archive: None,
            batches: 0,
            entries: 0,
            segment_bytes: 0,
            fsync_micros: hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 3)
                .expect("valid bounds"),
            batch_sizes: hdrhistogram::Histogram::new_with_bounds(1, 1_000_000, 3)
                .expect("valid bounds"),
        }
    }
}

/// The audit log of one node: append from any task, read and prove from any
/// thread.
#[derive(Debug)]
pub struct AuditLog {
    tx: Appender,
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    archive: Option<archive::Handle>,
    history: history::History,
    _lock: File,
}

/// The log's hold on the audit thread's intake: when it goes without a
/// close, the thread answers what was pushed and stops.
#[derive(Debug)]
struct Appender(Arc<Intake>);

impl Drop for Appender {
    fn drop(&mut self) {
        self.0.gone();
    }
}

/// Creates the log directory and takes its lock: one gateway (or
/// `jisr audit reindex`, or `recover`) per log.
pub fn lock_dir(dir: &Path) -> Result<File, AuditError> {
    std::fs::create_dir_all(dir).map_err(|e| AuditError::io("create", dir, e))?;
    let lock_path = dir.join("LOCK");
    let lock = File::create(&lock_path).map_err(|e| AuditError::io("create", &lock_path, e))?;
    if lock.try_lock().is_err() {
        return Err(AuditError::Locked {
            dir: dir.to_owned(),
        });
    }
    Ok(lock)
}

/// The archive's thread and the channel that wakes it, when an archive
/// directory is configured; never the log directory itself.
fn start_archive(
    shared: &Arc<Shared>,
    archive_dir: Option<PathBuf>,
) -> Result<
    (
        Option<archive::Handle>,
        Option<std::sync::mpsc::SyncSender<()>>,
    ),
    AuditError,
> {
    match archive_dir {
        Some(to) if to == shared.dir => Err(AuditError::Unavailable(format!(
            "the archive directory {} is the log directory itself; name another volume",
            to.display()
        ))),
        Some(to) => archive::Handle::start(shared.clone(), to).map(|(h, tx)| (Some(h), Some(tx))),
        None => Ok((None, None)),
    }
}

impl AuditLog {
    /// Opens the log in `opts.dir` (creating it), recovers from an
    /// interrupted write, checks the log against its last signed checkpoint
    /// and starts the writer thread.
    pub fn open(opts: LogOptions) -> Result<Self, AuditError> {
        let lock = lock_dir(&opts.dir)?;
        Self::open_locked(opts, lock)
    }

    /// [`AuditLog::open`] with the directory's lock already taken (from
    /// [`lock_dir`]), so that nothing runs between a repair and the open.
    pub fn open_locked(opts: LogOptions, lock: File) -> Result<Self, AuditError> {
        let dir = opts.dir.clone();
        let rps = recover::layout(&dir, opts.records_per_segment.max(1))?;
        let segments = recover::read_segments(&dir, rps)?;
        let verifier = opts.signer.verifier();
        // Nothing is changed before this decision; only then are torn
        // writes cut and derived files rebuilt, copies kept aside.
        let decision = survey::decide(&dir, &verifier, segments.size)?;
        segments.repair(&dir)?;
        decision.repair(&dir)?;
        let (size, tail) = (segments.size, segments.tail);
        let hashes = HashFile::open(&dir.join("tree.hashes"))?;
        let cache = recover::rebuild_hashes(&dir, rps, size, &hashes)?;
        recover::write_verifier_key(&dir, &verifier)?;
        let checkpoint =
            recover::check_last_checkpoint(&dir, &verifier, size, &cache.over(&hashes))?;
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            records_per_segment: rps,
            size: AtomicU64::new(size),
            hashes,
            published: tokio::sync::watch::Sender::new(checkpoint.checkpoint.size),
            checkpoint: RwLock::new(checkpoint),
            verifier,
            failure: Mutex::new(None),
            stats: Mutex::new(WriterStats::default()),
            faults: Arc::default(),
        });
        let intake = Arc::new(Intake::new(QUEUE));
        let files = SegmentFiles::open(shared.clone(), tail, cache)?;
        let (archive, nudge) = start_archive(&shared, opts.archive_dir)?;
        let storage = Archived::new(files, shared.clone(), nudge);
        let queue = Queue::new(
            shared.clone(),
            storage,
            opts.signer,
            opts.checkpoint_interval,
        );
        let tx = Appender(intake.clone());
        let thread = std::thread::Builder::new()
            .name("jisr-audit".into())
            .spawn(move || queue::run(queue, &intake))
            .map_err(|e| AuditError::Unavailable(format!("cannot start the audit thread: {e}")))?;
        tracing::info!(dir = %dir.display(), entries = size, "audit log open");
        Ok(Self {
            tx,
            shared,
            thread: Mutex::new(Some(thread)),
            archive,
            history: history::History::new(&dir),
            _lock: lock,
        })
    }

    /// Appends an encoded record and waits until it is durable; returns its
    /// index. Fails with [`AuditError::Unavailable`] when it cannot be made
    /// durable: the caller must then not release any data.
    pub async fn append(&self, payload: Vec<u8>) -> Result<u64, AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx.0.push(payload, Ack::here(ack)).await?;
        done.await.map_err(|_| {
            AuditError::Unavailable("the audit writer stopped before the entry was durable".into())
        })?
    }

    /// Flushes, signs a final checkpoint and stops the writer.
    pub async fn close(&self) {
        let (ack, done) = oneshot::channel();
        self.tx.0.close(ack);
        // An error: the thread had stopped already.
        let _ = done.await;
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        if let Some(archive) = &self.archive {
            archive.finish(ARCHIVE_AT_CLOSE).await;
        }
    }

    /// Stops the writer as a crash would: no flush, no final checkpoint;
    /// only what was acknowledged is on disk (and possibly more).
    #[cfg(test)]
    pub(super) fn crash(self) {
        let Self {
            tx,
            thread,
            archive,
            ..
        } = self;
        drop(tx);
        let thread = thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
        if let Some(archive) = archive {
            archive.join();
        }
    }

    /// Entries that are durable.
    pub fn size(&self) -> u64 {
        self.shared.size.load(Ordering::Acquire)
    }

    /// Why the log no longer takes entries, if it stopped.
    pub fn failure(&self) -> Option<String> {
        self.shared.failed()
    }

    /// The writer's fault hook: tests fail its writes and fsyncs.
    pub fn faults(&self) -> Arc<Faults> {
        self.shared.faults.clone()
    }

    /// The writer's counters so far.
    pub fn stats(&self) -> WriterStats {
        let mut stats = self
            .shared
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        stats.archive = self.archive.as_ref().map(archive::Handle::stats);
        stats
    }

    /// The latest signed checkpoint.
    pub fn checkpoint(&self) -> SignedCheckpoint {
        self.shared
            .checkpoint
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Told the size of every checkpoint signed from now on: `changed()`
    /// wakes when one is published. It never wakes with an error while
    /// the log is open (the log holds the sender).
    pub fn published(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.published.subscribe()
    }

    /// The verifier key of the node's checkpoints.
    pub fn verifier(&self) -> &NoteVerifier {
        &self.shared.verifier
    }

    /// The history of its signed checkpoints (`checkpoints.log`).
    pub fn history(&self) -> &history::History {
        &self.history
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The encoded record at `index`.
    pub fn read(&self, index: u64) -> Result<Vec<u8>, AuditError> {
        let size = self.size();
        if index >= size {
            return Err(AuditError::OutOfRange(format!(
                "entry {index} does not exist: the log has {size} entries"
            )));
        }
        read_entry(&self.shared.dir, self.shared.records_per_segment, index)
    }

    /// The inclusion proof of entry `index` in the tree of `size` entries.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, AuditError> {
        self.check_size(size)?;
        if index >= size {
            return Err(AuditError::OutOfRange(format!(
                "entry {index} is not in a tree of {size} entries"
            )));
        }
        merkle::prove_inclusion(size, index, &self.shared.hashes)
            .map_err(|e| AuditError::Proof(e.to_string()))
    }

    /// The consistency proof between tree sizes `old` ≤ `new`.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, AuditError> {
        self.check_size(new)?;
        if old > new {
            return Err(AuditError::OutOfRange(format!(
                "tree size {old} is larger than {new}"
            )));
        }
        merkle::prove_consistency(new, old, &self.shared.hashes)
            .map_err(|e| AuditError::Proof(e.to_string()))
    }

    /// The root hash of the tree of `size` entries.
    pub fn root(&self, size: u64) -> Result<Hash, AuditError> {
        self.check_size(size)?;
        merkle::tree_hash(size, &self.shared.hashes).map_err(|e| AuditError::Proof(e.to_string()))
    }

    /// The stored hashes at `indexes` (see [`merkle::stored_hash_index`])
    /// of the tree of `size` entries, read as they are kept: the tiles'
    /// hashes, without rehashing anything.
    pub fn stored_hashes(&self, size: u64, indexes: &[u64]) -> Result<Vec<Hash>, AuditError> {
        self.check_size(size)?;
        let count = merkle::stored_hash_count(size);
        if let Some(i) = indexes.iter().find(|&&i| i >= count) {
            return Err(AuditError::OutOfRange(format!(
                "stored hash {i} is not in a tree of {size} entries"
            )));
        }
        merkle::HashReader::read_hashes(&self.shared.hashes, indexes)
            .map_err(|e| AuditError::Proof(e.to_string()))
    }

    fn check_size(&self, size: u64) -> Result<(), AuditError> {
        let have = self.size();
        if size > have {
            return Err(AuditError::OutOfRange(format!(
                "the log has {have} entries, not {size}"
            )));
        }
        Ok(())
    }
}

/// Reads entry `index` from its segment.
pub(super) fn read_entry(dir: &Path, rps: u64, index: u64) -> Result<Vec<u8>, AuditError> {
    let first = index / rps * rps;
    let seg_path = segment::segment_path(dir, first);
    let idx_path = segment::index_path(dir, first);
    let seg = File::open(&seg_path).map_err(|e| AuditError::io("open", &seg_path, e))?;
    let idx = File::open(&idx_path).map_err(|e| AuditError::io("open", &idx_path, e))?;
    segment::read_record(&seg, &idx, index - first)
        .map_err(|e| AuditError::io("read", &seg_path, e))
}

/// Writes a file so that a crash leaves either the old or the new content:
/// temporary file, fsync, rename, fsync of the directory.
pub(super) fn write_durable(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), AuditError> {
    use std::io::Write as _;
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp).map_err(|e| AuditError::io("create", &tmp, e))?;
    file.write_all(bytes)
        .map_err(|e| AuditError::io("write", &tmp, e))?;
    file.sync_all()
        .map_err(|e| AuditError::io("sync", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| AuditError::io("rename", path, e))?;
    segment::sync_dir(dir).map_err(|e| AuditError::io("sync", dir, e))
}
