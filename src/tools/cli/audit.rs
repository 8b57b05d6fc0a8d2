//! `jisr audit …`: verify a log offline, rebuild its indexes, and read it
//! from a running gateway (tail, query, prove) as an agency.

use crate::audit::{self, merkle, note::NoteVerifier};
use crate::proto::jisr::audit::v1 as pb;
use crate::tls::{self, TlsFiles};
use base64::Engine as _;
use clap::{Args, Subcommand, ValueEnum};
use pb::audit_client::AuditClient;
use prost::Message as _;
use std::path::{Path, PathBuf};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tonic::transport::Channel;

/// `jisr audit …`.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check a log directory offline: checksums, records, Merkle tree, checkpoints.
    Verify {
        /// The log directory.
        dir: PathBuf,
        /// The node's published verifier key (file); default: DIR/verifier.key.
        #[arg(long)]
        key: Option<PathBuf>,
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
    /// Query a running gateway's log.
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
        /// Write the receipt (JSON) to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
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
    /// Check a receipt offline against the node's verifier key.
    CheckReceipt {
        /// The receipt file written by `jisr audit prove`.
        receipt: PathBuf,
        /// The node's published verifier key (file); default: the key in the receipt.
        #[arg(long)]
        key: Option<PathBuf>,
    },
}

/// How to reach a gateway as an agency.
#[derive(Debug, Args)]
pub struct Connection {
    /// Gateway address host:port, or @FILE to read it from a file (e.g. @demo/gateway.addr).
    #[arg(long)]
    pub(crate) gateway: String,
    /// PKI directory holding ca.crt and <agency>.crt/.key.
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
        AuditCommand::Verify { dir, key } => verify(&dir, key.as_deref()),
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
        AuditCommand::Query { conn, filter, json } => {
            query(&conn, &filter, json).await.map(|()| true)
        }
        AuditCommand::Prove { conn, index, out } => {
            prove(&conn, index, out.as_deref()).await.map(|()| true)
        }
        AuditCommand::CheckReceipt { receipt, key } => check_receipt(&receipt, key.as_deref()),
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

fn verify(dir: &Path, key: Option<&Path>) -> anyhow::Result<bool> {
    let verifier = key.map(read_verifier).transpose()?;
    let report = audit::verify::verify(dir, verifier);
    for note in &report.notes {
        println!("note: {note}");
    }
    match &report.latest {
        Some(c) => println!(
            "{} entries, {} checkpoints checked; latest checkpoint: size {} root {}",
            report.entries,
            report.checkpoints,
            c.size,
            b64(&c.root)
        ),
        None => println!("{} entries, no checkpoint yet", report.entries),
    }
    if report.ok() {
        println!("OK: {} verifies", dir.display());
    } else {
        for problem in &report.problems {
            println!("FAIL: {problem}");
        }
    }
    Ok(report.ok())
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
pub(crate) fn status_error(status: tonic::Status) -> anyhow::Error {
    use tonic_types::StatusExt as _;
    let reason = status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_else(|| "-".to_owned());
    anyhow::anyhow!("{:?} {reason}: {}", status.code(), status.message())
}

/// The entry kind's name, e.g. `EVENT_DELIVERED`.
fn kind_name(kind: i32) -> &'static str {
    pb::Kind::try_from(kind).map_or("UNKNOWN", |k| k.as_str_name())
}

/// Microseconds since the epoch as RFC 3339.
pub fn format_time(micros: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| micros.to_string())
}

fn parse_time(text: &str) -> anyhow::Result<i64> {
    let t = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| {
        anyhow::anyhow!("`{text}` is not an RFC 3339 time ({e}); write e.g. 2026-11-23T08:00:00Z")
    })?;
    Ok((t.unix_timestamp_nanos() / 1000) as i64)
}

fn outcome_name(outcome: i32) -> &'static str {
    match pb::Outcome::try_from(outcome).unwrap_or(pb::Outcome::Unspecified) {
        pb::Outcome::Allowed => "allowed",
        pb::Outcome::Refused => "refused",
        pb::Outcome::Failed => "failed",
        pb::Outcome::Unspecified => "-",
    }
}

/// One entry as a table row or a JSON object.
pub fn render(index: u64, r: &pb::AuditRecord, json: bool) -> String {
    if json {
        return serde_json::json!({
            "index": index,
            "time": format_time(r.time_unix_micros),
            "node": r.node,
            "request_id": r.request_id,
            "consumer": r.consumer,
            "official": r.official,
            "provider": r.provider,
            "method": r.method,
            "purpose": r.purpose,
            "procedure": r.procedure,
            "basis": r.basis,
            "consent_id": r.consent_id,
            "subject": crate::audit::keys::hex(&r.subject),
            "outcome": outcome_name(r.outcome),
            "reason": r.reason,
            "grpc_status": r.grpc_status,
            "break_glass": r.break_glass,
            "kind": kind_name(r.kind),
            "topic": r.topic,
            "event_id": r.event_id,
        })
        .to_string();
    }
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    let bus = if r.topic.is_empty() {
        String::new()
    } else {
        format!(
            "  {} {} event {}",
            kind_name(r.kind),
            r.topic,
            dash(&r.event_id)
        )
    };
    format!(
        "{index:>7}  {}  {:<12} → {:<12} {:<48} {:<16} {:<18} {:<8} {}{bus}",
        format_time(r.time_unix_micros),
        r.consumer,
        dash(&r.provider),
        r.method,
        dash(&r.purpose),
        dash(&r.basis),
        outcome_name(r.outcome),
        dash(&r.reason),
    )
}

async fn run_query(
    client: &mut AuditClient<Channel>,
    filter: &Filter,
    token: String,
) -> anyhow::Result<pb::QueryResponse> {
    let page_size = filter.limit.clamp(1, 1000);
    if let Some(citizen) = &filter.citizen {
        let request = pb::CitizenHistoryRequest {
            citizen_id: citizen.clone(),
            page_size,
            page_token: token,
        };
        return Ok(client
            .citizen_history(request)
            .await
            .map_err(status_error)?
            .into_inner());
    }
    let request = pb::QueryRequest {
        agency: filter.agency.clone().unwrap_or_default(),
        side: match filter.side {
            None => pb::Side::Unspecified,
            Some(SideArg::Consumer) => pb::Side::Consumer,
            Some(SideArg::Provider) => pb::Side::Provider,
        } as i32,
        from_unix_micros: filter
            .from
            .as_deref()
            .map(parse_time)
            .transpose()?
            .unwrap_or(0),
        to_unix_micros: filter
            .to
            .as_deref()
            .map(parse_time)
            .transpose()?
            .unwrap_or(0),
        procedure: filter.procedure.clone().unwrap_or_default(),
        outcome: match filter.outcome {
            None => pb::Outcome::Unspecified,
            Some(OutcomeArg::Allowed) => pb::Outcome::Allowed,
            Some(OutcomeArg::Refused) => pb::Outcome::Refused,
            Some(OutcomeArg::Failed) => pb::Outcome::Failed,
        } as i32,
        reason: filter.reason.clone().unwrap_or_default(),
        break_glass: filter.break_glass,
        page_size,
        page_token: token,
    };
    Ok(client
        .query(request)
        .await
        .map_err(status_error)?
        .into_inner())
}

async fn query(conn: &Connection, filter: &Filter, json: bool) -> anyhow::Result<()> {
    let mut client = connect(conn).await?;
    let mut shown = 0u32;
    let mut token = String::new();
    loop {
        let page = run_query(&mut client, filter, token).await?;
        for entry in &page.entries {
            if shown == filter.limit {
                return Ok(());
            }
            if let Some(record) = &entry.record {
                println!("{}", render(entry.index, record, json));
                shown += 1;
            }
        }
        if page.next_page_token.is_empty() || shown == filter.limit {
            return Ok(());
        }
        token = page.next_page_token;
    }
}

async fn tail(conn: &Connection, lines: u32, follow: bool, json: bool) -> anyhow::Result<()> {
    let mut client = connect(conn).await?;
    let filter = Filter {
        agency: None,
        side: None,
        citizen: None,
        from: None,
        to: None,
        procedure: None,
        outcome: None,
        reason: None,
        break_glass: false,
        limit: lines,
    };
    let first = run_query(&mut client, &filter, String::new()).await?;
    let mut last = first.entries.first().map(|e| e.index);
    for entry in first.entries.iter().rev() {
        if let Some(record) = &entry.record {
            println!("{}", render(entry.index, record, json));
        }
    }
    if !follow {
        return Ok(());
    }
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let page = run_query(
            &mut client,
            &Filter {
                limit: 1000,
                ..filter_clone(&filter)
            },
            String::new(),
        )
        .await?;
        let fresh: Vec<_> = page
            .entries
            .iter()
            .filter(|e| last.is_none_or(|l| e.index > l))
            .collect();
        for entry in fresh.iter().rev() {
            if let Some(record) = &entry.record {
                println!("{}", render(entry.index, record, json));
            }
        }
        if let Some(newest) = fresh.first() {
            last = Some(newest.index);
        }
    }
}

fn filter_clone(f: &Filter) -> Filter {
    Filter {
        agency: f.agency.clone(),
        side: f.side,
        citizen: f.citizen.clone(),
        from: f.from.clone(),
        to: f.to.clone(),
        procedure: f.procedure.clone(),
        outcome: f.outcome,
        reason: f.reason.clone(),
        break_glass: f.break_glass,
        limit: f.limit,
    }
}

/// A receipt: everything needed to check offline that an entry is in the log.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Receipt {
    /// The entry's index.
    pub index: u64,
    /// The tree size of the proof and checkpoint.
    pub tree_size: u64,
    /// The entry's bytes, base64.
    pub record: String,
    /// The inclusion proof hashes, base64.
    pub inclusion_proof: Vec<String>,
    /// The signed checkpoint note.
    pub checkpoint: String,
    /// The node's verifier key.
    pub verifier_key: String,
}

async fn prove(conn: &Connection, index: u64, out: Option<&Path>) -> anyhow::Result<()> {
    let mut client = connect(conn).await?;
    let checkpoint = client
        .get_checkpoint(pb::GetCheckpointRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    let entry = client
        .get_entry(pb::GetEntryRequest {
            index,
            tree_size: checkpoint.size,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let receipt = Receipt {
        index,
        tree_size: entry.tree_size,
        record: b64(&entry.record_bytes),
        inclusion_proof: entry.inclusion_proof.iter().map(|h| b64(h)).collect(),
        checkpoint: checkpoint.note,
        verifier_key: checkpoint.verifier_key,
    };
    let text = serde_json::to_string_pretty(&receipt)?;
    match out {
        Some(path) => {
            std::fs::write(path, format!("{text}\n"))?;
            println!(
                "wrote the receipt of entry {index} (tree size {}) to {}",
                receipt.tree_size,
                path.display()
            );
        }
        None => println!("{text}"),
    }
    Ok(())
}

fn check_receipt(path: &Path, key: Option<&Path>) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let receipt: Receipt = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not a receipt: {e}", path.display()))?;
    let verifier = match key {
        Some(k) => read_verifier(k)?,
        None => {
            println!("note: checking with the key inside the receipt; pass --key with the node's published key for an independent check");
            NoteVerifier::from_text(&receipt.verifier_key)
                .map_err(|e| anyhow::anyhow!("bad verifier key in the receipt: {e}"))?
        }
    };
    let decode = |s: &str| base64::engine::general_purpose::STANDARD.decode(s);
    let outcome = (|| -> anyhow::Result<u64> {
        let body = audit::note::open_note(&receipt.checkpoint, &verifier)
            .map_err(|e| anyhow::anyhow!("the checkpoint's signature does not verify: {e}"))?;
        let checkpoint = audit::note::Checkpoint::parse(body)
            .map_err(|e| anyhow::anyhow!("malformed checkpoint: {e}"))?;
        anyhow::ensure!(
            checkpoint.size == receipt.tree_size,
            "the checkpoint is for {} entries, the proof for {}",
            checkpoint.size,
            receipt.tree_size
        );
        let record = decode(&receipt.record)?;
        let proof = receipt
            .inclusion_proof
            .iter()
            .map(|h| {
                decode(h)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| anyhow::anyhow!("a proof hash is not 32 bytes of base64"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        merkle::verify_inclusion(
            &proof,
            receipt.tree_size,
            &checkpoint.root,
            receipt.index,
            &merkle::leaf_hash(&record),
        )
        .map_err(|e| anyhow::anyhow!("the inclusion proof does not verify: {e}"))?;
        let record = pb::AuditRecord::decode(record.as_slice())?;
        println!("{}", render(receipt.index, &record, false));
        Ok(checkpoint.size)
    })();
    match outcome {
        Ok(size) => {
            println!("OK: entry {} is in the log of {} (tree of {size} entries, signed checkpoint verified)", receipt.index, verifier.name());
            Ok(true)
        }
        Err(e) => {
            println!("FAIL: {e}");
            Ok(false)
        }
    }
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
