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

mod published;
mod stored;

pub(crate) use stored::StoredCheck;

use super::log::segment::{self, Problem, Scan};
use super::log::{archive::ARCHIVE_FILE, FORMAT_FILE};
use super::merkle::{self, Frontier};
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
    /// Problems that start-up may repair rather than refuse on, as said
    /// in [`at_start`]: each is also in `problems`.
    pub recoverable: Vec<String>,
    /// The first entry whose stored hashes (`tree.hashes`) differ from the
    /// hashes of the entries.
    pub first_bad_hash: Option<u64>,
    /// The last such entry.
    pub last_bad_hash: Option<u64>,
    /// Where `checkpoints.log` ends in an interrupted write, if it does.
    pub history_valid_len: Option<u64>,
}

impl Report {
    /// Whether the log verifies.
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    /// A problem that start-up can repair without losing anything.
    fn recoverable(&mut self, problem: String) {
        self.recoverable.push(problem.clone());
        self.problems.push(problem);
    }

    /// The problems start-up cannot repair, first first.
    pub fn fatal(&self) -> Vec<&String> {
        self.problems
            .iter()
            .filter(|p| !self.recoverable.contains(p))
            .collect()
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
                report.history_valid_len = Some(scan.valid_len);
                report.recoverable(format!(
                    "{}: an interrupted write at its end ({} zero bytes at offset {})",
                    path.display(),
                    scan.padding(),
                    scan.valid_len
                ));
            }
            match scan.problem {
                Some(Problem::TornTail) => {
                    report.history_valid_len = Some(scan.valid_len);
                    report.recoverable(format!(
                        "{}: an interrupted write at its end (offset {})",
                        path.display(),
                        scan.valid_len
                    ));
                }
                Some(Problem::Damage { what }) => {
                    report.problems.push(format!("{}: {what}", path.display()));
                }
                None => {}
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
    verify_with(dir, verifier, true)
}

/// The check the node makes of its own log before it serves (the records'
/// encoding aside: start-up checks what is on disk, not what was appended).
/// Recoverable problems (an interrupted write at the end of
/// `checkpoints.log`; `tree.hashes` differing from the entries) are marked
/// so; the caller decides whether to repair them or refuse.
pub fn at_start(dir: &Path, verifier: NoteVerifier) -> Report {
    verify_with(dir, Some(verifier), false)
}

fn verify_with(dir: &Path, verifier: Option<NoteVerifier>, decode: bool) -> Report {
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
    let mut replay = Replay::new(dir, &checkpoints, decode, &mut report);
    let firsts = match segment::list(dir) {
        Ok(f) => f,
        Err(e) => {
            report
                .problems
                .push(format!("cannot list {}: {e}", dir.display()));
            return report;
        }
    };
    let on_grid = match segment::check_grid(dir, &firsts, rps) {
        Ok(()) => firsts.len(),
        Err(off) => {
            report
                .problems
                .push(format!("{}: {}", off.path.display(), off.what));
            // The segments before the gap are still checked.
            off.at
        }
    };
    for (k, first) in firsts.iter().enumerate().take(on_grid) {
        let path = segment::segment_path(dir, *first);
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
    let notes = history(dir, report);
    if !report.archive {
        published::latest_in_history(dir, &notes, report);
    }
    for (i, note) in notes.iter().enumerate() {
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
    stored: stored::StoredCheck,
    frontier: Frontier,
    /// Checkpoints by size, those not yet reached.
    pending: Peekable<std::vec::IntoIter<&'a Checkpoint>>,
    /// Whether each record must decode as an audit record.
    decode: bool,
}

impl<'a> Replay<'a> {
    /// Starts at the empty tree, checking the checkpoints of the empty log.
    fn new(dir: &Path, checkpoints: &'a [Checkpoint], decode: bool, report: &mut Report) -> Self {
        let mut sorted: Vec<&Checkpoint> = checkpoints.iter().collect();
        sorted.sort_by_key(|c| c.size);
        let mut replay = Self {
            stored: stored::StoredCheck::open(&dir.join("tree.hashes")),
            frontier: Frontier::default(),
            pending: sorted.into_iter().peekable(),
            decode,
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
        let decode = self.decode;
        let scan = segment::scan(path, |_, payload| {
            let n = start + count;
            if decode && bad_record.is_none() && AuditRecord::decode(payload).is_err() {
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
        self.stored.leaf(n, leaf);
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
        if let Some(n) = self.stored.first_bad {
            let problem = format!("entry {n} is not the entry that was appended at that position (its hashes differ from the stored tree, tree.hashes): altered, removed, inserted or swapped entries start there, or tree.hashes itself was altered");
            report.first_bad_hash = Some(n);
            report.last_bad_hash = self.stored.last_bad;
            report.recoverable.push(problem.clone());
            report.problems.insert(0, problem);
        }
        let hashed = self.stored.hashed_entries();
        if !report.archive && hashed > report.entries {
            report.problems.push(format!("tree.hashes holds the hashes of {hashed} entries but the segments hold {}: entries {}..{hashed} were acknowledged (their hashes are written once they are durable, before the acknowledgement) and their records are missing, cut or damaged", report.entries, report.entries));
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
            "{} ends with an interrupted write at offset {} (never acknowledged; copied aside and cut at the next start)",
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
