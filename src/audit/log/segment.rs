//! Segment files: append-only sequences of framed records.
//!
//! A frame is `len: u32 LE ‖ crc32(payload): u32 LE ‖ payload`. Segment `k`
//! holds entries `k·R .. (k+1)·R` (R records per segment) and is named by its
//! first index, so finding an entry needs no search. A sidecar `.idx` file
//! holds each record's byte offset (derived, rebuilt when it disagrees).
//!
//! The tail segment (the one the writer appends to) is padded with zeros
//! written ahead of the records, so that a batch overwrites blocks that
//! already exist and its `fdatasync` need not write the inode too. A run of
//! zeros from a frame boundary to the end of the file is therefore the clean
//! end of the records, not damage. Sealing a segment cuts the padding off,
//! so a sealed segment ends exactly where its last record ends.

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

/// Checks that segment `k` of `firsts` (from [`list`]) starts at entry
/// `k * rps`; otherwise the file to name and what is wrong with it. A name
/// on the grid past the expected one means the expected file is gone, so
/// that is the one named (and to restore); a name off the grid is a file
/// misnamed or from another log.
pub fn check_grid(dir: &Path, firsts: &[u64], rps: u64) -> Result<(), OffGrid> {
    for (k, first) in firsts.iter().enumerate() {
        let expected = k as u64 * rps;
        if *first == expected {
            continue;
        }
        let (path, what) = if *first > expected && *first % rps == 0 {
            (
                segment_path(dir, expected),
                format!(
                    "it is missing: it holds entries {expected}..{} (the next segment present starts at entry {first})",
                    expected + rps
                ),
            )
        } else {
            (
                segment_path(dir, *first),
                format!("its name says it starts at entry {first}, but segments start at multiples of {rps}: expected the segment starting at entry {expected}; it was misnamed or does not belong to this log"),
            )
        };
        return Err(OffGrid { at: k, path, what });
    }
    Ok(())
}

/// A segment out of place: segments `..at` are in order, then `path` is
/// missing or misnamed, as `what` says.
#[derive(Debug)]
pub struct OffGrid {
    /// How many segments, from the first, are in order.
    pub at: usize,
    /// The file missing or misnamed.
    pub path: PathBuf,
    /// What is wrong with it.
    pub what: String,
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
    /// What is wrong after `valid_len`, if anything. `None` with
    /// `valid_len < file_len` means zero padding after the records.
    pub problem: Option<Problem>,
}

impl Scan {
    /// Bytes of zero padding after the records (0 when there is a problem
    /// or the records end at the end of the file).
    pub fn padding(&self) -> u64 {
        match self.problem {
            None => self.file_len - self.valid_len,
            Some(_) => 0,
        }
    }

    /// What is wrong with this scan if it is of a sealed segment: sealing
    /// cuts the padding off, so padding there means the file was altered.
    pub fn sealed_padding(&self) -> Option<String> {
        (self.padding() > 0).then(|| {
            format!(
                "it ends with {} zero bytes after its last record (offset {}), but only the last segment may be padded (sealing cuts the padding off): the file was altered or damaged",
                self.padding(),
                self.valid_len
            )
        })
    }
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
///
/// A bad frame at `pos` is, in this order: the clean end of the records if
/// only zeros follow from `pos` (the tail's padding); damage if a valid
/// frame starts anywhere after it; else a torn tail (an interrupted write,
/// possibly followed by padding).
pub fn scan(path: &Path, mut payloads: impl FnMut(u64, &[u8])) -> io::Result<Scan> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let file_len = bytes.len() as u64;
    // Where the trailing run of zeros starts (the padding, if any).
    let zeros_from = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    let mut offsets = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        match check_frame(&bytes, pos) {
            Ok(payload) => {
                offsets.push(pos as u64);
                payloads(pos as u64, payload);
                pos += HEADER + payload.len();
            }
            Err(_) if pos >= zeros_from => {
                return Ok(Scan {
                    offsets,
                    valid_len: pos as u64,
                    file_len,
                    problem: None,
                });
            }
            Err(what) => {
                let problem = if valid_frame_after(&bytes, pos + 1, zeros_from) {
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
/// frame before it is damage in the middle, not an interrupted write. A
/// valid frame's length field is not zero, so none starts in the trailing
/// zeros (from `zeros_from` on): the padding is not searched.
fn valid_frame_after(bytes: &[u8], from: usize, zeros_from: usize) -> bool {
    let end = zeros_from.min(bytes.len().saturating_sub(HEADER - 1));
    (from..end).any(|pos| check_frame(bytes, pos).is_ok())
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

/// Opens the tail segment for positional writes (`write_all_at`): records
/// overwrite the padding at the records' end, not at the end of the file.
pub fn open_tail(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .open(path)
}

/// Opens a file for appending (the offset index). In append mode every
/// write lands at the current end of the file, so after a failed write is
/// cut off with `set_len`, the next write continues right there (no gap).
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

    #[test]
    fn the_grid_names_a_missing_segment_and_a_misnamed_one() {
        let dir = Path::new("/log");
        assert!(check_grid(dir, &[0, 4, 8], 4).is_ok());
        let missing = check_grid(dir, &[0, 8], 4).unwrap_err();
        assert_eq!((missing.at, missing.path), (1, segment_path(dir, 4)));
        assert!(
            missing.what.contains("missing: it holds entries 4..8"),
            "{}",
            missing.what
        );
        let first = check_grid(dir, &[4], 4).unwrap_err();
        assert_eq!((first.at, first.path), (0, segment_path(dir, 0)));
        let misnamed = check_grid(dir, &[0, 3], 4).unwrap_err();
        assert_eq!((misnamed.at, misnamed.path), (1, segment_path(dir, 3)));
        assert!(misnamed.what.contains("misnamed"), "{}", misnamed.what);
    }

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
        let mut garbled = bytes;
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

    fn padded(frames: &[&[u8]], tail: &[u8], zeros: usize) -> (tempfile::TempDir, PathBuf, u64) {
        let (dir, path, mut bytes) = write(frames);
        let records_end = bytes.len() as u64;
        bytes.extend_from_slice(tail);
        bytes.resize(bytes.len() + zeros, 0);
        std::fs::write(&path, &bytes).unwrap();
        (dir, path, records_end)
    }

    #[test]
    fn zero_padding_after_the_records_is_their_clean_end() {
        // Padding of any length, even shorter than a frame header.
        for zeros in [1, 3, HEADER, 4096, 64 * 1024] {
            let (_d, path, end) = padded(&[b"one", b"two", b"three"], &[], zeros);
            let scan = scan(&path, |_, _| {}).unwrap();
            assert_eq!(scan.problem, None, "{zeros} zeros");
            assert_eq!(scan.offsets, vec![0, 11, 22]);
            assert_eq!(scan.valid_len, end);
            assert_eq!(scan.file_len, end + zeros as u64);
            assert_eq!(scan.padding(), zeros as u64);
            assert!(scan.sealed_padding().unwrap().contains("zero bytes"));
        }
        // An empty tail segment that is all padding.
        let (_d, path, _) = padded(&[], &[], 4096);
        let scan = scan(&path, |_, _| {}).unwrap();
        assert_eq!((scan.problem, scan.valid_len), (None, 0));
        // Unpadded: nothing to say about a sealed segment.
        let (_d, path, _) = write(&[b"one"]);
        assert_eq!(scan_of(&path).sealed_padding(), None);
    }

    fn scan_of(path: &Path) -> Scan {
        scan(path, |_, _| {}).unwrap()
    }

    #[test]
    fn a_torn_write_inside_the_padding_is_a_torn_tail() {
        let mut extra = Vec::new();
        frame(b"four, never acknowledged", &mut extra);
        for cut in 1..extra.len() {
            let (_d, path, end) = padded(&[b"one", b"two", b"three"], &extra[..cut], 4096);
            let scan = scan_of(&path);
            assert_eq!(scan.problem, Some(Problem::TornTail), "cut at {cut}");
            assert_eq!(scan.valid_len, end);
            assert_eq!(scan.padding(), 0);
        }
        // A header whose payload never reached the disk (zeros instead).
        let (_d, path, end) = padded(&[b"one"], &extra[..HEADER], 4096);
        assert_eq!(scan_of(&path).problem, Some(Problem::TornTail));
        assert_eq!(scan_of(&path).valid_len, end);
    }

    #[test]
    fn damage_before_valid_records_stays_damage_with_padding_after() {
        let (_d, path, _) = padded(&[b"one", b"two", b"three"], &[], 4096);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[HEADER + 1] ^= 0x01; // inside "one"
        std::fs::write(&path, &bytes).unwrap();
        let scan = scan_of(&path);
        assert!(
            matches!(scan.problem, Some(Problem::Damage { ref what }) if what.contains("offset 0")),
            "{scan:?}"
        );
        // Pages written out of order by a crash: zeros, a valid frame, zeros.
        // The rule is unchanged: a valid frame after a bad one is damage.
        let mut later = vec![0u8; 512];
        frame(b"a later record", &mut later);
        let (_d, path, end) = padded(&[b"one"], &later, 4096);
        let scan = scan_of(&path);
        assert!(
            matches!(scan.problem, Some(Problem::Damage { .. })),
            "{scan:?}"
        );
        assert_eq!(scan.valid_len, end);
    }

    proptest::proptest! {
        /// The fuzz target's invariants (`fuzz/fuzz_targets/audit_segment.rs`)
        /// on arbitrary bytes, mostly zeros with a real frame in them: the
        /// records frame back into the bytes before `valid_len`, and there is
        /// a problem iff something other than zeros follows.
        #[test]
        fn any_bytes_scan_to_records_then_zeros_or_a_problem(
            noise in proptest::collection::vec(proptest::prop_oneof![3 => proptest::strategy::Just(0u8), 1 => proptest::prelude::any::<u8>()], 0..200),
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..40),
            at in 0usize..200,
        ) {
            let mut bytes = noise;
            let mut framed = Vec::new();
            frame(&payload, &mut framed);
            let at = at.min(bytes.len());
            bytes.splice(at..at, framed);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("s.log");
            std::fs::write(&path, &bytes).unwrap();
            let mut again = Vec::new();
            let scan = scan(&path, |_, p| frame(p, &mut again)).unwrap();
            proptest::prop_assert_eq!(&again[..], &bytes[..scan.valid_len as usize]);
            let rest = &bytes[scan.valid_len as usize..];
            proptest::prop_assert_eq!(scan.problem.is_none(), rest.iter().all(|b| *b == 0));
            proptest::prop_assert_eq!(scan.padding(), if scan.problem.is_none() { rest.len() as u64 } else { 0 });
        }

        /// Any records, then any prefix of one more frame, then any padding:
        /// the scan keeps every complete record and calls the rest clean
        /// padding exactly when it is all zeros, else a torn tail.
        #[test]
        fn padded_tails_scan_to_their_records(
            payloads in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 1..64), 0..8),
            last in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..64),
            cut in 0usize..80,
            zeros in 0usize..300,
        ) {
            let refs: Vec<&[u8]> = payloads.iter().map(|p| p.as_slice()).collect();
            let mut extra = Vec::new();
            frame(&last, &mut extra);
            let cut = cut.min(extra.len());
            let (_d, path, end) = padded(&refs, &extra[..cut], zeros);
            let scan = scan_of(&path);
            let written_is_zero = extra[..cut].iter().all(|b| *b == 0);
            let rest_is_zero = extra[cut..].iter().all(|b| *b == 0);
            if written_is_zero {
                proptest::prop_assert_eq!(scan.problem, None);
                proptest::prop_assert_eq!(scan.offsets.len(), payloads.len());
                proptest::prop_assert_eq!(scan.valid_len, end);
            } else if rest_is_zero && zeros >= extra.len() - cut {
                // The zeros complete the frame: it is the same bytes.
                proptest::prop_assert_eq!(scan.problem, None);
                proptest::prop_assert_eq!(scan.offsets.len(), payloads.len() + 1);
            } else {
                proptest::prop_assert_eq!(scan.problem, Some(Problem::TornTail));
                proptest::prop_assert_eq!(scan.offsets.len(), payloads.len());
                proptest::prop_assert_eq!(scan.valid_len, end);
            }
            proptest::prop_assert_eq!(scan.file_len, end + (cut + zeros) as u64);
        }
    }
}
