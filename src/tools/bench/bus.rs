//! `jisr bus bench`: events per second end to end (publish → delivered →
//! acknowledged) and delivery latency through a real gateway process, on the
//! embedded store or on Redis Streams (`--redis`), with `redis-benchmark`'s
//! XADD throughput on the same Redis as the ceiling.
//!
//! The bench writes the demo's PKI, contracts and topics into a temporary
//! directory, starts `jisr serve` on it, subscribes as `health` to the death
//! topic, and publishes numbered deaths as `civil-status` from
//! `--publishers` concurrent callers. A delivery's latency runs from the
//! start of its publish call to its arrival at the subscriber; every
//! delivery is acknowledged (in batches, as a consumer would).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use prost::Message as _;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt as _;
use tonic::transport::{Channel, Endpoint};

use crate::proto::jisr::bus::v1::{
    bus_client::BusClient, AckRequest, PublishRequest, SubscribeRequest,
};
use crate::proto::ma::civilstatus::v1::DeathRegistered;
use crate::tls::{self, TlsFiles};

const TOPIC: &str = "civil-status.death-registered";

/// `jisr bus bench` options.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Events to publish.
    #[arg(long, default_value_t = 5000)]
    pub events: u64,
    /// Concurrent publishers.
    #[arg(long, default_value_t = 16)]
    pub publishers: u64,
    /// Use Redis Streams at this URL (e.g. redis://127.0.0.1:6379) instead
    /// of the embedded store; also runs `redis-benchmark` XADD against it.
    #[arg(long)]
    pub redis: Option<String>,
    /// Keep the gateway's files here (default: a temporary directory).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
}

/// Runs the benchmark and prints the figures.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.events > 0 && args.publishers > 0,
        "--events and --publishers must be at least 1"
    );
    tls::install_crypto_provider();
    let temp;
    let dir = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("jisr-bus-bench-")
                .tempdir()?;
            temp.path().to_owned()
        }
    };
    let pki = crate::tools::demo::prepare(&dir).context("writing the PKI and contracts")?;
    let config_path = write_config(&dir, args.redis.as_deref())?;
    let addr_file = dir.join("gateway.addr");
    let _ = std::fs::remove_file(&addr_file);
    let mut gateway = tokio::process::Command::new(std::env::current_exe()?)
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .arg("--addr-file")
        .arg(&addr_file)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .context("starting the gateway")?;
    let addr = wait_for(&addr_file).await?;
    let backend = match &args.redis {
        Some(url) => format!("Redis Streams ({url})"),
        None => "embedded (redb)".to_owned(),
    };
    println!(
        "bus bench: {} events, {} publishers, backend {backend}, gateway {addr}",
        args.events, args.publishers
    );
    let outcome = measure(&args, &addr, &pki).await;
    let _ = gateway.start_kill();
    let _ = gateway.wait().await;
    outcome?;
    if let Some(url) = &args.redis {
        ceiling(url);
    }
    Ok(())
}

/// The demo's configuration with unreachable providers (only the bus is
/// measured), on Redis when `redis` names one; returns its path.
fn write_config(dir: &std::path::Path, redis: Option<&str>) -> anyhow::Result<std::path::PathBuf> {
    let mut config = format!(
        include_str!("../demo/demo.toml.in"),
        civil_status = "127.0.0.1:9",
        tax = "127.0.0.1:9",
        health = "127.0.0.1:9",
    );
    // The bench measures the bus, not the per-agency limit on the
    // gateway's own services: lift it.
    config = config.replace(
        "listen = \"127.0.0.1:0\"",
        "listen = \"127.0.0.1:0\"\nown_calls_per_second = 1000000\nown_calls_burst = 1000000",
    );
    if let Some(url) = redis {
        config = config.replace(
            "path = \"bus.redb\"",
            &format!("path = \"bus.redb\"\nredis_url = \"{url}\""),
        );
    }
    let config_path = dir.join("jisr.toml");
    std::fs::write(&config_path, config)?;
    Ok(config_path)
}

async fn wait_for(path: &std::path::Path) -> anyhow::Result<String> {
    for _ in 0..400 {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.trim().is_empty() {
                return Ok(text.trim().to_owned());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the gateway did not start within 20 s (see its log above)")
}

async fn client(
    addr: &str,
    pki: &std::path::Path,
    agency: &str,
) -> anyhow::Result<BusClient<Channel>> {
    let files = TlsFiles::for_agency(pki, agency);
    let channel = Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls::tonic_client_tls(&files)?)?
        .connect()
        .await?;
    Ok(BusClient::new(channel))
}

fn histogram() -> Histogram<u64> {
    // 1 µs to 60 s, 3 significant digits: always valid bounds.
    Histogram::new_with_bounds(1, 60_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

/// When each event's publish call started, in µs on the run's clock, so
/// the subscriber can time its delivery.
#[derive(Clone)]
struct Clock {
    start: Instant,
    sent: Arc<Vec<AtomicU64>>,
}

impl Clock {
    fn new(n: u64) -> Self {
        Self {
            start: Instant::now(),
            sent: Arc::new((0..n).map(|_| AtomicU64::new(0)).collect()),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn mark_sent(&self, i: u64) {
        self.sent[usize::try_from(i).unwrap_or(usize::MAX)].store(self.now(), Ordering::Relaxed);
    }

    fn sent_at(&self, i: usize) -> u64 {
        self.sent.get(i).map_or(0, |a| a.load(Ordering::Relaxed))
    }
}

async fn measure(args: &BenchArgs, addr: &str, pki: &std::path::Path) -> anyhow::Result<()> {
    let n = args.events;
    let clock = Clock::new(n);
    let mut health = client(addr, pki, "health").await?;
    let stream = health
        .subscribe(SubscribeRequest {
            topic: TOPIC.into(),
            purpose: "civil-event".into(),
        })
        .await?
        .into_inner();
    let (ack_tx, acks) = spawn_acker(health.clone());
    let publish_latency = Arc::new(std::sync::Mutex::new(histogram()));
    let mut publishers = Vec::new();
    for p in 0..args.publishers {
        let civil = client(addr, pki, "civil-status").await?;
        let (clock, lat) = (clock.clone(), publish_latency.clone());
        let count = args.publishers;
        publishers.push(tokio::spawn(publish(civil, p, count, n, clock, lat)));
    }
    let delivery = receive(stream, n, &clock, &ack_tx).await?;
    for p in publishers {
        p.await??;
    }
    drop(ack_tx);
    let acked = acks.await??;
    let elapsed = clock.start.elapsed();
    let publish = publish_latency
        .lock()
        .map(|h| h.clone())
        .unwrap_or_else(|_| histogram());
    print_figures(n, acked, elapsed, &delivery, &publish);
    Ok(())
}

/// Acknowledgements go in batches from their own task, as a consumer's
/// would; the task returns how many the gateway acknowledged.
fn spawn_acker(
    mut acker: BusClient<Channel>,
) -> (mpsc::Sender<String>, JoinHandle<anyhow::Result<u64>>) {
    let (ack_tx, mut ack_rx) = mpsc::channel::<String>(4096);
    let acks = tokio::spawn(async move {
        let mut done = 0u64;
        while let Some(first) = ack_rx.recv().await {
            let mut ids = vec![first];
            while ids.len() < 256 {
                match ack_rx.try_recv() {
                    Ok(id) => ids.push(id),
                    Err(_) => break,
                }
            }
            let r = acker
                .ack(AckRequest {
                    topic: TOPIC.into(),
                    ids,
                })
                .await?;
            done += u64::from(r.into_inner().acknowledged);
        }
        anyhow::Ok(done)
    });
    (ack_tx, acks)
}

/// Publishes events `first`, `first + step`, … below `n`, timing each call.
async fn publish(
    mut civil: BusClient<Channel>,
    first: u64,
    step: u64,
    n: u64,
    clock: Clock,
    lat: Arc<std::sync::Mutex<Histogram<u64>>>,
) -> anyhow::Result<()> {
    let mut i = first;
    while i < n {
        let event = DeathRegistered {
            citizen_id: format!("CB{i:08}"),
            act_number: i.to_string(),
            death_date: "2026-11-20".into(),
            ..Default::default()
        };
        let t = Instant::now();
        clock.mark_sent(i);
        civil
            .publish(PublishRequest {
                topic: TOPIC.into(),
                event: Some(prost_types::Any {
                    type_url: "type.googleapis.com/ma.civilstatus.v1.DeathRegistered".into(),
                    value: event.encode_to_vec(),
                }),
                idempotency_key: format!("bench-{}-{i}", std::process::id()),
                subject: String::new(),
            })
            .await?;
        let us = u64::try_from(t.elapsed().as_micros())
            .unwrap_or(u64::MAX)
            .max(1);
        if let Ok(mut h) = lat.lock() {
            let _ = h.record(us);
        }
        i += step;
    }
    anyhow::Ok(())
}

/// Takes deliveries until all `n` events have arrived once, handing each
/// to the acker; returns the delivery latencies.
async fn receive(
    mut stream: tonic::Streaming<crate::proto::jisr::bus::v1::Delivery>,
    n: u64,
    clock: &Clock,
    ack_tx: &mpsc::Sender<String>,
) -> anyhow::Result<Histogram<u64>> {
    let mut delivery = histogram();
    let mut received = 0u64;
    while received < n {
        let next = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .map_err(|_| anyhow::anyhow!("no delivery for 30 s after {received} of {n}"))?
            .ok_or_else(|| anyhow::anyhow!("the subscription ended after {received} of {n}"))??;
        let now = clock.now();
        let event =
            DeathRegistered::decode(next.event.as_ref().map_or(&[][..], |e| e.value.as_slice()))?;
        let i: usize = event.act_number.parse()?;
        let _ = delivery.record(now.saturating_sub(clock.sent_at(i)).max(1));
        if next.attempt == 1 {
            received += 1;
        }
        ack_tx
            .send(next.id)
            .await
            .map_err(|_| anyhow::anyhow!("the ack task stopped"))?;
    }
    Ok(delivery)
}

fn print_figures(
    n: u64,
    acked: u64,
    elapsed: Duration,
    delivery: &Histogram<u64>,
    publish: &Histogram<u64>,
) {
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "  end to end: {n} events published, delivered and acknowledged ({acked} acks) in {:.2} s = {:.0} events/s",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  delivery latency (publish call start → delivered): p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        ms(delivery.value_at_quantile(0.5)),
        ms(delivery.value_at_quantile(0.99)),
        ms(delivery.max())
    );
    println!(
        "  publish call (durable + audited): p50 {:.2} ms  p99 {:.2} ms",
        ms(publish.value_at_quantile(0.5)),
        ms(publish.value_at_quantile(0.99))
    );
}

/// Runs `redis-benchmark` XADD against the same Redis, if installed.
fn ceiling(url: &str) {
    let hostport = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or_default();
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "6379"));
    let out = std::process::Command::new("redis-benchmark")
        .args([
            "-h",
            host,
            "-p",
            port,
            "-q",
            "-n",
            "200000",
            "-c",
            "16",
            "XADD",
            "jisr:bench:ceiling",
            "*",
            "e",
            "0123456789abcdef0123456789abcdef",
        ])
        .output();
    match out {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text.rsplit('\r').next().unwrap_or(&text).trim();
            println!("  ceiling: redis-benchmark XADD (16 clients, same Redis): {line}");
        }
        Err(e) => {
            println!("  ceiling: redis-benchmark not run ({e}); install redis-tools to compare")
        }
    }
}
