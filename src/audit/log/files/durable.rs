//! Making the tail segment's written records durable: the fsync itself
//! (a job the audit thread runs after each batch's write, or inline where
//! a segment fills), then what follows once it succeeded — the tail moves past the
//! records and the offset index gets their offsets.

use super::SegmentFiles;
use crate::audit::log::Shared;
use std::fs::File;
use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

/// Fsyncs the records of the tail segment `segment` (at `path`); an error
/// is a failed fsync, said as the log's failure. Counted in the writer's
/// fsync latency.
pub(super) fn fsync(segment: &File, shared: &Shared, path: &Path) -> Result<(), String> {
    let started = Instant::now();
    let synced = match shared.faults.on_fsync() {
        Some(injected) => Err(injected),
        None => segment.sync_data(),
    };
    if let Err(e) = synced {
        return Err(format!("fsync of {} failed: {e}", path.display()));
    }
    let mut stats = shared.stats.lock().unwrap_or_else(|e| e.into_inner());
    let _ = stats
        .fsync_micros
        .record((started.elapsed().as_micros() as u64).max(1));
    Ok(())
}

impl SegmentFiles {
    /// Syncs every unsynced record here, on the writer thread, and moves
    /// the tail past them: where a batch fills the segment, which must be
    /// durable whole before it is sealed. Nothing is in flight then.
    pub(super) fn make_durable_now(&mut self) -> Result<(), String> {
        if self.unsynced.is_empty() {
            return Ok(());
        }
        fsync(&self.segment, &self.shared, &self.tail_path())?;
        self.now_durable(self.unsynced.len());
        Ok(())
    }

    /// The first `chunks` unsynced chunks are durable: moves the tail past
    /// them and writes their offsets to the index.
    pub(super) fn now_durable(&mut self, chunks: usize) {
        for _ in 0..chunks {
            let Some(written) = self.unsynced.pop_front() else {
                return;
            };
            self.shared
                .stats
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .segment_bytes += written.bytes;
            self.tail.len = written.records_end;
            self.tail.records += written.records;
            self.index_records(&written.offsets);
        }
    }

    /// Appends durable records' offsets to the offset index.
    fn index_records(&mut self, offsets: &[u8]) {
        let idx_before = self.tail.records.saturating_sub(offsets.len() as u64 / 8) * 8;
        let mut indexed = self.index.write_all(offsets);
        if indexed.is_err() && self.give_back_padding() {
            // A full disk: the padding's space lets the index go on.
            let _ = self.index.set_len(idx_before);
            indexed = self.index.write_all(offsets);
        }
        if let Err(e) = indexed {
            let _ = self.index.set_len(idx_before);
            // The index is derived; the records are durable. Restart rebuilds it.
            self.shared
                .fail(format!("writing the offset index failed: {e}"));
        }
    }
}
