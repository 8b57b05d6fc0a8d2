//! Derived, rebuildable indexes over the audit log: which entries concern a
//! citizen (by pseudonym), an agency (as consumer or provider), a procedure,
//! a reason, an outcome, break-glass access, or a time range.
//!
//! The index lives in an embedded redb database beside the log and holds only
//! pointers (log indexes); queries read the entries themselves from the log,
//! the source of truth, through a `fetch` callback. Losing or distrusting the
//! index costs nothing but a `jisr audit reindex`.
//!
//! A query walks the most selective index given, newest first, fetches each
//! candidate and applies the remaining filters to it. The work per call is
//! bounded: a query that matches rarely returns a short page and a token to
//! resume from, rather than scanning the whole log in one call.

mod error;
mod keys;
mod plan;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};

pub use error::IndexError;

use crate::proto::jisr::audit::v1::{AuditRecord, Side};

/// Page size when the query names none.
const DEFAULT_PAGE: usize = 50;
/// Largest page served.
const MAX_PAGE: usize = 1000;
/// Index rows walked per fetched entry before a call gives up: skipping a
/// row unread (outside the time range) costs far less than a fetch.
const ROWS_PER_FETCH: usize = 64;

/// Derived, rebuildable indexes over the audit log, in an embedded redb database.
pub struct AuditIndex {
    db: Database,
    path: PathBuf,
}

impl std::fmt::Debug for AuditIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditIndex")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// What to look for. Unset fields do not filter; set ones must all match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Only entries of this agency (on `side`).
    pub agency: Option<String>,
    /// The side `agency` must be on; `None` (or unspecified) means either.
    pub side: Option<Side>,
    /// Only entries about this citizen pseudonym.
    pub subject: Option<[u8; 32]>,
    /// Only entries at or after this time (microseconds since the epoch).
    pub from_unix_micros: Option<i64>,
    /// Only entries before this time (exclusive).
    pub to_unix_micros: Option<i64>,
    /// Only entries under this procedure.
    pub procedure: Option<String>,
    /// Only entries for this purpose (checked on each entry, not indexed).
    pub purpose: Option<String>,
    /// Only entries with this outcome (an `Outcome` value).
    pub outcome: Option<i32>,
    /// Only entries with this refusal or failure reason.
    pub reason: Option<String>,
    /// Only break-glass entries.
    pub break_glass: bool,
    /// Entries per page: 0 means 50, more than 1000 means 1000.
    pub page_size: usize,
    /// Page token: only entries with an index below this one.
    pub before: Option<u64>,
}

/// One page of results, newest (highest log index) first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// The matching entries, by descending log index.
    pub entries: Vec<(u64, AuditRecord)>,
    /// Index to pass as `before` for the next page, None when done.
    pub next: Option<u64>,
}

impl AuditIndex {
    /// Opens the index at `path`, creating it if absent. Every page is
    /// checked on open: a damaged file is an error, never a panic (see
    /// [`crate::embedded`]).
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        crate::embedded::guard(|| Self::open_checked(path)).unwrap_or_else(|panic| {
            Err(IndexError::Damaged {
                path: path.to_owned(),
                what: format!("the storage library failed reading it: {panic}"),
            })
        })
    }

    /// Opens the index, or, when it is damaged, moves it aside
    /// (`index.redb.damaged-<time>`) and starts an empty one: the index is
    /// derived from the log, and the node indexes the log into it again
    /// before it serves queries. An index in use elsewhere is still an error.
    pub fn open_or_rebuild(path: &Path) -> Result<Self, IndexError> {
        match Self::open(path) {
            Err(e) if is_damage(&e) => {
                let moved = crate::audit::log::aside::rename(path, "damaged").map_err(|io| {
                    IndexError::Damaged {
                        path: path.to_owned(),
                        what: format!("{e}; moving it aside to rebuild it failed: {io}"),
                    }
                })?;
                tracing::warn!(index = %path.display(), copy = %moved.display(), error = %e, "audit index damaged: moved aside and rebuilt from the log");
                Self::open(path)
            }
            other => other,
        }
    }

    fn open_checked(path: &Path) -> Result<Self, IndexError> {
        let db = Database::builder()
            .set_check_integrity_on_open(true)
            .create(path)
            .map_err(|source| IndexError::Open {
                path: path.to_owned(),
                source,
            })?;
        let index = Self {
            db,
            path: path.to_owned(),
        };
        let txn = index.db.begin_write().map_err(|e| index.db_err(e))?;
        index.prepare(&txn)?;
        txn.commit().map_err(|e| index.db_err(e))?;
        Ok(index)
    }

    /// How many log entries (0..n) are indexed.
    pub fn indexed_upto(&self) -> Result<u64, IndexError> {
        let txn = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let meta = txn.open_table(keys::META).map_err(|e| self.db_err(e))?;
        let upto = meta.get(keys::UPTO).map_err(|e| self.db_err(e))?;
        Ok(upto.map_or(0, |v| v.value()))
    }

    /// Indexes entries `first..first + records.len()` in one write
    /// transaction; `first` must equal [`Self::indexed_upto`].
    pub fn add(&self, first: u64, records: &[AuditRecord]) -> Result<(), IndexError> {
        let txn = self.db.begin_write().map_err(|e| self.db_err(e))?;
        {
            let mut meta = txn.open_table(keys::META).map_err(|e| self.db_err(e))?;
            let upto = meta.get(keys::UPTO).map_err(|e| self.db_err(e))?;
            let upto = upto.map_or(0, |v| v.value());
            if first != upto {
                return Err(IndexError::OutOfOrder {
                    path: self.path.clone(),
                    upto,
                    first,
                });
            }
            let mut writer = keys::Writer::open(&txn).map_err(|e| self.db_err(e))?;
            for (index, record) in (first..).zip(records) {
                writer.insert(index, record).map_err(|e| self.db_err(e))?;
            }
            self.add_blocks(&txn, first, records)?;
            let end = first + records.len() as u64;
            meta.insert(keys::UPTO, end).map_err(|e| self.db_err(e))?;
        }
        txn.commit().map_err(|e| self.db_err(e))
    }

    /// Drops everything (for `jisr audit reindex`).
    pub fn reset(&self) -> Result<(), IndexError> {
        let txn = self.db.begin_write().map_err(|e| self.db_err(e))?;
        for table in keys::ROW_TABLES {
            txn.delete_table(table).map_err(|e| self.db_err(e))?;
        }
        txn.delete_table(keys::BY_TIME)
            .map_err(|e| self.db_err(e))?;
        txn.delete_table(keys::META).map_err(|e| self.db_err(e))?;
        self.prepare(&txn)?;
        txn.commit().map_err(|e| self.db_err(e))
    }

    /// Runs a query; `fetch(index)` reads and decodes one log entry (the log
    /// is the source of truth; the index only holds pointers).
    ///
    /// Examines at most max(10·page size, 1000) entries per call: when that
    /// does not fill the page, the page comes back short with `next` set, and
    /// the caller pages on.
    pub fn query(
        &self,
        q: &Query,
        fetch: &dyn Fn(u64) -> Result<AuditRecord, IndexError>,
    ) -> Result<Page, IndexError> {
        let txn = self.db.begin_read().map_err(|e| self.db_err(e))?;
        let upto = {
            let meta = txn.open_table(keys::META).map_err(|e| self.db_err(e))?;
            let upto = meta.get(keys::UPTO).map_err(|e| self.db_err(e))?;
            upto.map_or(0, |v| v.value())
        };
        let below = q.before.map_or(upto, |b| b.min(upto));
        let page_size = match q.page_size {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let fetch_budget = (10 * page_size).max(1000);
        let row_budget = ROWS_PER_FETCH * fetch_budget;
        let mut plan = plan::Plan::new(&txn, q, below).map_err(|e| self.db_err(e))?;
        let (mut fetched, mut walked) = (0, 0);
        let mut entries = Vec::new();
        while let Some(index) = plan.next().map_err(|e| self.db_err(e))? {
            // Another candidate exists: a full page or a spent budget ends
            // here, and the next call resumes with this candidate.
            if entries.len() == page_size || fetched == fetch_budget || walked == row_budget {
                return Ok(Page {
                    entries,
                    next: Some(index + 1),
                });
            }
            walked += 1;
            if !plan.admits(index).map_err(|e| self.db_err(e))? {
                continue;
            }
            fetched += 1;
            let record = fetch(index)?;
            if !plan.confirms(&record) {
                return Err(IndexError::Stale {
                    path: self.path.clone(),
                    index,
                });
            }
            if plan::matches(q, &record) {
                entries.push((index, record));
            }
        }
        Ok(Page {
            entries,
            next: None,
        })
    }

    /// Creates the tables and checks (or stamps) the format.
    fn prepare(&self, txn: &WriteTransaction) -> Result<(), IndexError> {
        keys::Writer::open(txn).map_err(|e| self.db_err(e))?;
        txn.open_table(keys::BY_TIME).map_err(|e| self.db_err(e))?;
        let mut meta = txn.open_table(keys::META).map_err(|e| self.db_err(e))?;
        let format = meta.get(keys::FORMAT).map_err(|e| self.db_err(e))?;
        match format.map(|v| v.value()) {
            Some(keys::FORMAT_VERSION) => Ok(()),
            Some(other) => Err(IndexError::Damaged {
                path: self.path.clone(),
                what: format!(
                    "it has layout {other}, this Jisr reads layout {}",
                    keys::FORMAT_VERSION
                ),
            }),
            None => {
                meta.insert(keys::FORMAT, keys::FORMAT_VERSION)
                    .map_err(|e| self.db_err(e))?;
                Ok(())
            }
        }
    }

    /// Widens the time spans of the blocks `records` fall in.
    fn add_blocks(
        &self,
        txn: &WriteTransaction,
        first: u64,
        records: &[AuditRecord],
    ) -> Result<(), IndexError> {
        let mut table = txn.open_table(keys::BY_TIME).map_err(|e| self.db_err(e))?;
        let mut rest = records;
        let mut index = first;
        while !rest.is_empty() {
            let block = index / keys::BLOCK;
            let room = ((block + 1) * keys::BLOCK - index) as usize;
            let (chunk, tail) = rest.split_at(room.min(rest.len()));
            let times = chunk.iter().map(|r| r.time_unix_micros);
            let span = (times.clone().min(), times.max());
            let (Some(mut earliest), Some(mut latest)) = span else {
                break;
            };
            if let Some(old) = table.get(block).map_err(|e| self.db_err(e))? {
                let (e, l) = old.value();
                earliest = earliest.min(e);
                latest = latest.max(l);
            }
            table
                .insert(block, (earliest, latest))
                .map_err(|e| self.db_err(e))?;
            index += chunk.len() as u64;
            rest = tail;
        }
        Ok(())
    }

    fn db_err(&self, e: impl Into<redb::Error>) -> IndexError {
        IndexError::Db {
            path: self.path.clone(),
            source: e.into(),
        }
    }
}

/// Whether an error opening the index means its file is damaged (rather
/// than in use, unreadable or on a failing disk).
fn is_damage(e: &IndexError) -> bool {
    use redb::{DatabaseError, Error, StorageError};
    match e {
        IndexError::Damaged { .. } => true,
        IndexError::Open { source, .. } => matches!(
            source,
            DatabaseError::Storage(StorageError::Corrupted(_)) | DatabaseError::UpgradeRequired(_)
        ),
        IndexError::Db { source, .. } => matches!(source, Error::Corrupted(_)),
        _ => false,
    }
}

/// Indexes the entries appended since the last call.
pub fn catch_up(index: &AuditIndex, log: &super::AuditLog) -> Result<(), IndexError> {
    let size = log.size();
    let mut next = index.indexed_upto()?;
    while next < size {
        let end = size.min(next + 1000);
        let records = (next..end)
            .map(|i| {
                let bytes = log.read(i).map_err(|e| IndexError::log(i, e))?;
                <AuditRecord as prost::Message>::decode(bytes.as_slice())
                    .map_err(|e| IndexError::log(i, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        index.add(next, &records)?;
        next = end;
    }
    Ok(())
}
