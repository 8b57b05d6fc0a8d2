//! `jisr witness bench`: the two figures of issue 23's benchmark.
//!
//! - `cosign`: checkpoints per second one `jisr witness` cosigns over
//!   loopback HTTPS, several logs at once, each one request at a time as
//!   the spec allows;
//! - `lag`: under the exchange load of `jisr bench`, the time from a
//!   checkpoint's signing to the gateway holding its k-th cosignature.
//!
//! Every cosignature either part receives is verified against the
//! witness's key; the report counts the failures (a sound run has none).

mod cosign;
mod lag;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{ensure, Context as _};
pub use cosign::CosignRun;
pub use lag::LagRun;

use super::procs::{jisr, Spawned};
use crate::audit::note::CosignatureVerifier;
use crate::tls;

/// `jisr witness bench` options.
#[derive(Debug, Clone, clap::Args)]
pub struct WitnessBenchArgs {
    /// Logs (origins) pushing to the witness at once, one request in
    /// flight each.
    #[arg(long, default_value_t = 8)]
    pub logs: usize,
    /// Checkpoints each log sends.
    #[arg(long, default_value_t = 250)]
    pub checkpoints: u64,
    /// Entries each checkpoint adds to its log (the proof's length grows
    /// with the log).
    #[arg(long, default_value_t = 100)]
    pub entries_per_checkpoint: u64,
    /// Seconds of exchange load for the lag figure.
    #[arg(long, default_value = "20s", value_parser = super::args::parse_duration)]
    pub duration: Duration,
    /// The gateway's `checkpoint_interval_ms` during the lag run.
    #[arg(long, default_value_t = 1000)]
    pub checkpoint_interval_ms: u64,
    /// Cosignatures (of the two witnesses) a checkpoint needs.
    #[arg(long, default_value_t = 2)]
    pub quorum: usize,
    /// Exchange load: connections to the gateway.
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Exchange load: calls in flight per connection.
    #[arg(long, default_value_t = 16)]
    pub in_flight: usize,
    /// Only the throughput figure (no gateway).
    #[arg(long)]
    pub no_lag: bool,
    /// Where to write the processes' files (default: a temporary
    /// directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// The run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WitnessRun {
    /// The machine's CPU (`/proc/cpuinfo`).
    pub cpu: Option<String>,
    /// Whether this executable is a debug build.
    pub debug_build: bool,
    /// Checkpoints per second.
    pub cosign: CosignRun,
    /// The lag under load; `None` with `--no-lag`.
    pub lag: Option<LagRun>,
}

/// Runs both parts and prints the report.
pub async fn run(args: WitnessBenchArgs) -> anyhow::Result<()> {
    ensure!(args.logs >= 1, "--logs must be at least 1");
    ensure!(args.checkpoints >= 1, "--checkpoints must be at least 1");
    ensure!(
        args.entries_per_checkpoint >= 1,
        "--entries-per-checkpoint must be at least 1 (each checkpoint must grow its log)"
    );
    ensure!(
        (1..=2).contains(&args.quorum),
        "--quorum must be 1 or 2 (the lag run has two witnesses)"
    );
    ensure!(
        (100..=600_000).contains(&args.checkpoint_interval_ms),
        "--checkpoint-interval-ms must be between 100 and 600000, as in the gateway's configuration"
    );
    ensure!(
        args.connections >= 1 && args.in_flight >= 1,
        "--connections and --in-flight must be at least 1"
    );
    tls::install_crypto_provider();
    let temp = tempfile::Builder::new()
        .prefix("jisr-witness-bench-")
        .tempdir_in(args.dir.clone().unwrap_or_else(std::env::temp_dir))?;
    let throughput_dir = temp.path().join("throughput");
    std::fs::create_dir_all(&throughput_dir)?;
    let pki = crate::tools::demo::prepare(&throughput_dir).context("creating the PKI")?;
    eprintln!(
        "bench: {} logs × {} checkpoints to one witness...",
        args.logs, args.checkpoints
    );
    let cosign = cosign::run(&throughput_dir, &pki, &args).await?;
    let lag = if args.no_lag {
        None
    } else {
        eprintln!(
            "bench: a gateway with two witnesses under {:?} of exchanges...",
            args.duration
        );
        let lag_dir = temp.path().join("lag");
        std::fs::create_dir_all(&lag_dir)?;
        Some(lag::run(&lag_dir, &args).await?)
    };
    let run = WitnessRun {
        cpu: super::args::cpu_model(),
        debug_build: cfg!(debug_assertions),
        cosign,
        lag,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        print!("{}", render(&run));
    }
    Ok(())
}

/// A `jisr witness serve` child of its own directory under `dir`.
struct WitnessProc {
    proc: Spawned,
    addr: String,
    verifier: CosignatureVerifier,
}

impl WitnessProc {
    /// Starts a witness named `<name>.bench.jisr.test` of the logs whose
    /// verifier keys are `logs`, serving HTTPS with the PKI's gateway
    /// certificate.
    async fn start(dir: &Path, pki: &Path, name: &str, logs: &[String]) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let home = dir.join(format!("witness-{name}"));
        std::fs::create_dir_all(&home)?;
        let mut text = format!(
            "name = \"{name}.bench.jisr.test\"\nlisten = \"127.0.0.1:0\"\nkey = \"witness.key\"\nstate_dir = \"state\"\n\
             [tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            pki.join("gateway.crt").display(),
            pki.join("gateway.key").display()
        );
        for log in logs {
            text.push_str(&format!("[[log]]\nverifier = \"{log}\"\n"));
        }
        let config = home.join("witness.toml");
        std::fs::write(&config, text)?;
        let config_arg = config.to_string_lossy();
        let out = jisr(&exe, &["witness", "verifier", "--config", &config_arg])
            .output()
            .context("running `jisr witness verifier`")?;
        ensure!(
            out.status.success(),
            "`jisr witness verifier` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let verifier = CosignatureVerifier::from_text(String::from_utf8_lossy(&out.stdout).trim())?;
        let addr_file = home.join("addr");
        let addr_arg = addr_file.to_string_lossy();
        let args = [
            "witness",
            "serve",
            "--config",
            &config_arg,
            "--addr-file",
            &addr_arg,
        ];
        let mut proc = Spawned::start(&format!("witness-{name}"), &home, &mut jisr(&exe, &args))?;
        let addr = proc.address(&addr_file).await?;
        Ok(Self {
            proc,
            addr,
            verifier,
        })
    }

    /// Its `[[audit.witness]]` section in a gateway configuration.
    fn section(&self, name: &str, pki: &Path) -> String {
        format!(
            "\n[[audit.witness]]\nname = \"{name}\"\nurl = \"https://{}\"\nverifier_key = \"{}\"\nca = \"{}\"\n",
            self.addr,
            self.verifier.to_text(),
            pki.join("ca.crt").display()
        )
    }
}

/// The report as Markdown tables.
pub fn render(run: &WitnessRun) -> String {
    let build = if run.debug_build {
        "debug build"
    } else {
        "release build"
    };
    let mut out = format!(
        "CPU: {}; {build}\n\n",
        run.cpu.as_deref().unwrap_or("unknown")
    );
    let c = &run.cosign;
    let cpu = c
        .witness_cpu_us_per_cosignature
        .map_or("unknown".to_owned(), |us| format!("{us:.0}"));
    out.push_str("| witness throughput (loopback HTTPS, durable state) | logs | checkpoints | entries/checkpoint | cosigned (verified) | failures | cosignatures/s | p50 (ms) | p99 (ms) | max (ms) | witness CPU/cosignature (µs) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    out.push_str(&format!(
        "| `add-checkpoint`, one in flight per log | {} | {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {cpu} |\n",
        c.logs,
        c.logs as u64 * c.checkpoints_per_log,
        c.entries_per_checkpoint,
        c.cosigned,
        c.failures,
        c.per_second,
        c.p50_us as f64 / 1000.0,
        c.p99_us as f64 / 1000.0,
        c.max_us as f64 / 1000.0,
    ));
    if let Some(l) = &run.lag {
        out.push_str(&format!(
            "\n| lag to the k-th cosignature under exchange load | k of n | checkpoint interval (ms) | exchanges/s (errors) | checkpoints signed | witnessed | superseded | cosignatures verified | failures | p50 (ms) | p99 (ms) | max (ms) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n| signing → kept with k cosignatures (±{:.0} ms) | {} of {} | {} | {:.0} ({}) | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} |\n",
            l.poll_ms,
            l.quorum,
            l.witnesses,
            l.checkpoint_interval_ms,
            l.exchanges_per_second,
            l.exchange_errors,
            l.checkpoints_signed,
            l.checkpoints_witnessed,
            l.checkpoints_superseded,
            l.cosignatures_verified,
            l.failures,
            l.p50_ms,
            l.p99_ms,
            l.max_ms,
        ));
    }
    out
}
