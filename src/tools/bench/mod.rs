//! `jisr bench`: measured speed. A load generator (`load`) drives K
//! mutual-TLS HTTP/2 connections × C calls in flight, each a real
//! `GetBirthRecord` or `GetTaxStatus` made as an agency for the baccalauréat
//! purpose, and reports throughput, latency percentiles, errors by code and
//! reason, and the proxy's CPU time and peak memory (`report`).
//!
//! The target is a gateway named on the command line, or the benchmark's own
//! network: the sample providers and a gateway started as separate processes
//! from this executable (`procs`), so the gateway's CPU and memory are its
//! own. With `--compare` the same load is run, in interleaved rounds, against
//! the providers directly, through Jisr, and through nginx as a plain
//! mutual-TLS gRPC proxy (`nginx`).

pub mod audit;
pub mod bus;
pub mod consent;
mod disk;
mod load;
mod nginx;
mod procs;
mod report;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::tls::{self, TlsFiles};
use load::{Endpoints, Load, Outcome, Stop};
use procs::{LocalNetwork, ProcStats};
use report::{LoadLine, Report, Summary};

/// Options of `jisr bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// HTTP/2 connections to each target.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Calls in flight on each connection.
    #[arg(long, default_value_t = 64)]
    pub in_flight: usize,
    /// Stop each round after this many calls.
    #[arg(long, conflicts_with = "duration")]
    pub requests: Option<u64>,
    /// Run each round this long, e.g. 10s or 500ms (default 10s).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Limit the rate to R calls per second, e.g. 5000/s (default: as fast
    /// as the target answers). Latency then counts from each call's
    /// scheduled start.
    #[arg(long, value_parser = parse_rate)]
    pub rate: Option<f64>,
    /// Unmeasured calls before each round, e.g. 1s (0s for none).
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pub warmup: Duration,
    /// A running gateway to measure (host:port) instead of the own network.
    #[arg(long, requires = "pki", conflicts_with = "compare")]
    pub gateway: Option<String>,
    /// PKI directory with `ca.crt` and the calling agency's certificate.
    #[arg(long, requires = "gateway")]
    pub pki: Option<PathBuf>,
    /// The agency to call as.
    #[arg(long = "as", default_value = "education")]
    pub agency: String,
    /// With `--gateway`: first grant each sample citizen's consent to the
    /// calling agency through this agency (it needs the consent-manager
    /// role), for gateways whose rules rest on consent, e.g. `portal` on
    /// `jisr demo --serve`.
    #[arg(long, requires = "gateway", value_name = "AGENCY")]
    pub consents_as: Option<String>,
    /// The process id of `--gateway`, for its CPU time and memory (default:
    /// the local process listening on its port, if any).
    #[arg(long, requires = "gateway")]
    pub gateway_pid: Option<u32>,
    /// Compare, on the own network: direct to the providers, through Jisr,
    /// and through nginx.
    #[arg(long)]
    pub compare: bool,
    /// Measured rounds per target (default 3 with --compare, else 1).
    #[arg(long)]
    pub rounds: Option<u32>,
    /// With --compare, leave nginx out.
    #[arg(long)]
    pub no_nginx: bool,
    /// nginx's `worker_processes` (a number or auto).
    #[arg(long, default_value = "auto")]
    pub nginx_workers: String,
    /// Keep the network's files (PKI, configs, logs) in this directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Parses `10s`, `500ms`, `2m` or a plain number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        (text, 1.0)
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n >= 0.0 => Ok(Duration::from_secs_f64(n * scale)),
        _ => Err(format!(
            "`{text}` is not a duration; write e.g. 10s, 500ms or 2m"
        )),
    }
}

/// Parses `5000/s` or `5000`.
fn parse_rate(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches("/s");
    match number.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!("`{text}` is not a rate; write e.g. 5000/s")),
    }
}

/// Runs the benchmark and prints its report on stdout (progress on stderr).
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    tls::install_crypto_provider();
    let temp;
    let dir = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => {
            temp = tempfile::Builder::new().prefix("jisr-bench-").tempdir()?;
            temp.path().to_owned()
        }
    };
    let report = match &args.gateway {
        Some(addr) => external(&args, addr).await?,
        None => own_network(&args, &dir).await?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.json())?);
    } else {
        print!("{}", report.table());
        if args.compare {
            println!();
            for line in report.verdicts() {
                println!("{line}");
            }
        }
    }
    Ok(())
}

/// A target under measurement.
struct Target<'a> {
    name: &'static str,
    endpoints: Endpoints,
    /// The proxy's processes now, when they can be seen.
    stats: Box<dyn Fn() -> Option<ProcStats> + 'a>,
    outcome: Outcome,
    proxy: Option<ProcStats>,
}

impl<'a> Target<'a> {
    fn new(
        name: &'static str,
        endpoints: Endpoints,
        stats: impl Fn() -> Option<ProcStats> + 'a,
    ) -> Self {
        Self {
            name,
            endpoints,
            stats: Box::new(stats),
            outcome: Outcome::empty(),
            proxy: None,
        }
    }

    /// One warm-up and one measured run; the proxy's CPU counts only the latter.
    async fn round(&mut self, args: &BenchArgs) {
        let load = load_of(args);
        if !args.warmup.is_zero() {
            let warmup = Load {
                stop: Stop::After(args.warmup),
                ..load
            };
            load::run(&self.endpoints, warmup).await;
        }
        let before = (self.stats)();
        let outcome = load::run(&self.endpoints, load).await;
        if let (Some(before), Some(after)) = (before, (self.stats)()) {
            let spent = after.since(before);
            self.proxy = Some(self.proxy.map_or(spent, |p| p.add(spent)));
        }
        let s = Summary::new(self.name, &outcome, None);
        eprintln!(
            "bench: {:<6} {:>8.0} req/s  p50 {} µs  p99 {} µs  errors {}",
            self.name,
            s.requests_per_s,
            s.latency.p50,
            s.latency.p99,
            s.error_count()
        );
        self.outcome.merge(&outcome);
    }

    fn summary(&self) -> Summary {
        Summary::new(self.name, &self.outcome, self.proxy)
    }
}

fn load_of(args: &BenchArgs) -> Load {
    Load {
        in_flight: args.in_flight.max(1),
        stop: match (args.requests, args.duration) {
            (Some(n), _) => Stop::Count(n),
            (None, Some(d)) => Stop::After(d),
            (None, None) => Stop::After(Duration::from_secs(10)),
        },
        rate: args.rate,
    }
}

fn load_line(args: &BenchArgs, rounds: u32) -> LoadLine {
    LoadLine {
        connections: args.connections.max(1),
        in_flight: args.in_flight.max(1),
        amount: match load_of(args).stop {
            Stop::Count(n) => format!("{n} requests per round"),
            Stop::After(d) => format!("{} per round", report::seconds(d)),
        },
        rounds,
        rate: args.rate,
        fsync: [None, None],
    }
}

/// Probes the `fdatasync` latency in `dir` (see [`disk`]); `None`, said on
/// stderr, when the probe itself fails.
async fn fsync_probe(dir: &Path) -> Option<disk::Fsync> {
    let dir = dir.to_owned();
    match tokio::task::spawn_blocking(move || disk::probe(&dir)).await {
        Ok(Ok(fsync)) => Some(fsync),
        Ok(Err(e)) => {
            eprintln!("bench: the fdatasync probe failed: {e}");
            None
        }
        Err(e) => {
            eprintln!("bench: the fdatasync probe failed: {e}");
            None
        }
    }
}

/// Runs `rounds` interleaved rounds over `targets`, rotating which goes
/// first so none always runs on a cold or a warm machine.
async fn rounds(args: &BenchArgs, targets: &mut [Target<'_>], rounds: u32) {
    for round in 0..rounds as usize {
        eprintln!("bench: round {}/{rounds}", round + 1);
        for i in 0..targets.len() {
            let at = (round + i) % targets.len();
            targets[at].round(args).await;
        }
    }
}

/// A gateway named on the command line.
async fn external(args: &BenchArgs, addr: &str) -> anyhow::Result<Report> {
    let pki = args.pki.as_deref().unwrap_or(Path::new("."));
    let client = tls::tonic_client_tls(&TlsFiles::for_agency(pki, &args.agency))?;
    let mut endpoints = Endpoints::gateway(addr, &client, args.connections).await?;
    if let Some(manager) = &args.consents_as {
        let consents = procs::grant_consents(addr, pki, manager, &args.agency).await?;
        endpoints = endpoints.with_consents(std::sync::Arc::new(consents));
    }
    let pid = args.gateway_pid.or_else(|| {
        let port = addr.rsplit_once(':')?.1.parse().ok()?;
        procs::listening_pid(port)
    });
    let stats = move || ProcStats::read(&[pid?]);
    let count = args.rounds.unwrap_or(1).max(1);
    let mut targets = [Target::new("jisr", endpoints, stats)];
    rounds(args, &mut targets, count).await;
    let mut summary = targets[0].summary();
    summary.note = Some(match pid {
        Some(pid) => format!("gateway: process {pid} (CPU during the measured runs)"),
        None => {
            "gateway CPU and memory unknown: it is not a local process; give --gateway-pid".into()
        }
    });
    Ok(Report {
        load: load_line(args, count),
        targets: vec![summary],
        skipped: Vec::new(),
    })
}

/// The own network: Jisr alone, or with `--compare` direct, Jisr and nginx.
async fn own_network(args: &BenchArgs, dir: &Path) -> anyhow::Result<Report> {
    let exe = std::env::current_exe()?;
    let mut network = LocalNetwork::start(dir, &exe).await?;
    let as_agency = tls::tonic_client_tls(&TlsFiles::for_agency(&network.pki, &args.agency))?;
    let k = args.connections.max(1);
    let gateway_pid = network.gateway_pid();
    // Declared before the targets that borrow it.
    let mut nginx = None;
    let mut targets = Vec::new();
    let mut skipped = Vec::new();
    if args.compare {
        // Providers accept gateways only: call them with the gateway's certificate.
        let as_gateway = tls::tonic_client_tls(&TlsFiles::for_agency(&network.pki, "gateway"))?;
        let direct = Endpoints::providers(&network.civil_status, &network.tax, &as_gateway, k)
            .await?
            .with_consents(network.consents());
        targets.push(Target::new("direct", direct, || None));
        if args.no_nginx {
            skipped.push(("nginx", "left out (--no-nginx)".to_owned()));
        } else {
            match start_nginx(args, dir, &network).await {
                Ok(started) => nginx = Some(started),
                Err(why) => {
                    eprintln!("bench: skipping nginx: {why}");
                    skipped.push(("nginx", why));
                }
            }
        }
    }
    let jisr = Endpoints::gateway(&network.gateway, &as_agency, k)
        .await?
        .with_consents(network.consents());
    targets.push(Target::new("jisr", jisr, move || {
        ProcStats::read(&[gateway_pid])
    }));
    if let Some(nginx) = &nginx {
        let endpoints = Endpoints::gateway(&nginx.addr.to_string(), &as_agency, k)
            .await?
            .with_consents(network.consents());
        targets.push(Target::new("nginx", endpoints, || nginx.stats()));
    }
    let count = args
        .rounds
        .unwrap_or(if args.compare { 3 } else { 1 })
        .max(1);
    let before = fsync_probe(dir).await;
    rounds(args, &mut targets, count).await;
    let after = fsync_probe(dir).await;
    network.check_gateway()?;
    let mut summaries: Vec<Summary> = targets.iter().map(Target::summary).collect();
    for s in &mut summaries {
        s.note = match s.name {
            "direct" => Some(format!("the sample providers over mutual TLS with the gateway's certificate ({k} connections to each)")),
            "jisr" => Some(format!("gateway process {gateway_pid}, full path: rules, subject walk, durable audit")),
            "nginx" => Some(format!("grpc_pass grpcs://, worker_processes {}; CPU and memory of master and workers", args.nginx_workers)),
            _ => None,
        };
    }
    let mut load = load_line(args, count);
    load.fsync = [before, after];
    Ok(Report {
        load,
        targets: summaries,
        skipped,
    })
}

async fn start_nginx(
    args: &BenchArgs,
    dir: &Path,
    network: &LocalNetwork,
) -> Result<nginx::Nginx, String> {
    let binary = nginx::ensure_installed()?;
    let config = nginx::NginxConfig {
        listen: nginx::free_port().map_err(|e| format!("no free port for nginx: {e}"))?,
        prefix: dir.join("nginx"),
        pki: network.pki.clone(),
        routes: vec![
            (
                "ma.civilstatus.v1.CivilStatus".into(),
                network.civil_status.clone(),
            ),
            ("ma.tax.v1.TaxRecords".into(), network.tax.clone()),
        ],
        workers: args.nginx_workers.clone(),
        max_streams: args.in_flight,
    };
    nginx::Nginx::start(&binary, &config)
        .await
        .map_err(|e| format!("nginx did not start: {e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    #[test]
    fn durations_and_rates_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_rate("5000/s"), Ok(5000.0));
        assert_eq!(parse_rate("250"), Ok(250.0));
        assert!(parse_rate("0/s").is_err());
    }

    #[test]
    fn the_load_defaults_to_ten_seconds_and_counts_when_asked() {
        let args = Cli::parse_from(["bench"]).bench;
        assert_eq!(load_of(&args).stop, Stop::After(Duration::from_secs(10)));
        assert_eq!((args.connections, args.in_flight), (4, 64));
        let args = Cli::parse_from(["bench", "--requests", "200", "--rate", "100/s"]).bench;
        assert_eq!(load_of(&args).stop, Stop::Count(200));
        assert_eq!(load_of(&args).rate, Some(100.0));
        assert_eq!(load_line(&args, 1).amount, "200 requests per round");
        let both = Cli::try_parse_from(["bench", "--requests", "1", "--duration", "1s"]);
        assert!(both.is_err());
        let gateway_without_pki = Cli::try_parse_from(["bench", "--gateway", "127.0.0.1:1"]);
        assert!(gateway_without_pki.is_err());
    }
}
