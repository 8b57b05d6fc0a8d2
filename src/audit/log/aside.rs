//! Keeping evidence: a file start-up must cut or replace is first copied
//! or moved aside, next to it, under a name that says why and when
//! (`<file>.torn-20261207T110400Z`), never deleted.

use crate::audit::AuditError;
use std::path::{Path, PathBuf};

fn name(path: &Path, why: &str) -> PathBuf {
    crate::embedded::evidence_name(path, why)
}

/// Copies `path` aside (durably) before it is cut; returns the copy's path.
pub(crate) fn copy(path: &Path, why: &str) -> Result<PathBuf, AuditError> {
    let to = name(path, why);
    std::fs::copy(path, &to).map_err(|e| AuditError::io("copy aside", path, e))?;
    sync(&to)?;
    Ok(to)
}

/// Moves `path` aside (durably) before it is rebuilt; returns where to.
pub(crate) fn rename(path: &Path, why: &str) -> Result<PathBuf, AuditError> {
    let to = name(path, why);
    std::fs::rename(path, &to).map_err(|e| AuditError::io("move aside", path, e))?;
    sync(&to)?;
    Ok(to)
}

fn sync(to: &Path) -> Result<(), AuditError> {
    std::fs::File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(|e| AuditError::io("sync", to, e))?;
    match to.parent() {
        Some(dir) => super::segment::sync_dir(dir).map_err(|e| AuditError::io("sync", dir, e)),
        None => Ok(()),
    }
}
