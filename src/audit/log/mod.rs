//! Opening the log: recovery of the segments, the stored hashes and the last
//! signed checkpoint; then the read side (entries, proofs) that the audit
//! API and `jisr audit` use while the writer appends.

pub(crate) mod files;
pub(crate) mod hashes;
mod queue;
pub mod segment;
mod storage;

use crate::audit::merkle::{self, Hash, HashReader};
use crate::audit::note::{open_note, Checkpoint, NoteSigner, NoteVerifier};
use crate::audit::AuditError;
use files::SegmentFiles;
use hashes::{Cache, HashFile};
use queue::{Queue, Request};
use segment::Problem;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// The file naming the log's format and layout.
pub const FORMAT_FILE: &str = "FORMAT";

/// Records per segment file in production.
pub const RECORDS_PER_SEGMENT: u64 = 1 << 16;
/// Appends waiting for the writer before callers wait for room.
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
    pub(super) verifier: NoteVerifier,
    /// Why the log stopped taking entries, once it has.
    pub(super) failure: Mutex<Option<String>>,
    /// What the writer has done, for metrics and benchmarks.
    pub(super) stats: Mutex<WriterStats>,
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
    tx: mpsc::Sender<Request>,
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    _lock: File,
}

impl AuditLog {
    /// Opens the log in `opts.dir` (creating it), recovers from an
    /// interrupted write, checks the log against its last signed checkpoint
    /// and starts the writer thread.
    pub fn open(opts: LogOptions) -> Result<Self, AuditError> {
        let dir = opts.dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| AuditError::io("create", &dir, e))?;
        let lock_path = dir.join("LOCK");
        let lock = File::create(&lock_path).map_err(|e| AuditError::io("create", &lock_path, e))?;
        if lock.try_lock().is_err() {
            return Err(AuditError::Locked { dir });
        }
        let rps = layout(&dir, opts.records_per_segment.max(1))?;
        let (size, tail) = recover_segments(&dir, rps)?;
        let hashes = HashFile::open(&dir.join("tree.hashes"))?;
        let cache = rebuild_hashes(&dir, rps, size, &hashes)?;
        let verifier = opts.signer.verifier();
        let vkey_path = dir.join("verifier.key");
        write_durable(
            &dir,
            &vkey_path,
            format!("{}\n", verifier.to_text()).as_bytes(),
        )?;
        let checkpoint = check_last_checkpoint(&dir, &verifier, size, &cache.over(&hashes))?;
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            records_per_segment: rps,
            size: AtomicU64::new(size),
            hashes,
            checkpoint: RwLock::new(checkpoint),
            verifier,
            failure: Mutex::new(None),
            stats: Mutex::new(WriterStats::default()),
        });
        let (tx, rx) = mpsc::channel(QUEUE);
        let files = SegmentFiles::open(shared.clone(), tail, cache)?;
        let queue = Queue::new(shared.clone(), files, opts.signer, opts.checkpoint_interval);
        let thread = std::thread::Builder::new()
            .name("jisr-audit".into())
            .spawn(move || queue::run(queue, rx))
            .map_err(|e| AuditError::Unavailable(format!("cannot start the writer thread: {e}")))?;
        tracing::info!(dir = %dir.display(), entries = size, "audit log open");
        Ok(Self {
            tx,
            shared,
            thread: Mutex::new(Some(thread)),
            _lock: lock,
        })
    }

    /// Appends an encoded record and waits until it is durable; returns its
    /// index. Fails with [`AuditError::Unavailable`] when it cannot be made
    /// durable: the caller must then not release any data.
    pub async fn append(&self, payload: Vec<u8>) -> Result<u64, AuditError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Request::Append { payload, ack })
            .await
            .map_err(|_| AuditError::Unavailable("the audit writer has stopped".into()))?;
        done.await.map_err(|_| {
            AuditError::Unavailable("the audit writer stopped before the entry was durable".into())
        })?
    }

    /// Flushes, signs a final checkpoint and stops the writer.
    pub async fn close(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Request::Close { ack }).await.is_ok() {
            let _ = done.await;
        }
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    /// Stops the writer as a crash would: no flush, no final checkpoint;
    /// only what was acknowledged is on disk (and possibly more).
    #[cfg(test)]
    pub(super) fn crash(self) {
        let Self { tx, thread, .. } = self;
        drop(tx);
        let thread = thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
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

    /// The writer's counters so far.
    pub fn stats(&self) -> WriterStats {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The latest signed checkpoint.
    pub fn checkpoint(&self) -> SignedCheckpoint {
        self.shared
            .checkpoint
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The verifier key of the node's checkpoints.
    pub fn verifier(&self) -> &NoteVerifier {
        &self.shared.verifier
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

/// Reads the layout of an existing log, or records it for a new one; a log
/// keeps the segment size it was created with.
fn layout(dir: &Path, wanted: u64) -> Result<u64, AuditError> {
    let path = dir.join(FORMAT_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .lines()
            .find_map(|l| l.strip_prefix("records_per_segment "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| AuditError::Damaged {
                segment: path.clone(),
                what: "it does not say `records_per_segment N`".into(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let text = format!("jisr audit log v1\nrecords_per_segment {wanted}\n");
            write_durable(dir, &path, text.as_bytes())?;
            Ok(wanted)
        }
        Err(e) => Err(AuditError::io("read", &path, e)),
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

/// The tail segment the writer continues.
#[derive(Debug)]
pub(super) struct Tail {
    /// First index of the segment.
    pub(super) first: u64,
    /// Records in it.
    pub(super) records: u64,
    /// Its length in bytes.
    pub(super) len: u64,
}

/// Checks the segments and truncates a torn tail. Zero padding after the
/// tail's records is kept as it is: the writer continues over it. Returns
/// the number of entries and the tail segment.
fn recover_segments(dir: &Path, rps: u64) -> Result<(u64, Tail), AuditError> {
    let firsts = segment::list(dir).map_err(|e| AuditError::io("list", dir, e))?;
    for (k, first) in firsts.iter().enumerate() {
        if *first != k as u64 * rps {
            return Err(AuditError::Damaged {
                segment: segment::segment_path(dir, *first),
                what: format!("expected the segment starting at entry {} here; a segment is missing or misnamed", k as u64 * rps),
            });
        }
    }
    let Some((&last, sealed)) = firsts.split_last() else {
        return Ok((
            0,
            Tail {
                first: 0,
                records: 0,
                len: 0,
            },
        ));
    };
    for &first in sealed {
        check_sealed(dir, first, rps)?;
    }
    let path = segment::segment_path(dir, last);
    let scan = segment::scan(&path, |_, _| {}).map_err(|e| AuditError::io("read", &path, e))?;
    match &scan.problem {
        None => {}
        Some(Problem::TornTail) => {
            tracing::warn!(
                segment = %path.display(),
                offset = scan.valid_len,
                dropped_bytes = scan.file_len - scan.valid_len,
                "audit log: truncating an interrupted write at the end of the log (those entries were never acknowledged)"
            );
            segment::truncate(&path, scan.valid_len)
                .map_err(|e| AuditError::io("truncate", &path, e))?;
        }
        Some(Problem::Damage { what }) => {
            return Err(AuditError::Damaged {
                segment: path,
                what: what.clone(),
            });
        }
    }
    let records = scan.offsets.len() as u64;
    if records > rps {
        return Err(AuditError::Damaged {
            segment: path,
            what: format!("{records} records in a segment of {rps}"),
        });
    }
    let idx = segment::index_path(dir, last);
    segment::write_index(&idx, &scan.offsets).map_err(|e| AuditError::io("write", &idx, e))?;
    Ok((
        last + records,
        Tail {
            first: last,
            records,
            len: scan.valid_len,
        },
    ))
}

/// A sealed segment must hold exactly `rps` valid records; its index is
/// rebuilt if it disagrees.
fn check_sealed(dir: &Path, first: u64, rps: u64) -> Result<(), AuditError> {
    let path = segment::segment_path(dir, first);
    let idx = segment::index_path(dir, first);
    let idx_ok = std::fs::metadata(&idx)
        .map(|m| m.len() == rps * 8)
        .unwrap_or(false);
    if idx_ok {
        // Cheap check: the last record ends exactly at the end of the file.
        let seg = File::open(&path).map_err(|e| AuditError::io("open", &path, e))?;
        let idx_file = File::open(&idx).map_err(|e| AuditError::io("open", &idx, e))?;
        let len = seg
            .metadata()
            .map_err(|e| AuditError::io("read", &path, e))?
            .len();
        if let Ok(last) = segment::read_record(&seg, &idx_file, rps - 1) {
            let mut offset = [0u8; 8];
            use std::os::unix::fs::FileExt as _;
            if idx_file.read_exact_at(&mut offset, (rps - 1) * 8).is_ok()
                && u64::from_le_bytes(offset) + (segment::HEADER + last.len()) as u64 == len
            {
                return Ok(());
            }
        }
    }
    let scan = segment::scan(&path, |_, _| {}).map_err(|e| AuditError::io("read", &path, e))?;
    if let Some(problem) = scan.problem {
        let what = match problem {
            Problem::TornTail => format!(
                "it ends with a cut record at offset {}, but it is not the last segment",
                scan.valid_len
            ),
            Problem::Damage { what } => what,
        };
        return Err(AuditError::Damaged {
            segment: path,
            what,
        });
    }
    if let Some(what) = scan.sealed_padding() {
        return Err(AuditError::Damaged {
            segment: path,
            what,
        });
    }
    if scan.offsets.len() as u64 != rps {
        return Err(AuditError::Damaged {
            segment: path,
            what: format!(
                "{} records where a sealed segment holds {rps}",
                scan.offsets.len()
            ),
        });
    }
    segment::write_index(&idx, &scan.offsets).map_err(|e| AuditError::io("write", &idx, e))
}

/// Brings the stored-hash file in line with the `size` records; returns the
/// writer's cache of the tree's right edge.
fn rebuild_hashes(dir: &Path, rps: u64, size: u64, hashes: &HashFile) -> Result<Cache, AuditError> {
    let have = hashes.count()?;
    // The largest prefix of leaves whose stored hashes are all present.
    let mut covered = size;
    while covered > 0 && merkle::stored_hash_count(covered) > have {
        covered -= 1;
    }
    let keep = merkle::stored_hash_count(covered);
    // Also cut a torn partial hash: appends after it would be misaligned.
    if keep != have || hashes.len()? != keep * 32 {
        hashes.truncate(keep)?;
    }
    let mut cache = Cache::default();
    for index in hashes::edge_indexes(covered) {
        let h = hashes
            .read_hashes(&[index])
            .map_err(|e| AuditError::Proof(e.to_string()))?;
        cache.insert(index, h[0]);
    }
    if covered < size {
        tracing::info!(
            from = covered,
            to = size,
            "audit log: rebuilding stored hashes"
        );
    }
    for n in covered..size {
        let record = read_entry(dir, rps, n)?;
        let new = cache
            .add_leaf(n, merkle::leaf_hash(&record), hashes)
            .map_err(|e| AuditError::Proof(e.to_string()))?;
        hashes.append(&new)?;
    }
    Ok(cache)
}

/// Loads the last checkpoint and checks the log against it; a log with no
/// checkpoint yet gets a fresh (unsigned until the writer signs) view.
fn check_last_checkpoint(
    dir: &Path,
    verifier: &NoteVerifier,
    size: u64,
    reader: &impl HashReader,
) -> Result<SignedCheckpoint, AuditError> {
    let path = dir.join("checkpoint");
    let root = merkle::tree_hash(size, reader).map_err(|e| AuditError::Proof(e.to_string()))?;
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let checkpoint = Checkpoint {
                origin: verifier.name().to_owned(),
                size,
                root,
                extensions: Vec::new(),
            };
            return Ok(SignedCheckpoint {
                checkpoint,
                note: String::new(),
            });
        }
        Err(e) => return Err(AuditError::io("read", &path, e)),
    };
    let inconsistent = |what: String| AuditError::Inconsistent {
        dir: dir.to_owned(),
        what,
    };
    let body = open_note(&text, verifier).map_err(|e| {
        inconsistent(format!(
            "its last checkpoint does not verify with this node's key ({e})"
        ))
    })?;
    let checkpoint = Checkpoint::parse(body)
        .map_err(|e| inconsistent(format!("its last checkpoint is malformed ({e})")))?;
    if checkpoint.size > size {
        return Err(inconsistent(format!(
            "the last signed checkpoint covers {} entries but only {size} are in the log",
            checkpoint.size
        )));
    }
    let then =
        merkle::tree_hash(checkpoint.size, reader).map_err(|e| AuditError::Proof(e.to_string()))?;
    if then != checkpoint.root {
        return Err(inconsistent(format!(
            "the first {} entries no longer hash to the root of the last signed checkpoint",
            checkpoint.size
        )));
    }
    Ok(SignedCheckpoint {
        checkpoint,
        note: text,
    })
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
