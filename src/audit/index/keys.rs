//! Table definitions and key encodings.
//!
//! Every index table maps `prefix ‖ index` (big-endian, so a prefix's rows
//! sort by log index) to nothing; a range over one prefix walked backwards
//! yields that prefix's entries newest first. Variable-length prefixes end in
//! 0x00, and a row counts only when its key is exactly `prefix.len() + 8`
//! bytes long, so a value containing 0x00 cannot pose as another's prefix.

use redb::{StorageError, Table, TableDefinition, WriteTransaction};

use crate::proto::jisr::audit::v1::{AuditRecord, Side};

/// A pointer table: `prefix ‖ index` → ().
pub(super) type Rows = TableDefinition<'static, &'static [u8], ()>;

/// Pseudonym (32 bytes) ‖ index.
pub(super) const BY_SUBJECT: Rows = TableDefinition::new("by_subject");
/// Agency ‖ 0x00 ‖ side byte ‖ index; two rows per entry.
pub(super) const BY_AGENCY: Rows = TableDefinition::new("by_agency");
/// Procedure ‖ 0x00 ‖ index.
pub(super) const BY_PROCEDURE: Rows = TableDefinition::new("by_procedure");
/// Reason ‖ 0x00 ‖ index.
pub(super) const BY_REASON: Rows = TableDefinition::new("by_reason");
/// Outcome (i32 BE) ‖ index.
pub(super) const BY_OUTCOME: Rows = TableDefinition::new("by_outcome");
/// Index of each break-glass entry.
pub(super) const BREAK_GLASS: Rows = TableDefinition::new("break_glass");
/// Block number → (earliest, latest) time of the block's entries.
pub(super) const BY_TIME: TableDefinition<'static, u64, (i64, i64)> =
    TableDefinition::new("by_time_block");
/// `indexed_upto` and `format`.
pub(super) const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("meta");

/// Every pointer table, for creating and dropping them together.
pub(super) const ROW_TABLES: [Rows; 6] = [
    BY_SUBJECT,
    BY_AGENCY,
    BY_PROCEDURE,
    BY_REASON,
    BY_OUTCOME,
    BREAK_GLASS,
];

/// Meta key: how many log entries are indexed.
pub(super) const UPTO: &str = "indexed_upto";
/// Meta key: the layout version of this file.
pub(super) const FORMAT: &str = "format";
/// The layout this code writes and reads.
pub(super) const FORMAT_VERSION: u64 = 1;
/// Entries per time block: small enough that a block straddling a range edge
/// costs few wasted reads, large enough that skipping a year is quick.
pub(super) const BLOCK: u64 = 256;

/// The prefix of a pseudonym's rows.
pub(super) fn subject(pseudonym: &[u8]) -> Vec<u8> {
    pseudonym.to_vec()
}

/// The prefix of an agency's rows on one side.
pub(super) fn agency(name: &str, side: Side) -> Vec<u8> {
    let mut key = text(name);
    key.push(side as u8);
    key
}

/// The prefix of a text value's rows.
pub(super) fn text(value: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(value.len() + 10);
    key.extend_from_slice(value.as_bytes());
    key.push(0);
    key
}

/// The prefix of an outcome's rows.
pub(super) fn outcome(value: i32) -> Vec<u8> {
    value.to_be_bytes().to_vec()
}

/// `prefix ‖ index`.
pub(super) fn row(prefix: &[u8], index: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(prefix.len() + 8);
    key.extend_from_slice(prefix);
    key.extend_from_slice(&index.to_be_bytes());
    key
}

/// The index a row of `prefix_len`-byte prefix points at, or `None` when the
/// key belongs to a longer prefix that merely starts the same way.
pub(super) fn index_of(key: &[u8], prefix_len: usize) -> Option<u64> {
    let tail: [u8; 8] = key.get(prefix_len..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

/// The pointer tables of one write transaction.
pub(super) struct Writer<'t> {
    subject: Table<'t, &'static [u8], ()>,
    agency: Table<'t, &'static [u8], ()>,
    procedure: Table<'t, &'static [u8], ()>,
    reason: Table<'t, &'static [u8], ()>,
    outcome: Table<'t, &'static [u8], ()>,
    break_glass: Table<'t, &'static [u8], ()>,
}

impl<'t> Writer<'t> {
    /// Opens (creating) the pointer tables.
    pub(super) fn open(txn: &'t WriteTransaction) -> Result<Self, redb::TableError> {
        Ok(Self {
            subject: txn.open_table(BY_SUBJECT)?,
            agency: txn.open_table(BY_AGENCY)?,
            procedure: txn.open_table(BY_PROCEDURE)?,
            reason: txn.open_table(BY_REASON)?,
            outcome: txn.open_table(BY_OUTCOME)?,
            break_glass: txn.open_table(BREAK_GLASS)?,
        })
    }

    /// Writes the rows of one entry (the time block aside).
    pub(super) fn insert(&mut self, index: u64, record: &AuditRecord) -> Result<(), StorageError> {
        if record.subject.len() == 32 {
            put(&mut self.subject, &subject(&record.subject), index)?;
        }
        // Empty values are not indexed: a query for "" filters on the record.
        if !record.consumer.is_empty() {
            put(
                &mut self.agency,
                &agency(&record.consumer, Side::Consumer),
                index,
            )?;
        }
        if !record.provider.is_empty() {
            put(
                &mut self.agency,
                &agency(&record.provider, Side::Provider),
                index,
            )?;
        }
        if !record.procedure.is_empty() {
            put(&mut self.procedure, &text(&record.procedure), index)?;
        }
        if !record.reason.is_empty() {
            put(&mut self.reason, &text(&record.reason), index)?;
        }
        put(&mut self.outcome, &outcome(record.outcome), index)?;
        if record.break_glass {
            put(&mut self.break_glass, &[], index)?;
        }
        Ok(())
    }
}

fn put(
    table: &mut Table<'_, &'static [u8], ()>,
    prefix: &[u8],
    index: u64,
) -> Result<(), StorageError> {
    table.insert(row(prefix, index).as_slice(), ())?;
    Ok(())
}
