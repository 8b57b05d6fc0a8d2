//! The published checkpoint against the checkpoint history.

use super::Report;
use std::path::Path;

/// The published checkpoint (`checkpoint`) must be the history's last
/// note, or the one before it (the writer appends to the history first,
/// then replaces `checkpoint`: a crash between leaves one more there).
/// It may be missing only while the history holds one note: a crash
/// between the first append and the first `checkpoint` written. From then
/// on `checkpoint` is only ever replaced by a rename, never removed, so a
/// missing one next to two notes or more was deleted.
pub(super) fn latest_in_history(dir: &Path, notes: &[String], report: &mut Report) {
    let path = dir.join("checkpoint");
    match std::fs::read_to_string(&path) {
        Ok(latest) => {
            if !notes.iter().rev().take(2).any(|n| *n == latest) {
                report.problems.push(format!(
                    "{} is not the last checkpoint of checkpoints.log ({} kept there): one of the two was replaced, altered or cut",
                    path.display(),
                    notes.len()
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if notes.len() > 1 {
                report.problems.push(format!(
                    "{} is missing but checkpoints.log holds {} signed checkpoints: it was deleted",
                    path.display(),
                    notes.len()
                ));
            }
        }
        Err(e) => report
            .problems
            .push(format!("cannot read {}: {e}", path.display())),
    }
}
