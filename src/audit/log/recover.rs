//! Recovery when the log opens: its layout, the segments (a torn tail is
//! cut), the stored hashes (rebuilt where missing) and the last signed
//! checkpoint, which the recovered log must still match.

use super::hashes::{self, Cache, HashFile};
use super::segment::{self, Problem};
use super::{read_entry, write_durable, SignedCheckpoint, FORMAT_FILE};
use crate::audit::merkle::{self, HashReader};
use crate::audit::note::{open_note, Checkpoint, NoteVerifier};
use crate::audit::AuditError;
use std::fs::File;
use std::path::Path;

/// Reads the layout of an existing log, or records it for a new one; a log
/// keeps the segment size it was created with.
pub(super) fn layout(dir: &Path, wanted: u64) -> Result<u64, AuditError> {
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
            let existing = segment::list(dir).map_err(|e| AuditError::io("list", dir, e))?;
            if !existing.is_empty() || dir.join("checkpoints.log").exists() {
                return Err(AuditError::Damaged {
                    segment: path,
                    what: "it is missing but the directory holds a log; restore it from the archive or a backup (it says `records_per_segment N`, 65536 unless the log was made by a test)".into(),
                });
            }
            let text = format!("jisr audit log v1\nrecords_per_segment {wanted}\n");
            write_durable(dir, &path, text.as_bytes())?;
            Ok(wanted)
        }
        Err(e) => Err(AuditError::io("read", &path, e)),
    }
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

/// What reading the segments found, and what start-up will change once it
/// has decided to go on: nothing is changed while reading.
#[derive(Debug)]
pub(super) struct Segments {
    /// Entries in the segments.
    pub(super) size: u64,
    /// The tail segment, as it will be once its torn write is cut.
    pub(super) tail: Tail,
    /// The tail's length on disk when it ends in an interrupted write.
    torn: Option<u64>,
    /// Offset indexes (derived) to write: each segment's path and offsets.
    indexes: Vec<(u64, Vec<u64>)>,
}

/// Checks the segments without changing them. Zero padding after the
/// tail's records is kept as it is: the writer continues over it.
pub(super) fn read_segments(dir: &Path, rps: u64) -> Result<Segments, AuditError> {
    let firsts = segment::list(dir).map_err(|e| AuditError::io("list", dir, e))?;
    check_contiguous(dir, &firsts, rps)?;
    let Some((&last, sealed)) = firsts.split_last() else {
        return Ok(Segments {
            size: 0,
            tail: Tail {
                first: 0,
                records: 0,
                len: 0,
            },
            torn: None,
            indexes: Vec::new(),
        });
    };
    let mut indexes = Vec::new();
    for &first in sealed {
        if let Some(offsets) = check_sealed(dir, first, rps)? {
            indexes.push((first, offsets));
        }
    }
    let (tail, torn, offsets) = read_tail(dir, last, rps)?;
    indexes.push((last, offsets));
    Ok(Segments {
        size: last + tail.records,
        tail,
        torn,
        indexes,
    })
}

impl Segments {
    /// Once start-up has decided to go on: copies a torn tail aside, then
    /// cuts it; writes the offset indexes that disagree with the segments
    /// (moving a wrong one aside first, so nothing is lost).
    pub(super) fn repair(&self, dir: &Path) -> Result<(), AuditError> {
        if let Some(file_len) = self.torn {
            let path = segment::segment_path(dir, self.tail.first);
            let aside = super::aside::copy(&path, "torn")?;
            tracing::warn!(
                segment = %path.display(),
                offset = self.tail.len,
                dropped_bytes = file_len - self.tail.len,
                copy = %aside.display(),
                "audit log: cutting an interrupted write off the end of the log (never acknowledged: no stored hash records it); the segment as it was is kept in the copy"
            );
            segment::truncate(&path, self.tail.len)
                .map_err(|e| AuditError::io("truncate", &path, e))?;
        }
        for (first, offsets) in &self.indexes {
            write_index(&segment::index_path(dir, *first), offsets)?;
        }
        Ok(())
    }
}

/// Writes a derived offset index; one whose content is not a prefix of the
/// right one (altered rather than behind) is moved aside first.
fn write_index(path: &Path, offsets: &[u64]) -> Result<(), AuditError> {
    let mut bytes = Vec::with_capacity(offsets.len() * 8);
    for offset in offsets {
        bytes.extend_from_slice(&offset.to_le_bytes());
    }
    match std::fs::read(path) {
        Ok(have) if have == bytes => return Ok(()),
        Ok(have) if !bytes.starts_with(&have) => {
            let aside = super::aside::rename(path, "damaged")?;
            tracing::warn!(index = %path.display(), copy = %aside.display(), "audit log: rebuilding an offset index that disagrees with its segment; the old one is kept aside");
        }
        _ => {}
    }
    std::fs::write(path, bytes).map_err(|e| AuditError::io("write", path, e))
}

/// Segment `k` must start at entry `k * rps`: a gap is a missing segment.
fn check_contiguous(dir: &Path, firsts: &[u64], rps: u64) -> Result<(), AuditError> {
    segment::check_grid(dir, firsts, rps).map_err(|off| AuditError::Damaged {
        segment: off.path,
        what: off.what,
    })
}

/// Scans the last segment: its records, and where an interrupted write
/// at its end starts (cut only by [`Segments::repair`]).
fn read_tail(dir: &Path, last: u64, rps: u64) -> Result<(Tail, Option<u64>, Vec<u64>), AuditError> {
    let path = segment::segment_path(dir, last);
    let scan = segment::scan(&path, |_, _| {}).map_err(|e| AuditError::io("read", &path, e))?;
    let torn = match &scan.problem {
        None => None,
        Some(Problem::TornTail) => Some(scan.file_len),
        Some(Problem::Damage { what }) => {
            return Err(AuditError::Damaged {
                segment: path,
                what: what.clone(),
            });
        }
    };
    let records = scan.offsets.len() as u64;
    if records > rps {
        return Err(AuditError::Damaged {
            segment: path,
            what: format!("{records} records in a segment of {rps}"),
        });
    }
    let tail = Tail {
        first: last,
        records,
        len: scan.valid_len,
    };
    Ok((tail, torn, scan.offsets))
}

/// A sealed segment must hold exactly `rps` valid records; returns its
/// offsets when its index disagrees (to be rewritten).
fn check_sealed(dir: &Path, first: u64, rps: u64) -> Result<Option<Vec<u64>>, AuditError> {
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
                return Ok(None);
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
    Ok(Some(scan.offsets))
}

/// Brings the stored-hash file in line with the `size` records; returns the
/// writer's cache of the tree's right edge.
pub(super) fn rebuild_hashes(
    dir: &Path,
    rps: u64,
    size: u64,
    hashes: &HashFile,
) -> Result<Cache, AuditError> {
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

/// Writes the checkpoints' verifier key next to the log (derived from the
/// signing key, for `jisr audit verify`); one that differs is moved aside.
pub(super) fn write_verifier_key(dir: &Path, verifier: &NoteVerifier) -> Result<(), AuditError> {
    let path = dir.join("verifier.key");
    let text = format!("{}\n", verifier.to_text());
    match std::fs::read_to_string(&path) {
        Ok(have) if have == text => return Ok(()),
        Ok(_) => {
            let moved = super::aside::rename(&path, "replaced")?;
            tracing::warn!(key = %path.display(), copy = %moved.display(), "audit log: verifier.key differed from the signing key's verifier (which every checkpoint verifies with); rewritten, the old one kept aside");
        }
        Err(_) => {}
    }
    write_durable(dir, &path, text.as_bytes())
}

/// Loads the last checkpoint and checks the log against it; a log with no
/// checkpoint yet gets a fresh (unsigned until the writer signs) view.
pub(super) fn check_last_checkpoint(
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
