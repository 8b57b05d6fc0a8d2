//! One archive pass: copies what the archive directory misses from the log
//! directory. Every file is written as the crash-safety rule says
//! (temporary file, fsync, rename, fsync of the directory), except the
//! checkpoint history, which is appended and fsynced like the log's own and
//! rewritten whole (by rename) at the first pass after a start or a failed
//! append, so a crash leaves at most a cut frame there until then.

use super::{ArchiveStats, ARCHIVE_FILE};
use crate::audit::log::{segment, Shared, FORMAT_FILE};
use crate::audit::AuditError;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// The archiver's state between passes.
pub(super) struct Archiver {
    shared: Arc<Shared>,
    dir: PathBuf,
    stats: Arc<Mutex<ArchiveStats>>,
    /// The archive was checked to be this log's and holds its FORMAT,
    /// verifier key and marker.
    set_up: bool,
    /// Leading segments known to be in the archive.
    done: u64,
    /// Bytes of `checkpoints.log` known to be in the archive; `None` when
    /// it must be rewritten whole.
    history: Option<u64>,
    /// The `checkpoint` note last copied.
    latest: Vec<u8>,
}

impl Archiver {
    pub(super) fn new(shared: Arc<Shared>, dir: PathBuf, stats: Arc<Mutex<ArchiveStats>>) -> Self {
        Self {
            shared,
            dir,
            stats,
            set_up: false,
            done: 0,
            history: None,
            latest: Vec::new(),
        }
    }

    /// Copies what is missing; returns whether the archive caught up with
    /// every sealed segment and checkpoint. A failure is logged and counted.
    pub(super) fn pass(&mut self) -> bool {
        let result = self.copy_missing();
        let full = self.shared.size.load(Ordering::Acquire) / self.shared.records_per_segment;
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.lag_segments = full.saturating_sub(self.done);
        match result {
            Ok(()) => {
                stats.last_error = None;
                true
            }
            Err(e) => {
                stats.failures += 1;
                tracing::warn!(archive = %self.dir.display(), error = %e, lag_segments = stats.lag_segments,
                    "audit archive: copy failed; the log goes on, the copy is retried");
                stats.last_error = Some(e.to_string());
                false
            }
        }
    }

    fn copy_missing(&mut self) -> Result<(), AuditError> {
        if !self.set_up {
            self.set_up()?;
            self.set_up = true;
        }
        let src = self.shared.dir.clone();
        let firsts = segment::list(&src).map_err(|e| AuditError::io("list", &src, e))?;
        // Every segment but the last is sealed: the next one is created
        // only once its predecessor is cut and fsynced.
        let sealed = firsts.len().saturating_sub(1);
        for first in firsts.iter().take(sealed).skip(self.done as usize) {
            let seg = segment::segment_path(&src, *first);
            let idx = segment::index_path(&src, *first);
            // The index first: a segment present in the archive is whole.
            self.copy_file(&idx)?;
            if self.copy_file(&seg)? {
                self.stats
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .segments_copied += 1;
            }
            self.done += 1;
        }
        self.copy_checkpoints()
    }

    /// Checks that the archive is not another log's, then copies the small
    /// files that describe the log.
    fn set_up(&self) -> Result<(), AuditError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| AuditError::io("create", &self.dir, e))?;
        let key = format!("{}\n", self.shared.verifier.to_text());
        let theirs = self.dir.join("verifier.key");
        match std::fs::read_to_string(&theirs) {
            Ok(text) if text != key => {
                return Err(AuditError::Unavailable(format!(
                    "{} is the archive of another log (its verifier.key differs); give each node an archive_dir of its own",
                    self.dir.display()
                )))
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(AuditError::io("read", &theirs, e)),
        }
        let format = self.shared.dir.join(FORMAT_FILE);
        let format = std::fs::read(&format).map_err(|e| AuditError::io("read", &format, e))?;
        self.write(FORMAT_FILE, &format)?;
        self.write(
            ARCHIVE_FILE,
            b"an archive of a Jisr audit log: sealed segments and signed checkpoints, no tail segment\n",
        )?;
        self.write("verifier.key", key.as_bytes())
    }

    /// Copies the latest checkpoint and the history that holds it.
    fn copy_checkpoints(&mut self) -> Result<(), AuditError> {
        // Read the latest before the history: it is then in what is read.
        let path = self.shared.dir.join("checkpoint");
        let latest = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(AuditError::io("read", &path, e)),
        };
        self.copy_history()?;
        if latest != self.latest {
            self.write("checkpoint", &latest)?;
            self.latest = latest;
        }
        Ok(())
    }

    /// Appends the history's new whole frames to the archive's, or rewrites
    /// it whole after a start or a failed append.
    fn copy_history(&mut self) -> Result<(), AuditError> {
        let src = self.shared.dir.join("checkpoints.log");
        let file = File::open(&src).map_err(|e| AuditError::io("open", &src, e))?;
        let from = self.history.unwrap_or(0);
        let len = file
            .metadata()
            .map_err(|e| AuditError::io("read", &src, e))?
            .len();
        let mut bytes = vec![0; len.saturating_sub(from) as usize];
        file.read_exact_at(&mut bytes, from)
            .map_err(|e| AuditError::io("read", &src, e))?;
        // The writer may be appending a frame right now: whole ones only.
        bytes.truncate(whole_frames(&bytes));
        match self.history {
            None => self.write("checkpoints.log", &bytes)?,
            Some(_) if bytes.is_empty() => return Ok(()),
            Some(_) => {
                let dst = self.dir.join("checkpoints.log");
                let appended = OpenOptions::new()
                    .append(true)
                    .open(&dst)
                    .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_data()));
                if let Err(e) = appended {
                    self.history = None;
                    return Err(AuditError::io("append to", &dst, e));
                }
            }
        }
        self.history = Some(from + bytes.len() as u64);
        Ok(())
    }

    /// Copies `src` into the archive unless a copy of its length is there;
    /// returns whether it copied.
    fn copy_file(&self, src: &Path) -> Result<bool, AuditError> {
        let name = src.file_name().unwrap_or_default();
        let dst = self.dir.join(name);
        let len = |p: &Path| std::fs::metadata(p).map(|m| m.len());
        let have = len(src).map_err(|e| AuditError::io("read", src, e))?;
        if len(&dst).ok() == Some(have) {
            return Ok(false);
        }
        let tmp = temporary(&dst);
        std::fs::copy(src, &tmp).map_err(|e| AuditError::io("copy to", &tmp, e))?;
        self.commit(&tmp, &dst)?;
        Ok(true)
    }

    /// Writes `bytes` as the archive's file `name`.
    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), AuditError> {
        let dst = self.dir.join(name);
        let tmp = temporary(&dst);
        std::fs::write(&tmp, bytes).map_err(|e| AuditError::io("write", &tmp, e))?;
        self.commit(&tmp, &dst)
    }

    /// fsync, rename, fsync of the directory.
    fn commit(&self, tmp: &Path, dst: &Path) -> Result<(), AuditError> {
        File::open(tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| AuditError::io("sync", tmp, e))?;
        std::fs::rename(tmp, dst).map_err(|e| AuditError::io("rename", dst, e))?;
        segment::sync_dir(&self.dir).map_err(|e| AuditError::io("sync", &self.dir, e))
    }
}

/// `name.tmp` next to `path` (not `with_extension`: a segment and its index
/// share a stem).
fn temporary(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    path.with_file_name(name)
}

/// The length of the whole, checksummed frames at the start of `bytes`.
fn whole_frames(bytes: &[u8]) -> usize {
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + segment::HEADER) {
        let mut word = [0; 4];
        word.copy_from_slice(&header[..4]);
        let len = u32::from_le_bytes(word) as usize;
        word.copy_from_slice(&header[4..]);
        let end = at + segment::HEADER + len;
        match bytes.get(at + segment::HEADER..end) {
            Some(payload) if crc32fast::hash(payload) == u32::from_le_bytes(word) => at = end,
            _ => break,
        }
    }
    at
}
