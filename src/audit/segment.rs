//! Segment files: append-only sequences of framed records.
//!
//! A frame is `len: u32 LE ‖ crc32(payload): u32 LE ‖ payload`. Segment `k`
//! holds entries `k·R .. (k+1)·R` (R records per segment) and is named by its
//! first index, so finding an entry needs no search. A sidecar `.idx` file
//! holds each record's byte offset (derived, rebuilt when it disagrees).

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Frame header length.
pub const HEADER: usize = 8;
/// Largest record accepted; a larger length field means damage.
pub const MAX_RECORD: usize = 1 << 20;

/// Frames a record.
pub fn frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// The path of the segment starting at `first`.
pub fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.log"))
}

/// The path of a segment's offset index.
pub fn index_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.idx"))
}

/// The first indexes of the segments present in `dir`, sorted.
pub fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut firsts = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".log") {
            if stem.len() == 20 {
                if let Ok(first) = stem.parse::<u64>() {
                    firsts.push(first);
                }
            }
        }
    }
    firsts.sort_unstable();
    Ok(firsts)
}

/// What scanning a segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// Byte offset of each valid record, in order.
    pub offsets: Vec<u64>,
    /// Where the valid records end.
    pub valid_len: u64,
    /// The file's length.
    pub file_len: u64,
    /// What is wrong after `valid_len`, if anything.
    pub problem: Option<Problem>,
}

/// A bad frame found by a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The file ends inside the last frame, or the last frame's checksum
    /// fails and nothing valid follows: an interrupted write.
    TornTail,
    /// A bad frame with valid data after it, or a bad frame in a sealed
    /// segment: the file was damaged or altered.
    Damage {
        /// What is wrong.
        what: String,
    },
}

/// Reads a whole segment and checks every frame. `payloads` receives each
/// valid payload (for rebuilding derived data and for `verify`).
pub fn scan(path: &Path, mut payloads: impl FnMut(u64, &[u8])) -> io::Result<Scan> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let file_len = bytes.len() as u64;
    let mut offsets = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        match check_frame(&bytes, pos) {
            Ok(payload) => {
                offsets.push(pos as u64);
                payloads(pos as u64, payload);
                pos += HEADER + payload.len();
            }
            Err(what) => {
                let problem = if valid_frame_after(&bytes, pos + 1) {
                    Problem::Damage {
                        what: format!("{what} at offset {pos}, with valid records after it"),
                    }
                } else {
                    Problem::TornTail
                };
                return Ok(Scan {
                    offsets,
                    valid_len: pos as u64,
                    file_len,
                    problem: Some(problem),
                });
            }
        }
    }
    Ok(Scan {
        offsets,
        valid_len: file_len,
        file_len,
        problem: None,
    })
}

/// The payload of the frame at `pos`, or what is wrong with it.
fn check_frame(bytes: &[u8], pos: usize) -> Result<&[u8], String> {
    let header = bytes
        .get(pos..pos + HEADER)
        .ok_or_else(|| "an incomplete frame header".to_owned())?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_RECORD {
        return Err(format!(
            "a frame length of {len} bytes (more than {MAX_RECORD})"
        ));
    }
    if len == 0 {
        // Records are never empty; zeroed blocks left by a crash look like this.
        return Err("an empty frame".to_owned());
    }
    let payload = bytes
        .get(pos + HEADER..pos + HEADER + len)
        .ok_or_else(|| "a frame cut short".to_owned())?;
    if crc32fast::hash(payload) != crc {
        return Err("a checksum mismatch".to_owned());
    }
    Ok(payload)
}

/// Whether any offset from `from` on starts a valid frame: if so, the bad
/// frame before it is damage in the middle, not an interrupted write.
fn valid_frame_after(bytes: &[u8], from: usize) -> bool {
    (from..bytes.len().saturating_sub(HEADER - 1)).any(|pos| check_frame(bytes, pos).is_ok())
}

/// Writes the offsets of a segment's records as its `.idx` file.
pub fn write_index(path: &Path, offsets: &[u64]) -> io::Result<()> {
    let mut bytes = Vec::with_capacity(offsets.len() * 8);
    for offset in offsets {
        bytes.extend_from_slice(&offset.to_le_bytes());
    }
    std::fs::write(path, bytes)
}

/// Reads record `slot` of a segment through its index.
pub fn read_record(segment: &File, index: &File, slot: u64) -> io::Result<Vec<u8>> {
    let mut offset = [0u8; 8];
    index.read_exact_at(&mut offset, slot * 8)?;
    let offset = u64::from_le_bytes(offset);
    let mut header = [0u8; HEADER];
    segment.read_exact_at(&mut header, offset)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_RECORD {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "record length out of range",
        ));
    }
    let mut payload = vec![0u8; len];
    segment.read_exact_at(&mut payload, offset + HEADER as u64)?;
    if crc32fast::hash(&payload) != crc {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "record checksum mismatch",
        ));
    }
    Ok(payload)
}

/// Truncates a file to `len` and makes that durable.
pub fn truncate(path: &Path, len: u64) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(len)?;
    file.sync_all()
}

/// Opens a segment for appending. In append mode every write lands at the
/// current end of the file, so after a failed write is cut off with
/// `set_len`, the next write continues right there (no gap).
pub fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
}

/// Makes a directory entry (a new or renamed file) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(frames: &[&[u8]]) -> (tempfile::TempDir, PathBuf, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = segment_path(dir.path(), 0);
        let mut bytes = Vec::new();
        for f in frames {
            frame(f, &mut bytes);
        }
        std::fs::write(&path, &bytes).unwrap();
        (dir, path, bytes)
    }

    #[test]
    fn a_clean_segment_scans_whole() {
        let (_d, path, bytes) = write(&[b"one", b"two", b"three"]);
        let mut seen = Vec::new();
        let scan = scan(&path, |_, p| seen.push(p.to_vec())).unwrap();
        assert_eq!(scan.offsets, vec![0, 11, 22]);
        assert_eq!(scan.valid_len, bytes.len() as u64);
        assert_eq!(scan.problem, None);
        assert_eq!(
            seen,
            vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
    }

    #[test]
    fn a_cut_last_frame_is_a_torn_tail() {
        let (_d, path, bytes) = write(&[b"one", b"two", b"three"]);
        for cut in 23..bytes.len() {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let scan = scan(&path, |_, _| {}).unwrap();
            assert_eq!(scan.problem, Some(Problem::TornTail), "cut at {cut}");
            assert_eq!(scan.valid_len, 22);
        }
        // A garbled last frame is torn too.
        let mut garbled = bytes.clone();
        *garbled.last_mut().unwrap() ^= 0xff;
        std::fs::write(&path, &garbled).unwrap();
        assert_eq!(
            scan(&path, |_, _| {}).unwrap().problem,
            Some(Problem::TornTail)
        );
    }

    #[test]
    fn damage_before_valid_records_is_not_a_torn_tail() {
        let (_d, path, mut bytes) = write(&[b"one", b"two", b"three"]);
        bytes[HEADER + 1] ^= 0x01; // inside "one"
        std::fs::write(&path, &bytes).unwrap();
        let scan = scan(&path, |_, _| {}).unwrap();
        assert!(
            matches!(scan.problem, Some(Problem::Damage { ref what }) if what.contains("offset 0")),
            "{scan:?}"
        );
        assert_eq!(scan.valid_len, 0);
    }

    #[test]
    fn records_read_back_through_the_index() {
        let (dir, path, _) = write(&[b"alpha", b"beta"]);
        let scan = scan(&path, |_, _| {}).unwrap();
        let idx = index_path(dir.path(), 0);
        write_index(&idx, &scan.offsets).unwrap();
        let (seg, idx) = (File::open(&path).unwrap(), File::open(&idx).unwrap());
        assert_eq!(read_record(&seg, &idx, 1).unwrap(), b"beta");
        assert!(read_record(&seg, &idx, 2).is_err());
    }
}
