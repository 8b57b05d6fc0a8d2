//! `jisr consent bench`: how long the consent check of one call takes, on
//! each store, side by side with the floor it cannot beat.
//!
//! Each measurement runs [`check::check`] exactly as the exchange path does
//! (read, every term validated, and for a use-limited consent the atomic use
//! count) against a consent for the demo's birth-record method, one call at
//! a time, and records each latency in an HDR histogram. The rows:
//!
//! - embedded, unlimited consent: answered from the store's in-memory copy;
//! - embedded, use-limited consent: one durable (fsynced) redb write per call;
//! - Redis, unlimited consent: one `HMGET` round trip;
//! - Redis, use-limited consent: the read plus the `use_once` Lua script;
//! - Redis `PING` through the same client: the loopback round trip, the
//!   floor under any Redis-backed check.
//!
//! Without `--redis-url`, a redis-server on `PATH` is started on a free
//! loopback port for the run (and stopped after); without one, the Redis rows
//! are left out with a note.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use prost::Message as _;

use crate::catalogue::{Catalogue, MethodRoute};
use crate::consent::check::{self, Claim};
use crate::consent::store::embedded::EmbeddedConsentStore;
use crate::consent::store::redis::RedisConsentStore;
use crate::consent::store::{ConsentStore, StoredConsent};
use crate::identity::AgencyId;
use crate::proto::jisr::consent::v1::Consent;

/// The method the measured consents cover.
const METHOD: &str = "/ma.civilstatus.v1.CivilStatus/GetBirthRecord";

/// What to measure.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsentBenchArgs {
    /// Checks per row (after a warm-up of a tenth as many).
    #[arg(long, default_value_t = 20_000)]
    pub count: u64,
    /// Measure against this Redis instead of starting one.
    #[arg(long)]
    pub redis_url: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One row of the report.
#[derive(Debug, serde::Serialize)]
pub struct Row {
    /// What was measured.
    pub name: String,
    /// Checks measured.
    pub count: u64,
    /// Latency percentiles, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// Slowest, µs.
    pub max_us: f64,
}

/// Runs the measurements and prints them; returns the rows.
pub async fn run(args: &ConsentBenchArgs) -> anyhow::Result<Vec<Row>> {
    let dir = tempfile::tempdir()?;
    let target = Target {
        route: birth_record_route(dir.path())?,
        consumer: AgencyId::parse("education")?,
    };
    let mut notes = Vec::new();
    let embedded = EmbeddedConsentStore::open(&dir.path().join("consents.redb"))?;
    let mut rows = target.embedded_rows(&embedded, args.count).await?;
    // Kept until the Redis rows are measured: dropping it stops the server.
    let (server, url) = redis_for_run(args, dir.path(), &mut notes);
    if let Some(url) = url {
        rows.extend(target.redis_rows(&url, args.count).await?);
    }
    drop(server);
    print_rows(args, &rows, &notes)?;
    Ok(rows)
}

/// The Redis to measure: the one given, else one started for the run
/// (returned so it lives as long as the caller needs), else none, noted.
fn redis_for_run(
    args: &ConsentBenchArgs,
    dir: &Path,
    notes: &mut Vec<String>,
) -> (Option<LocalRedis>, Option<String>) {
    if let Some(url) = &args.redis_url {
        return (None, Some(url.clone()));
    }
    match LocalRedis::start(dir) {
        Ok(redis) => {
            let url = redis.url();
            (Some(redis), Some(url))
        }
        Err(why) => {
            notes.push(format!(
                "Redis rows left out: {why}; pass --redis-url or install redis-server"
            ));
            (None, None)
        }
    }
}

fn print_rows(args: &ConsentBenchArgs, rows: &[Row], notes: &[String]) -> anyhow::Result<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "consent check latency, one call at a time ({} checks per row)",
        args.count
    );
    println!(
        "{:<40} {:>9} {:>9} {:>9} {:>9}",
        "store", "p50 µs", "p99 µs", "p99.9 µs", "max µs"
    );
    for r in rows {
        println!(
            "{:<40} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            r.name, r.p50_us, r.p99_us, r.p999_us, r.max_us
        );
    }
    for note in notes {
        println!("note: {note}");
    }
    Ok(())
}

/// What every measured check is about: the demo's birth-record method,
/// called by education.
struct Target {
    route: std::sync::Arc<MethodRoute>,
    consumer: AgencyId,
}

impl Target {
    async fn embedded_rows(
        &self,
        store: &EmbeddedConsentStore,
        count: u64,
    ) -> anyhow::Result<Vec<Row>> {
        let unlimited = "embedded, unlimited (in-memory copy)";
        let mut rows = vec![self.measure(unlimited, store, 0, count).await?];
        // Each limited check is an fsync: fewer of them.
        let limited = "embedded, use-limited (durable write)";
        let fewer = (count / 10).max(10);
        rows.push(self.measure(limited, store, u32::MAX, fewer).await?);
        Ok(rows)
    }

    async fn redis_rows(&self, url: &str, count: u64) -> anyhow::Result<Vec<Row>> {
        // The bench's consents are its own and read back by itself only: a
        // throwaway pseudonym key seals them as a node's would.
        let pseudonyms = crate::audit::keys::Pseudonymizer::new(&rand::random());
        let redis =
            RedisConsentStore::connect_with_timeout(url, Duration::from_secs(2), pseudonyms)
                .await?;
        Ok(vec![
            self.measure("redis, unlimited (HMGET)", &redis, 0, count)
                .await?,
            self.measure(
                "redis, use-limited (HMGET + script)",
                &redis,
                u32::MAX,
                count,
            )
            .await?,
            ping(url, count).await?,
        ])
    }

    async fn measure(
        &self,
        name: &str,
        store: &dyn ConsentStore,
        max_uses: u32,
        count: u64,
    ) -> anyhow::Result<Row> {
        measure(name, store, &self.route, &self.consumer, max_uses, count).await
    }
}

/// The demo's birth-record method, loaded from its contracts.
fn birth_record_route(dir: &Path) -> anyhow::Result<std::sync::Arc<MethodRoute>> {
    crate::tools::demo::prepare(dir)?;
    let unused: std::net::SocketAddr = "127.0.0.1:9".parse()?;
    let providers: Vec<_> = crate::tools::samples::SampleAgency::all()
        .into_iter()
        .map(|a| (a, unused))
        .collect();
    let path = dir.join("jisr.toml");
    std::fs::write(&path, crate::tools::demo::config_text(&providers))?;
    let config = crate::config::Config::load(&path)
        .map_err(|e| anyhow::anyhow!("{}", crate::config::report(&e)))?;
    let catalogue =
        Catalogue::load(&config).map_err(|e| anyhow::anyhow!("{}", crate::config::report(&e)))?;
    catalogue
        .get(METHOD)
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("the demo contracts lack {METHOD}"))
}

fn consent(id: &str, max_uses: u32) -> StoredConsent {
    let consent = Consent {
        id: id.into(),
        subject: "AB123456".into(),
        consumer: "education".into(),
        methods: vec!["ma.civilstatus.v1.CivilStatus/GetBirthRecord".into()],
        purpose: "bac-candidature".into(),
        not_before_unix_micros: 1,
        not_after_unix_micros: i64::MAX,
        max_uses,
        recorded_by: "portal".into(),
        recorded_unix_micros: crate::consent::artefact::now_micros(),
        ..Consent::default()
    };
    StoredConsent {
        encoded: consent.encode_to_vec(),
        signature: vec![0; 64],
        consent,
        revoked_unix_micros: 0,
        uses: 0,
    }
}

async fn measure(
    name: &str,
    store: &dyn ConsentStore,
    route: &MethodRoute,
    consumer: &AgencyId,
    max_uses: u32,
    count: u64,
) -> anyhow::Result<Row> {
    let id = format!(
        "bench-{}-{max_uses}",
        crate::consent::artefact::now_micros()
    );
    store.put(consent(&id, max_uses)).await?;
    let mut hist = Histogram::<u64>::new(3)?;
    for i in 0..count + count / 10 {
        let claim = Claim {
            consent_id: &id,
            subject: "AB123456",
            consumer,
            route,
            purpose: "bac-candidature",
            procedure: None,
            now: crate::consent::artefact::now_micros(),
        };
        let started = Instant::now();
        check::check(store, claim, Duration::from_secs(2))
            .await
            .map_err(|refusal| anyhow::anyhow!("the check was refused: {refusal:?}"))?;
        if i >= count / 10 {
            hist.record(started.elapsed().as_nanos() as u64)?;
        }
    }
    Ok(row(name, &hist))
}

async fn ping(url: &str, count: u64) -> anyhow::Result<Row> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut hist = Histogram::<u64>::new(3)?;
    for i in 0..count + count / 10 {
        let started = Instant::now();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        if i >= count / 10 {
            hist.record(started.elapsed().as_nanos() as u64)?;
        }
    }
    Ok(row("redis PING (the round-trip floor)", &hist))
}

fn row(name: &str, hist: &Histogram<u64>) -> Row {
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1e3;
    Row {
        name: name.into(),
        count: hist.len(),
        p50_us: us(0.50),
        p99_us: us(0.99),
        p999_us: us(0.999),
        max_us: hist.max() as f64 / 1e3,
    }
}

/// A redis-server for the run, on a free loopback port, stopped on drop
/// (also `jisr bench --faults`' Redis, which it freezes and kills).
pub(super) struct LocalRedis {
    child: Child,
    port: u16,
}

impl LocalRedis {
    /// Starts redis-server from `PATH` with its files in `dir`; the reason
    /// when it cannot.
    pub(super) fn start(dir: &Path) -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run redis-server ({e})"))?;
        let mut redis = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(redis);
            }
            if let Ok(Some(status)) = redis.child.try_wait() {
                return Err(format!("redis-server exited at start ({status})"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err("redis-server did not listen within 10 s".into())
    }

    pub(super) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sends `signal` (e.g. `STOP`, `CONT`) to the server with kill(1).
    pub(super) fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .map_err(|e| {
                anyhow::anyhow!("cannot run kill(1) to send SIG{signal} to redis-server: {e}")
            })?;
        anyhow::ensure!(
            status.success(),
            "kill -{signal} {pid} (redis-server) failed ({status})"
        );
        Ok(())
    }

    /// Kills the server (SIGKILL) and waits until its port refuses
    /// connections (the process is reaped when this is dropped).
    pub(super) fn kill(&self) -> anyhow::Result<()> {
        self.signal("KILL")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "redis-server still accepts connections 10 s after SIGKILL"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
