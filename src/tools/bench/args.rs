//! `jisr bench`'s options, and the load and report header they make.

use std::path::PathBuf;
use std::time::Duration;

use super::load::{Load, Stop};
use super::report::{self, LoadLine};

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
    /// With `--gateway`: with `--consents-as`, also save the granted
    /// consents' ids to this file; without it, present the ids saved there
    /// instead of granting again (a later run against the same gateway, so
    /// that it measures the calls only: scripts/cost-guard.sh).
    #[arg(long, requires = "gateway", value_name = "FILE")]
    pub consent_ids: Option<PathBuf>,
    /// The process id of `--gateway`, for its CPU time and memory (default:
    /// the local process listening on its port, if any).
    #[arg(long, requires = "gateway")]
    pub gateway_pid: Option<u32>,
    /// Compare, on the own network: direct to the providers, through Jisr,
    /// through nginx and through HAProxy.
    #[arg(long)]
    pub compare: bool,
    /// Measured rounds per target (default 3 with --compare, else 1).
    #[arg(long)]
    pub rounds: Option<u32>,
    /// With --compare, leave nginx out.
    #[arg(long)]
    pub no_nginx: bool,
    /// With --compare, leave HAProxy out.
    #[arg(long)]
    pub no_haproxy: bool,
    /// Write the HAProxy configuration `--compare` runs (and the PEM it
    /// reads) under `--dir`'s `haproxy/`, listening on LISTEN, for the
    /// network whose PKI is `--dir`'s `pki/` (as `jisr demo --serve --dir`
    /// makes it); print it and exit. `scripts/callgrind-proxies.sh` runs
    /// HAProxy with it.
    #[arg(long, value_name = "LISTEN", requires_all = ["dir", "upstream"], conflicts_with_all = ["compare", "gateway"])]
    pub print_haproxy_config: Option<std::net::SocketAddr>,
    /// With --print-haproxy-config: a gRPC service and the provider that
    /// serves it, `SERVICE=HOST:PORT` (repeat; the first is the default).
    #[arg(
        long,
        value_name = "SERVICE=HOST:PORT",
        requires = "print_haproxy_config"
    )]
    pub upstream: Vec<String>,
    /// With --print-haproxy-config: HAProxy's `nbthread` (default: the
    /// machine's cores, as under --compare).
    #[arg(long, requires = "print_haproxy_config")]
    pub haproxy_threads: Option<usize>,
    /// nginx's `worker_processes` (a number or auto).
    #[arg(long, default_value = "auto")]
    pub nginx_workers: String,
    /// Keep the network's files (PKI, configs, logs) in this directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Measure the time to refusal under faults instead (a hung provider,
    /// an open breaker, a hung and a killed Redis), each beside the bound
    /// configured for it, on a network of its own with a redis-server from
    /// PATH; `--requests` calls per fault (default 50), `--in-flight` at once.
    #[arg(long, conflicts_with_all = ["compare", "gateway", "duration", "rate"])]
    pub faults: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Parses `10s`, `500ms`, `2m` or a plain number of seconds.
pub(super) fn parse_duration(text: &str) -> Result<Duration, String> {
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
pub(super) fn parse_rate(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches("/s");
    match number.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!("`{text}` is not a rate; write e.g. 5000/s")),
    }
}

pub(super) fn load_of(args: &BenchArgs) -> Load {
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

pub(super) fn load_line(args: &BenchArgs, rounds: u32) -> LoadLine {
    LoadLine {
        connections: args.connections.max(1),
        in_flight: args.in_flight.max(1),
        amount: match load_of(args).stop {
            Stop::Count(n) => format!("{n} requests per round"),
            Stop::After(d) => format!("{} per round", report::seconds(d)),
        },
        rounds,
        rate: args.rate,
        cpu: cpu_model(),
        fsync: [None, None],
    }
}

/// The CPU model from `/proc/cpuinfo` and the cores this process may use,
/// e.g. "AMD EPYC 7B13 × 2 cores"; `None` where there is no such file.
pub(super) fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let model = model_name(&info)?;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    Some(format!("{model} × {cores} cores"))
}

/// The first `model name` in `/proc/cpuinfo`'s text.
fn model_name(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(key, _)| key.trim() == "model name")
        .map(|(_, value)| value.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|m| !m.is_empty())
}

#[cfg(test)]
mod tests {
    use super::model_name;

    #[test]
    fn the_cpu_model_is_read_from_cpuinfo() {
        let info = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC  7B13 64-Core Processor\nprocessor\t: 1\nmodel name\t: other\n";
        assert_eq!(
            model_name(info).as_deref(),
            Some("AMD EPYC 7B13 64-Core Processor")
        );
        assert_eq!(model_name("processor\t: 0\n"), None);
    }
}
