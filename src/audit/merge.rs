//! Merging the pages of several nodes into one, newest first, and the page
//! cursor that pages across all of them.
//!
//! Each node answers a page of its own log, newest (highest index) first,
//! with where to resume. The merge takes entries from the heads of those
//! pages, newest time first, so each node's entries are taken as a prefix
//! of its page: a node's position after the page is the index of the last
//! entry taken from it (or its own resume point when all were taken), and
//! no entry is skipped or shown twice. When a node that has more ran out
//! of page, the merge stops there: its next entries could be newer than
//! the other nodes' remaining ones.

use std::collections::BTreeMap;

use base64::Engine as _;

use crate::proto::jisr::audit::v1 as pb;
use crate::refusal::{Reason, Refusal};

/// Marks a merged-cursor token (an old single-node token is a bare number).
const PREFIX: &str = "m1.";

/// Where a node's listing stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Not started: its newest entry comes next.
    Start,
    /// Entries below this log index come next.
    Before(u64),
    /// All its entries were listed.
    Done,
}

impl Position {
    /// The `before` bound of the node's next page (`None`: from the newest).
    pub fn before(self) -> Option<u64> {
        match self {
            Self::Before(n) => Some(n),
            Self::Start | Self::Done => None,
        }
    }
}

/// Each node's position; a node not named is at [`Position::Start`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cursor(BTreeMap<String, Position>);

impl Cursor {
    /// The position of `node`.
    pub fn of(&self, node: &str) -> Position {
        self.0.get(node).copied().unwrap_or(Position::Start)
    }

    /// Reads a `next_page_token`; empty is the first page.
    pub fn parse(token: &str) -> Result<Self, Refusal> {
        if token.is_empty() {
            return Ok(Self::default());
        }
        let bad = |why: &str| {
            Refusal::new(
                Reason::InvalidRequest,
                format!("page_token {why}; pass the next_page_token of a previous answer unchanged, or none to start again"),
            )
        };
        let Some(body) = token.strip_prefix(PREFIX) else {
            if token.parse::<u64>().is_ok() {
                return Err(bad(
                    "is a single-node token from before answers merged every replica",
                ));
            }
            return Err(bad("is not a page token of this API"));
        };
        let text = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(body)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| bad("is damaged"))?;
        let mut positions = BTreeMap::new();
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let (node, at) = part.split_once('=').ok_or_else(|| bad("is damaged"))?;
            let at = match at {
                "done" => Position::Done,
                n => Position::Before(n.parse().map_err(|_| bad("is damaged"))?),
            };
            positions.insert(node.to_owned(), at);
        }
        Ok(Self(positions))
    }

    /// The token of this cursor.
    pub fn token(&self) -> String {
        let text: Vec<String> = self
            .0
            .iter()
            .filter_map(|(node, at)| match at {
                Position::Start => None,
                Position::Before(n) => Some(format!("{node}={n}")),
                Position::Done => Some(format!("{node}=done")),
            })
            .collect();
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text.join(","));
        format!("{PREFIX}{body}")
    }
}

/// One node's contribution to a page.
#[derive(Debug)]
pub struct NodePage {
    /// The node.
    pub node: String,
    /// Its entries, newest first (each with `node` set).
    pub entries: Vec<pb::Entry>,
    /// Where it resumes after all of `entries`; `None` when it has no more.
    pub next: Option<u64>,
}

/// Merges the pages of the nodes that answered into at most `size`
/// entries, newest first. `cursor` is the request's: nodes without a page
/// here (they did not answer) keep their positions in it, so a later page
/// asks them again. Returns the page and its next cursor, `None` when
/// every node that answered is done.
pub fn merge(
    pages: Vec<NodePage>,
    cursor: &Cursor,
    size: usize,
) -> (Vec<pb::Entry>, Option<Cursor>) {
    let (pages, mut heads): (Vec<(String, Option<u64>)>, Vec<_>) = pages
        .into_iter()
        .map(|p| ((p.node, p.next), p.entries.into_iter().peekable()))
        .unzip();
    let mut taken: Vec<Option<u64>> = vec![None; pages.len()];
    let mut out = Vec::with_capacity(size);
    while out.len() < size {
        // A node with more to list but nothing left on this page: its next
        // entries may be newer than any head, so the page ends here.
        let stalled = pages
            .iter()
            .zip(heads.iter_mut())
            .any(|((_, after), h)| after.is_some() && h.peek().is_none());
        if stalled {
            break;
        }
        let newest = heads
            .iter_mut()
            .enumerate()
            .filter_map(|(i, h)| h.peek().map(|e| (order_key(e), i)))
            .max();
        let Some((_, i)) = newest else { break };
        if let Some(entry) = heads[i].next() {
            taken[i] = Some(entry.index);
            out.push(entry);
        }
    }
    let mut next = cursor.clone();
    for (((node, after), head), last) in pages.iter().zip(heads.iter_mut()).zip(taken) {
        let at = match (head.peek().is_none(), last) {
            (true, _) => after.map_or(Position::Done, Position::Before),
            (false, Some(index)) => Position::Before(index),
            (false, None) => cursor.of(node),
        };
        next.0.insert(node.clone(), at);
    }
    let more = pages
        .iter()
        .any(|(node, _)| next.of(node) != Position::Done);
    (out, more.then_some(next))
}

/// Newest first: time, then node and index to break ties the same way
/// on every page.
fn order_key(e: &pb::Entry) -> (i64, String, u64) {
    let time = e.record.as_ref().map_or(0, |r| r.time_unix_micros);
    (time, e.node.clone(), e.index)
}

/// The largest page a query may ask for.
const MAX_PAGE: u32 = 1000;

/// A node's own page token: a bare position in its log.
pub(super) fn page_token(token: &str) -> Result<Option<u64>, crate::refusal::Refusal> {
    if token.is_empty() {
        return Ok(None);
    }
    token.parse().map(Some).map_err(|_| {
        crate::refusal::Refusal::new(
            crate::refusal::Reason::InvalidRequest,
            "page_token must be the next_page_token of a previous answer",
        )
    })
}

/// The page size asked for, within bounds.
pub(super) fn page_size(size: u32) -> usize {
    if size == 0 {
        50
    } else {
        size.min(MAX_PAGE) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(node: &str, index: u64, time: i64) -> pb::Entry {
        pb::Entry {
            index,
            node: node.into(),
            record: Some(pb::AuditRecord {
                time_unix_micros: time,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Three nodes' logs (index, time); pages them all through `merge` as
    /// the service does and returns every (node, index) listed, in order.
    fn walk(logs: &[(&str, Vec<i64>)], size: usize, per_node: usize) -> Vec<(String, u64)> {
        let mut cursor = Cursor::default();
        let mut seen = Vec::new();
        for _ in 0..1000 {
            let pages = logs
                .iter()
                .filter(|(node, _)| cursor.of(node) != Position::Done)
                .map(|(node, times)| {
                    let below = cursor.of(node).before().unwrap_or(times.len() as u64);
                    let entries: Vec<_> = (0..below)
                        .rev()
                        .take(per_node)
                        .map(|i| entry(node, i, times[i as usize]))
                        .collect();
                    let next = entries.last().map(|e| e.index).filter(|&i| i > 0);
                    NodePage {
                        node: (*node).to_owned(),
                        entries,
                        next,
                    }
                })
                .collect();
            let (page, next) = merge(pages, &cursor, size);
            seen.extend(page.into_iter().map(|e| (e.node, e.index)));
            match next {
                Some(next) => cursor = Cursor::parse(&next.token()).unwrap(),
                None => return seen,
            }
        }
        panic!("paging did not end");
    }

    #[test]
    fn paging_lists_every_entry_once_newest_first() {
        let logs = [
            ("gw-1", vec![1, 4, 7, 10, 13]),
            ("gw-2", vec![2, 5, 8]),
            ("gw-3", vec![3, 6, 9, 11, 12, 14, 15]),
        ];
        for (size, per_node) in [(1, 1), (2, 2), (3, 2), (4, 4), (50, 50)] {
            let seen = walk(&logs, size, per_node.max(size));
            assert_eq!(seen.len(), 15, "size {size}: {seen:?}");
            let mut unique = seen.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), 15);
            let times: Vec<i64> = seen
                .iter()
                .map(|(n, i)| logs.iter().find(|l| l.0 == n).unwrap().1[*i as usize])
                .collect();
            let mut sorted = times.clone();
            sorted.sort_by(|a, b| b.cmp(a));
            assert_eq!(times, sorted, "size {size}: not newest first");
        }
    }

    #[test]
    fn short_node_pages_still_list_everything_once() {
        let logs = [("a", vec![1, 2, 3, 4]), ("b", vec![5, 6, 7, 8, 9])];
        let seen = walk(&logs, 5, 1);
        assert_eq!(seen.len(), 9);
    }

    #[test]
    fn old_and_damaged_tokens_are_refused_clearly() {
        let old = Cursor::parse("17").unwrap_err();
        assert!(old.message.contains("single-node"), "{}", old.message);
        assert!(Cursor::parse("m1.!!").is_err());
        assert!(Cursor::parse("bogus").is_err());
        let mut c = Cursor::default();
        c.0.insert("gw-1".into(), Position::Before(4));
        c.0.insert("gw-2".into(), Position::Done);
        assert_eq!(Cursor::parse(&c.token()).unwrap(), c);
    }
}
