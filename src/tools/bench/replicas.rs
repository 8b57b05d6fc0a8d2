//! `jisr audit bench-replicas`: a citizen's history asked of one replica
//! that merges it with its peers' (the answer an auditor or the citizen
//! portal gets behind a load balancer), beside the same query answered by
//! one replica from its own log only, in the same run.
//!
//! Each replica's log is filled first through the log writer itself
//! (batched appends, no calls), then indexed, as `jisr audit bench` does;
//! then the replicas are started in this process as real gateways, each with
//! its own node id, gateway certificate and log, listing the others as
//! `[cluster] peers`, and the queries go over mutual TLS. The single-replica
//! figure is a peer read (made with another replica's certificate, naming
//! the portal in `jisr-on-behalf-of`): the node answers from its own log,
//! exactly as it does for a peer fanning out.

use super::audit::{citizen_id, fill, open_signed, Node, PSEUDONYM_KEY};
use crate::audit::index::AuditIndex;
use crate::audit::note::NoteSigner;
use crate::audit::peers::ON_BEHALF_OF;
use crate::config::{self, Config};
use crate::gateway::{self, Gateway};
use crate::identity::AgencyId;
use crate::proto::jisr::audit::v1 as pb;
use crate::tls::{self, TlsFiles};
use crate::tools::demo::{self, TRUST_DOMAIN};
use hdrhistogram::Histogram;
use pb::audit_client::AuditClient;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tokio::sync::watch;
use tonic::transport::Channel;

/// What to measure.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplicasBenchArgs {
    /// Replicas (at least 2).
    #[arg(long, default_value_t = 3)]
    pub replicas: u64,
    /// Entries in each replica's log.
    #[arg(long, default_value_t = 1_000_000)]
    pub entries: u64,
    /// Citizens the entries are spread over, evenly: each has
    /// entries/citizens entries on every replica (10 by default, 30 in all).
    #[arg(long, default_value_t = 100_000)]
    pub citizens: u64,
    /// Queries per figure (after a warm-up of a tenth as many).
    #[arg(long, default_value_t = 1000)]
    pub queries: u64,
    /// Where to write the logs (default: a temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One figure: latencies of a citizen-history page of 50.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Figure {
    /// p50, µs.
    pub p50_us: u64,
    /// p99, µs.
    pub p99_us: u64,
    /// Max, µs.
    pub max_us: u64,
    /// Mean entries per answer.
    pub mean_results: f64,
}

/// The run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReplicasRun {
    /// Replicas.
    pub replicas: u64,
    /// Entries in each replica's log.
    pub entries_per_replica: u64,
    /// Citizens.
    pub citizens: u64,
    /// Queries per figure.
    pub queries: u64,
    /// Seconds to fill and index every log.
    pub fill_s: f64,
    /// Asked of gw-1, merged with every peer's.
    pub merged: Figure,
    /// Answered by gw-1 from its own log.
    pub single: Figure,
}

/// Fills the logs, starts the replicas, measures, stops them.
pub async fn run(args: &ReplicasBenchArgs) -> anyhow::Result<ReplicasRun> {
    anyhow::ensure!(
        args.replicas >= 2,
        "--replicas must be at least 2: a merged history needs peers"
    );
    anyhow::ensure!(
        args.citizens >= 1 && args.entries >= args.citizens,
        "--entries must be at least --citizens (at least 1)"
    );
    tls::install_crypto_provider();
    let temp = tempfile::Builder::new()
        .prefix("jisr-replicas-bench-")
        .tempdir_in(args.dir.clone().unwrap_or_else(std::env::temp_dir))?;
    let root = temp.path();
    let pki = demo::prepare(root)?;
    std::fs::write(
        root.join("pseudonym.key"),
        format!("{}\n", crate::audit::keys::hex(&PSEUDONYM_KEY)),
    )?;
    // Shared by every replica and made before any of them runs, as `jisr
    // keys init` makes it: a node whose log exists refuses to start
    // without it rather than make a new one.
    let consent_signer = NoteSigner::generate(&format!("{TRUST_DOMAIN}/jisr/consents"))?;
    std::fs::write(
        root.join("consent-signing.key"),
        format!("{}\n", consent_signer.to_secret_text()),
    )?;
    let nodes: Vec<String> = (1..=args.replicas).map(|k| format!("gw-{k}")).collect();
    let started = Instant::now();
    let mut entries = 0;
    for (k, node) in nodes.iter().enumerate() {
        eprintln!(
            "filling and indexing {node}'s log ({} entries)...",
            args.entries
        );
        entries = prefill(root, node, k as u64, args).await?;
    }
    let fill_s = started.elapsed().as_secs_f64();
    let (stop, rx) = watch::channel(false);
    let (addrs, tasks) = start(root, &pki, &nodes, &rx).await?;
    let measured = measure(&pki, &addrs[0], &nodes[1], args).await;
    let _ = stop.send(true);
    for task in tasks {
        let _ = task.await;
    }
    let (merged, single) = measured?;
    Ok(ReplicasRun {
        replicas: args.replicas,
        entries_per_replica: entries,
        citizens: args.citizens,
        queries: args.queries,
        fill_s,
        merged,
        single,
    })
}

/// Writes node `nth`'s signing key and fills and indexes its log; returns
/// the entries written.
async fn prefill(
    root: &Path,
    node: &str,
    nth: u64,
    args: &ReplicasBenchArgs,
) -> anyhow::Result<u64> {
    let signer = NoteSigner::generate(&format!("{TRUST_DOMAIN}/jisr/{node}"))?;
    std::fs::write(
        root.join(format!("{node}-audit-signing.key")),
        format!("{}\n", signer.to_secret_text()),
    )?;
    // The node's consent store exists before its log, as on a node that
    // has run: a node whose log exists refuses to start without it.
    drop(crate::consent::store::embedded::EmbeddedConsentStore::open(
        &root.join(format!("{node}-consents.redb")),
    )?);
    let dir = root.join(format!("{node}-audit"));
    let log = open_signed(&dir, signer)?;
    // Appenders in flight: the writer syncs each batch once.
    let concurrency = usize::try_from(args.entries.min(1024)).unwrap_or(1024);
    let who = Node {
        name: node.to_owned(),
        nth,
        of: args.replicas,
    };
    let written = fill(&log, args.entries, concurrency, args.citizens, &who).await?;
    let index = AuditIndex::open(&dir.join("index.redb"))?;
    crate::audit::service::catch_up(&index, &log)?;
    drop(index);
    log.close().await;
    Ok(written.len())
}

/// The configuration of replica `node`, listing the others' addresses.
fn config_text(node: &str, peers: &[(String, String)]) -> String {
    let peers: Vec<String> = peers
        .iter()
        .filter(|(n, _)| n != node)
        .map(|(n, a)| format!("{{ node = \"{n}\", address = \"{a}\" }}"))
        .collect();
    format!(
        r#"[node]
id = "{node}"
trust_domain = "{TRUST_DOMAIN}"
listen = "127.0.0.1:0"
own_calls_per_second = 1000000
own_calls_burst = 1000000

[tls]
ca = "pki/ca.crt"
cert = "pki/gateway-{node}.crt"
key = "pki/gateway-{node}.key"

[consent]
path = "{node}-consents.redb"

[audit]
dir = "{node}-audit"
signing_key = "{node}-audit-signing.key"
pseudonym_key = "pseudonym.key"

[[agency]]
id = "portal"
roles = ["consent-manager"]

[cluster]
peers = [{peers}]
"#,
        peers = peers.join(", ")
    )
}

type Tasks = Vec<tokio::task::JoinHandle<()>>;

/// Starts every replica in this process; returns their addresses.
async fn start(
    root: &Path,
    pki: &Path,
    nodes: &[String],
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<(Vec<String>, Tasks)> {
    let mut listeners = Vec::new();
    for _ in nodes {
        listeners.push(tokio::net::TcpListener::bind("127.0.0.1:0").await?);
    }
    let addrs: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.to_string()))
        .collect::<Result<_, _>>()?;
    let named: Vec<(String, String)> = nodes.iter().cloned().zip(addrs.clone()).collect();
    let mut tasks = Vec::new();
    for (node, listener) in nodes.iter().zip(listeners) {
        crate::tools::pki::issue_gateway(pki, None, &AgencyId::parse(node)?, &[])?;
        let path = root.join(format!("{node}.toml"));
        std::fs::write(&path, config_text(node, &named))?;
        let config = Config::load(&path).map_err(|e| anyhow::anyhow!("{}", config::report(&e)))?;
        let (gateway, _) = Gateway::build(&config)
            .await
            .map_err(|e| anyhow::anyhow!("{node}: {e}"))?;
        let mut rx = stop.clone();
        let shutdown = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        tasks.push(tokio::spawn(gateway::run(
            gateway, listener, None, shutdown,
        )));
    }
    Ok((addrs, tasks))
}

/// A mutual-TLS audit client of `addr` with the certificate `name` in `pki`.
async fn client(pki: &Path, name: &str, addr: &str) -> anyhow::Result<AuditClient<Channel>> {
    let files = TlsFiles::for_agency(pki, name);
    let channel = Channel::from_shared(format!("https://{addr}"))?
        .tls_config(tls::tonic_client_tls(&files)?)?
        .connect()
        .await?;
    Ok(AuditClient::new(channel))
}

/// Times the merged and the single-replica history of the same citizens,
/// alternating, one query at a time.
async fn measure(
    pki: &Path,
    addr: &str,
    peer: &str,
    args: &ReplicasBenchArgs,
) -> anyhow::Result<(Figure, Figure)> {
    let mut merged = Sample::new(client(pki, "portal", addr).await?, false)?;
    let mut single = Sample::new(client(pki, &format!("gateway-{peer}"), addr).await?, true)?;
    let warmup = args.queries / 10;
    for q in 0..warmup + args.queries {
        let citizen = citizen_id((q * 104_729) % args.citizens);
        let measured = q >= warmup;
        merged.query(&citizen, measured).await?;
        single.query(&citizen, measured).await?;
    }
    Ok((merged.figure(), single.figure()))
}

/// One figure's client and what it measured.
struct Sample {
    client: AuditClient<Channel>,
    as_peer: bool,
    latencies: Histogram<u64>,
    results: u64,
}

impl Sample {
    fn new(client: AuditClient<Channel>, as_peer: bool) -> anyhow::Result<Self> {
        Ok(Self {
            client,
            as_peer,
            latencies: Histogram::new_with_bounds(1, 60_000_000, 3)?,
            results: 0,
        })
    }

    async fn query(&mut self, citizen: &str, measured: bool) -> anyhow::Result<()> {
        let mut request = tonic::Request::new(pb::CitizenHistoryRequest {
            citizen_id: citizen.to_owned(),
            page_size: 50,
            page_token: String::new(),
        });
        if self.as_peer {
            request.metadata_mut().insert(
                ON_BEHALF_OF,
                tonic::metadata::MetadataValue::from_static("portal"),
            );
        }
        let started = Instant::now();
        let page = self.client.citizen_history(request).await?.into_inner();
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        if let Some(m) = page.missing.first() {
            anyhow::bail!("replica {} did not answer: {}", m.node, m.reason);
        }
        if measured {
            self.latencies.record(micros.max(1))?;
            self.results += page.entries.len() as u64;
        }
        Ok(())
    }

    fn figure(&self) -> Figure {
        Figure {
            p50_us: self.latencies.value_at_quantile(0.5),
            p99_us: self.latencies.value_at_quantile(0.99),
            max_us: self.latencies.max(),
            mean_results: self.results as f64 / self.latencies.len().max(1) as f64,
        }
    }
}

/// The report as a Markdown table.
pub fn render(run: &ReplicasRun) -> String {
    let row = |what: &str, asked: u64, f: &Figure| {
        format!(
            "| {what} | {asked} | {} | {} | {} | {} | {} | {:.1} |\n",
            run.entries_per_replica, run.queries, f.p50_us, f.p99_us, f.max_us, f.mean_results
        )
    };
    let mut out = String::from("| citizen history, page 50 | logs read | entries per log | queries | p50 (µs) | p99 (µs) | max (µs) | mean results |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
    out.push_str(&row(
        "merged across the replicas (asked of gw-1)",
        run.replicas,
        &run.merged,
    ));
    out.push_str(&row("one replica, its own log (gw-1)", 1, &run.single));
    out.push_str(&format!(
        "\n{} citizens, ≈ {:.0} entries each per replica; logs filled and indexed in {:.0} s\n",
        run.citizens,
        run.entries_per_replica as f64 / run.citizens as f64,
        run.fill_s
    ));
    out
}
