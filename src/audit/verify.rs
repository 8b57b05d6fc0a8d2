//! Offline verification of a log directory (`jisr audit verify DIR`):
//! every frame's checksum, every record's encoding, the Merkle tree
//! recomputed from the records, every kept checkpoint's signature and its
//! root at its size (so every checkpoint is consistent with every other),
//! and the stored hashes entry by entry, to name the first entry that
//! differs from what was appended.

use super::log::hashes::HashFile;
use super::log::segment::{self, Problem};
use super::log::FORMAT_FILE;
use super::merkle::{self, Frontier, HashReader as _};
use super::note::{open_note, Checkpoint, NoteVerifier};
use crate::proto::jisr::audit::v1::AuditRecord;
use prost::Message as _;
use std::path::Path;

/// The result of a verification.
#[derive(Debug, Default)]
pub struct Report {
    /// Entries read and checked.
    pub entries: u64,
    /// Checkpoints whose signature and root were checked.
    pub checkpoints: usize,
    /// The latest checkpoint's size and root, if any.
    pub latest: Option<Checkpoint>,
    /// Problems, first first. Empty means the log verifies.
    pub problems: Vec<String>,
    /// Things worth knowing that are not failures.
    pub notes: Vec<String>,
}

impl Report {
    /// Whether the log verifies.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Reads the checkpoint history (`checkpoints.log`).
fn history(dir: &Path, report: &mut Report) -> Vec<String> {
    let path = dir.join("checkpoints.log");
    let mut notes = Vec::new();
    match segment::scan(&path, |_, payload| {
        notes.push(String::from_utf8_lossy(payload).into_owned())
    }) {
        Ok(scan) => {
            // The history is appended, never padded: zeros at its end are
            // an interrupted write, as any other cut frame.
            if scan.padding() > 0 {
                report.problems.push(format!(
                    "{}: an interrupted write at its end ({} zero bytes at offset {})",
                    path.display(),
                    scan.padding(),
                    scan.valid_len
                ));
            }
            if let Some(problem) = scan.problem {
                let what = match problem {
                    Problem::TornTail => "an interrupted write at its end".to_owned(),
                    Problem::Damage { what } => what,
                };
                report.problems.push(format!("{}: {what}", path.display()));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => report
            .problems
            .push(format!("cannot read {}: {e}", path.display())),
    }
    notes
}

/// Verifies the log in `dir`; checkpoints are checked with `verifier`, or
/// with the log's own `verifier.key` when none is given (weaker: someone who
/// can rewrite the log can rewrite that file too).
pub fn verify(dir: &Path, verifier: Option<NoteVerifier>) -> Report {
    let mut report = Report::default();
    let verifier = match verifier {
        Some(v) => v,
        None => match std::fs::read_to_string(dir.join("verifier.key"))
            .map(|t| NoteVerifier::from_text(t.trim()))
        {
            Ok(Ok(v)) => {
                report.notes.push("checkpoints checked with the log's own verifier.key; pass --key with the node's published key for an independent check".into());
                v
            }
            _ => {
                report.problems.push(format!(
                    "no verifier key: {}/verifier.key is missing or invalid; pass --key FILE",
                    dir.display()
                ));
                return report;
            }
        },
    };
    let mut checkpoints: Vec<Checkpoint> = Vec::new();
    for (i, note) in history(dir, &mut report).iter().enumerate() {
        match open_note(note, &verifier)
            .map_err(|e| e.to_string())
            .and_then(|t| Checkpoint::parse(t).map_err(|e| e.to_string()))
        {
            Ok(c) => checkpoints.push(c),
            Err(e) => report.problems.push(format!(
                "checkpoint #{} in checkpoints.log does not verify: {e}",
                i + 1
            )),
        }
    }
    for pair in checkpoints.windows(2) {
        if pair[1].size < pair[0].size {
            report.problems.push(format!(
                "checkpoint of size {} follows one of size {}: the log shrank",
                pair[1].size, pair[0].size
            ));
        }
    }
    let rps = match records_per_segment(dir) {
        Ok(rps) => rps,
        Err(e) => {
            report.problems.push(e);
            return report;
        }
    };
    let stored = HashFile::open(&dir.join("tree.hashes")).ok();
    let mut frontier = Frontier::default();
    let mut sorted: Vec<&Checkpoint> = checkpoints.iter().collect();
    sorted.sort_by_key(|c| c.size);
    let mut by_size = sorted.into_iter().peekable();
    while let Some(c) = by_size.next_if(|c| c.size == 0) {
        if c.root != merkle::empty_root() {
            report.problems.push(
                "a checkpoint of the empty log has a root other than the empty tree's".into(),
            );
        }
        report.checkpoints += 1;
    }
    let mut first_bad_leaf: Option<u64> = None;
    let firsts = match segment::list(dir) {
        Ok(f) => f,
        Err(e) => {
            report
                .problems
                .push(format!("cannot list {}: {e}", dir.display()));
            return report;
        }
    };
    for (k, first) in firsts.iter().enumerate() {
        let path = segment::segment_path(dir, *first);
        if *first != k as u64 * rps {
            report.problems.push(format!(
                "{}: expected the segment starting at entry {} — a segment is missing or misnamed",
                path.display(),
                k as u64 * rps
            ));
            break;
        }
        let start = report.entries;
        let mut count = 0u64;
        let mut bad_record: Option<u64> = None;
        let scan = segment::scan(&path, |_, payload| {
            let n = start + count;
            if AuditRecord::decode(payload).is_err() && bad_record.is_none() {
                bad_record = Some(n);
            }
            let leaf = merkle::leaf_hash(payload);
            if first_bad_leaf.is_none() {
                if let Some(h) = stored
                    .as_ref()
                    .and_then(|s| s.read_hashes(&[merkle::stored_hash_index(0, n)]).ok())
                {
                    if h[0] != leaf {
                        first_bad_leaf = Some(n);
                    }
                }
            }
            frontier.push(leaf);
            count += 1;
            while let Some(c) = by_size.next_if(|c| c.size == frontier.size()) {
                if c.root != frontier.root() {
                    // Reported below with the entry range.
                    report.problems.push(format!("checkpoint of size {} does not match the entries: the first {} entries hash to another root", c.size, c.size));
                }
                report.checkpoints += 1;
            }
        });
        report.entries += count;
        if let Some(n) = bad_record {
            report.problems.push(format!(
                "entry {n} in {} is not a valid audit record",
                path.display()
            ));
        }
        match scan {
            Err(e) => report.problems.push(format!("cannot read {}: {e}", path.display())),
            Ok(scan) => match scan.problem {
                Some(Problem::Damage { what }) => report.problems.push(format!("{}: {what} (entry {})", path.display(), report.entries)),
                Some(Problem::TornTail) if k + 1 == firsts.len() => report.notes.push(format!(
                    "{} ends with an interrupted write at offset {} (never acknowledged; truncated at the next start)",
                    path.display(),
                    scan.valid_len
                )),
                Some(Problem::TornTail) => report.problems.push(format!("{}: cut short at offset {} (entry {}), but it is not the last segment", path.display(), scan.valid_len, report.entries)),
                None if k + 1 < firsts.len() && scan.padding() > 0 => {
                    let what = scan.sealed_padding().unwrap_or_default();
                    report.problems.push(format!("{}: {what} (after entry {})", path.display(), report.entries));
                }
                None if k + 1 < firsts.len() && count != rps => {
                    report.problems.push(format!("{}: {count} entries where a sealed segment holds {rps} (entries were removed or added)", path.display()));
                }
                None => {}
            },
        }
    }
    if let Some(n) = first_bad_leaf {
        report.problems.insert(0, format!("entry {n} is not the entry that was appended at that position (its leaf hash differs from the stored tree): altered, removed, inserted or swapped entries start there"));
    }
    for c in by_size {
        report.problems.push(format!("checkpoint of size {} covers more entries than the log holds ({}): acknowledged entries are missing", c.size, report.entries));
    }
    report.latest = checkpoints.last().cloned();
    report
}

fn records_per_segment(dir: &Path) -> Result<u64, String> {
    let path = dir.join(FORMAT_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "cannot read {}: {e}; is this a Jisr audit log directory?",
            path.display()
        )
    })?;
    text.lines()
        .find_map(|l| l.strip_prefix("records_per_segment "))
        .and_then(|n| n.trim().parse().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{} does not say records_per_segment", path.display()))
}
