//! Opening the node's embedded redb files (`consents.redb`, `bus.redb`,
//! the audit log's `index.redb`): a damaged file is an error naming it and
//! the fix, never a panic.
//!
//! redb reports most damage as an error, but some checks panic instead
//! (every one of them in debug builds, by design, and a few in release,
//! e.g. "entered unreachable code" on a corrupted page). So a store opens
//! — the database, its tables, whatever it reads at start — under
//! [`guard`], which turns a panic there into an error. The panic's message
//! still reaches stderr through the panic hook; the start-up error that
//! follows is the one that says what to do.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// Runs `open` and returns its result, or the message of a panic inside
/// it. Whatever `open` built is dropped with the panic: nothing
/// half-opened is used afterwards.
pub fn guard<T>(open: impl FnOnce() -> T) -> Result<T, String> {
    catch_unwind(AssertUnwindSafe(open)).map_err(|panic| {
        panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic inside the storage library".to_owned())
    })
}

/// A store that did not open: what went wrong, and where the file's bytes
/// as they were before the open are kept.
#[derive(Debug)]
pub struct NotOpened<E> {
    /// The store's own error, or the message of a panic in the library.
    pub failure: Result<E, String>,
    /// The copy of the file made before the open, when there was a file.
    pub kept: Option<PathBuf>,
}

impl<E> NotOpened<E> {
    /// What to append to an error message about the file.
    pub fn kept_note(&self) -> String {
        self.kept.as_ref().map_or_else(String::new, |kept| {
            format!(
                " The file's bytes as they were before this start are kept in {} (evidence: redb writes the file while opening it).",
                kept.display()
            )
        })
    }
}

/// Opens the store file at `path` with `open` under [`guard`], keeping its
/// bytes as evidence when the open fails.
///
/// redb's integrity check on open commits, and repairs what it can, so
/// the open that finds a file damaged also changes it. The file is
/// therefore copied first (`<file>.opening`, durably); the copy is removed
/// when the open succeeds, and becomes `<file>.damaged-<UTC time>` when it
/// fails. The check reads the whole file anyway, so the copy at most
/// doubles what a start reads of these stores.
pub fn open_keeping_evidence<T, E>(
    path: &Path,
    open: impl FnOnce() -> Result<T, E>,
) -> Result<T, NotOpened<E>> {
    let copy = match before_open(path) {
        Ok(copy) => copy,
        Err(e) => {
            return Err(NotOpened {
                failure: Err(format!(
                    "cannot copy {} before opening it ({e}); free space next to it and start again",
                    path.display()
                )),
                kept: None,
            })
        }
    };
    let failure = match guard(open) {
        Ok(Ok(opened)) => {
            if let Some(copy) = &copy {
                if let Err(e) = std::fs::remove_file(copy) {
                    tracing::warn!(copy = %copy.display(), error = %e, "cannot remove the copy made before opening a store; remove it by hand");
                }
            }
            return Ok(opened);
        }
        Ok(Err(e)) => Ok(e),
        Err(panic) => Err(panic),
    };
    let kept = copy.map(|copy| {
        let to = evidence_name(path, "damaged");
        match std::fs::rename(&copy, &to) {
            Ok(()) => to,
            Err(e) => {
                tracing::error!(copy = %copy.display(), error = %e, "cannot rename the copy of a store that did not open; it stays under its temporary name");
                copy
            }
        }
    });
    Err(NotOpened { failure, kept })
}

/// Copies `path` to `<path>.opening` and syncs it; `None` when there is no
/// file yet (a first start).
fn before_open(path: &Path) -> std::io::Result<Option<PathBuf>> {
    if !path.exists() {
        return Ok(None);
    }
    let mut name = path.as_os_str().to_owned();
    name.push(".opening");
    let copy = PathBuf::from(name);
    std::fs::copy(path, &copy)?;
    std::fs::File::open(&copy)?.sync_all()?;
    Ok(Some(copy))
}

/// A free name `<path>.<why>-<UTC time>` (with `-2`, `-3`… if taken), for
/// a file kept as evidence.
pub fn evidence_name(path: &Path, why: &str) -> PathBuf {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_inside_is_an_error_with_its_message() {
        assert_eq!(guard(|| 7), Ok(7));
        let err = guard(|| -> u8 { panic!("entered unreachable code") }).unwrap_err();
        assert_eq!(err, "entered unreachable code");
        let err = guard(|| -> u8 { panic!("{}", String::from("page 3")) }).unwrap_err();
        assert_eq!(err, "page 3");
    }

    #[test]
    fn a_failed_open_keeps_the_bytes_it_found_and_a_good_one_keeps_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        assert!(open_keeping_evidence(&path, || Ok::<_, ()>(1)).is_ok());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        std::fs::write(&path, b"as found").unwrap();
        let opened = open_keeping_evidence(&path, || Ok::<_, ()>(2)).unwrap();
        assert_eq!(opened, 2);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let failed = open_keeping_evidence(&path, || -> Result<u8, &str> {
            std::fs::write(&path, b"changed by the open").unwrap();
            Err("corrupted")
        })
        .unwrap_err();
        assert_eq!(failed.failure, Ok("corrupted"));
        let kept = failed.kept.clone().unwrap();
        assert_eq!(std::fs::read(&kept).unwrap(), b"as found");
        assert!(failed.kept_note().contains(&kept.display().to_string()));
        let panicked =
            open_keeping_evidence(&path, || -> Result<u8, ()> { panic!("page 3") }).unwrap_err();
        assert_eq!(panicked.failure, Err("page 3".to_owned()));
        assert_ne!(
            panicked.kept, failed.kept,
            "a second copy gets its own name"
        );
        assert!(!dir.path().join("store.redb.opening").exists());
    }
}
