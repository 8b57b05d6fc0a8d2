//! Deferred disclosure: an exchange made under a rule with `disclose_on`
//! (a covert investigation) carries its date in `disclose_from_unix_micros`
//! and is kept from the citizen, as the portal reads their history or one
//! of its entries, until that time; from then on it is shown like any
//! other. Auditors always read it, the date in the record flagging it.
//!
//! The date is compared with the node's [`crate::clock::Clock`], which tests
//! set by hand instead of waiting for the date.

use crate::proto::jisr::audit::v1 as pb;

/// Whether the citizen may be shown `record` at `now` (microseconds since
/// the epoch): from its disclosure time on, included. An entry without one
/// (0, every entry written before the field existed) is always shown.
pub fn disclosed(record: &pb::AuditRecord, now: i64) -> bool {
    record.disclose_from_unix_micros <= now
}

/// Keeps the entries of a history the citizen may be shown at `now`. The
/// page keeps its token: a page of the citizen's history may then hold
/// fewer entries than asked for, and the next page goes on from where the
/// log was read up to, never skipping a shown entry.
pub(super) fn for_the_citizen(answer: &mut pb::QueryResponse, now: i64) {
    answer
        .entries
        .retain(|e| e.record.as_ref().is_none_or(|r| disclosed(r, now)));
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000;
    /// 2030-01-01T00:00:00Z.
    const DATE: i64 = 1_893_456_000 * SECOND;

    fn entry(index: u64, disclose_from_unix_micros: i64) -> pb::Entry {
        pb::Entry {
            index,
            record: Some(pb::AuditRecord {
                disclose_from_unix_micros,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn shown(now: i64) -> Vec<u64> {
        let mut answer = pb::QueryResponse {
            entries: vec![entry(2, DATE), entry(1, 0), entry(0, DATE - 60 * SECOND)],
            next_page_token: "0".into(),
            missing: Vec::new(),
        };
        for_the_citizen(&mut answer, now);
        assert_eq!(answer.next_page_token, "0", "the page goes on");
        answer.entries.iter().map(|e| e.index).collect()
    }

    #[test]
    fn a_deferred_entry_is_hidden_until_its_date_and_shown_from_it() {
        assert_eq!(
            shown(DATE - 61 * SECOND),
            vec![1],
            "both deferred ones hidden"
        );
        assert_eq!(
            shown(DATE - SECOND),
            vec![1, 0],
            "one second before the date"
        );
        assert_eq!(shown(DATE), vec![2, 1, 0], "at the date");
        assert_eq!(shown(DATE + SECOND), vec![2, 1, 0], "one second after");
    }

    #[test]
    fn an_entry_without_a_date_is_always_shown() {
        let old = pb::AuditRecord::default();
        assert!(disclosed(&old, 0));
        assert!(disclosed(&old, DATE));
        let deferred = entry(0, DATE).record.unwrap_or_default();
        assert!(!disclosed(&deferred, DATE - 1), "one microsecond before");
        assert!(disclosed(&deferred, DATE));
    }
}
