//! The audit log: every exchange, refusals included, appended to a durable,
//! tamper-evident log before any data leaves the gateway.
//!
//! - [`merkle`]: RFC 6962/9162 Merkle tree hashing, stored-hash layout,
//!   inclusion and consistency proofs.
//! - [`note`]: C2SP signed notes (Ed25519) and tlog checkpoints.

pub mod disclosure;
mod error;
mod fanout;
pub mod keys;
pub mod log;
pub mod merge;
pub mod merkle;
pub mod note;
pub mod peers;
pub mod record;
mod remote;
pub mod service;
pub mod summary;
pub mod tiles;
pub mod verify;
pub mod witnessing;

pub use error::AuditError;
pub use keys::Pseudonymizer;
pub use log::{AuditLog, LogOptions, SignedCheckpoint};
pub mod index;

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod fault_tests;
#[cfg(test)]
mod startup_tests;
#[cfg(test)]
mod tests;

/// Rebuilds the query indexes of the log in `dir` from its entries. The
/// gateway using the log must be stopped. Returns the number of entries.
pub fn reindex(dir: &std::path::Path) -> Result<u64, AuditError> {
    use crate::proto::jisr::audit::v1::AuditRecord;
    use prost::Message as _;
    let lock_path = dir.join("LOCK");
    let lock =
        std::fs::File::create(&lock_path).map_err(|e| AuditError::io("create", &lock_path, e))?;
    if lock.try_lock().is_err() {
        return Err(AuditError::Locked {
            dir: dir.to_owned(),
        });
    }
    let index_path = dir.join("index.redb");
    let index =
        index::AuditIndex::open(&index_path).map_err(|e| AuditError::Unavailable(e.to_string()))?;
    index
        .reset()
        .map_err(|e| AuditError::Unavailable(e.to_string()))?;
    let firsts = log::segment::list(dir).map_err(|e| AuditError::io("list", dir, e))?;
    let mut next = 0u64;
    let last = firsts.last().copied();
    for first in firsts {
        let path = log::segment::segment_path(dir, first);
        let mut records = Vec::new();
        let mut bad = None;
        let scan = log::segment::scan(&path, |_, payload| match AuditRecord::decode(payload) {
            Ok(r) => records.push(r),
            Err(e) => bad = bad.take().or(Some(e.to_string())),
        })
        .map_err(|e| AuditError::io("read", &path, e))?;
        if let Some(what) = bad {
            return Err(AuditError::Damaged {
                segment: path,
                what: format!("an entry is not a valid record ({what})"),
            });
        }
        if let Some(log::segment::Problem::Damage { what }) = scan.problem {
            return Err(AuditError::Damaged {
                segment: path,
                what,
            });
        }
        // Only the tail may be padded; the scan stopped at its records' end.
        if let Some(what) = scan.sealed_padding().filter(|_| Some(first) != last) {
            return Err(AuditError::Damaged {
                segment: path,
                what,
            });
        }
        for chunk in records.chunks(1000) {
            index
                .add(next, chunk)
                .map_err(|e| AuditError::Unavailable(e.to_string()))?;
            next += chunk.len() as u64;
        }
    }
    Ok(next)
}
