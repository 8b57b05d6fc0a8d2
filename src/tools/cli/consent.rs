//! `jisr consent …`: record, revoke, list and verify citizens' consents on a
//! running gateway, as the citizen portal by default.

use crate::proto::jisr::consent::v1 as pb;
use crate::tools::cli::audit::{format_time, status_error, Connection};
use base64::Engine as _;
use clap::{Args, Subcommand};
use pb::consents_client::ConsentsClient;
use std::path::{Path, PathBuf};
use tonic::transport::Channel;

/// `jisr consent …`.
#[derive(Debug, Subcommand)]
pub enum ConsentCommand {
    /// Record a citizen's consent (needs the consent-manager role).
    Grant {
        /// How to reach the gateway.
        #[command(flatten)]
        conn: Connection,
        /// What is consented to.
        #[command(flatten)]
        terms: Terms,
        /// Write the receipt (JSON, bytes in base64) to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Revoke a consent; effective on the next call on every replica.
    Revoke {
        /// How to reach the gateway.
        #[command(flatten)]
        conn: Connection,
        /// The consent id.
        id: String,
    },
    /// List a citizen's consents (consent-manager or auditor role).
    List {
        /// How to reach the gateway.
        #[command(flatten)]
        conn: Connection,
        /// The citizen's id.
        #[arg(long)]
        subject: String,
        /// Print JSON, one object per line.
        #[arg(long)]
        json: bool,
    },
    /// Check a receipt written by `jisr consent grant --out` through the gateway.
    Verify {
        /// How to reach the gateway.
        #[command(flatten)]
        conn: Connection,
        /// The receipt file.
        file: PathBuf,
    },
    /// Measure the consent check's latency on the embedded store and on
    /// Redis (started for the run unless --redis-url is given).
    Bench(crate::tools::bench::consent::ConsentBenchArgs),
}

/// The terms of a consent.
#[derive(Debug, Args)]
pub struct Terms {
    /// The citizen the data is about.
    #[arg(long)]
    subject: String,
    /// The agency allowed to fetch it.
    #[arg(long)]
    consumer: String,
    /// Methods covered: `pkg.Service/Method` or `pkg.Service/*` (repeat or comma-separate).
    #[arg(long = "method", value_delimiter = ',')]
    methods: Vec<String>,
    /// Data categories covered, e.g. civil, fiscal, health (repeat or comma-separate).
    #[arg(long = "category", value_delimiter = ',')]
    categories: Vec<String>,
    /// The declared purpose.
    #[arg(long)]
    purpose: String,
    /// The procedure it is for; calls must then name it.
    #[arg(long)]
    procedure: Option<String>,
    /// How long it is valid: e.g. 30d, 12h, 90m.
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    valid_for: i64,
    /// How many calls it allows (0: no limit within the validity).
    #[arg(long, default_value_t = 0)]
    max_uses: u32,
    /// Who consented, when not the subject (a guardian, say).
    #[arg(long)]
    granted_by: Option<String>,
}

/// A duration like `30d`, `12h`, `90m` or `45s`, in microseconds.
fn parse_duration(text: &str) -> Result<i64, String> {
    let bad = || format!("`{text}` is not a duration; write e.g. 30d, 12h or 90m");
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(bad()),
    };
    if n <= 0 {
        return Err(bad());
    }
    n.checked_mul(seconds * 1_000_000).ok_or_else(bad)
}

/// A consent receipt on disk: the signed consent, bytes in base64.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct Receipt {
    /// The consent id.
    pub id: String,
    /// The canonical encoding of the consent (the signed bytes), base64.
    pub consent: String,
    /// Ed25519 signature over "jisr-consent-v1\n" ‖ consent, base64.
    pub signature: String,
    /// The gateway's consent verifier key.
    pub verifier_key: String,
}

/// Runs a consent subcommand; returns the process exit status.
pub async fn run(command: ConsentCommand) -> anyhow::Result<bool> {
    match command {
        ConsentCommand::Grant { conn, terms, out } => grant(&conn, terms, out.as_deref()).await,
        ConsentCommand::Revoke { conn, id } => {
            let mut client = connect(&conn).await?;
            let signed = client
                .revoke(pb::RevokeRequest { id: id.clone() })
                .await
                .map_err(status_error)?
                .into_inner();
            println!("revoked {id}: {}", status_name(signed.status));
            Ok(true)
        }
        ConsentCommand::List {
            conn,
            subject,
            json,
        } => {
            let mut client = connect(&conn).await?;
            let list = client
                .list_by_subject(pb::ListBySubjectRequest { subject })
                .await
                .map_err(status_error)?
                .into_inner();
            for signed in &list.consents {
                println!("{}", render(signed, json));
            }
            Ok(true)
        }
        ConsentCommand::Verify { conn, file } => verify(&conn, &file).await,
        ConsentCommand::Bench(args) => {
            crate::tools::bench::consent::run(&args).await?;
            Ok(true)
        }
    }
}

async fn connect(conn: &Connection) -> anyhow::Result<ConsentsClient<Channel>> {
    Ok(ConsentsClient::new(conn.channel().await?))
}

fn status_name(status: i32) -> &'static str {
    match pb::Status::try_from(status).unwrap_or(pb::Status::Unspecified) {
        pb::Status::Active => "ACTIVE",
        pb::Status::Revoked => "REVOKED",
        pb::Status::Expired => "EXPIRED",
        pb::Status::Exhausted => "EXHAUSTED",
        pb::Status::Unspecified => "UNKNOWN",
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One consent as a table row or a JSON object.
fn render(signed: &pb::SignedConsent, json: bool) -> String {
    let c = signed.decoded.clone().unwrap_or_default();
    let uses = if c.max_uses == 0 {
        format!("{}/∞", signed.uses)
    } else {
        format!("{}/{}", signed.uses, c.max_uses)
    };
    if json {
        return serde_json::json!({
            "id": c.id,
            "subject": c.subject,
            "consumer": c.consumer,
            "methods": c.methods,
            "categories": c.categories,
            "purpose": c.purpose,
            "procedure": c.procedure,
            "not_before": format_time(c.not_before_unix_micros),
            "not_after": format_time(c.not_after_unix_micros),
            "max_uses": c.max_uses,
            "uses": signed.uses,
            "recorded_by": c.recorded_by,
            "granted_by": c.granted_by,
            "recorded": format_time(c.recorded_unix_micros),
            "status": status_name(signed.status),
            "revoked": (signed.revoked_unix_micros != 0).then(|| format_time(signed.revoked_unix_micros)),
        })
        .to_string();
    }
    let covered: Vec<&str> = c
        .methods
        .iter()
        .chain(&c.categories)
        .map(String::as_str)
        .collect();
    format!(
        "{}  {:<9}  {:<12} {:<18} until {}  uses {:<6} {}",
        c.id,
        status_name(signed.status),
        c.consumer,
        c.purpose,
        format_time(c.not_after_unix_micros),
        uses,
        covered.join(","),
    )
}

async fn grant(conn: &Connection, terms: Terms, out: Option<&Path>) -> anyhow::Result<bool> {
    let now = crate::consent::artefact::now_micros();
    let consent = pb::Consent {
        subject: terms.subject,
        consumer: terms.consumer,
        methods: terms.methods,
        categories: terms.categories,
        purpose: terms.purpose,
        procedure: terms.procedure.unwrap_or_default(),
        not_before_unix_micros: now,
        not_after_unix_micros: now.saturating_add(terms.valid_for),
        max_uses: terms.max_uses,
        granted_by: terms.granted_by.unwrap_or_default(),
        ..Default::default()
    };
    let mut client = connect(conn).await?;
    let signed = client
        .grant(pb::GrantRequest {
            consent: Some(consent),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let id = signed
        .decoded
        .as_ref()
        .map(|c| c.id.clone())
        .unwrap_or_default();
    println!("{id} {}", status_name(signed.status));
    if let Some(path) = out {
        let receipt = Receipt {
            id: id.clone(),
            consent: b64(&signed.consent),
            signature: b64(&signed.signature),
            verifier_key: signed.verifier_key.clone(),
        };
        let text = serde_json::to_string_pretty(&receipt)?;
        std::fs::write(path, format!("{text}\n"))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        eprintln!("wrote the receipt of consent {id} to {}", path.display());
    }
    Ok(true)
}

async fn verify(conn: &Connection, file: &Path) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let receipt: Receipt = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{} is not a consent receipt: {e}", file.display()))?;
    let decode = |field: &str, s: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| anyhow::anyhow!("`{field}` in {} is not base64: {e}", file.display()))
    };
    let signed = pb::SignedConsent {
        consent: decode("consent", &receipt.consent)?,
        signature: decode("signature", &receipt.signature)?,
        verifier_key: receipt.verifier_key,
        ..Default::default()
    };
    let mut client = connect(conn).await?;
    let answer = client
        .verify(pb::VerifyRequest {
            consent: Some(signed),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    if answer.signature_valid {
        println!("OK: {} ({})", answer.message, status_name(answer.status));
    } else {
        println!("FAIL: {}", answer.message);
    }
    Ok(answer.signature_valid)
}
