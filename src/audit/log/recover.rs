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

/// Checks the segments and truncates a torn tail. Zero padding after the
/// tail's records is kept as it is: the writer continues over it. Returns
/// the number of entries and the tail segment.
pub(super) fn recover_segments(dir: &Path, rps: u64) -> Result<(u64, Tail), AuditError> {
    let firsts = segment::list(dir).map_err(|e| AuditError::io("list", dir, e))?;
    check_contiguous(dir, &firsts, rps)?;
    let Some((&last, sealed)) = firsts.split_last() else {
        return Ok((
            0,
            Tail {
                first: 0,
                records: 0,
                len: 0,
            },
        ));
    };
    for &first in sealed {
        check_sealed(dir, first, rps)?;
    }
    let tail = recover_tail(dir, last, rps)?;
    Ok((last + tail.records, tail))
}

/// Segment `k` must start at entry `k * rps`: a gap is a missing segment.
fn check_contiguous(dir: &Path, firsts: &[u64], rps: u64) -> Result<(), AuditError> {
    for (k, first) in firsts.iter().enumerate() {
        if *first != k as u64 * rps {
            return Err(AuditError::Damaged {
                segment: segment::segment_path(dir, *first),
                what: format!("expected the segment starting at entry {} here; a segment is missing or misnamed", k as u64 * rps),
            });
        }
    }
    Ok(())
}

/// Scans the last segment, cuts a torn write off its end and rewrites its
/// index.
fn recover_tail(dir: &Path, last: u64, rps: u64) -> Result<Tail, AuditError> {
    let path = segment::segment_path(dir, last);
    let scan = segment::scan(&path, |_, _| {}).map_err(|e| AuditError::io("read", &path, e))?;
    match &scan.problem {
        None => {}
        Some(Problem::TornTail) => {
            tracing::warn!(
                segment = %path.display(),
                offset = scan.valid_len,
                dropped_bytes = scan.file_len - scan.valid_len,
                "audit log: truncating an interrupted write at the end of the log (those entries were never acknowledged)"
            );
            segment::truncate(&path, scan.valid_len)
                .map_err(|e| AuditError::io("truncate", &path, e))?;
        }
        Some(Problem::Damage { what }) => {
            return Err(AuditError::Damaged {
                segment: path,
                what: what.clone(),
            });
        }
    }
    let records = scan.offsets.len() as u64;
    if records > rps {
        return Err(AuditError::Damaged {
            segment: path,
            what: format!("{records} records in a segment of {rps}"),
        });
    }
    let idx = segment::index_path(dir, last);
    segment::write_index(&idx, &scan.offsets).map_err(|e| AuditError::io("write", &idx, e))?;
    Ok(Tail {
        first: last,
        records,
        len: scan.valid_len,
    })
}

/// A sealed segment must hold exactly `rps` valid records; its index is
/// rebuilt if it disagrees.
fn check_sealed(dir: &Path, first: u64, rps: u64) -> Result<(), AuditError> {
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
                return Ok(());
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
    segment::write_index(&idx, &scan.offsets).map_err(|e| AuditError::io("write", &idx, e))
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
