//! The log's own files, the first [`Storage`] target: the tail segment and
//! its offset index, sealing full segments, the stored Merkle hashes and
//! the checkpoint files, all in the log directory.
//!
//! The tail segment is kept padded with zeros ahead of the records (see
//! [`PAD_CHUNK`]): a batch overwrites blocks that are already allocated and
//! written, so its `fdatasync` does not also write the inode.

use super::hashes::Cache;
use super::recover::Tail;
use super::segment;
use super::storage::{Storage, SyncJob};
use super::{write_durable, Shared, SignedCheckpoint};
use crate::audit::merkle::{self, Hash};
use crate::audit::AuditError;
use std::collections::VecDeque;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;
use std::time::Instant;

mod durable;
mod padding;
pub(crate) use padding::PAD_CHUNK;

/// Records written to the tail segment and not yet synced: the tail's
/// position moves, and the offset index is written, only once they are
/// durable.
#[derive(Debug)]
struct Written {
    /// Where the records end in the segment.
    records_end: u64,
    /// How many there are.
    records: u64,
    /// Their frames' length.
    bytes: u64,
    /// Each record's offset, little-endian, for the index.
    offsets: Vec<u8>,
}

/// The segment files of one log directory.
pub(super) struct SegmentFiles {
    shared: Arc<Shared>,
    /// Shared with the sync job in flight, which fsyncs it meanwhile.
    segment: Arc<File>,
    index: File,
    /// The durable records of the tail segment.
    tail: Tail,
    /// The tail segment's length on disk: records up to `tail.len`, zero
    /// padding after.
    end: u64,
    /// No padding is tried before this instant (after a failed extension).
    pad_after: Option<Instant>,
    cache: Cache,
    /// The tree's size: the index of `leaves[0]`.
    first: u64,
    /// Leaf hashes of the entries written and not yet in the tree, for the
    /// tree once their records are durable; kept across batches so that it
    /// is not allocated again each time.
    leaves: Vec<Hash>,
    /// Chunks written after the tail's durable records, in order.
    unsynced: VecDeque<Written>,
    /// How many of `unsynced` the sync in flight covers.
    covered: usize,
}

impl SegmentFiles {
    /// Opens the tail segment that recovery left, to go on from it.
    pub(super) fn open(shared: Arc<Shared>, tail: Tail, cache: Cache) -> Result<Self, AuditError> {
        let (segment, index) = open_tail(&shared, tail.first)?;
        let seg_path = segment::segment_path(&shared.dir, tail.first);
        // Recovery left the records' end at `tail.len`, zeros after it.
        let end = segment
            .metadata()
            .map_err(|e| AuditError::io("read", &seg_path, e))?
            .len()
            .max(tail.len);
        Ok(Self {
            shared,
            segment: Arc::new(segment),
            index,
            first: tail.first + tail.records,
            tail,
            end,
            pad_after: None,
            cache,
            leaves: Vec::new(),
            unsynced: VecDeque::new(),
            covered: 0,
        })
    }

    fn tail_path(&self) -> std::path::PathBuf {
        segment::segment_path(&self.shared.dir, self.tail.first)
    }

    /// Where the written records end: after the unsynced ones.
    fn write_end(&self) -> u64 {
        self.unsynced
            .back()
            .map_or(self.tail.len, |w| w.records_end)
    }

    /// Records in the tail segment, durable or not.
    fn written_records(&self) -> u64 {
        self.tail.records + self.unsynced.iter().map(|w| w.records).sum::<u64>()
    }

    /// Writes records after the written ones in the tail segment (over its
    /// padding); a sync makes them durable.
    fn write_chunk(&mut self, chunk: &[Vec<u8>]) -> Result<(), AuditError> {
        let at = self.write_end();
        let mut bytes = Vec::with_capacity(chunk.iter().map(|p| p.len() + segment::HEADER).sum());
        let mut offsets = Vec::with_capacity(chunk.len() * 8);
        for payload in chunk {
            offsets.extend_from_slice(&(at + bytes.len() as u64).to_le_bytes());
            segment::frame(payload, &mut bytes);
        }
        let records_end = at + bytes.len() as u64;
        if records_end > self.end {
            // Rare: the padding ahead ran out (a burst, a new segment). If
            // it cannot be extended (full disk), the write below grows the
            // file itself, as an append would.
            self.pad(records_end - at);
        }
        let written = match self.shared.faults.on_write() {
            Some(injected) => Err(injected),
            None => self.segment.write_all_at(&bytes, at),
        };
        if let Err(e) = written {
            // Nothing of this batch was acknowledged: cut it off with the
            // padding after it and go on (a full disk may free up). Cutting
            // (rather than leaving the partial frames to be overwritten)
            // keeps a stale frame of this batch from surviving after the
            // shorter next one, where a scan would take it for damage.
            let path = self.tail_path();
            self.undo_write(at, &path, &e);
            return Err(AuditError::Unavailable(format!(
                "writing {} failed: {e}",
                path.display()
            )));
        }
        self.end = self.end.max(records_end);
        self.unsynced.push_back(Written {
            records_end,
            records: chunk.len() as u64,
            bytes: bytes.len() as u64,
            offsets,
        });
        Ok(())
    }

    /// Cuts the tail segment back to `at`, where the failed write began,
    /// keeping the records written before it (durable or not).
    fn undo_write(&mut self, at: u64, path: &std::path::Path, e: &std::io::Error) {
        // A failing fsync here stops the log: it may have taken the error
        // that the sync in flight would otherwise have reported.
        let cut = self
            .segment
            .set_len(at)
            .and_then(|()| self.segment.sync_all());
        match cut {
            Ok(()) => self.end = at,
            Err(cut) => self.shared.fail(format!(
                "cannot undo a failed write to {} ({e}): {cut}",
                path.display()
            )),
        }
    }

    /// Closes the full tail segment and starts the next one.
    fn seal_segment(&mut self) -> Result<(), AuditError> {
        let seg_path = self.tail_path();
        // Sealed segments end at their last record: cut the padding off,
        // durably, before the next segment exists.
        self.segment.set_len(self.tail.len).map_err(|e| {
            AuditError::Unavailable(format!(
                "cutting the padding off {} failed: {e}",
                seg_path.display()
            ))
        })?;
        self.end = self.tail.len;
        if let Err(e) = self.segment.sync_all() {
            let why = format!("fsync of {} failed: {e}", seg_path.display());
            self.shared.fail(why.clone());
            return Err(AuditError::Unavailable(why));
        }
        let idx_path = segment::index_path(&self.shared.dir, self.tail.first);
        self.index.sync_all().map_err(|e| {
            AuditError::Unavailable(format!("fsync of {} failed: {e}", idx_path.display()))
        })?;
        let first = self.tail.first + self.tail.records;
        let (segment, index) = open_tail(&self.shared, first)?;
        segment::sync_dir(&self.shared.dir).map_err(|e| {
            AuditError::Unavailable(format!("fsync of the log directory failed: {e}"))
        })?;
        self.segment = Arc::new(segment);
        self.index = index;
        self.tail = Tail {
            first,
            records: 0,
            len: 0,
        };
        self.end = 0;
        Ok(())
    }

    /// Seals the tail segment if it is full, then writes as much of `rest`
    /// as fits in it; returns how many records that is.
    fn write_next_chunk(&mut self, rest: &[Vec<u8>]) -> Result<usize, AuditError> {
        let rps = self.shared.records_per_segment;
        if self.written_records() == rps {
            // Sealing needs the whole segment durable: the records of this
            // batch that filled it (nothing else is unsynced here: the
            // queue syncs each batch before it writes the next).
            if let Err(why) = self.make_durable_now() {
                self.shared.fail(why.clone());
                return Err(AuditError::Unavailable(why));
            }
            self.seal_segment()?;
        }
        let room = (rps - self.written_records()) as usize;
        let chunk = &rest[..rest.len().min(room)];
        self.write_chunk(chunk)?;
        Ok(chunk.len())
    }

    /// A batch failed: forgets its leaves (the first `before` leaves are of
    /// earlier batches). If it spanned a segment boundary and its first
    /// records are durable (and sealed), those are in the log now, so the
    /// tree and the size move past them and the next batch is numbered
    /// after them. Their appends are refused all the same: in the log
    /// though told otherwise, as after a crash between the fsync and the
    /// acknowledgement — never acknowledged under a wrong index.
    fn keep_durable_part(&mut self, before: usize) {
        let durable = self.tail.first + self.tail.records;
        let durable_leaves = (durable - self.first) as usize;
        if durable_leaves <= before {
            self.leaves.truncate(before);
            return;
        }
        // The queue syncs each batch before it writes the next: nothing
        // else was unsynced, so every leaf up to `durable` is this batch's.
        self.leaves.truncate(durable_leaves);
        match self.extend_tree() {
            Ok(()) => self
                .shared
                .size
                .store(durable, std::sync::atomic::Ordering::Release),
            Err(e) => self.shared.fail(format!(
                "after a batch failed half-way, its durable part could not be hashed: {e}"
            )),
        }
    }

    /// Adds the leaves of the durable entries to the tree and appends the
    /// stored hashes.
    fn extend_tree(&mut self) -> Result<(), AuditError> {
        let first = self.first;
        let n = (self.tail.first + self.tail.records - first) as usize;
        let mut new = Vec::with_capacity(n * 2);
        for (i, leaf) in self.leaves[..n].iter().enumerate() {
            let stored = self
                .cache
                .add_leaf(first + i as u64, *leaf, &self.shared.hashes)
                .map_err(|e| {
                    AuditError::Unavailable(format!("extending the Merkle tree failed: {e}"))
                })?;
            new.extend(stored);
        }
        let mut appended = self.shared.hashes.append(&new);
        if appended.is_err() && self.give_back_padding() {
            // A full disk: retry in the padding's space, from where these
            // hashes start (a partial hash would misalign the rest).
            appended = self
                .shared
                .hashes
                .truncate(merkle::stored_hash_count(first))
                .and_then(|()| self.shared.hashes.append(&new));
        }
        // The records are durable; the stored hashes are derived. The
        // queue stops taking entries on this error so proofs stay right; a
        // restart rebuilds them.
        appended
            .map_err(|e| AuditError::Unavailable(format!("writing stored hashes failed: {e}")))?;
        self.leaves.drain(..n);
        self.first += n as u64;
        Ok(())
    }
}

impl Storage for SegmentFiles {
    /// Fills the tail segment and seals it when full, so a batch may span
    /// segments: a full one is synced and sealed before the next is
    /// written, as sealing requires.
    fn append(&mut self, first: u64, batch: &[Vec<u8>]) -> Result<(), AuditError> {
        debug_assert_eq!(first, self.first + self.leaves.len() as u64);
        let before = self.leaves.len();
        self.leaves
            .extend(batch.iter().map(|payload| merkle::leaf_hash(payload)));
        let mut done = 0;
        while done < batch.len() {
            match self.write_next_chunk(&batch[done..]) {
                Ok(n) => done += n,
                Err(e) => {
                    self.keep_durable_part(before);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn start_sync(&mut self) -> SyncJob {
        self.covered = self.unsynced.len();
        let (segment, shared, path) = (self.segment.clone(), self.shared.clone(), self.tail_path());
        Box::new(move || durable::fsync(&segment, &shared, &path))
    }

    /// Moves the tail past the records the sync covered and indexes them,
    /// then adds their leaves to the tree.
    fn synced(&mut self) -> Result<(), AuditError> {
        let covered = std::mem::take(&mut self.covered);
        self.now_durable(covered);
        self.extend_tree()
    }

    /// Seals a full tail segment and tops the padding up when less than
    /// half a chunk is left, so that neither often sits on a batch's path.
    fn seal(&mut self) {
        debug_assert!(self.unsynced.is_empty(), "sealing with records in flight");
        if self.tail.records == self.shared.records_per_segment {
            // Full: seal it now rather than pad it (sealing would cut the
            // padding off again); a failure is retried by the next batch.
            if let Err(e) = self.seal_segment() {
                tracing::warn!(error = %e, "audit log: cannot seal the full tail segment yet; the next batch retries");
                return;
            }
        }
        if self.end - self.tail.len < PAD_CHUNK / 2 {
            self.pad(0);
        }
    }

    /// Appends the note to `checkpoints.log`, then replaces `checkpoint`.
    fn checkpoint(&mut self, signed: &SignedCheckpoint) -> Result<(), AuditError> {
        let dir = &self.shared.dir;
        // History first: a published checkpoint is always in the history.
        let history = dir.join("checkpoints.log");
        let mut framed = Vec::new();
        segment::frame(signed.note.as_bytes(), &mut framed);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&history)
            .map_err(|e| AuditError::io("open", &history, e))?;
        file.write_all(&framed)
            .map_err(|e| AuditError::io("write", &history, e))?;
        file.sync_data()
            .map_err(|e| AuditError::io("sync", &history, e))?;
        write_durable(dir, &dir.join("checkpoint"), signed.note.as_bytes())
    }
}

fn open_tail(shared: &Shared, first: u64) -> Result<(File, File), AuditError> {
    let seg_path = segment::segment_path(&shared.dir, first);
    let idx_path = segment::index_path(&shared.dir, first);
    let segment =
        segment::open_tail(&seg_path).map_err(|e| AuditError::io("open", &seg_path, e))?;
    let index =
        segment::open_append(&idx_path).map_err(|e| AuditError::io("open", &idx_path, e))?;
    Ok((segment, index))
}
