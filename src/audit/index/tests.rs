//! Tests: each filter against a naive filter over all records, paging, the
//! work bound, persistence, and a property test over random logs and queries.

use proptest::prelude::*;

use super::{AuditIndex, IndexError, Page, Query};
use crate::proto::jisr::audit::v1::{AuditRecord, Outcome, Side};

mod bench;

/// An index in a temporary directory plus the "log" it indexes.
struct Fixture {
    _dir: tempfile::TempDir,
    index: AuditIndex,
    log: Vec<AuditRecord>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let index = AuditIndex::open(&dir.path().join("index.redb")).unwrap();
        Self {
            _dir: dir,
            index,
            log: Vec::new(),
        }
    }

    fn with(records: &[AuditRecord]) -> Self {
        let mut f = Self::new();
        f.append(records, 100);
        f
    }

    fn append(&mut self, records: &[AuditRecord], batch: usize) {
        for chunk in records.chunks(batch.max(1)) {
            self.index.add(self.log.len() as u64, chunk).unwrap();
            self.log.extend_from_slice(chunk);
        }
    }

    fn query(&self, q: &Query) -> Page {
        let fetch = |i: u64| {
            self.log
                .get(i as usize)
                .cloned()
                .ok_or_else(|| IndexError::log(i, "no such entry"))
        };
        self.index.query(q, &fetch).unwrap()
    }

    /// Every page of `q`, checked to be descending and disjoint, flattened.
    fn all_pages(&self, q: &Query) -> Vec<u64> {
        let mut q = q.clone();
        let mut seen: Vec<u64> = Vec::new();
        for _ in 0..10_000 {
            let page = self.query(&q);
            for (i, record) in &page.entries {
                assert!(seen.last().is_none_or(|last| i < last), "not descending");
                assert_eq!(record, &self.log[*i as usize]);
                seen.push(*i);
            }
            match page.next {
                Some(next) => {
                    assert!(q.before.is_none_or(|b| next < b), "no progress");
                    q.before = Some(next);
                }
                None => return seen,
            }
        }
        panic!("paging did not end");
    }

    /// The answer by brute force: every record checked, newest first.
    fn naive(&self, q: &Query) -> Vec<u64> {
        let agency_ok = |r: &AuditRecord| match (&q.agency, q.side) {
            (None, _) => true,
            (Some(a), Some(Side::Consumer)) => &r.consumer == a,
            (Some(a), Some(Side::Provider)) => &r.provider == a,
            (Some(a), _) => &r.consumer == a || &r.provider == a,
        };
        let ok = |r: &AuditRecord| {
            agency_ok(r)
                && q.subject.is_none_or(|s| r.subject == s)
                && q.from_unix_micros.is_none_or(|f| r.time_unix_micros >= f)
                && q.to_unix_micros.is_none_or(|t| r.time_unix_micros < t)
                && q.procedure.as_ref().is_none_or(|p| &r.procedure == p)
                && q.outcome.is_none_or(|o| r.outcome == o)
                && q.reason.as_ref().is_none_or(|x| &r.reason == x)
                && (!q.break_glass || r.break_glass)
        };
        let below = q.before.unwrap_or(u64::MAX);
        (0..self.log.len() as u64)
            .rev()
            .filter(|i| *i < below && ok(&self.log[*i as usize]))
            .collect()
    }

    /// The first page and all pages of `q` agree with the naive answer.
    fn check(&self, q: &Query) {
        let want = self.naive(q);
        let size = match q.page_size {
            0 => 50,
            n => n.min(1000),
        };
        let first: Vec<u64> = self.query(q).entries.iter().map(|e| e.0).collect();
        assert_eq!(first, want[..size.min(want.len())], "first page of {q:?}");
        assert_eq!(self.all_pages(q), want, "all pages of {q:?}");
    }
}

fn pseudonym(n: u8) -> [u8; 32] {
    [n; 32]
}

/// A deterministic log of `n` entries with every field varying.
fn sample(n: u64) -> Vec<AuditRecord> {
    let agencies = ["tax", "health", "civil", "police"];
    (0..n)
        .map(|i| AuditRecord {
            // Mostly increasing, with a clock step back every 97 entries.
            time_unix_micros: 1_000 * i as i64 - if i % 97 == 0 { 50_000 } else { 0 },
            consumer: agencies[(i % 4) as usize].into(),
            provider: agencies[(i / 4 % 4) as usize].into(),
            subject: match i % 5 {
                0 => Vec::new(),
                k => pseudonym(k as u8).to_vec(),
            },
            procedure: ["", "benefit", "permit"][(i % 3) as usize].into(),
            outcome: [Outcome::Allowed, Outcome::Refused, Outcome::Failed][(i % 7 % 3) as usize]
                as i32,
            reason: match i % 7 % 3 {
                0 => String::new(),
                1 => ["ACCESS_DENIED", "NO_CONSENT"][(i % 2) as usize].into(),
                _ => "PROVIDER_UNAVAILABLE".into(),
            },
            break_glass: i % 11 == 0,
            ..Default::default()
        })
        .collect()
}

#[test]
fn every_filter_alone_and_combined() {
    let f = Fixture::with(&sample(700));
    let base = Query {
        page_size: 20,
        ..Default::default()
    };
    let queries = [
        Query { ..base.clone() },
        Query {
            subject: Some(pseudonym(3)),
            ..base.clone()
        },
        Query {
            subject: Some(pseudonym(9)),
            ..base.clone()
        },
        Query {
            agency: Some("tax".into()),
            ..base.clone()
        },
        Query {
            agency: Some("tax".into()),
            side: Some(Side::Consumer),
            ..base.clone()
        },
        Query {
            agency: Some("tax".into()),
            side: Some(Side::Provider),
            ..base.clone()
        },
        Query {
            agency: Some("tax".into()),
            side: Some(Side::Unspecified),
            ..base.clone()
        },
        Query {
            agency: Some("nobody".into()),
            ..base.clone()
        },
        Query {
            procedure: Some("permit".into()),
            ..base.clone()
        },
        Query {
            procedure: Some(String::new()),
            ..base.clone()
        },
        Query {
            reason: Some("NO_CONSENT".into()),
            ..base.clone()
        },
        Query {
            outcome: Some(Outcome::Refused as i32),
            ..base.clone()
        },
        Query {
            break_glass: true,
            ..base.clone()
        },
        Query {
            from_unix_micros: Some(200_000),
            ..base.clone()
        },
        Query {
            to_unix_micros: Some(200_000),
            ..base.clone()
        },
        Query {
            from_unix_micros: Some(150_000),
            to_unix_micros: Some(420_000),
            ..base.clone()
        },
        Query {
            subject: Some(pseudonym(2)),
            agency: Some("health".into()),
            from_unix_micros: Some(100_000),
            to_unix_micros: Some(600_000),
            ..base.clone()
        },
        Query {
            agency: Some("civil".into()),
            side: Some(Side::Provider),
            procedure: Some("benefit".into()),
            outcome: Some(Outcome::Allowed as i32),
            ..base.clone()
        },
        Query {
            reason: Some("PROVIDER_UNAVAILABLE".into()),
            break_glass: true,
            to_unix_micros: Some(500_000),
            ..base.clone()
        },
        Query {
            outcome: Some(Outcome::Failed as i32),
            from_unix_micros: Some(300_000),
            page_size: 0,
            ..base.clone()
        },
        Query {
            page_size: 5000,
            ..base
        },
    ];
    for q in &queries {
        f.check(q);
    }
}

#[test]
fn pages_are_disjoint_descending_and_complete() {
    let f = Fixture::with(&sample(1000));
    for size in [1, 7, 50, 1000] {
        let q = Query {
            page_size: size,
            ..Default::default()
        };
        let all = f.all_pages(&q);
        assert_eq!(all, (0..1000).rev().collect::<Vec<_>>());
    }
    // Exactly one full page: no token.
    let q = Query {
        page_size: 1000,
        ..Default::default()
    };
    assert_eq!(f.query(&q).next, None);
    let q = Query {
        page_size: 999,
        ..Default::default()
    };
    assert_eq!(f.query(&q).next, Some(1));
}

#[test]
fn before_token_bounds_the_results() {
    let f = Fixture::with(&sample(300));
    for before in [0, 1, 2, 150, 299, 300, 5000] {
        for q in [
            Query {
                before: Some(before),
                ..Default::default()
            },
            Query {
                before: Some(before),
                subject: Some(pseudonym(1)),
                ..Default::default()
            },
            Query {
                before: Some(before),
                agency: Some("tax".into()),
                ..Default::default()
            },
            Query {
                before: Some(before),
                from_unix_micros: Some(0),
                ..Default::default()
            },
        ] {
            f.check(&q);
        }
    }
    let q = Query {
        before: Some(0),
        ..Default::default()
    };
    assert_eq!(f.query(&q), Page::default());
}

#[test]
fn either_side_merges_and_counts_self_calls_once() {
    let rec = |consumer: &str, provider: &str| AuditRecord {
        consumer: consumer.into(),
        provider: provider.into(),
        ..Default::default()
    };
    let f = Fixture::with(&[
        rec("tax", "health"),
        rec("health", "tax"),
        rec("tax", "tax"),
        rec("civil", "health"),
        rec("health", "civil"),
        rec("tax", "civil"),
    ]);
    let q = |side| Query {
        agency: Some("tax".into()),
        side,
        ..Default::default()
    };
    assert_eq!(f.all_pages(&q(None)), [5, 2, 1, 0]);
    assert_eq!(f.all_pages(&q(Some(Side::Consumer))), [5, 2, 0]);
    assert_eq!(f.all_pages(&q(Some(Side::Provider))), [2, 1]);
    let one = Query {
        page_size: 1,
        ..q(None)
    };
    assert_eq!(f.all_pages(&one), [5, 2, 1, 0]);
}

#[test]
fn time_range_is_inclusive_from_exclusive_to() {
    // Times out of log order, several entries per instant, spanning blocks.
    let times: Vec<i64> = (0..600).map(|i| (i * 37 % 101) - 50).collect();
    let records = times
        .iter()
        .map(|t| AuditRecord {
            time_unix_micros: *t,
            ..Default::default()
        })
        .collect::<Vec<_>>();
    let f = Fixture::with(&records);
    for (from, to) in [
        (-50, 51),
        (0, 1),
        (10, 10),
        (10, 9),
        (-51, -50),
        (50, 51),
        (51, 99),
    ] {
        let q = Query {
            from_unix_micros: Some(from),
            to_unix_micros: Some(to),
            page_size: 13,
            ..Default::default()
        };
        f.check(&q);
        let got = f.all_pages(&q);
        let want = (0..600)
            .rev()
            .filter(|i| times[*i as usize] >= from && times[*i as usize] < to);
        assert_eq!(got, want.collect::<Vec<u64>>());
    }
    let edge = Query {
        from_unix_micros: Some(0),
        to_unix_micros: Some(1),
        ..Default::default()
    };
    assert!(f.all_pages(&edge).iter().all(|i| times[*i as usize] == 0));
    assert!(!f.all_pages(&edge).is_empty());
}

#[test]
fn add_with_wrong_first_is_refused() {
    let mut f = Fixture::with(&sample(10));
    for first in [0, 9, 11] {
        let err = f.index.add(first, &sample(1)).unwrap_err();
        assert!(
            matches!(err, IndexError::OutOfOrder { upto: 10, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("from entry 10"), "{err}");
    }
    assert_eq!(f.index.indexed_upto().unwrap(), 10);
    f.append(&sample(3), 3);
    assert_eq!(f.index.indexed_upto().unwrap(), 13);
    f.index.add(13, &[]).unwrap();
    assert_eq!(f.index.indexed_upto().unwrap(), 13);
}

#[test]
fn reopen_keeps_data_and_reset_empties() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("index.redb");
    let log = sample(400);
    {
        let index = AuditIndex::open(&path).unwrap();
        assert_eq!(index.indexed_upto().unwrap(), 0);
        index.add(0, &log).unwrap();
    }
    let mut f = Fixture {
        _dir: dir,
        index: AuditIndex::open(&path).unwrap(),
        log,
    };
    assert_eq!(f.index.indexed_upto().unwrap(), 400);
    f.check(&Query {
        subject: Some(pseudonym(4)),
        ..Default::default()
    });
    f.check(&Query {
        from_unix_micros: Some(100_000),
        ..Default::default()
    });

    f.index.reset().unwrap();
    assert_eq!(f.index.indexed_upto().unwrap(), 0);
    f.log.clear();
    for q in [
        Query::default(),
        Query {
            subject: Some(pseudonym(4)),
            ..Default::default()
        },
        Query {
            agency: Some("tax".into()),
            ..Default::default()
        },
        Query {
            from_unix_micros: Some(0),
            ..Default::default()
        },
        Query {
            break_glass: true,
            ..Default::default()
        },
    ] {
        assert_eq!(f.query(&q), Page::default());
    }
    f.append(&sample(5), 2);
    f.check(&Query {
        outcome: Some(Outcome::Allowed as i32),
        ..Default::default()
    });
}

#[test]
fn rare_matches_return_short_pages_that_page_on() {
    // Only entry 0 has no procedure: an empty value is not indexed, so every
    // entry is a candidate and each call stops after 1000 of them.
    let mut records = sample(3000);
    records
        .iter_mut()
        .for_each(|r| r.procedure = "permit".into());
    records[0].procedure = String::new();
    let f = Fixture::with(&records);
    let q = Query {
        procedure: Some(String::new()),
        page_size: 10,
        ..Default::default()
    };
    let page = f.query(&q);
    assert!(page.entries.is_empty());
    assert_eq!(page.next, Some(2000));
    assert_eq!(f.all_pages(&q), [0]);
}

#[test]
fn an_index_of_another_log_is_reported() {
    let f = Fixture::with(&sample(20));
    let fetch = |_| Ok(AuditRecord::default());
    let q = Query {
        subject: Some(pseudonym(1)),
        ..Default::default()
    };
    let err = f.index.query(&q, &fetch).unwrap_err();
    assert!(matches!(err, IndexError::Stale { index: 16, .. }), "{err}");
    assert!(err.to_string().contains("jisr audit reindex"), "{err}");
}

#[test]
fn fetch_errors_pass_through() {
    let f = Fixture::with(&sample(20));
    let fetch = |i| Err(IndexError::log(i, "segment missing"));
    let err = f.index.query(&Query::default(), &fetch).unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot read audit log entry 19: segment missing"
    );
}

fn arb_record() -> impl Strategy<Value = AuditRecord> {
    let agency = prop::sample::select(vec!["", "a", "b", "c"]);
    (
        0i64..20,
        (agency.clone(), agency),
        prop::sample::select(vec![0u8, 1, 2]),
        prop::sample::select(vec!["", "p", "q"]),
        0i32..4,
        prop::sample::select(vec!["", "R", "S"]),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(time, (consumer, provider), subject, procedure, outcome, reason, bg)| AuditRecord {
                time_unix_micros: time,
                consumer: consumer.into(),
                provider: provider.into(),
                subject: match subject {
                    0 => Vec::new(),
                    s => pseudonym(s).to_vec(),
                },
                procedure: procedure.into(),
                outcome,
                reason: reason.into(),
                break_glass: bg,
                ..Default::default()
            },
        )
}

fn arb_query() -> impl Strategy<Value = Query> {
    let text = |values: Vec<&'static str>| {
        prop::option::weighted(0.3, prop::sample::select(values).prop_map(String::from))
    };
    (
        (
            text(vec!["", "a", "b", "c", "d"]),
            prop::option::of(0i32..3),
        ),
        prop::option::weighted(0.2, prop::sample::select(vec![1u8, 2, 3])),
        (
            prop::option::weighted(0.3, -1i64..21),
            prop::option::weighted(0.3, -1i64..21),
        ),
        (
            text(vec!["", "p", "q"]),
            prop::option::weighted(0.3, 0i32..4),
            text(vec!["", "R", "S"]),
        ),
        prop::bool::weighted(0.2),
        prop::sample::select(vec![0usize, 1, 2, 3, 7, 60]),
        prop::option::weighted(0.3, 0u64..420),
    )
        .prop_map(
            |(
                (agency, side),
                subject,
                (from, to),
                (procedure, outcome, reason),
                bg,
                size,
                before,
            )| {
                Query {
                    agency,
                    side: side.map(|s| Side::try_from(s).unwrap()),
                    subject: subject.map(pseudonym),
                    from_unix_micros: from,
                    to_unix_micros: to,
                    procedure,
                    purpose: None,
                    outcome,
                    reason,
                    break_glass: bg,
                    page_size: size,
                    before,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn queries_agree_with_a_naive_filter(
        records in prop::collection::vec(arb_record(), 0..400),
        batch in 1usize..300,
        queries in prop::collection::vec(arb_query(), 1..8),
    ) {
        let mut f = Fixture::new();
        f.append(&records, batch);
        for q in &queries {
            f.check(q);
        }
    }
}
