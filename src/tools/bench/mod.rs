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
//! the providers directly, through Jisr, through nginx as a plain
//! mutual-TLS gRPC proxy (`nginx`) and through HAProxy as a plain
//! mutual-TLS HTTP/2 proxy (`haproxy`).

mod args;
pub mod audit;
pub mod bus;
pub mod consent;
pub mod console;
mod disk;
mod faults;
mod haproxy;
mod ids;
mod load;
mod nginx;
mod procs;
pub mod replicas;
mod report;
mod verdicts;
pub mod witness;

use std::path::Path;

use crate::tls::{self, TlsFiles};
pub use args::BenchArgs;
use args::{load_line, load_of};
use load::{Endpoints, Load, Outcome, Stop};
use procs::{LocalNetwork, ProcStats};
use report::{Report, Summary};

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
    if let Some(listen) = args.print_haproxy_config {
        let config = haproxy::HaproxyConfig::for_args(&args, &dir, listen)?;
        config.write_pem()?;
        print!("{}", config.render());
        return Ok(());
    }
    if args.faults {
        faults::run(&args, &dir).await?;
        return Ok(());
    }
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
    let consents = match (&args.consents_as, &args.consent_ids) {
        (Some(manager), ids) => {
            let consents = procs::grant_consents(addr, pki, manager, &args.agency).await?;
            if let Some(file) = ids {
                ids::save(file, &consents)?;
            }
            Some(consents)
        }
        (None, Some(file)) => Some(ids::load(file)?),
        (None, None) => None,
    };
    if let Some(consents) = consents {
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

/// The own network: Jisr alone, or with `--compare` direct, Jisr, nginx and
/// HAProxy.
async fn own_network(args: &BenchArgs, dir: &Path) -> anyhow::Result<Report> {
    let exe = std::env::current_exe()?;
    let mut network = LocalNetwork::start(dir, &exe).await?;
    let as_agency = tls::tonic_client_tls(&TlsFiles::for_agency(&network.pki, &args.agency))?;
    let k = args.connections.max(1);
    let gateway_pid = network.gateway_pid();
    // Declared before the targets that borrow them.
    let mut nginx = None;
    let mut haproxy = None;
    let mut targets = Vec::new();
    let mut skipped = Vec::new();
    if args.compare {
        targets.push(direct_target(&network, k).await?);
        nginx = compared_nginx(args, dir, &network, &mut skipped).await;
        haproxy = haproxy::compared(args, dir, &network, &mut skipped).await;
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
    if let Some(haproxy) = &haproxy {
        let endpoints = Endpoints::gateway(&haproxy.addr.to_string(), &as_agency, k)
            .await?
            .with_consents(network.consents());
        targets.push(Target::new("haproxy", endpoints, || haproxy.stats()));
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
        s.note = target_note(s.name, args, k, gateway_pid);
    }
    let mut load = load_line(args, count);
    load.fsync = [before, after];
    Ok(Report {
        load,
        targets: summaries,
        skipped,
    })
}

/// The sample providers called directly, the baseline of `--compare`.
async fn direct_target(network: &LocalNetwork, k: usize) -> anyhow::Result<Target<'static>> {
    // Providers accept gateways only: call them with the gateway's certificate.
    let as_gateway = tls::tonic_client_tls(&TlsFiles::for_agency(&network.pki, "gateway"))?;
    let direct = Endpoints::providers(&network.civil_status, &network.tax, &as_gateway, k)
        .await?
        .with_consents(network.consents());
    Ok(Target::new("direct", direct, || None))
}

/// nginx for `--compare`, unless left out or it cannot start (then the
/// report says why).
async fn compared_nginx(
    args: &BenchArgs,
    dir: &Path,
    network: &LocalNetwork,
    skipped: &mut Vec<(&'static str, String)>,
) -> Option<nginx::Nginx> {
    if args.no_nginx {
        skipped.push(("nginx", "left out (--no-nginx)".to_owned()));
        return None;
    }
    match start_nginx(args, dir, network).await {
        Ok(started) => Some(started),
        Err(why) => {
            eprintln!("bench: skipping nginx: {why}");
            skipped.push(("nginx", why));
            None
        }
    }
}

/// What each target's figures cover, for the report.
fn target_note(name: &str, args: &BenchArgs, k: usize, gateway_pid: u32) -> Option<String> {
    match name {
        "direct" => Some(format!("the sample providers over mutual TLS with the gateway's certificate ({k} connections to each)")),
        "jisr" => Some(format!("gateway process {gateway_pid}, full path: rules, subject walk, durable audit")),
        "nginx" => Some(format!("grpc_pass grpcs://, worker_processes {}; CPU and memory of master and workers", args.nginx_workers)),
        "haproxy" => Some(format!("mode http, alpn h2 both legs, http-reuse always, nbthread {}", std::thread::available_parallelism().map_or(1, usize::from))),
        _ => None,
    }
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
    use super::args::{parse_duration, parse_rate};
    use super::*;
    use clap::Parser;
    use std::time::Duration;

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
