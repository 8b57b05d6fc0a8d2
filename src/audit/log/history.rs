//! Reading the checkpoint history (`checkpoints.log`, one framed signed
//! note per checkpoint, appended by the writer) a stretch at a time, for
//! the console's Log integrity page.
//!
//! A node signs up to one checkpoint a second, so the history grows to
//! millions of notes: a page must not read the whole file. [`History`]
//! keeps the offset of every [`STRIDE`]th note (learnt once, by reading
//! only frame headers, and extended as the file grows), so reading notes
//! `from..to` starts at most `STRIDE` headers before `from`.

use super::segment::{HEADER, MAX_RECORD};
use crate::audit::AuditError;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One offset kept every this many notes.
const STRIDE: u64 = 64;

/// The node's checkpoint history, with a sparse index of its notes.
#[derive(Debug)]
pub struct History {
    path: PathBuf,
    sparse: Mutex<Sparse>,
}

/// What is known of the file so far.
#[derive(Debug, Default)]
struct Sparse {
    /// The offset of note `k · STRIDE`, for each `k`.
    offsets: Vec<u64>,
    /// Complete notes seen.
    count: u64,
    /// Where the last complete note ends.
    end: u64,
}

impl History {
    /// The history in log directory `dir` (it may not exist yet).
    pub fn new(dir: &Path) -> Self {
        Self {
            path: dir.join("checkpoints.log"),
            sparse: Mutex::new(Sparse::default()),
        }
    }

    /// How many notes the history holds.
    pub fn count(&self) -> Result<u64, AuditError> {
        let Some(file) = self.open()? else {
            return Ok(0);
        };
        Ok(self.refresh(&file)?.0)
    }

    /// Notes `from..to` (oldest first), fewer when the history is shorter.
    pub fn notes(&self, from: u64, to: u64) -> Result<Vec<String>, AuditError> {
        let Some(file) = self.open()? else {
            return Ok(Vec::new());
        };
        let (count, start) = self.refresh(&file)?;
        let to = to.min(count);
        if from >= to {
            return Ok(Vec::new());
        }
        let Some(mut pos) = start(from) else {
            return Ok(Vec::new());
        };
        for _ in from / STRIDE * STRIDE..from {
            let (len, _) = header(&file, pos).map_err(|e| self.err("read", e))?;
            pos += HEADER as u64 + len;
        }
        let mut notes = Vec::with_capacity((to - from) as usize);
        for i in from..to {
            let (len, crc) = header(&file, pos).map_err(|e| self.err("read", e))?;
            let mut payload = vec![0u8; len as usize];
            file.read_exact_at(&mut payload, pos + HEADER as u64)
                .map_err(|e| self.err("read", e))?;
            if crc32fast::hash(&payload) != crc {
                return Err(self.damaged(i, "its checksum does not match"));
            }
            let note =
                String::from_utf8(payload).map_err(|_| self.damaged(i, "it is not UTF-8 text"))?;
            notes.push(note);
            pos += HEADER as u64 + len;
        }
        Ok(notes)
    }

    fn open(&self) -> Result<Option<File>, AuditError> {
        match File::open(&self.path) {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err("open", e)),
        }
    }

    /// Learns the notes appended since the last call; returns the count
    /// and a way to find the offset of note `k · STRIDE` at or before `i`.
    fn refresh(&self, file: &File) -> Result<(u64, impl Fn(u64) -> Option<u64>), AuditError> {
        let len = file.metadata().map_err(|e| self.err("read", e))?.len();
        let mut sparse = self.sparse.lock().unwrap_or_else(|e| e.into_inner());
        if len < sparse.end {
            // Only an accepted loss (at startup, offline) rewrites the
            // history; start over rather than trust old offsets.
            *sparse = Sparse::default();
        }
        // Stops at an incomplete note: the writer may be appending it.
        while sparse.end + HEADER as u64 <= len {
            let Ok((size, _)) = header(file, sparse.end) else {
                break;
            };
            if size == 0 || sparse.end + HEADER as u64 + size > len {
                break;
            }
            if sparse.count.is_multiple_of(STRIDE) {
                let at = sparse.end;
                sparse.offsets.push(at);
            }
            sparse.count += 1;
            sparse.end += HEADER as u64 + size;
        }
        let offsets = sparse.offsets.clone();
        Ok((sparse.count, move |i: u64| {
            offsets.get((i / STRIDE) as usize).copied()
        }))
    }

    fn err(&self, op: &'static str, e: io::Error) -> AuditError {
        AuditError::io(op, &self.path, e)
    }

    fn damaged(&self, i: u64, what: &str) -> AuditError {
        AuditError::Unavailable(format!(
            "checkpoint {i} of {} cannot be read: {what}; run `jisr audit verify` on the log",
            self.path.display()
        ))
    }
}

/// A frame's payload length and checksum.
fn header(file: &File, pos: u64) -> io::Result<(u64, u32)> {
    let mut h = [0u8; HEADER];
    file.read_exact_at(&mut h, pos)?;
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    if len > MAX_RECORD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a note length out of range",
        ));
    }
    Ok((len as u64, u32::from_le_bytes([h[4], h[5], h[6], h[7]])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::log::segment;

    fn append(path: &Path, notes: impl Iterator<Item = String>) {
        use std::io::Write as _;
        let mut bytes = Vec::new();
        for note in notes {
            segment::frame(note.as_bytes(), &mut bytes);
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(&bytes).unwrap();
    }

    #[test]
    fn reads_any_stretch_as_the_history_grows() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::new(dir.path());
        assert_eq!(history.count().unwrap(), 0);
        let path = dir.path().join("checkpoints.log");
        append(&path, (0..150).map(|i| format!("note {i}\n")));
        assert_eq!(history.count().unwrap(), 150);
        let read = history.notes(60, 70).unwrap();
        assert_eq!(read.first().unwrap(), "note 60\n");
        assert_eq!(read.len(), 10);
        append(&path, (150..300).map(|i| format!("note {i}\n")));
        let tail = history.notes(280, 400).unwrap();
        assert_eq!(tail.len(), 20);
        assert_eq!(tail.last().unwrap(), "note 299\n");
        assert_eq!(history.notes(0, 1).unwrap(), vec!["note 0\n".to_owned()]);

        // A note still being written is not counted yet.
        let mut partial = Vec::new();
        segment::frame(b"note 300\n", &mut partial);
        let f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut &f, &partial[..10]).unwrap();
        assert_eq!(history.count().unwrap(), 300);
    }

    #[test]
    fn an_altered_note_is_an_error_not_a_wrong_answer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoints.log");
        append(&path, (0..3).map(|i| format!("note {i}\n")));
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let err = History::new(dir.path()).notes(0, 3).unwrap_err();
        assert!(err.to_string().contains("checkpoint 2"), "{err}");
    }
}
