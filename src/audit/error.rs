//! What can go wrong with the audit log, said so an operator can act.

use std::path::PathBuf;

/// An audit log error.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file operation failed.
    #[error("audit log: cannot {action} {}: {source}; check the disk and the permissions of the log directory", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Another process holds the log directory.
    #[error("audit log {} is in use by another process; run one gateway per log directory", dir.display())]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// A segment is damaged in the middle (not an interrupted write).
    #[error("audit log segment {} is damaged: {what}; the log cannot be trusted as it is — keep a copy, run `jisr audit verify` on it and restore the segment from the archive (`[audit] archive_dir`) or a backup (if neither has it, `jisr audit recover --config FILE` says what accepting the loss would keep)", segment.display())]
    Damaged {
        /// The segment.
        segment: PathBuf,
        /// What is wrong, with the offset.
        what: String,
    },
    /// The log does not agree with its own signed checkpoint.
    #[error("audit log {}: {what}; entries that were acknowledged are missing or changed — keep a copy and run `jisr audit verify` on it; restore them from the archive or a backup, or if none has them, `jisr audit recover --config FILE` says what accepting the loss would keep", dir.display())]
    Inconsistent {
        /// The directory.
        dir: PathBuf,
        /// What disagrees.
        what: String,
    },
    /// Start-up found the log's files disagreeing and changed nothing.
    #[error("audit log {}: {what}; the node did not start and changed nothing. Keep a copy of the directory, run `jisr audit verify {}` for the full report, then restore the file it names from the archive ([audit] archive_dir) or a backup; only if none has it, `jisr audit recover --config FILE` says what accepting the loss would keep (see \"When the gateway refuses to start\" in docs/operations.md)", dir.display(), dir.display())]
    Refused {
        /// The log directory.
        dir: PathBuf,
        /// What disagrees, naming the file and the entry or checkpoint.
        what: String,
    },
    /// A key file is unusable.
    #[error("audit key {}: {what}", path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong and what to do.
        what: String,
    },
    /// The log cannot take entries now (disk full, write or fsync error,
    /// shutting down).
    #[error("the audit log cannot record entries: {0}")]
    Unavailable(String),
    /// An entry or tree size that does not exist (yet).
    #[error("{0}")]
    OutOfRange(String),
    /// A Merkle or note operation failed.
    #[error("{0}")]
    Proof(String),
}

impl AuditError {
    /// An I/O error on `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
