//! The writer thread: group commit.
//!
//! One thread owns the files. It takes every append waiting in the queue,
//! writes them in one go, fsyncs once, extends the Merkle tree and only then
//! acknowledges the whole batch. While entries arrive it signs a checkpoint
//! at least every interval. After a failed fsync it stops taking entries for
//! good: the page cache can no longer be trusted, the node must restart.
//!
//! The tail segment is kept padded with zeros ahead of the records (see
//! [`PAD_CHUNK`]): a batch overwrites blocks that are already allocated and
//! written, so its `fdatasync` does not also write the inode.

use super::hashes::Cache;
use super::segment;
use super::{write_durable, Shared, SignedCheckpoint, Tail};
use crate::audit::merkle;
use crate::audit::note::{Checkpoint, NoteSigner};
use crate::audit::AuditError;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Most entries written per fsync.
const MAX_BATCH: usize = 4096;

/// How much zero padding the writer adds to the tail segment at a time. An
/// entry takes about 300–700 bytes, so 4 MiB is roughly 6,000–14,000
/// entries: one extension (writing 4 MiB and an fsync, some milliseconds)
/// every few seconds even at 2,000+ entries/s, and at most 4 MiB of disk
/// held ahead per node. Smaller chunks extend more often; larger ones hold
/// more disk and make each extension a longer pause for the batch behind it.
pub(crate) const PAD_CHUNK: u64 = 4 << 20;

/// After a failed extension (full disk), how long batches go on without
/// trying again: each try writes zeros until the disk is full and then
/// gives the space back, which is too costly to repeat on every batch.
const PAD_RETRY: Duration = Duration::from_secs(1);

/// Zeros to write padding from, without allocating a chunk each time.
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// A message to the writer.
#[derive(Debug)]
pub(super) enum Request {
    /// Append one encoded record; answer with its index once durable.
    Append {
        /// The encoded record.
        payload: Vec<u8>,
        /// Where the answer goes.
        ack: oneshot::Sender<Result<u64, AuditError>>,
    },
    /// Flush, sign a final checkpoint and stop.
    Close {
        /// Answered when done.
        ack: oneshot::Sender<()>,
    },
}

/// The writer's files and state.
pub(super) struct Writer {
    shared: Arc<Shared>,
    signer: NoteSigner,
    interval: Duration,
    segment: File,
    index: File,
    tail: Tail,
    /// The tail segment's length on disk: records up to `tail.len`, zero
    /// padding after.
    end: u64,
    /// No padding is tried before this instant (after a failed extension).
    pad_after: Option<Instant>,
    cache: Cache,
    last_checkpoint: Instant,
}

impl Writer {
    pub(super) fn new(
        shared: Arc<Shared>,
        signer: NoteSigner,
        interval: Duration,
        tail: Tail,
        cache: Cache,
    ) -> Result<Self, AuditError> {
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
            signer,
            interval,
            segment,
            index,
            tail,
            end,
            pad_after: None,
            cache,
            last_checkpoint: Instant::now(),
        })
    }

    fn size(&self) -> u64 {
        self.shared.size.load(Ordering::Acquire)
    }

    fn fail(&self, why: String) {
        tracing::error!(reason = %why, "audit log stopped taking entries; restart the node once the cause is fixed");
        *self
            .shared
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(why);
    }

    fn failed(&self) -> Option<String> {
        self.shared
            .failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Writes and fsyncs a batch; returns the index of its first entry.
    fn commit(&mut self, payloads: &[Vec<u8>]) -> Result<u64, AuditError> {
        if let Some(why) = self.failed() {
            return Err(AuditError::Unavailable(why));
        }
        let first = self.size();
        let rps = self.shared.records_per_segment;
        let mut done = 0;
        while done < payloads.len() {
            if self.tail.records == rps {
                self.seal()?;
            }
            let room = (rps - self.tail.records) as usize;
            let chunk = &payloads[done..payloads.len().min(done + room)];
            self.write_chunk(chunk)?;
            done += chunk.len();
        }
        self.extend_tree(first, payloads)?;
        self.shared
            .size
            .store(first + payloads.len() as u64, Ordering::Release);
        let mut stats = self.shared.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.batches += 1;
        stats.entries += payloads.len() as u64;
        let _ = stats.batch_sizes.record(payloads.len() as u64);
        Ok(first)
    }

    /// Writes records at the records' end of the tail segment (over its
    /// padding) and makes them durable.
    fn write_chunk(&mut self, chunk: &[Vec<u8>]) -> Result<(), AuditError> {
        let path = segment::segment_path(&self.shared.dir, self.tail.first);
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
        if let Err(e) = self.segment.write_all_at(&bytes, self.tail.len) {
            // Nothing of this batch was acknowledged: cut it off with the
            // padding after it and go on (a full disk may free up). Cutting
            // (rather than leaving the partial frames to be overwritten)
            // keeps a stale frame of this batch from surviving after the
            // shorter next one, where a scan would take it for damage.
            self.undo_write(&path, &e);
            return Err(AuditError::Unavailable(format!(
                "writing {} failed: {e}",
                path.display()
            )));
        }
        self.end = self.end.max(records_end);
        let synced = Instant::now();
        if let Err(e) = self.segment.sync_data() {
            let why = format!("fsync of {} failed: {e}", path.display());
            self.fail(why.clone());
            return Err(AuditError::Unavailable(why));
        }
        {
            let mut stats = self.shared.stats.lock().unwrap_or_else(|e| e.into_inner());
            let _ = stats
                .fsync_micros
                .record((synced.elapsed().as_micros() as u64).max(1));
            stats.segment_bytes += bytes.len() as u64;
        }
        self.tail.len = records_end;
        self.tail.records += chunk.len() as u64;
        let idx_before = self.tail.records.saturating_sub(chunk.len() as u64) * 8;
        let mut written = self.index.write_all(&offsets);
        if written.is_err() && self.give_back_padding() {
            // A full disk: the padding's space lets the index go on.
            let _ = self.index.set_len(idx_before);
            written = self.index.write_all(&offsets);
        }
        if let Err(e) = written {
            let _ = self.index.set_len(idx_before);
            // The index is derived; the records are durable. Restart rebuilds it.
            self.fail(format!("writing the offset index failed: {e}"));
        }
        Ok(())
    }

    /// Gives the padding's disk space back when the disk is full: the
    /// records fit in the padding, but the offset index and the stored
    /// hashes need space of their own, and failing them stops the log until
    /// a restart. Returns whether any space was given back.
    fn give_back_padding(&mut self) -> bool {
        if self.end <= self.tail.len || self.segment.set_len(self.tail.len).is_err() {
            return false;
        }
        tracing::warn!(
            bytes = self.end - self.tail.len,
            "audit log: the disk is full; gave the tail segment's padding back"
        );
        self.end = self.tail.len;
        self.pad_after = Some(Instant::now() + PAD_RETRY);
        true
    }

    /// Cuts the tail segment back to its records after a failed write.
    fn undo_write(&mut self, path: &std::path::Path, e: &std::io::Error) {
        let cut = self
            .segment
            .set_len(self.tail.len)
            .and_then(|()| self.segment.sync_all());
        match cut {
            Ok(()) => self.end = self.tail.len,
            Err(cut) => self.fail(format!(
                "cannot undo a failed write to {} ({e}): {cut}",
                path.display()
            )),
        }
    }

    /// Called between batches: seals a full tail segment and tops the
    /// padding up when less than half a chunk is left, so that neither
    /// often sits on a batch's path.
    fn prepare(&mut self) {
        if self.failed().is_some() {
            return;
        }
        if self.tail.records == self.shared.records_per_segment {
            // Full: seal it now rather than pad it (sealing would cut the
            // padding off again); a failure is retried by the next batch.
            if let Err(e) = self.seal() {
                tracing::warn!(error = %e, "audit log: cannot seal the full tail segment yet; the next batch retries");
                return;
            }
        }
        if self.end - self.tail.len < PAD_CHUNK / 2 {
            self.pad(0);
        }
    }

    /// Writes zeros after the tail segment's end so that at least
    /// `need` bytes and a chunk are padded past the records, and syncs them.
    /// On failure (a full disk) gives the space back and says so; the
    /// caller goes on with the padding that is left.
    fn pad(&mut self, need: u64) {
        if self.pad_after.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let target = (self.tail.len + need + PAD_CHUNK).next_multiple_of(4096);
        let started = Instant::now();
        let mut at = self.end;
        let path = segment::segment_path(&self.shared.dir, self.tail.first);
        let written = loop {
            if at >= target {
                break Ok(());
            }
            let n = (target - at).min(ZEROS.len() as u64) as usize;
            if let Err(e) = self.segment.write_all_at(&ZEROS[..n], at) {
                break Err(e);
            }
            at += n as u64;
        };
        if written.is_ok() {
            if let Err(e) = self.segment.sync_data() {
                // As for any failed fsync: the page cache can no longer be
                // trusted, the node must restart.
                self.fail(format!("fsync of {} failed: {e}", path.display()));
                return;
            }
        }
        match written {
            Ok(()) => {
                tracing::debug!(segment = %path.display(), bytes = target - self.end, micros = started.elapsed().as_micros() as u64, "audit log: padded the tail segment");
                self.end = target;
                self.pad_after = None;
            }
            Err(e) => {
                // Give the space back: other files (the offset index, the
                // stored hashes, checkpoints) need it more than padding.
                if let Err(cut) = self.segment.set_len(self.end) {
                    self.fail(format!(
                        "cannot give back the padding of {} after {e}: {cut}",
                        path.display()
                    ));
                }
                self.pad_after = Some(Instant::now() + PAD_RETRY);
                tracing::warn!(segment = %path.display(), error = %e, "audit log: cannot pad the tail segment; appending without padding (slower fsyncs) until it can");
            }
        }
    }

    /// Closes the full tail segment and starts the next one.
    fn seal(&mut self) -> Result<(), AuditError> {
        let seg_path = segment::segment_path(&self.shared.dir, self.tail.first);
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
            self.fail(why.clone());
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

    fn extend_tree(&mut self, first: u64, payloads: &[Vec<u8>]) -> Result<(), AuditError> {
        let mut new = Vec::with_capacity(payloads.len() * 2);
        for (i, payload) in payloads.iter().enumerate() {
            let n = first + i as u64;
            let stored = self
                .cache
                .add_leaf(n, merkle::leaf_hash(payload), &self.shared.hashes)
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
        if let Err(e) = appended {
            // The records are durable; the stored hashes are derived. Stop
            // taking entries so proofs stay right; a restart rebuilds them.
            let why = format!("writing stored hashes failed: {e}");
            self.fail(why.clone());
            return Err(AuditError::Unavailable(why));
        }
        Ok(())
    }

    /// Signs and publishes a checkpoint of the current tree if it grew.
    fn checkpoint(&mut self) {
        let size = self.size();
        let current = self
            .shared
            .checkpoint
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if current.checkpoint.size == size && !current.note.is_empty() {
            return;
        }
        match self.sign(size) {
            Ok(signed) => {
                *self
                    .shared
                    .checkpoint
                    .write()
                    .unwrap_or_else(|e| e.into_inner()) = signed;
                self.last_checkpoint = Instant::now();
            }
            Err(e) => {
                // Retry at the next interval, not in a tight loop.
                self.last_checkpoint = Instant::now();
                tracing::error!(error = %e, "cannot publish an audit checkpoint; retrying at the next interval");
            }
        }
    }

    fn sign(&self, size: u64) -> Result<SignedCheckpoint, AuditError> {
        let root = merkle::tree_hash(size, &self.cache.over(&self.shared.hashes))
            .map_err(|e| AuditError::Proof(e.to_string()))?;
        let checkpoint = Checkpoint {
            origin: self.signer.name().to_owned(),
            size,
            root,
            extensions: Vec::new(),
        };
        let note = self
            .signer
            .sign(&checkpoint.to_text())
            .map_err(|e| AuditError::Proof(e.to_string()))?;
        let dir = &self.shared.dir;
        // History first: a published checkpoint is always in the history.
        let history = dir.join("checkpoints.log");
        let mut framed = Vec::new();
        segment::frame(note.as_bytes(), &mut framed);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&history)
            .map_err(|e| AuditError::io("open", &history, e))?;
        file.write_all(&framed)
            .map_err(|e| AuditError::io("write", &history, e))?;
        file.sync_data()
            .map_err(|e| AuditError::io("sync", &history, e))?;
        write_durable(dir, &dir.join("checkpoint"), note.as_bytes())?;
        Ok(SignedCheckpoint { checkpoint, note })
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

/// The writer thread's loop.
pub(super) fn run(mut writer: Writer, mut rx: mpsc::Receiver<Request>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            writer.fail(format!("cannot start the writer's runtime: {e}"));
            return;
        }
    };
    writer.checkpoint();
    writer.prepare();
    loop {
        let pending = writer
            .shared
            .checkpoint
            .read()
            .map(|c| c.checkpoint.size)
            .unwrap_or(0)
            < writer.size();
        let wait = pending.then(|| {
            writer
                .interval
                .saturating_sub(writer.last_checkpoint.elapsed())
        });
        let first = rt.block_on(async {
            match wait {
                Some(d) => tokio::time::timeout(d, rx.recv()).await.ok(),
                None => Some(rx.recv().await),
            }
        });
        let first = match first {
            None => {
                writer.checkpoint(); // the interval passed with entries unsigned
                continue;
            }
            Some(None) => break, // every sender is gone
            Some(Some(request)) => request,
        };
        let mut payloads = Vec::new();
        let mut acks = Vec::new();
        let mut close = None;
        let mut next = Some(first);
        while let Some(request) = next.take() {
            match request {
                Request::Append { payload, ack } => {
                    payloads.push(payload);
                    acks.push(ack);
                }
                Request::Close { ack } => {
                    close = Some(ack);
                    break;
                }
            }
            if payloads.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !payloads.is_empty() {
            match writer.commit(&payloads) {
                Ok(first) => {
                    for (i, ack) in acks.into_iter().enumerate() {
                        let _ = ack.send(Ok(first + i as u64));
                    }
                    // After the answers: appends that arrive meanwhile wait
                    // for the extension, but the batch just written did not.
                    writer.prepare();
                }
                Err(e) => {
                    let why = e.to_string();
                    for ack in acks {
                        let _ = ack.send(Err(AuditError::Unavailable(why.clone())));
                    }
                }
            }
        }
        if writer.last_checkpoint.elapsed() >= writer.interval {
            writer.checkpoint();
        }
        if let Some(ack) = close {
            writer.checkpoint();
            let _ = ack.send(());
            break;
        }
    }
    // Whatever is still queued cannot be written any more.
    rx.close();
    while let Ok(request) = rx.try_recv() {
        if let Request::Append { ack, .. } = request {
            let _ = ack.send(Err(AuditError::Unavailable(
                "the audit log is closed".into(),
            )));
        }
    }
}
