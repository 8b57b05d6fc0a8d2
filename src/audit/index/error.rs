//! What can go wrong with the audit index, said so an operator can act.

use std::path::PathBuf;

/// An audit index error.
///
/// The index is derived from the log, so the remedy for anything but a log
/// read error is to rebuild it with `jisr audit reindex`.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The index database cannot be opened.
    #[error("cannot open the audit index {}: {source}; if another gateway uses it, stop that one; if the file is damaged, delete it and rebuild it with `jisr audit reindex`", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// The error.
        source: redb::DatabaseError,
    },
    /// A read or write on the index database failed.
    #[error("the audit index {} failed: {source}; check the disk, and if this persists rebuild it with `jisr audit reindex`", path.display())]
    Db {
        /// The database file.
        path: PathBuf,
        /// The error.
        source: redb::Error,
    },
    /// The index holds something it cannot have written.
    #[error("the audit index {} is damaged ({what}); rebuild it with `jisr audit reindex`", path.display())]
    Damaged {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// Entries were offered out of log order.
    #[error("the audit index {} holds entries 0..{upto} but was given entries from {first}; index the log in order from entry {upto} (or rebuild it with `jisr audit reindex`)", path.display())]
    OutOfOrder {
        /// The database file.
        path: PathBuf,
        /// How many entries the index holds.
        upto: u64,
        /// The first index offered.
        first: u64,
    },
    /// An index row points at a log entry that does not carry the indexed value:
    /// the index was built from another log.
    #[error("the audit index {} does not match the log at entry {index}; rebuild it with `jisr audit reindex`", path.display())]
    Stale {
        /// The database file.
        path: PathBuf,
        /// The log entry.
        index: u64,
    },
    /// The log entry an index row points at cannot be read.
    #[error("cannot read audit log entry {index}: {source}")]
    Log {
        /// The log entry.
        index: u64,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl IndexError {
    /// A failure to read log entry `index` (for `fetch` callbacks).
    pub fn log(index: u64, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Log {
            index,
            source: source.into(),
        }
    }
}
