//! Offline verification of a log directory (`jisr audit verify DIR`):
//! every frame's checksum, every record's encoding, the Merkle tree
//! recomputed from the records, every kept checkpoint's signature and its
//! root at its size (so every checkpoint is consistent with every other),
//! and the stored hashes entry by entry, to name the first entry that
//! differs from what was appended.
//!
//! An archive (`[audit] archive_dir`, marked by its `ARCHIVE` file) is
//! checked the same way, with two differences: every segment in it must be
//! sealed (whole and full), and checkpoints larger than its entries are
//! expected — they cover the node's tail segment, which is archived only
//! once sealed. Those are checked for their signature and their order, and
//! reported as not in the archive, not as damage.

use super::log::hashes::HashFile;
use super::log::segment::{self, Problem, Scan};
use super::log::{archive::ARCHIVE_FILE, FORMAT_FILE};
use super::merkle::{self, Frontier, HashReader as _};
use super::note::{open_note, Checkpoint, NoteVerifier};
use crate::proto::jisr::audit::v1::AuditRecord;
use prost::Message as _;
use std::iter::Peekable;
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
    /// Whether the directory is an archive (no tail segment).
    pub archive: bool,
    /// In an archive: the sizes of the checkpoints that cover entries not
    /// in it (the node's tail segment when it was archived).
    pub uncovered: Vec<u64>,
    /// The largest checkpoint checked against the entries.
    pub covered: u64,
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
    let mut report = Report {
        archive: dir.join(ARCHIVE_FILE).exists(),
        ..Report::default()
    };
    // Said first: a missing directory would otherwise read as a missing key.
    if !dir.is_dir() {
        report.problems.push(format!(
            "{} does not exist or is not a directory; pass the log's directory (`[audit] dir` of the node, or its `archive_dir`)",
            dir.display()
        ));
        return report;
    }
    let Some(verifier) = verifier.or_else(|| own_verifier(dir, &mut report)) else {
        return report;
    };
    let checkpoints = checkpoints(dir, &verifier, &mut report);
    let rps = match records_per_segment(dir) {
        Ok(rps) => rps,
        Err(e) => {
            report.problems.push(e);
            return report;
        }
    };
    let mut replay = Replay::new(dir, &checkpoints, &mut report);
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
        let sealed = report.archive || k + 1 < firsts.len();
        replay.segment(&path, sealed, rps, &mut report);
    }
    replay.finish(&mut report);
    report.latest = checkpoints.last().cloned();
    report
}

/// The log's own `verifier.key`, with a note that it proves less than the
/// node's published key would.
fn own_verifier(dir: &Path, report: &mut Report) -> Option<NoteVerifier> {
    match std::fs::read_to_string(dir.join("verifier.key"))
        .map(|t| NoteVerifier::from_text(t.trim()))
    {
        Ok(Ok(v)) => {
            report.notes.push("checkpoints checked with the log's own verifier.key; pass --key with the node's published key for an independent check".into());
            Some(v)
        }
        _ => {
            report.problems.push(format!(
                "no verifier key: {}/verifier.key is missing or invalid; pass --key FILE",
                dir.display()
            ));
            None
        }
    }
}

/// The checkpoints whose signatures verify, in history order; the history
/// must never shrink.
fn checkpoints(dir: &Path, verifier: &NoteVerifier, report: &mut Report) -> Vec<Checkpoint> {
    let mut checkpoints: Vec<Checkpoint> = Vec::new();
    for (i, note) in history(dir, report).iter().enumerate() {
        match open_note(note, verifier)
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
    checkpoints
}

/// The Merkle tree rebuilt entry by entry across the segments, with what
/// must be compared against it as it grows: each checkpoint when the tree
/// reaches its size, and the stored leaf hash of every entry.
struct Replay<'a> {
    stored: Option<HashFile>,
    frontier: Frontier,
    /// Checkpoints by size, those not yet reached.
    pending: Peekable<std::vec::IntoIter<&'a Checkpoint>>,
    first_bad_leaf: Option<u64>,
}

impl<'a> Replay<'a> {
    /// Starts at the empty tree, checking the checkpoints of the empty log.
    fn new(dir: &Path, checkpoints: &'a [Checkpoint], report: &mut Report) -> Self {
        let mut sorted: Vec<&Checkpoint> = checkpoints.iter().collect();
        sorted.sort_by_key(|c| c.size);
        let mut replay = Self {
            stored: HashFile::open(&dir.join("tree.hashes")).ok(),
            frontier: Frontier::default(),
            pending: sorted.into_iter().peekable(),
            first_bad_leaf: None,
        };
        while let Some(c) = replay.pending.next_if(|c| c.size == 0) {
            if c.root != merkle::empty_root() {
                report.problems.push(
                    "a checkpoint of the empty log has a root other than the empty tree's".into(),
                );
            }
            report.checkpoints += 1;
        }
        replay
    }

    /// Replays one segment's entries, then reports what its scan found.
    fn segment(&mut self, path: &Path, sealed: bool, rps: u64, report: &mut Report) {
        let start = report.entries;
        let mut count = 0u64;
        let mut bad_record: Option<u64> = None;
        let scan = segment::scan(path, |_, payload| {
            let n = start + count;
            if AuditRecord::decode(payload).is_err() && bad_record.is_none() {
                bad_record = Some(n);
            }
            self.entry(n, payload, report);
            count += 1;
        });
        report.entries += count;
        if let Some(n) = bad_record {
            report.problems.push(format!(
                "entry {n} in {} is not a valid audit record",
                path.display()
            ));
        }
        match scan {
            Err(e) => report
                .problems
                .push(format!("cannot read {}: {e}", path.display())),
            Ok(scan) => scan_problems(path, &scan, sealed, count, rps, report),
        }
    }

    /// Adds entry `n` to the tree and checks the checkpoints of its size.
    fn entry(&mut self, n: u64, payload: &[u8], report: &mut Report) {
        let leaf = merkle::leaf_hash(payload);
        if self.first_bad_leaf.is_none() {
            if let Some(h) = self
                .stored
                .as_ref()
                .and_then(|s| s.read_hashes(&[merkle::stored_hash_index(0, n)]).ok())
            {
                if h[0] != leaf {
                    self.first_bad_leaf = Some(n);
                }
            }
        }
        self.frontier.push(leaf);
        let size = self.frontier.size();
        while let Some(c) = self.pending.next_if(|c| c.size == size) {
            if c.root != self.frontier.root() {
                report.problems.push(format!("checkpoint of size {} does not match the entries: the first {} entries hash to another root", c.size, c.size));
            }
            report.checkpoints += 1;
            report.covered = c.size;
        }
    }

    /// Reports the first altered entry first, since every later problem may
    /// follow from it, and the checkpoints the entries never reached.
    fn finish(self, report: &mut Report) {
        if let Some(n) = self.first_bad_leaf {
            report.problems.insert(0, format!("entry {n} is not the entry that was appended at that position (its leaf hash differs from the stored tree): altered, removed, inserted or swapped entries start there"));
        }
        for c in self.pending {
            if report.archive {
                report.uncovered.push(c.size);
            } else {
                report.problems.push(format!("checkpoint of size {} covers more entries than the log holds ({}): acknowledged entries are missing", c.size, report.entries));
            }
        }
        if let Some(&largest) = report.uncovered.last() {
            report.notes.push(format!(
                "entries {}..{largest} are not in the archive (the node's tail segment, archived once sealed): {} checkpoint(s) beyond entry {} were checked for their signature and order only",
                report.entries,
                report.uncovered.len(),
                report.entries
            ));
        }
    }
}

/// What a segment's scan found. Only the last segment may end torn (an
/// unacknowledged write); a sealed one must be whole, unpadded and full.
fn scan_problems(
    path: &Path,
    scan: &Scan,
    sealed: bool,
    count: u64,
    rps: u64,
    report: &mut Report,
) {
    match &scan.problem {
        Some(Problem::Damage { what }) => report.problems.push(format!("{}: {what} (entry {})", path.display(), report.entries)),
        Some(Problem::TornTail) if !sealed => report.notes.push(format!(
            "{} ends with an interrupted write at offset {} (never acknowledged; truncated at the next start)",
            path.display(),
            scan.valid_len
        )),
        Some(Problem::TornTail) => report.problems.push(format!("{}: cut short at offset {} (entry {}), but it is not the last segment", path.display(), scan.valid_len, report.entries)),
        None if sealed && scan.padding() > 0 => {
            let what = scan.sealed_padding().unwrap_or_default();
            report.problems.push(format!("{}: {what} (after entry {})", path.display(), report.entries));
        }
        None if sealed && count != rps => {
            report.problems.push(format!("{}: {count} entries where a sealed segment holds {rps} (entries were removed or added)", path.display()));
        }
        None => {}
    }
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
