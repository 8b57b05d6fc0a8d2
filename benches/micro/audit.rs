//! Audit append: the in-memory cost of one entry (build and encode the
//! record, leaf hash, the writer's Merkle step, the verifier's frontier),
//! and durable appends through `AuditLog` (group commit, in a temporary
//! directory) per entry at several numbers of concurrent appenders.

use criterion::{BenchmarkId, Criterion, Throughput};
use jisr::audit::merkle::{self, Frontier};
use jisr::audit::note::NoteSigner;
use jisr::audit::record::{Ending, Trail};
use jisr::audit::{AuditLog, LogOptions, Pseudonymizer};
use jisr::proto::jisr::audit::v1::{Kind, Outcome};
use jisr::proto::ma::civilstatus::v1::{BirthRecord, GetBirthRecordRequest};
use jisr::tools::bench::audit::TreeEdge;
use prost::Message as _;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the exchange path computes and records for one allowed
/// `GetBirthRecord` call: the subject's pseudonym, keyed digests of the
/// request and response messages, then the record, encoded.
fn entry(pseudonyms: &Pseudonymizer, request: &[u8], response: &[u8]) -> Vec<u8> {
    let trail = Trail {
        time_unix_micros: 1_795_000_000_000_000,
        request_id: "4f1c2a9e7b3d4c5e8f9a0b1c2d3e4f50".into(),
        trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
        consumer: "education".into(),
        provider: "civil-status".into(),
        method: "/ma.civilstatus.v1.CivilStatus/GetBirthRecord".into(),
        purpose: "bac-candidature".into(),
        procedure: "bac-2027-free-candidate".into(),
        official: "education.agent-017".into(),
        basis: "law:55-19".into(),
        subject: Some(pseudonyms.pseudonym("AB123456")),
        request_digest: Some(pseudonyms.digest(request)),
        ..Trail::default()
    };
    let ending = Ending {
        outcome: Outcome::Allowed,
        reason: "",
        grpc_status: 0,
        response_digest: Some(pseudonyms.digest(response)),
    };
    trail
        .to_record("gw-1", ending, Kind::Exchange)
        .encode_to_vec()
}

fn in_memory(c: &mut Criterion, pseudonyms: &Pseudonymizer) {
    let request = GetBirthRecordRequest {
        citizen_id: "AB123456".into(),
    }
    .encode_to_vec();
    let response = BirthRecord {
        citizen_id: "AB123456".into(),
        first_name: "Yasmine".into(),
        last_name: "Benjelloun".into(),
        birth_date: "2007-03-14".into(),
        birth_place: "Fès".into(),
        sex: "F".into(),
        father_name: "Karim Benjelloun".into(),
        mother_name: "Nadia El Fassi".into(),
        registry_office: "Fès-Médina".into(),
        act_number: "1432/2007".into(),
    }
    .encode_to_vec();
    let payload = entry(pseudonyms, &request, &response);

    let mut g = c.benchmark_group("audit/entry");
    g.bench_function("build_encode", |b| {
        b.iter(|| entry(pseudonyms, black_box(&request), black_box(&response)))
    });
    g.bench_function("leaf_hash", |b| {
        b.iter(|| merkle::leaf_hash(black_box(&payload)))
    });
    // The writer's per-entry tree work: leaf hash, stored hashes, edge cache.
    let mut edge = TreeEdge::default();
    g.bench_function("writer_tree_step", |b| {
        b.iter(|| {
            edge.push(black_box(&payload))
                .expect("the edge cache holds the siblings")
        })
    });
    assert!(edge.size() > 0);
    // The right-edge frontier `jisr audit verify` keeps, per leaf hash.
    let leaf = merkle::leaf_hash(&payload);
    let mut frontier = Frontier::default();
    g.bench_function("frontier_push", |b| {
        b.iter(|| frontier.push(black_box(leaf)))
    });
    g.finish();
}

/// Appends `total` copies of `payload` from `appenders` tasks, each waiting
/// for its entry to be durable before the next; returns the elapsed time.
async fn append_all(log: &Arc<AuditLog>, payload: &[u8], total: u64, appenders: u64) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = (0..appenders)
        .map(|t| {
            // Spread `total` over the tasks; the first ones take the remainder.
            let n = total / appenders + u64::from(t < total % appenders);
            let log = log.clone();
            let payload = payload.to_vec();
            tokio::spawn(async move {
                for _ in 0..n {
                    log.append(payload.clone()).await.expect("durable append");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("appender task");
    }
    started.elapsed()
}

fn durable(c: &mut Criterion, pseudonyms: &Pseudonymizer) {
    let payload = entry(pseudonyms, b"\n\x08AB123456", &[0u8; 256]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut g = c.benchmark_group("audit/append_durable");
    // Each sample is many fsyncs: ten samples keep a run within seconds.
    g.sample_size(10);
    g.throughput(Throughput::Elements(1));
    for appenders in [1u64, 16, 128] {
        let tmp = tempfile::Builder::new()
            .prefix("jisr-microbench-")
            .tempdir()
            .expect("a temporary directory");
        let log = Arc::new(
            AuditLog::open(LogOptions {
                dir: tmp.path().join("audit"),
                signer: NoteSigner::generate("bench.example/jisr/gw-1").expect("a signing key"),
                records_per_segment: jisr::audit::log::RECORDS_PER_SEGMENT,
                checkpoint_interval: Duration::from_secs(1),
                archive_dir: None,
            })
            .expect("the audit log opens"),
        );
        g.bench_function(BenchmarkId::new("appenders", appenders), |b| {
            b.iter_custom(|iters| rt.block_on(append_all(&log, &payload, iters, appenders)))
        });
        rt.block_on(log.close());
    }
    g.finish();
}

pub(crate) fn benches(c: &mut Criterion) {
    let pseudonyms = Pseudonymizer::new(&[42; 32]);
    in_memory(c, &pseudonyms);
    durable(c, &pseudonyms);
}
