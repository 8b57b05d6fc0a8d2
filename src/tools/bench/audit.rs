//! `jisr audit bench`: durable appends per second by concurrency (and so by
//! batch size), fsync latency, bytes per entry, index build rate and a
//! citizen's history query at a million entries — measured on this machine,
//! through the same code the gateway uses.

use crate::audit::index::{AuditIndex, Query};
use crate::audit::keys::Pseudonymizer;
use crate::audit::log::hashes::Cache;
use crate::audit::merkle::{self, Hash, MerkleError};
use crate::audit::note::NoteSigner;
use crate::audit::service::catch_up;
use crate::audit::{AuditLog, LogOptions};
use crate::proto::jisr::audit::v1::{AuditRecord, Kind, Outcome};
use prost::Message as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One append run.
#[derive(Debug, Clone)]
pub struct AppendRun {
    /// Concurrent appenders.
    pub concurrency: usize,
    /// Entries appended.
    pub entries: u64,
    /// Durable entries per second.
    pub per_second: f64,
    /// Mean entries per fsync.
    pub mean_batch: f64,
    /// fsync latency p50 and p99, µs.
    pub fsync_p50_us: u64,
    /// fsync p99, µs.
    pub fsync_p99_us: u64,
    /// Append latency seen by a caller, p50 and p99, µs.
    pub append_p50_us: u64,
    /// Append p99, µs.
    pub append_p99_us: u64,
    /// Segment bytes per entry (frame included).
    pub bytes_per_entry: f64,
    /// Stored-hash bytes per entry.
    pub hash_bytes_per_entry: f64,
}

/// The history query run.
#[derive(Debug, Clone)]
pub struct HistoryRun {
    /// Entries in the log.
    pub entries: u64,
    /// Entries indexed per second.
    pub index_per_second: f64,
    /// Queries run.
    pub queries: usize,
    /// Query latency p50, p99 and max, µs.
    pub p50_us: u64,
    /// p99.
    pub p99_us: u64,
    /// Max.
    pub max_us: u64,
    /// Mean entries returned per query.
    pub mean_results: f64,
}

/// The writer's in-memory Merkle step for one entry, for the
/// micro-benchmarks (`benches/micro`): leaf hash, the stored hashes the leaf
/// adds (read from the cached right edge), and the edge cache update —
/// everything the writer does per entry except the file writes.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct TreeEdge {
    cache: Cache,
    size: u64,
}

impl TreeEdge {
    /// Appends one encoded entry; returns the stored hashes it adds. Fails
    /// only if the cache lacks an edge hash (there is no file behind it).
    pub fn push(&mut self, payload: &[u8]) -> Result<Vec<Hash>, MerkleError> {
        let no_file: &[Hash] = &[];
        let stored = self
            .cache
            .add_leaf(self.size, merkle::leaf_hash(payload), no_file)?;
        self.size += 1;
        Ok(stored)
    }

    /// Entries pushed.
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// Which node's log a fill writes, among how many: entry `i` of node `nth`
/// of `of` is timed at `i * of + nth`, so the nodes' entries interleave in
/// time as a load balancer spreads calls.
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub(super) name: String,
    pub(super) nth: u64,
    pub(super) of: u64,
}

impl Node {
    fn single() -> Self {
        Self {
            name: "gw-1".into(),
            nth: 0,
            of: 1,
        }
    }
}

/// The citizen id of citizen number `n` (its pseudonym is in the records).
pub(super) fn citizen_id(n: u64) -> String {
    format!("ZZ{n:06}")
}

/// A realistic exchange record for citizen number `citizen`.
fn record(pseudonyms: &Pseudonymizer, i: u64, citizen: u64, node: &Node) -> Vec<u8> {
    AuditRecord {
        time_unix_micros: 1_790_000_000_000_000 + (i * node.of + node.nth) as i64,
        node: node.name.clone(),
        kind: Kind::Exchange as i32,
        request_id: format!("{:032x}", u128::from(i) * 0x9e37_79b9_7f4a_7c15),
        trace_id: String::new(),
        consumer: "education".into(),
        official: "education.agent-017".into(),
        provider: "civil-status".into(),
        method: "/ma.civilstatus.v1.CivilStatus/GetBirthRecord".into(),
        purpose: "bac-candidature".into(),
        procedure: "bac-2027-free-candidate".into(),
        basis: "law:55-19".into(),
        consent_id: String::new(),
        subject: pseudonyms.pseudonym(&citizen_id(citizen)).to_vec(),
        outcome: Outcome::Allowed as i32,
        reason: String::new(),
        grpc_status: 0,
        request_digest: vec![0xab; 32],
        response_digest: vec![0xcd; 32],
        break_glass: false,
        justification: String::new(),
        topic: String::new(),
        event_id: String::new(),
        ..AuditRecord::default()
    }
    .encode_to_vec()
}

/// The pseudonym key of the benchmark's records.
pub(super) const PSEUDONYM_KEY: [u8; 32] = [42; 32];

fn open(dir: &Path) -> anyhow::Result<Arc<AuditLog>> {
    open_signed(dir, NoteSigner::generate("bench.example/jisr/gw-1")?)
}

/// Opens (creating) the log in `dir`, signed by `signer`.
pub(super) fn open_signed(dir: &Path, signer: NoteSigner) -> anyhow::Result<Arc<AuditLog>> {
    Ok(Arc::new(AuditLog::open(LogOptions {
        dir: dir.to_owned(),
        signer,
        records_per_segment: crate::audit::log::RECORDS_PER_SEGMENT,
        checkpoint_interval: Duration::from_secs(1),
        archive_dir: None,
    })?))
}

/// Appends `entries` records with `concurrency` appenders, each waiting for
/// durability before its next append; returns the log and the latencies.
pub(super) async fn fill(
    log: &Arc<AuditLog>,
    entries: u64,
    concurrency: usize,
    citizens: u64,
    node: &Node,
) -> anyhow::Result<hdrhistogram::Histogram<u64>> {
    let pseudonyms = Pseudonymizer::new(&PSEUDONYM_KEY);
    let node = node.clone();
    let make: Maker = Arc::new(move |i| record(&pseudonyms, i, (i * 7919) % citizens, &node));
    fill_with(log, entries, concurrency, make).await
}

/// Makes entry `i`'s encoded record; shared by a fill's appenders.
pub(super) type Maker = Arc<dyn Fn(u64) -> Vec<u8> + Send + Sync>;

/// [`fill`] with the records `make` makes: entry `i` is `make(i)`.
pub(super) async fn fill_with(
    log: &Arc<AuditLog>,
    entries: u64,
    concurrency: usize,
    make: Maker,
) -> anyhow::Result<hdrhistogram::Histogram<u64>> {
    // Every entry is written: the first `extra` appenders take one more.
    let (per_task, extra) = (entries / concurrency as u64, entries % concurrency as u64);
    let mut tasks = Vec::new();
    for t in 0..concurrency as u64 {
        let log = log.clone();
        let make = make.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
                .expect("valid bounds");
            let (first, count) = (t * per_task + t.min(extra), per_task + u64::from(t < extra));
            for i in first..first + count {
                let payload = make(i);
                let started = Instant::now();
                log.append(payload).await?;
                let _ = latencies.record((started.elapsed().as_micros() as u64).max(1));
            }
            Ok::<_, crate::audit::AuditError>(latencies)
        }));
    }
    let mut all = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for task in tasks {
        all.add(task.await??)?;
    }
    Ok(all)
}

/// Measures durable appends at each concurrency.
pub async fn appends(
    root: &Path,
    entries: u64,
    levels: &[usize],
) -> anyhow::Result<Vec<AppendRun>> {
    let mut runs = Vec::new();
    for &concurrency in levels {
        let dir = root.join(format!("appends-{concurrency}"));
        let log = open(&dir)?;
        // A lone appender pays a full fsync round trip per entry: fewer entries
        // give the same figure in seconds rather than minutes.
        let n = entries.min(concurrency as u64 * 2_000);
        let n = (n / concurrency as u64).max(1) * concurrency as u64;
        let started = Instant::now();
        let latencies = fill(&log, n, concurrency, 100_000, &Node::single()).await?;
        let elapsed = started.elapsed().as_secs_f64();
        let stats = log.stats();
        log.close().await;
        let hashes = std::fs::metadata(dir.join("tree.hashes"))
            .map(|m| m.len())
            .unwrap_or(0);
        runs.push(AppendRun {
            concurrency,
            entries: n,
            per_second: n as f64 / elapsed,
            mean_batch: stats.entries as f64 / stats.batches.max(1) as f64,
            fsync_p50_us: stats.fsync_micros.value_at_quantile(0.5),
            fsync_p99_us: stats.fsync_micros.value_at_quantile(0.99),
            append_p50_us: latencies.value_at_quantile(0.5),
            append_p99_us: latencies.value_at_quantile(0.99),
            bytes_per_entry: stats.segment_bytes as f64 / stats.entries.max(1) as f64,
            hash_bytes_per_entry: hashes as f64 / n as f64,
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(runs)
}

/// Builds a log of `entries` over `citizens` citizens, indexes it, and
/// times `queries` history queries (page of 50) for random citizens.
pub async fn history(
    root: &Path,
    entries: u64,
    citizens: u64,
    queries: usize,
) -> anyhow::Result<HistoryRun> {
    let dir = root.join("history");
    let log = open(&dir)?;
    fill(&log, entries, 1024, citizens, &Node::single()).await?;
    let index = AuditIndex::open(&dir.join("index.redb"))?;
    let started = Instant::now();
    catch_up(&index, &log)?;
    let index_per_second = entries as f64 / started.elapsed().as_secs_f64();
    let pseudonyms = Pseudonymizer::new(&PSEUDONYM_KEY);
    let mut latencies = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut results = 0usize;
    for q in 0..queries as u64 {
        let citizen = (q * 104_729) % citizens;
        let query = Query {
            subject: Some(pseudonyms.pseudonym(&citizen_id(citizen))),
            page_size: 50,
            ..Query::default()
        };
        let fetch = |i: u64| -> Result<AuditRecord, crate::audit::index::IndexError> {
            let bytes = log
                .read(i)
                .map_err(|e| crate::audit::index::IndexError::log(i, e))?;
            AuditRecord::decode(bytes.as_slice())
                .map_err(|e| crate::audit::index::IndexError::log(i, e))
        };
        let started = Instant::now();
        let page = index.query(&query, &fetch)?;
        let _ = latencies.record((started.elapsed().as_micros() as u64).max(1));
        results += page.entries.len();
    }
    log.close().await;
    Ok(HistoryRun {
        entries,
        index_per_second,
        queries,
        p50_us: latencies.value_at_quantile(0.5),
        p99_us: latencies.value_at_quantile(0.99),
        max_us: latencies.max(),
        mean_results: results as f64 / queries.max(1) as f64,
    })
}

/// The report as Markdown tables.
pub fn render(appends: &[AppendRun], history: Option<&HistoryRun>) -> String {
    let mut out = String::from(
        "| appenders | entries | durable entries/s | mean batch | fsync p50 / p99 (µs) | append p50 / p99 (µs) | bytes/entry (+ hashes) |\n|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in appends {
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.1} | {} / {} | {} / {} | {:.0} (+{:.0}) |\n",
            r.concurrency,
            r.entries,
            r.per_second,
            r.mean_batch,
            r.fsync_p50_us,
            r.fsync_p99_us,
            r.append_p50_us,
            r.append_p99_us,
            r.bytes_per_entry,
            r.hash_bytes_per_entry
        ));
    }
    if let Some(h) = history {
        out.push_str(&format!(
            "\n| history query | entries | index build (entries/s) | queries | p50 (µs) | p99 (µs) | max (µs) | mean results |\n|---|---:|---:|---:|---:|---:|---:|---:|\n| citizen history, page 50 | {} | {:.0} | {} | {} | {} | {} | {:.1} |\n",
            h.entries, h.index_per_second, h.queries, h.p50_us, h.p99_us, h.max_us, h.mean_results
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::TreeEdge;
    use crate::audit::merkle::{self, Frontier, Hash};

    #[test]
    fn the_writer_tree_step_builds_the_rfc6962_tree() {
        let mut edge = TreeEdge::default();
        let mut stored: Vec<Hash> = Vec::new();
        let mut frontier = Frontier::default();
        for i in 0..300u32 {
            let payload = i.to_be_bytes();
            stored.extend(edge.push(&payload).unwrap());
            frontier.push(merkle::leaf_hash(&payload));
            let n = u64::from(i) + 1;
            assert_eq!(edge.size(), n);
            assert_eq!(stored.len() as u64, merkle::stored_hash_count(n));
            assert_eq!(merkle::tree_hash(n, &stored).unwrap(), frontier.root());
        }
    }
}
