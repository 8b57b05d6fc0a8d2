//! Index throughput and citizen-history latency at a million entries.
//! Slow: run with `cargo test --release --lib audit::index -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use prost::Message;
use sha2::{Digest, Sha256};

use super::super::{AuditIndex, IndexError, Query};
use crate::proto::jisr::audit::v1::{AuditRecord, Outcome};

const ENTRIES: u64 = 1_000_000;
const CITIZENS: u64 = 200_000;
/// Citizens with a long history (about 100 entries each), so a page fills.
const FREQUENT: u64 = 100;

fn citizen(n: u64) -> Vec<u8> {
    Sha256::digest(n.to_be_bytes()).to_vec()
}

fn entry(i: u64) -> AuditRecord {
    let agencies = ["tax", "health", "civil-status", "police", "social", "land"];
    let subject = match i % 100 {
        0 => citizen(CITIZENS + i / 100 % FREQUENT),
        k if k < 90 => citizen(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % CITIZENS),
        _ => Vec::new(),
    };
    let refused = i.is_multiple_of(50);
    AuditRecord {
        time_unix_micros: 1_750_000_000_000_000 + i as i64 * 3_000,
        node: "node-1".into(),
        request_id: format!("req-{i:016x}"),
        consumer: agencies[(i % 6) as usize].into(),
        official: format!("officer-{}", i % 300),
        provider: agencies[(i / 6 % 6) as usize].into(),
        method: "/agencies.civilstatus.v1.CivilStatus/GetPerson".into(),
        purpose: "benefit eligibility".into(),
        procedure: format!("proc-{}", i % 40),
        basis: "law:2024-17 art. 5".into(),
        subject,
        outcome: if refused {
            Outcome::Refused
        } else {
            Outcome::Allowed
        } as i32,
        reason: if refused {
            "ACCESS_DENIED".into()
        } else {
            String::new()
        },
        request_digest: vec![7; 32],
        response_digest: vec![9; 32],
        break_glass: i.is_multiple_of(5000),
        ..Default::default()
    }
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |p: usize| samples[(samples.len() * p / 100).min(samples.len() - 1)];
    (at(50), at(99))
}

#[test]
#[ignore = "slow: builds a million-entry index"]
fn million_entries() {
    let dir = tempfile::tempdir().unwrap();
    let index = AuditIndex::open(&dir.path().join("index.redb")).unwrap();
    // The log as encoded bytes, so each fetch decodes like a real log read.
    let log: Vec<Vec<u8>> = (0..ENTRIES).map(|i| entry(i).encode_to_vec()).collect();

    let started = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for first in (0..ENTRIES).step_by(1000) {
        batch.clear();
        batch.extend(
            (first..first + 1000).map(|i| AuditRecord::decode(&log[i as usize][..]).unwrap()),
        );
        index.add(first, &batch).unwrap();
    }
    let took = started.elapsed();
    println!(
        "index build: {ENTRIES} entries in batches of 1000 in {:.1} s = {:.0} entries/s; file {} MB",
        took.as_secs_f64(),
        ENTRIES as f64 / took.as_secs_f64(),
        std::fs::metadata(dir.path().join("index.redb")).unwrap().len() >> 20,
    );

    let fetch = |i: u64| {
        let bytes = log
            .get(i as usize)
            .ok_or_else(|| IndexError::log(i, "no such entry"))?;
        AuditRecord::decode(&bytes[..]).map_err(|e| IndexError::log(i, e))
    };
    let run = |label: &str, subjects: &mut dyn Iterator<Item = Vec<u8>>| {
        let mut samples = Vec::new();
        let mut found = 0;
        for s in subjects {
            let q = Query {
                subject: Some(s.try_into().unwrap()),
                page_size: 50,
                ..Default::default()
            };
            let started = Instant::now();
            let page = index.query(&q, &fetch).unwrap();
            samples.push(started.elapsed());
            found += page.entries.len();
        }
        let n = samples.len();
        let (p50, p99) = percentiles(samples);
        println!(
            "citizen history, {label}: {n} queries, {:.1} entries/page; p50 {:?}, p99 {:?}",
            found as f64 / n as f64,
            p50,
            p99
        );
        p99
    };
    let typical = run(
        "typical citizen",
        &mut (0..2000).map(|k| citizen(k * 97 % CITIZENS)),
    );
    let frequent = run(
        "frequent citizen (full page)",
        &mut (0..2000).map(|k| citizen(CITIZENS + k % FREQUENT)),
    );
    let window = Query {
        agency: Some("tax".into()),
        from_unix_micros: Some(1_750_000_000_000_000 + 500_000 * 3_000),
        to_unix_micros: Some(1_750_000_000_000_000 + 501_000 * 3_000),
        ..Default::default()
    };
    let started = Instant::now();
    let page = index.query(&window, &fetch).unwrap();
    println!(
        "agency + time window in the middle of the log: {} entries in {:?}",
        page.entries.len(),
        started.elapsed()
    );
    assert!(typical < Duration::from_millis(5) && frequent < Duration::from_millis(5));
}
