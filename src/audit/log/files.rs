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
use super::storage::Storage;
use super::{write_durable, Shared, SignedCheckpoint};
use crate::audit::merkle::{self, Hash};
use crate::audit::AuditError;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;
use std::time::Instant;

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
    segment: File,
    index: File,
    tail: Tail,
    /// The tail segment's length on disk: records up to `tail.len`, zero
    /// padding after.
    end: u64,
    /// No padding is tried before this instant (after a failed extension).
    pad_after: Option<Instant>,
    cache: Cache,
    /// First entry of the batch being appended.
    first: u64,
    /// The batch's leaf hashes, for the tree once its records are durable;
    /// kept across batches so that it is not allocated again each time.
    leaves: Vec<Hash>,
    written: Option<Written>,
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
            segment,
            index,
            tail,
            end,
            pad_after: None,
            cache,
            first: 0,
            leaves: Vec::new(),
            written: None,
        })
    }

    fn tail_path(&self) -> std::path::PathBuf {
        segment::segment_path(&self.shared.dir, self.tail.first)
    }

    /// Writes records at the records' end of the tail segment (over its
    /// padding); [`Self::make_durable`] syncs them.
    fn write_chunk(&mut self, chunk: &[Vec<u8>]) -> Result<(), AuditError> {
        let mut bytes = Vec::with_capacity(chunk.iter().map(|p| p.len() + segment::HEADER).sum());
        let mut offsets = Vec::with_capacity(chunk.len() * 8);
        for payload in chunk {
            offsets.extend_from_slice(&(self.tail.len + bytes.len() as u64).to_le_bytes());
            segment::frame(payload, &mut bytes);
        }
        let records_end = self.tail.len + bytes.len() as u64;
        if records_end > self.end {
            // Rare: the padding ahead ran out (a burst, a new segment). If
            // it cannot be extended (full disk), the write below grows the
            // file itself, as an append would.
            self.pad(records_end - self.tail.len);
        }
        let written = match self.shared.faults.on_write() {
            Some(injected) => Err(injected),
            None => self.segment.write_all_at(&bytes, self.tail.len),
        };
        if let Err(e) = written {
            // Nothing of this batch was acknowledged: cut it off with the
            // padding after it and go on (a full disk may free up). Cutting
            // (rather than leaving the partial frames to be overwritten)
            // keeps a stale frame of this batch from surviving after the
            // shorter next one, where a scan would take it for damage.
            let path = self.tail_path();
            self.undo_write(&path, &e);
            return Err(AuditError::Unavailable(format!(
                "writing {} failed: {e}",
                path.display()
            )));
        }
        self.end = self.end.max(records_end);
        self.written = Some(Written {
            records_end,
            records: chunk.len() as u64,
            bytes: bytes.len() as u64,
            offsets,
        });
        Ok(())
    }

    /// Syncs the records written last, then moves the tail past them and
    /// indexes them. An error is a failed fsync, said as the log's failure.
    fn make_durable(&mut self) -> Result<(), String> {
        let Some(written) = self.written.take() else {
            return Ok(());
        };
        let synced = Instant::now();
        let synced_data = match self.shared.faults.on_fsync() {
            Some(injected) => Err(injected),
            None => self.segment.sync_data(),
        };
        if let Err(e) = synced_data {
            return Err(format!(
                "fsync of {} failed: {e}",
                self.tail_path().display()
            ));
        }
        {
            let mut stats = self.shared.stats.lock().unwrap_or_else(|e| e.into_inner());
            let _ = stats
                .fsync_micros
                .record((synced.elapsed().as_micros() as u64).max(1));
            stats.segment_bytes += written.bytes;
        }
        self.tail.len = written.records_end;
        self.tail.records += written.records;
        let idx_before = self.tail.records.saturating_sub(written.records) * 8;
        let mut indexed = self.index.write_all(&written.offsets);
        if indexed.is_err() && self.give_back_padding() {
            // A full disk: the padding's space lets the index go on.
            let _ = self.index.set_len(idx_before);
            indexed = self.index.write_all(&written.offsets);
        }
        if let Err(e) = indexed {
            let _ = self.index.set_len(idx_before);
            // The index is derived; the records are durable. Restart rebuilds it.
            self.shared
                .fail(format!("writing the offset index failed: {e}"));
        }
        Ok(())
    }

    /// Cuts the tail segment back to its records after a failed write.
    fn undo_write(&mut self, path: &std::path::Path, e: &std::io::Error) {
        let cut = self
            .segment
            .set_len(self.tail.len)
            .and_then(|()| self.segment.sync_all());
        match cut {
            Ok(()) => self.end = self.tail.len,
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
        self.segment = segment;
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
        if self.tail.records == rps {
            self.seal_segment()?;
        }
        let room = (rps - self.tail.records) as usize;
        let chunk = &rest[..rest.len().min(room)];
        self.write_chunk(chunk)?;
        Ok(chunk.len())
    }

    /// A batch that spans a segment boundary and fails after its first
    /// `done` records are durable (and sealed): those are in the log now,
    /// so the tree and the size move past them and the next batch is
    /// numbered after them. Their appends are refused all the same: in
    /// the log though told otherwise, as after a crash between the fsync
    /// and the acknowledgement — never acknowledged under a wrong index.
    fn keep_durable_part(&mut self, done: usize) {
        if done == 0 {
            return;
        }
        self.leaves.truncate(done);
        match self.extend_tree() {
            Ok(()) => self.shared.size.store(
                self.first + done as u64,
                std::sync::atomic::Ordering::Release,
            ),
            Err(e) => self.shared.fail(format!(
                "after a batch failed half-way, its durable part could not be hashed: {e}"
            )),
        }
    }

    /// Adds the batch's leaves to the tree and appends the stored hashes.
    fn extend_tree(&mut self) -> Result<(), AuditError> {
        let first = self.first;
        let mut new = Vec::with_capacity(self.leaves.len() * 2);
        for (i, leaf) in self.leaves.iter().enumerate() {
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
            // A full disk: retry in the padding's space, from where this
            // batch's hashes start (a partial hash would misalign the rest).
            appended = self
                .shared
                .hashes
                .truncate(merkle::stored_hash_count(first))
                .and_then(|()| self.shared.hashes.append(&new));
        }
        // The records are durable; the stored hashes are derived. The
        // queue stops taking entries on this error so proofs stay right; a
        // restart rebuilds them.
        appended.map_err(|e| AuditError::Unavailable(format!("writing stored hashes failed: {e}")))
    }
}

impl Storage for SegmentFiles {
    /// Fills the tail segment and seals it when full, so a batch may span
    /// segments: a full one is synced and sealed before the next is
    /// written, as sealing requires.
    fn append(&mut self, first: u64, batch: &[Vec<u8>]) -> Result<(), AuditError> {
        self.first = first;
        self.leaves.clear();
        self.leaves
            .extend(batch.iter().map(|payload| merkle::leaf_hash(payload)));
        let mut done = 0;
        while done < batch.len() {
            // Records still unsynced here filled the segment.
            if let Err(why) = self.make_durable() {
                self.shared.fail(why.clone());
                return Err(AuditError::Unavailable(why));
            }
            match self.write_next_chunk(&batch[done..]) {
                Ok(n) => done += n,
                Err(e) => {
                    self.keep_durable_part(done);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Syncs the records, then brings the derived files (offset index,
    /// stored hashes) up to them.
    fn sync(&mut self) -> Result<(), AuditError> {
        self.make_durable().map_err(AuditError::Unavailable)?;
        self.extend_tree()
    }

    /// Seals a full tail segment and tops the padding up when less than
    /// half a chunk is left, so that neither often sits on a batch's path.
    fn seal(&mut self) {
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
