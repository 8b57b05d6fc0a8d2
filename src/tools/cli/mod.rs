//! The `jisr` command line: argument parsing, logging set-up and dispatch.
//! Each subcommand is a thin wrapper over the library.

pub mod agency;
pub mod audit;
pub mod bus;
mod commands;
pub mod consent;
pub mod console;
pub mod keys;
mod log_fields;
pub mod probe;
pub mod witness;

pub(crate) use commands::bind_admin;
pub use commands::shutdown_signal;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code for an invalid configuration (EX_DATAERR is 65; sysexits'
/// EX_USAGE, 64, is what operators' scripts expect from check-config).
pub const EXIT_INVALID_CONFIG: u8 = 64;

/// Jisr: the interoperability gateway between administrations.
#[derive(Debug, Parser)]
#[command(name = "jisr", version, about, long_about = None)]
pub struct Cli {
    /// Log format (default: `telemetry.log_format` of the served config, else text).
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormat>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log line format.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a gateway node.
    Serve {
        /// The node's configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Write the bound address (host:port) to this file once listening
        /// (useful with `listen = "127.0.0.1:0"`).
        #[arg(long)]
        addr_file: Option<PathBuf>,
        /// Write the admin listener's address (`/metrics`, `/healthz`,
        /// `/readyz`) to this file once listening.
        #[arg(long)]
        admin_addr_file: Option<PathBuf>,
    },
    /// Check a configuration file, its contracts and its rules; print every error.
    CheckConfig {
        /// The configuration file.
        file: PathBuf,
    },
    /// List the agencies, services, methods and subject fields of the catalogue.
    Catalog {
        /// The configuration file naming the contracts.
        #[arg(long)]
        config: PathBuf,
    },
    /// Onboard an agency on this node (contracts, certificate, configuration).
    Agency {
        /// What to do.
        #[command(subcommand)]
        command: agency::AgencyCommand,
    },
    /// Test an agency's connection to a gateway with its own certificate:
    /// TLS, identity, rules, providers; each step ok or the fix.
    Probe(probe::ProbeArgs),
    /// Create the keys every replica shares, without starting a node.
    Keys {
        /// What to do.
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Development PKI.
    Pki {
        /// What to do.
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// Play the baccalauréat free-candidate procedure on a local network.
    Demo {
        /// Keep the network up until Ctrl-C or SIGTERM.
        #[arg(long)]
        serve: bool,
        /// Directory for certificates, config and addresses (default: a temporary one).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Verify, query and prove the audit log.
    Audit {
        /// What to do.
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Grant, revoke, list and verify citizens' consents on a running gateway.
    Consent {
        /// What to do.
        #[command(subcommand)]
        command: consent::ConsentCommand,
    },
    /// The web console: sign-in links.
    Console {
        /// What to do.
        #[command(subcommand)]
        command: console::ConsoleCommand,
    },
    /// The message bus on a running gateway: dead letters, benchmark.
    Bus {
        /// What to do.
        #[command(subcommand)]
        command: bus::BusCommand,
    },
    /// Run a transparency-log witness that cosigns Jisr's checkpoints
    /// (another institution runs it; see docs/witness.md).
    Witness {
        /// What to do.
        #[command(subcommand)]
        command: witness::WitnessCommand,
    },
    /// Measure throughput and latency: through a gateway, or with --compare
    /// against calling the providers directly and through nginx.
    Bench(crate::tools::bench::BenchArgs),
    /// Run one of the sample agency back-ends (civil-status, tax, health).
    SampleProvider {
        /// Agency id.
        #[arg(long)]
        agency: String,
        /// Address to listen on, e.g. 127.0.0.1:9101.
        #[arg(long)]
        listen: String,
        /// PKI directory holding `ca.crt` and `<agency>.crt`/`.key`.
        #[arg(long)]
        pki: PathBuf,
        /// Trust domain.
        #[arg(long, default_value = "interop.gov.ma")]
        trust_domain: String,
        /// Write the bound address (host:port) to this file once listening.
        #[arg(long)]
        addr_file: Option<PathBuf>,
        /// Accept calls and never answer them (a hung back-end), for
        /// `jisr bench --faults`.
        #[arg(long)]
        never_answer: bool,
    },
}

/// `jisr pki …`.
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Create a development CA and certificates for agencies and the gateway.
    Init {
        /// Output directory.
        #[arg(long)]
        dir: PathBuf,
        /// Trust domain, e.g. interop.gov.ma.
        #[arg(long)]
        trust_domain: String,
        /// Agency ids (repeat or comma-separate).
        #[arg(long = "agency", value_delimiter = ',')]
        agencies: Vec<String>,
        /// The gateway node id.
        #[arg(long, default_value = "gw-1")]
        gateway_node: String,
        /// Extra DNS names or IPs for the gateway certificate.
        #[arg(long = "host", value_delimiter = ',')]
        hosts: Vec<String>,
        /// Replace an existing PKI in DIR.
        #[arg(long)]
        force: bool,
    },
    /// Issue a certificate for one more agency, or for one more gateway
    /// replica (`gateway-<node>.crt`/`.key`), with an existing CA.
    #[command(group(clap::ArgGroup::new("subject").required(true).args(["agency", "gateway_node"])))]
    Issue {
        /// PKI directory holding ca.crt and ca.key.
        #[arg(long)]
        dir: PathBuf,
        /// Trust domain: the CA's, read from its name (as `jisr pki init`
        /// names it); if given, it must match it.
        #[arg(long)]
        trust_domain: Option<String>,
        /// Agency id.
        #[arg(long)]
        agency: Option<String>,
        /// Gateway node id, e.g. gw-2 (one certificate per replica).
        #[arg(long)]
        gateway_node: Option<String>,
        /// Extra DNS names or IPs for a gateway certificate.
        #[arg(long = "host", value_delimiter = ',', requires = "gateway_node")]
        hosts: Vec<String>,
    },
}

/// Entry point of the `jisr` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo prints its own story on stdout; the gateway's info lines
    // would bury it, so it logs warnings only unless RUST_LOG says otherwise.
    let default_level = match cli.command {
        Command::Demo { serve: false, .. } => "warn",
        _ => "info",
    };
    let format = cli.log_format.unwrap_or_else(|| match &cli.command {
        // A config that does not load is reported by `serve` itself.
        Command::Serve { config, .. } => match crate::config::Config::load(config) {
            Ok(c) if c.telemetry.log_format == crate::config::LogFormat::Json => LogFormat::Json,
            _ => LogFormat::Text,
        },
        _ => LogFormat::Text,
    });
    init_logging(format, default_level);
    commands::run(cli.command)
}

fn init_logging(format: LogFormat, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    // Colours only on a terminal: logs in files and journald stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        // Colourless text (files, journald, `bench --compare`): the same
        // bytes as the default fields, for about half the instructions.
        LogFormat::Text if !ansi => builder.fmt_fields(log_fields::PlainFields).init(),
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
