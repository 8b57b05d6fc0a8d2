//! `jisr audit …`: verify a log offline, rebuild its indexes, and read it
//! from a running gateway (tail, query, prove) as an agency.

use crate::audit::{self, note::NoteVerifier};
use crate::proto::jisr::audit::v1 as pb;
use crate::tls::{self, TlsFiles};
use base64::Engine as _;
use clap::{Args, Subcommand, ValueEnum};
use pb::audit_client::AuditClient;
use std::path::{Path, PathBuf};
use tonic::transport::Channel;

mod deployment;
mod offline;
mod read;
mod receipt;
mod recover;
mod render;
mod seen;
mod tlog_proof;
mod trust;

use read::{query, tail};
use receipt::{check_receipt, prove};

pub use receipt::Receipt;
pub use render::{format_time, render};

/// `jisr audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check logs offline (one or more log directories or archives, one per
    /// node: checksums, records, Merkle tree, checkpoints), or every node of
    /// a running deployment (--gateway: each node's signed checkpoint, and
    /// with --state its pinned key and consistency with the last run).
    #[command(group(clap::ArgGroup::new("what").required(true).args(["dirs", "gateway"])))]
    Verify {
        /// Log directories or archives, one per node.
        #[arg(conflicts_with = "gateway")]
        dirs: Vec<PathBuf>,
        /// A node's published verifier key (file), repeated for several
        /// directories (matched by name); default: each DIR/verifier.key.
        #[arg(long = "key", conflicts_with = "gateway")]
        keys: Vec<PathBuf>,
        /// Verify the deployment this gateway belongs to (host:port or @FILE).
        #[arg(long, requires = "pki")]
        gateway: Option<String>,
        /// PKI directory holding `ca.crt` and `<agency>.crt`/`.key`.
        #[arg(long, requires = "gateway")]
        pki: Option<PathBuf>,
        /// The agency to call as.
        #[arg(long = "as", default_value = "portal", requires = "gateway")]
        caller: String,
        /// The auditor's state file: pinned keys and the checkpoints seen
        /// by the last run (created if absent, replaced atomically).
        #[arg(long, requires = "gateway")]
        state: Option<PathBuf>,
    },
    /// Accept the loss of entries start-up refuses on (gateway stopped):
    /// says what it would keep, lose and set aside; changes nothing
    /// without --accept-loss (exit 1). With it, sets every file past the
    /// kept entries aside as evidence and records the loss as a signed
    /// LOG_LOSS_ACCEPTED entry.
    Recover {
        /// The node's configuration file (its [audit] dir and keys).
        #[arg(long)]
        config: PathBuf,
        /// Accept the loss: set the files aside and record it.
        #[arg(long)]
        accept_loss: bool,
    },
    /// Rebuild a log's query indexes from its entries (gateway stopped).
    Reindex {
        /// The log directory.
        dir: PathBuf,
    },
    /// Print the latest entries of a running gateway, and follow new ones.
    Tail {
        /// How to reach the gateway.
        #[command(flatten)]
        conn: Connection,
        /// How many entries to show first.
        #[arg(long, default_value_t = 10)]
        lines: u32,
        /// Keep printing entries as they are appended.
        #[arg(long, short)]
        follow: bool,
        /// Print JSON, one object per line.
        #[arg(long)]
        json: bool,
    },
    /// Query the logs of a running gateway and of its peers (exits 1 when
    /// some node did not answer, after printing the others' entries).
    Query {
        /// How to reach the gateway.
        #[command(flatten)]
        conn: Connection,
        /// What to select.
        #[command(flatten)]
        filter: Filter,
        /// Print JSON, one object per line.
        #[arg(long)]
        json: bool,
    },
    /// Fetch a receipt for entry INDEX: the entry, its inclusion proof and the signed checkpoint.
    Prove {
        /// How to reach the gateway.
        #[command(flatten)]
        conn: Connection,
        /// The entry's index.
        index: u64,
        /// The node whose log holds the entry (default: the node asked).
        #[arg(long)]
        node: Option<String>,
        /// Write the receipt to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// `json` (Jisr's receipt) or `tlog-proof` (the C2SP tlog-proof
        /// text form; check it with `check-receipt --key`).
        #[arg(long, value_enum, default_value = "json")]
        format: receipt::Format,
    },
    /// Measure durable appends, fsync latency, bytes per entry and history queries.
    Bench {
        /// Entries per append run.
        #[arg(long, default_value_t = 100_000)]
        entries: u64,
        /// Concurrent appenders, one run each.
        #[arg(long, value_delimiter = ',', default_value = "1,16,128,1024")]
        concurrency: Vec<usize>,
        /// Entries in the log for the history query (0 skips it).
        #[arg(long, default_value_t = 1_000_000)]
        history_entries: u64,
        /// Where to write the logs (default: a temporary directory).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Measure a citizen's history merged across in-process replicas (each
    /// log filled first), beside one replica answering from its own log.
    BenchReplicas(crate::tools::bench::replicas::ReplicasBenchArgs),
    /// Every node's latest signed checkpoint and verifier key (exits 1 when
    /// some node did not answer).
    Checkpoints {
        /// How to reach the gateway.
        #[command(flatten)]
        conn: Connection,
    },
    /// Check a receipt offline against the node's verifier key.
    CheckReceipt {
        /// The receipt file written by `jisr audit prove` (JSON, or a
        /// C2SP tlog-proof, told apart by its first line).
        receipt: PathBuf,
        /// The node's published verifier key (file); default: the key in the receipt.
        #[arg(long)]
        key: Option<PathBuf>,
        /// A trust policy (TOML: `quorum` and the `witnesses`' verifier
        /// keys): the checkpoint must carry at least `quorum` valid
        /// cosignatures by them.
        #[arg(long)]
        trust: Option<PathBuf>,
    },
}

/// How to reach a gateway as an agency.
#[derive(Debug, Args)]
pub struct Connection {
    /// Gateway address host:port, or @FILE to read it from a file (e.g. @demo/gateway.addr).
    #[arg(long)]
    pub(crate) gateway: String,
    /// PKI directory holding `ca.crt` and `<agency>.crt`/`.key`.
    #[arg(long)]
    pub(crate) pki: PathBuf,
    /// The agency to call as.
    #[arg(long = "as", default_value = "portal")]
    pub(crate) caller: String,
}

/// `jisr audit query` filters.
#[derive(Debug, Args)]
pub struct Filter {
    /// Only exchanges of this agency.
    #[arg(long)]
    agency: Option<String>,
    /// Which side the agency is on.
    #[arg(long, value_enum)]
    side: Option<SideArg>,
    /// A citizen's history (needs the auditor or consent-manager role).
    #[arg(long)]
    citizen: Option<String>,
    /// From this time (RFC 3339, e.g. 2026-11-23T00:00:00Z).
    #[arg(long)]
    from: Option<String>,
    /// Until this time (RFC 3339, exclusive).
    #[arg(long)]
    to: Option<String>,
    /// Only this procedure id.
    #[arg(long)]
    procedure: Option<String>,
    /// Only this outcome.
    #[arg(long, value_enum)]
    outcome: Option<OutcomeArg>,
    /// Only this reason code, e.g. ACCESS_DENIED.
    #[arg(long)]
    reason: Option<String>,
    /// Only break-glass (emergency) exchanges, for review.
    #[arg(long)]
    break_glass: bool,
    /// At most this many entries.
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

/// Side filter values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SideArg {
    /// The agency called.
    Consumer,
    /// The agency answered.
    Provider,
}

/// Outcome filter values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutcomeArg {
    /// Forwarded and answered.
    Allowed,
    /// Refused by Jisr.
    Refused,
    /// Provider unreachable or too slow.
    Failed,
}

/// Runs an audit subcommand; returns the process exit status.
pub async fn run(command: AuditCommand) -> anyhow::Result<bool> {
    match command {
        AuditCommand::Verify {
            dirs,
            keys,
            gateway,
            pki,
            caller,
            state,
        } => match (gateway, pki) {
            (Some(gateway), Some(pki)) => {
                let conn = Connection {
                    gateway,
                    pki,
                    caller,
                };
                deployment::verify(&conn, state.as_deref()).await
            }
            _ => offline::verify(&dirs, &keys),
        },
        AuditCommand::Recover {
            config,
            accept_loss,
        } => recover::run(&config, accept_loss).await,
        AuditCommand::Reindex { dir } => {
            let n = audit::reindex(&dir)?;
            println!(
                "reindexed {n} entries in {}",
                dir.join("index.redb").display()
            );
            Ok(true)
        }
        AuditCommand::Tail {
            conn,
            lines,
            follow,
            json,
        } => tail(&conn, lines, follow, json).await.map(|()| true),
        AuditCommand::Query { conn, filter, json } => query(&conn, &filter, json).await,
        AuditCommand::Prove {
            conn,
            index,
            node,
            out,
            format,
        } => prove(&conn, index, node.as_deref(), (out.as_deref(), format))
            .await
            .map(|()| true),
        AuditCommand::Checkpoints { conn } => receipt::checkpoints(&conn).await,
        AuditCommand::CheckReceipt {
            receipt,
            key,
            trust,
        } => check_receipt(&receipt, key.as_deref(), trust.as_deref()),
        AuditCommand::BenchReplicas(args) => {
            let run = crate::tools::bench::replicas::run(&args).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&run)?);
            } else {
                println!("\n{}", crate::tools::bench::replicas::render(&run));
            }
            Ok(true)
        }
        AuditCommand::Bench {
            entries,
            concurrency,
            history_entries,
            dir,
        } => bench(entries, &concurrency, history_entries, dir)
            .await
            .map(|()| true),
    }
}

fn read_verifier(path: &Path) -> anyhow::Result<NoteVerifier> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read verifier key {}: {e}", path.display()))?;
    NoteVerifier::from_text(text.trim())
        .map_err(|e| anyhow::anyhow!("{} is not a signed-note verifier key: {e}", path.display()))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl Connection {
    /// A mutual-TLS channel to the gateway as the chosen agency.
    pub(crate) async fn channel(&self) -> anyhow::Result<Channel> {
        tls::install_crypto_provider();
        let addr = match self.gateway.strip_prefix('@') {
            Some(file) => std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("cannot read {file}: {e}"))?
                .trim()
                .to_owned(),
            None => self.gateway.clone(),
        };
        let files = TlsFiles::for_agency(&self.pki, &self.caller);
        Channel::from_shared(format!("https://{addr}"))?
            .tls_config(tls::tonic_client_tls(&files)?)?
            .connect()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach the gateway at {addr}: {e}"))
    }
}

async fn connect(conn: &Connection) -> anyhow::Result<AuditClient<Channel>> {
    Ok(AuditClient::new(conn.channel().await?))
}

/// The gRPC code, the ErrorInfo reason and the message.
// By value so that it fits `map_err` at each of its call sites.
#[allow(clippy::needless_pass_by_value)]
pub(crate) fn status_error(status: tonic::Status) -> anyhow::Error {
    use tonic_types::StatusExt as _;
    let reason = status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_else(|| "-".to_owned());
    anyhow::anyhow!("{:?} {reason}: {}", status.code(), status.message())
}

async fn bench(
    entries: u64,
    levels: &[usize],
    history_entries: u64,
    dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let temp = tempfile::Builder::new()
        .prefix("jisr-audit-bench-")
        .tempdir_in(dir.unwrap_or_else(std::env::temp_dir))?;
    println!(
        "durable appends ({} entries per run; each appender waits for its entry's fsync)...",
        entries
    );
    let appends = crate::tools::bench::audit::appends(temp.path(), entries, levels).await?;
    let history = if history_entries > 0 {
        println!("citizen history at {history_entries} entries (100,000 citizens)...");
        Some(
            crate::tools::bench::audit::history(temp.path(), history_entries, 100_000, 1000)
                .await?,
        )
    } else {
        None
    };
    println!(
        "\n{}",
        crate::tools::bench::audit::render(&appends, history.as_ref())
    );
    Ok(())
}
