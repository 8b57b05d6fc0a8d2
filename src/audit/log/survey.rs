//! The start-up decision: the log is served only if everything on disk
//! that can be checked agrees — the published checkpoint, the whole
//! checkpoint history (every signature, each checkpoint's root recomputed
//! from the entries at its size, so each is consistent with the next), the
//! segments and every stored hash. Deciding reads; it never writes. Only
//! once it has decided to go on does start-up repair what is derived or
//! torn, keeping a copy of what it replaces ([`super::aside`]).
//!
//! Cost: one sequential read of every segment and of `tree.hashes`, a
//! CRC-32 and about two SHA-256 per entry, once per start (figures in
//! docs/ARCHITECTURE.md, "Recovery at start").

use super::aside;
use crate::audit::note::{open_note, Checkpoint, NoteVerifier};
use crate::audit::{verify, AuditError};
use std::path::Path;

/// What start-up will repair once it goes on.
#[derive(Debug)]
pub(super) struct Decision {
    /// `tree.hashes` disagrees with entries that signed checkpoints prove:
    /// it is moved aside and rebuilt from the records.
    rebuild_hashes: Option<u64>,
    /// `checkpoints.log` ends in an interrupted write from here.
    history_cut: Option<u64>,
}

/// Checks the log in `dir` (holding `size` entries) against its own
/// checkpoints; refuses, naming the file and the entry or checkpoint, on
/// any disagreement that is not a repairable one.
pub(super) fn decide(
    dir: &Path,
    verifier: &NoteVerifier,
    size: u64,
) -> Result<Decision, AuditError> {
    check_latest(dir, verifier, size)?;
    let report = verify::at_start(dir, verifier.clone());
    let refuse = |what: String| AuditError::Refused {
        dir: dir.to_owned(),
        what,
    };
    let fatal = report.fatal();
    if let Some(first) = fatal.first() {
        let more = match fatal.len() - 1 {
            0 => String::new(),
            n => format!(" (and {n} more problem(s))"),
        };
        return Err(refuse(format!("{first}{more}")));
    }
    if let Some(last) = report.last_bad_hash {
        if last >= report.covered {
            return Err(refuse(format!(
                "tree.hashes: the stored hashes of entry {last} differ from its record in the segments, and no signed checkpoint covers it (the latest covers {} entries), so it cannot be told which was altered: the acknowledged record or tree.hashes",
                report.covered
            )));
        }
    }
    Ok(Decision {
        rebuild_hashes: report.first_bad_hash,
        history_cut: report.history_valid_len,
    })
}

/// The published checkpoint: it must verify with this node's key and
/// cover no more entries than the segments hold.
fn check_latest(dir: &Path, verifier: &NoteVerifier, size: u64) -> Result<(), AuditError> {
    let path = dir.join("checkpoint");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(AuditError::io("read", &path, e)),
    };
    let inconsistent = |what: String| AuditError::Inconsistent {
        dir: dir.to_owned(),
        what,
    };
    let body = open_note(&text, verifier).map_err(|e| {
        inconsistent(format!(
            "its last checkpoint ({}) does not verify with this node's key ({e}): the checkpoint or the signing key ([audit] signing_key) was replaced or altered",
            path.display()
        ))
    })?;
    let checkpoint = Checkpoint::parse(body).map_err(|e| {
        inconsistent(format!(
            "its last checkpoint ({}) is malformed ({e})",
            path.display()
        ))
    })?;
    if checkpoint.size > size {
        let last = super::segment::list(dir)
            .ok()
            .and_then(|f| f.last().copied())
            .map_or(
                format!(
                    "no segment at all: {} is missing",
                    super::segment::segment_path(dir, 0).display()
                ),
                |first| {
                    format!(
                        "the last segment is {}",
                        super::segment::segment_path(dir, first).display()
                    )
                },
            );
        return Err(inconsistent(format!(
            "the last signed checkpoint ({}) covers {} entries but only {size} are in the log ({last}): acknowledged entries were cut or removed",
            path.display(),
            checkpoint.size
        )));
    }
    Ok(())
}

impl Decision {
    /// Repairs what the decision allowed, keeping copies of what changes.
    pub(super) fn repair(&self, dir: &Path) -> Result<(), AuditError> {
        if let Some(valid) = self.history_cut {
            let path = dir.join("checkpoints.log");
            let copy = aside::copy(&path, "torn")?;
            tracing::warn!(history = %path.display(), offset = valid, copy = %copy.display(), "audit log: cutting an interrupted write off the checkpoint history (that checkpoint was never published); the file as it was is kept in the copy");
            super::segment::truncate(&path, valid)
                .map_err(|e| AuditError::io("truncate", &path, e))?;
        }
        if let Some(n) = self.rebuild_hashes {
            let path = dir.join("tree.hashes");
            let moved = aside::rename(&path, "damaged")?;
            tracing::warn!(hashes = %path.display(), entry = n, copy = %moved.display(), "audit log: the stored hashes differ from entries that signed checkpoints prove; rebuilding them from the records (the old file is kept aside)");
        }
        Ok(())
    }
}
