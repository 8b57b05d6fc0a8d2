//! The tail segment's zero padding: extended a chunk at a time ahead of the
//! records, and given back when the disk is full.

use super::SegmentFiles;
use std::os::unix::fs::FileExt as _;

use std::time::{Duration, Instant};

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

impl SegmentFiles {
    /// Gives the padding's disk space back when the disk is full: the
    /// records fit in the padding, but the offset index and the stored
    /// hashes need space of their own, and failing them stops the log until
    /// a restart. Returns whether any space was given back.
    pub(super) fn give_back_padding(&mut self) -> bool {
        // Records written after the durable ones (their batch's sync has
        // not run yet) are kept: only the zeros after them go.
        let keep = self.write_end();
        if self.end <= keep || self.segment.set_len(keep).is_err() {
            return false;
        }
        tracing::warn!(
            bytes = self.end - keep,
            "audit log: the disk is full; gave the tail segment's padding back"
        );
        self.end = keep;
        self.pad_after = Some(Instant::now() + PAD_RETRY);
        true
    }

    /// Writes zeros after the tail segment's end so that at least
    /// `need` bytes and a chunk are padded past the records, and syncs them.
    /// On failure (a full disk) gives the space back and says so; the
    /// caller goes on with the padding that is left.
    pub(super) fn pad(&mut self, need: u64) {
        if self.pad_after.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let target = (self.write_end() + need + PAD_CHUNK).next_multiple_of(4096);
        let started = Instant::now();
        let mut at = self.end;
        let path = self.tail_path();
        let written = loop {
            if at >= target {
                break Ok(());
            }
            let n = (target - at).min(ZEROS.len() as u64) as usize;
            let zeros = match self.shared.faults.on_write() {
                Some(injected) => Err(injected),
                None => self.segment.write_all_at(&ZEROS[..n], at),
            };
            if let Err(e) = zeros {
                break Err(e);
            }
            at += n as u64;
        };
        if written.is_ok() {
            if let Err(e) = self.segment.sync_data() {
                // As for any failed fsync: the page cache can no longer be
                // trusted, the node must restart.
                self.shared
                    .fail(format!("fsync of {} failed: {e}", path.display()));
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
                    self.shared.fail(format!(
                        "cannot give back the padding of {} after {e}: {cut}",
                        path.display()
                    ));
                }
                self.pad_after = Some(Instant::now() + PAD_RETRY);
                tracing::warn!(segment = %path.display(), error = %e, "audit log: cannot pad the tail segment; appending without padding (slower fsyncs) until it can");
            }
        }
    }
}
