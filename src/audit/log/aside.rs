//! Keeping evidence: a file start-up must cut or replace is first copied
//! or moved aside, next to it, under a name that says why and when
//! (`<file>.torn-20261207T110400Z`), never deleted.

use crate::audit::AuditError;
use std::path::{Path, PathBuf};

/// A free name `<path>.<why>-<UTC time>` (with `-2`, `-3`… if taken).
fn name(path: &Path, why: &str) -> PathBuf {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let now = time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_else(|_| "now".to_owned());
    let base = format!("{}.{why}-{now}", path.display());
    let mut candidate = PathBuf::from(&base);
    let mut n = 2;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    candidate
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
