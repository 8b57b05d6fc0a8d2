//! Query planning: pick the most selective index as the driver, walk it
//! newest first, and say which candidates are worth fetching.

use std::iter::Peekable;

use redb::{AccessGuard, ReadOnlyTable, ReadTransaction, StorageError};

use super::keys::{self, Rows};
use super::Query;
use crate::proto::jisr::audit::v1::{AuditRecord, Side};

type Walk = Box<dyn Iterator<Item = Result<u64, StorageError>>>;
type Blocks = ReadOnlyTable<u64, (i64, i64)>;
/// A span of log indexes.
type Span = std::ops::Range<u64>;

/// The indexed value the driver walks, to check each fetched entry against.
#[derive(Debug)]
enum Driven {
    Subject([u8; 32]),
    Agency(String, Option<Side>),
    Procedure(String),
    Reason(String),
    BreakGlass,
    Outcome(i32),
    /// The time walk and the full walk: candidates are not promised to match.
    Nothing,
}

/// A query's driver: candidate indexes, descending, below `before`.
pub(super) struct Plan {
    walk: Walk,
    driven: Driven,
    /// Set when a time range is given but another index drives: lets
    /// candidates in blocks outside the range be skipped unread.
    zones: Option<Zones>,
}

impl Plan {
    /// Plans `q` over the entries below `below`.
    pub(super) fn new(txn: &ReadTransaction, q: &Query, below: u64) -> Result<Self, redb::Error> {
        let time = range_of(q);
        let timed = time.from.is_some() || time.to.is_some();
        let blocks = txn.open_table(keys::BY_TIME)?;
        // With a time range, every driver starts at the newest block the range
        // meets and stops at the oldest, instead of walking from `below` to 0.
        let (low, below) = match timed {
            true => window(&blocks, time, below)?,
            false => (0, below),
        };
        let rows = |table: Rows, prefix: Vec<u8>| -> Result<Walk, redb::Error> {
            Ok(Box::new(rows(
                &txn.open_table(table)?,
                &prefix,
                low..below,
            )?))
        };
        let (walk, driven) = match index_driver(q, rows)? {
            Some(driver) => driver,
            None if timed => {
                let walk = TimeWalk::new(&blocks, time, low..below)?;
                return Ok(Self {
                    walk: Box::new(walk),
                    driven: Driven::Nothing,
                    zones: None,
                });
            }
            None => (Box::new((0..below).rev().map(Ok)) as Walk, Driven::Nothing),
        };
        let zones = timed.then_some(Zones {
            table: blocks,
            range: time,
            last: None,
        });
        Ok(Self {
            walk,
            driven,
            zones,
        })
    }

    /// The next candidate, newest first.
    pub(super) fn next(&mut self) -> Result<Option<u64>, StorageError> {
        self.walk.next().transpose()
    }

    /// Whether candidate `index` may match (false: skip it unread).
    pub(super) fn admits(&mut self, index: u64) -> Result<bool, StorageError> {
        match &mut self.zones {
            Some(zones) => zones.admits(index),
            None => Ok(true),
        }
    }

    /// Whether a fetched entry carries the value its index row claims.
    pub(super) fn confirms(&self, r: &AuditRecord) -> bool {
        match &self.driven {
            Driven::Subject(s) => r.subject == s.as_slice(),
            Driven::Agency(a, side) => agency_matches(r, a, *side),
            Driven::Procedure(p) => r.procedure == *p,
            Driven::Reason(reason) => r.reason == *reason,
            Driven::BreakGlass => r.break_glass,
            Driven::Outcome(o) => r.outcome == *o,
            Driven::Nothing => true,
        }
    }
}

/// The index that drives `q`: the first of subject, agency, procedure,
/// reason, break-glass and outcome that `q` names; `None` when it names
/// none. `rows` walks one index's entries under a key prefix.
fn index_driver(
    q: &Query,
    rows: impl Fn(Rows, Vec<u8>) -> Result<Walk, redb::Error>,
) -> Result<Option<(Walk, Driven)>, redb::Error> {
    let given = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    let driver = if let Some(s) = q.subject {
        (
            rows(keys::BY_SUBJECT, keys::subject(&s))?,
            Driven::Subject(s),
        )
    } else if let Some(a) = given(&q.agency) {
        let walk = match q.side.filter(|s| *s != Side::Unspecified) {
            Some(side) => rows(keys::BY_AGENCY, keys::agency(&a, side))?,
            None => Box::new(Merge {
                a: rows(keys::BY_AGENCY, keys::agency(&a, Side::Consumer))?.peekable(),
                b: rows(keys::BY_AGENCY, keys::agency(&a, Side::Provider))?.peekable(),
            }),
        };
        (walk, Driven::Agency(a, q.side))
    } else if let Some(p) = given(&q.procedure) {
        (
            rows(keys::BY_PROCEDURE, keys::text(&p))?,
            Driven::Procedure(p),
        )
    } else if let Some(r) = given(&q.reason) {
        (rows(keys::BY_REASON, keys::text(&r))?, Driven::Reason(r))
    } else if q.break_glass {
        (rows(keys::BREAK_GLASS, Vec::new())?, Driven::BreakGlass)
    } else if let Some(o) = q.outcome {
        (
            rows(keys::BY_OUTCOME, keys::outcome(o))?,
            Driven::Outcome(o),
        )
    } else {
        return Ok(None);
    };
    Ok(Some(driver))
}

/// Whether `r` satisfies every filter of `q`.
pub(super) fn matches(q: &Query, r: &AuditRecord) -> bool {
    q.agency
        .as_ref()
        .is_none_or(|a| agency_matches(r, a, q.side))
        && q.subject.is_none_or(|s| r.subject == s.as_slice())
        && range_of(q).contains(r.time_unix_micros)
        && q.procedure.as_ref().is_none_or(|p| r.procedure == *p)
        && q.purpose.as_ref().is_none_or(|p| r.purpose == *p)
        && q.outcome.is_none_or(|o| r.outcome == o)
        && q.reason.as_ref().is_none_or(|reason| r.reason == *reason)
        && (!q.break_glass || r.break_glass)
}

fn agency_matches(r: &AuditRecord, agency: &str, side: Option<Side>) -> bool {
    match side {
        Some(Side::Consumer) => r.consumer == agency,
        Some(Side::Provider) => r.provider == agency,
        Some(Side::Unspecified) | None => r.consumer == agency || r.provider == agency,
    }
}

/// A time filter: `from` inclusive, `to` exclusive, either open.
#[derive(Debug, Clone, Copy)]
struct TimeRange {
    from: Option<i64>,
    to: Option<i64>,
}

impl TimeRange {
    fn contains(&self, t: i64) -> bool {
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|to| t < to)
    }

    /// Whether some time in `earliest..=latest` is in the range.
    fn meets(&self, (earliest, latest): (i64, i64)) -> bool {
        self.from.is_none_or(|f| latest >= f) && self.to.is_none_or(|to| earliest < to)
    }
}

fn range_of(q: &Query) -> TimeRange {
    TimeRange {
        from: q.from_unix_micros,
        to: q.to_unix_micros,
    }
}

/// The span of the blocks below `below` that a time range meets, from the
/// oldest to the newest such block; empty when none does.
fn window(blocks: &Blocks, time: TimeRange, below: u64) -> Result<(u64, u64), StorageError> {
    let all = blocks.range(0..below.div_ceil(keys::BLOCK))?;
    type Row = Result<(AccessGuard<'static, u64>, AccessGuard<'static, (i64, i64)>), StorageError>;
    let meeting = |row: &Row| match row {
        Ok((_, span)) => time.meets(span.value()),
        Err(_) => true,
    };
    let mut all = all
        .filter(meeting)
        .map(|row| row.map(|(block, _)| block.value()));
    let Some(newest) = all.next_back().transpose()? else {
        return Ok((0, 0));
    };
    let oldest = all.next().transpose()?.unwrap_or(newest);
    Ok((oldest * keys::BLOCK, below.min((newest + 1) * keys::BLOCK)))
}

/// The indexes of one prefix's rows within `span`, descending.
fn rows(
    table: &ReadOnlyTable<&'static [u8], ()>,
    prefix: &[u8],
    span: Span,
) -> Result<impl Iterator<Item = Result<u64, StorageError>> + 'static, StorageError> {
    let (low, high) = (keys::row(prefix, span.start), keys::row(prefix, span.end));
    let len = prefix.len();
    let range = table.range(low.as_slice()..high.as_slice())?;
    Ok(range.rev().filter_map(move |row| match row {
        Ok((key, _)) => keys::index_of(key.value(), len).map(Ok),
        Err(e) => Some(Err(e)),
    }))
}

/// Two descending walks merged into one, an index present in both once
/// (an agency calling itself is on both sides of one entry).
struct Merge {
    a: Peekable<Walk>,
    b: Peekable<Walk>,
}

impl Iterator for Merge {
    type Item = Result<u64, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (a, b) = match (self.a.peek(), self.b.peek()) {
            (Some(Err(_)), _) | (_, None) => return self.a.next(),
            (_, Some(Err(_))) | (None, _) => return self.b.next(),
            (Some(Ok(a)), Some(Ok(b))) => (*a, *b),
        };
        if a == b {
            self.b.next();
        }
        match a >= b {
            true => self.a.next(),
            false => self.b.next(),
        }
    }
}

/// The entries of the blocks whose times meet the range, descending: exact
/// in log order even when clocks step back, and quick over far-off blocks.
struct TimeWalk {
    blocks: redb::Range<'static, u64, (i64, i64)>,
    range: TimeRange,
    span: Span,
    current: Span,
}

impl TimeWalk {
    fn new(table: &Blocks, range: TimeRange, span: Span) -> Result<Self, StorageError> {
        Ok(Self {
            blocks: table.range(span.start / keys::BLOCK..span.end.div_ceil(keys::BLOCK))?,
            range,
            span,
            current: 0..0,
        })
    }
}

impl Iterator for TimeWalk {
    type Item = Result<u64, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(index) = self.current.next_back() {
                return Some(Ok(index));
            }
            let (block, span) = match self.blocks.next_back()? {
                Ok((block, span)) => (block.value(), span.value()),
                Err(e) => return Some(Err(e)),
            };
            if self.range.meets(span) {
                let start = block * keys::BLOCK;
                let end = self.span.end.min(start + keys::BLOCK);
                self.current = self.span.start.max(start)..end;
            }
        }
    }
}

/// Time block lookups for candidates of another driver, remembering the last
/// block (candidates come in descending order, so often from the same one).
struct Zones {
    table: Blocks,
    range: TimeRange,
    last: Option<(u64, bool)>,
}

impl Zones {
    fn admits(&mut self, index: u64) -> Result<bool, StorageError> {
        let block = index / keys::BLOCK;
        if let Some((b, admits)) = self.last {
            if b == block {
                return Ok(admits);
            }
        }
        // A block without a row cannot happen for indexed entries; fetching
        // the candidate then decides.
        let admits = match self.table.get(block)? {
            Some(span) => self.range.meets(span.value()),
            None => true,
        };
        self.last = Some((block, admits));
        Ok(admits)
    }
}
