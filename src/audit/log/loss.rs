//! Accepting a loss (`jisr audit recover --accept-loss`): the operator's
//! way out when start-up refuses and no archive or backup holds what is
//! missing. It finds the longest prefix of entries that every check agrees
//! on, sets aside everything after it (copies or renames, never deletes),
//! keeps the signed checkpoints that prove that prefix, and — once the log
//! opens again — appends a `LOG_LOSS_ACCEPTED` entry saying what was lost,
//! which the next signed checkpoint covers. The loss is then an audited
//! event, not a hidden one; checkpoints published before it still prove the
//! lost entries existed.
//!
//! [`plan`] only reads; [`Loss::apply`] changes the directory and is called
//! only when the operator passed the explicit flag.

use super::segment::{self, Problem};
use super::{aside, write_durable, FORMAT_FILE};
use crate::audit::merkle::{self, Frontier, Hash};
use crate::audit::note::{open_note, Checkpoint, NoteVerifier};
use crate::audit::verify::StoredCheck;
use crate::audit::AuditError;
use sha2::{Digest as _, Sha256};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What accepting the loss would keep and set aside; nothing is changed
/// until [`Loss::apply`].
#[derive(Debug)]
pub struct Loss {
    dir: PathBuf,
    rps: u64,
    /// Entries kept: the longest prefix every check agrees on.
    pub keep: u64,
    /// The root of the tree of the kept entries.
    pub keep_root: Hash,
    /// Why the log is not trusted beyond `keep`, if something stops it.
    pub why: Option<String>,
    /// Entries readable as valid frames, contiguous from entry 0.
    pub readable: u64,
    /// The largest checkpoint that verifies with the node's key.
    pub latest: Option<Checkpoint>,
    /// Entries whose stored hashes `tree.hashes` holds (acknowledged).
    pub hashed: u64,
    /// The signed notes kept (they verify and prove kept entries), in order.
    kept_notes: Vec<String>,
    /// Notes read (history and `checkpoint`) that are not kept.
    pub dropped_checkpoints: usize,
    /// Byte offset of entry `keep` in its segment, when the segment holding
    /// it starts before it (it is cut there).
    cut_offset: Option<u64>,
}

/// One file set aside as evidence, as the loss entry describes it.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// Where it is now.
    pub path: PathBuf,
    /// Its length.
    pub bytes: u64,
    /// SHA-256 of its content, hex.
    pub sha256: String,
}

impl Loss {
    /// Entries lost at least: those any file says existed beyond `keep`.
    pub fn lost(&self) -> u64 {
        let claimed = self
            .readable
            .max(self.hashed)
            .max(self.latest.as_ref().map_or(0, |c| c.size));
        claimed - self.keep
    }

    /// Whether there is anything to accept: entries beyond `keep`, or
    /// checkpoints that do not prove the kept entries.
    pub fn needed(&self) -> bool {
        self.lost() > 0 || self.dropped_checkpoints > 0 || self.why.is_some()
    }

    /// What would be done, in words, for the operator to read first.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let latest = self.latest.as_ref().map_or("none".to_owned(), |c| {
            format!("size {} root {}", c.size, hex(&c.root))
        });
        let _ = write!(
            s,
            "keep entries 0..{} (root {}); lose at least {} entries; the segments hold {} readable entries, tree.hashes the hashes of {}, the largest signed checkpoint: {latest}; checkpoints not kept: {}",
            self.keep,
            hex(&self.keep_root),
            self.lost(),
            self.readable,
            self.hashed,
            self.dropped_checkpoints,
        );
        if let Some(why) = &self.why {
            let _ = write!(
                s,
                "; the log stops being trustworthy at entry {}: {why}",
                self.keep
            );
        }
        s
    }
}

/// Reads the log in `dir` and works out what accepting its loss keeps.
pub fn plan(dir: &Path, verifier: &NoteVerifier) -> Result<Loss, AuditError> {
    let rps = records_per_segment(dir)?;
    let (notes, mut dropped) = signed_notes(dir, verifier)?;
    let mut replay = Replay::default();
    let mut why = None;
    let firsts = segment::list(dir).map_err(|e| AuditError::io("list", dir, e))?;
    for (k, &first) in firsts.iter().enumerate() {
        let path = segment::segment_path(dir, first);
        if first != k as u64 * rps {
            why = Some(format!(
                "the segment starting at entry {} is missing",
                k as u64 * rps
            ));
            break;
        }
        let scan = segment::scan(&path, |offset, payload| replay.push(offset, payload))
            .map_err(|e| AuditError::io("read", &path, e))?;
        let last = k + 1 == firsts.len();
        let stop = match &scan.problem {
            Some(Problem::Damage { what }) => Some(what.clone()),
            Some(Problem::TornTail) if !last => Some("a cut record in a sealed segment".into()),
            None if !last && scan.offsets.len() as u64 != rps => Some(format!(
                "{} records in a sealed segment",
                scan.offsets.len()
            )),
            _ => None,
        };
        if let Some(what) = stop {
            why = Some(format!("{}: {what}", path.display()));
            break;
        }
    }
    let readable = replay.leaves.len() as u64;
    // The largest prefix every signed checkpoint it reaches agrees with.
    let mut keep = readable;
    let mut proven = 0;
    for (_, c) in notes.iter().filter(|(_, c)| c.size <= readable) {
        if replay.root(c.size) == c.root {
            proven = proven.max(c.size);
        } else if c.size <= keep {
            keep = notes
                .iter()
                .filter(|(_, d)| d.size < c.size && replay.root(d.size) == d.root)
                .map(|(_, d)| d.size)
                .max()
                .unwrap_or(0);
            why = Some(format!(
                "the signed checkpoint of size {} does not match the entries",
                c.size
            ));
        }
    }
    let mut stored = StoredCheck::open(&dir.join("tree.hashes"));
    for (n, leaf) in replay.leaves.iter().enumerate() {
        stored.leaf(n as u64, *leaf);
    }
    // Past what signatures prove, a differing stored hash leaves it unknown
    // which was altered: the record or tree.hashes. Neither is trusted.
    if let Some(bad) = stored.first_bad.filter(|b| *b >= proven && *b < keep) {
        keep = bad;
        why = Some(format!(
            "the stored hashes of entry {bad} (tree.hashes) differ from its record"
        ));
    }
    let kept_notes: Vec<String> = notes
        .iter()
        .filter(|(_, c)| c.size <= keep && replay.root(c.size) == c.root)
        .map(|(note, _)| note.clone())
        .collect();
    dropped += notes.len() - kept_notes.len();
    let first = keep / rps * rps;
    // Entry `keep` starts where the record before it (same segment) ends.
    let cut_offset = (keep > first).then(|| replay.ends[keep as usize - 1]);
    Ok(Loss {
        dir: dir.to_owned(),
        rps,
        keep,
        keep_root: replay.root(keep),
        why,
        readable,
        latest: notes.iter().map(|(_, c)| c.clone()).max_by_key(|c| c.size),
        hashed: stored.hashed_entries(),
        kept_notes,
        dropped_checkpoints: dropped,
        cut_offset,
    })
}

/// Every entry's leaf hash and where its frame ends in its segment.
#[derive(Default)]
struct Replay {
    leaves: Vec<Hash>,
    ends: Vec<u64>,
}

impl Replay {
    fn push(&mut self, offset: u64, payload: &[u8]) {
        self.leaves.push(merkle::leaf_hash(payload));
        self.ends
            .push(offset + (segment::HEADER + payload.len()) as u64);
    }

    /// The root of the first `size` entries.
    fn root(&self, size: u64) -> Hash {
        let mut frontier = Frontier::default();
        for leaf in self.leaves.iter().take(size as usize) {
            frontier.push(*leaf);
        }
        frontier.root()
    }
}

/// The signed notes of the history's valid frames and of `checkpoint` that
/// verify with the node's key, deduplicated, in size order; and how many
/// did not verify.
fn signed_notes(
    dir: &Path,
    verifier: &NoteVerifier,
) -> Result<(Vec<(String, Checkpoint)>, usize), AuditError> {
    let mut texts = Vec::new();
    let history = dir.join("checkpoints.log");
    if history.exists() {
        segment::scan(&history, |_, p| {
            texts.push(String::from_utf8_lossy(p).into_owned())
        })
        .map_err(|e| AuditError::io("read", &history, e))?;
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("checkpoint")) {
        texts.push(text);
    }
    let mut notes: Vec<(String, Checkpoint)> = Vec::new();
    let mut bad = 0;
    for text in texts {
        let parsed = open_note(&text, verifier)
            .ok()
            .and_then(|body| Checkpoint::parse(body).ok());
        match parsed {
            Some(c) if !notes.iter().any(|(t, _)| *t == text) => notes.push((text, c)),
            Some(_) => {}
            None => bad += 1,
        }
    }
    notes.sort_by_key(|(_, c)| c.size);
    Ok((notes, bad))
}

fn records_per_segment(dir: &Path) -> Result<u64, AuditError> {
    let path = dir.join(FORMAT_FILE);
    std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("records_per_segment "))
                .and_then(|n| n.trim().parse::<u64>().ok())
        })
        .filter(|n| *n > 0)
        .ok_or_else(|| AuditError::Damaged {
            segment: path,
            what: "it is missing or does not say `records_per_segment N`: restore it first (65536 unless the log was made by a test); accepting a loss needs the layout".into(),
        })
}

fn hex(bytes: &[u8]) -> String {
    crate::audit::keys::hex(bytes)
}

impl Loss {
    /// Sets aside everything past the kept entries and the checkpoints not
    /// kept, keeping every byte as evidence; `archive` (the node's
    /// `archive_dir`) has its copies of them set aside too, so that its
    /// next pass does not overwrite them. The log directory must be locked
    /// by the caller. Returns the evidence files.
    pub fn apply(&self, archive: Option<&Path>) -> Result<Vec<Evidence>, AuditError> {
        let dir = &self.dir;
        let mut kept = Vec::new();
        let first = self.keep / self.rps * self.rps;
        for f in segment::list(dir).map_err(|e| AuditError::io("list", dir, e))? {
            let path = segment::segment_path(dir, f);
            if let Some(offset) = self.cut_offset.filter(|_| f == first) {
                // Zero padding after the kept records is no loss.
                let bytes = std::fs::read(&path).map_err(|e| AuditError::io("read", &path, e))?;
                if bytes.iter().skip(offset as usize).any(|b| *b != 0) {
                    kept.push(aside::copy(&path, "lost")?);
                    segment::truncate(&path, offset)
                        .map_err(|e| AuditError::io("truncate", &path, e))?;
                }
            } else if f >= first {
                kept.push(aside::rename(&path, "lost")?);
                let idx = segment::index_path(dir, f);
                if idx.exists() {
                    kept.push(aside::rename(&idx, "lost")?);
                }
            }
        }
        // Derived files describing entries that are no longer there.
        for name in ["tree.hashes", "index.redb"] {
            let path = dir.join(name);
            if path.exists() {
                kept.push(aside::rename(&path, "lost")?);
            }
        }
        self.rewrite_checkpoints(&mut kept)?;
        if let Some(archive) = archive {
            set_aside_in_archive(archive, first, &mut kept)?;
        }
        kept.iter().map(|p| evidence(p)).collect()
    }

    /// `checkpoints.log` keeps only the kept notes, `checkpoint` the last
    /// of them; the files as they were are set aside first.
    fn rewrite_checkpoints(&self, kept: &mut Vec<PathBuf>) -> Result<(), AuditError> {
        let dir = &self.dir;
        let history = dir.join("checkpoints.log");
        let mut bytes = Vec::new();
        for note in &self.kept_notes {
            segment::frame(note.as_bytes(), &mut bytes);
        }
        if std::fs::read(&history).ok() != Some(bytes.clone()) && history.exists() {
            kept.push(aside::rename(&history, "lost")?);
        }
        if !bytes.is_empty() && !history.exists() {
            write_durable(dir, &history, &bytes)?;
        }
        let path = dir.join("checkpoint");
        let last = self.kept_notes.last();
        let have = std::fs::read_to_string(&path).ok();
        if have.is_some() && have.as_ref() != last {
            kept.push(aside::rename(&path, "lost")?);
        }
        if let Some(note) = last.filter(|_| !path.exists()) {
            write_durable(dir, &path, note.as_bytes())?;
        }
        Ok(())
    }
}

/// The archive's history, latest checkpoint and segments from the cut on
/// describe the lost log: set aside, so that the archive's next pass
/// copies the kept log's instead of overwriting them.
fn set_aside_in_archive(
    archive: &Path,
    first: u64,
    kept: &mut Vec<PathBuf>,
) -> Result<(), AuditError> {
    if !archive.is_dir() {
        return Ok(());
    }
    for name in ["checkpoints.log", "checkpoint"] {
        let path = archive.join(name);
        if path.exists() {
            kept.push(aside::rename(&path, "lost")?);
        }
    }
    let firsts = segment::list(archive).map_err(|e| AuditError::io("list", archive, e))?;
    for f in firsts.into_iter().filter(|f| *f >= first) {
        kept.push(aside::rename(&segment::segment_path(archive, f), "lost")?);
        let idx = segment::index_path(archive, f);
        if idx.exists() {
            kept.push(aside::rename(&idx, "lost")?);
        }
    }
    Ok(())
}

/// A file's length and SHA-256, for the loss entry to name the evidence.
fn evidence(path: &Path) -> Result<Evidence, AuditError> {
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    if path.is_file() {
        let mut file = std::fs::File::open(path).map_err(|e| AuditError::io("read", path, e))?;
        bytes =
            std::io::copy(&mut file, &mut hasher).map_err(|e| AuditError::io("read", path, e))?;
    }
    Ok(Evidence {
        path: path.to_owned(),
        bytes,
        sha256: hex(&hasher.finalize()),
    })
}

impl Loss {
    /// The `LOG_LOSS_ACCEPTED` entry written by node `node` once the log
    /// opens again, naming the evidence.
    pub fn record(
        &self,
        node: &str,
        evidence: &[Evidence],
    ) -> crate::proto::jisr::audit::v1::AuditRecord {
        use crate::proto::jisr::audit::v1::{AuditRecord, Kind};
        let mut detail = self.describe();
        detail.push_str("; set aside as evidence:");
        for e in evidence {
            let _ = write!(
                detail,
                " {} ({} bytes, sha256 {})",
                e.path.display(),
                e.bytes,
                e.sha256
            );
        }
        let time_unix_micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as i64);
        AuditRecord {
            time_unix_micros,
            node: node.to_owned(),
            kind: Kind::LogLossAccepted as i32,
            detail,
            count: self.lost(),
            ..AuditRecord::default()
        }
    }
}
