//! Receipts: an entry with its inclusion proof and signed checkpoint,
//! fetched from a running gateway (`prove`) and checked offline.

use super::render::render;
use super::{b64, connect, read_verifier, status_error, Connection};
use crate::audit::{self, merkle, note::NoteVerifier};
use crate::proto::jisr::audit::v1 as pb;
use base64::Engine as _;
use prost::Message as _;
use std::path::Path;

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

/// Every node's checkpoint, one line each: node, origin, size, root and
/// verifier key. `false` when some node did not answer.
pub(super) async fn checkpoints(conn: &Connection) -> anyhow::Result<bool> {
    let mut client = connect(conn).await?;
    let all = client
        .list_checkpoints(pb::ListCheckpointsRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    for cp in &all.checkpoints {
        println!(
            "{}  {}  size {}  root {}  key {}",
            cp.node,
            cp.origin,
            cp.size,
            b64(&cp.root_hash),
            cp.verifier_key
        );
    }
    for m in &all.missing {
        eprintln!("partial: node {} did not answer ({})", m.node, m.reason);
    }
    Ok(all.missing.is_empty())
}

/// The latest checkpoint of `node` (the node asked when `None`).
async fn checkpoint_of(
    client: &mut pb::audit_client::AuditClient<tonic::transport::Channel>,
    node: Option<&str>,
) -> anyhow::Result<pb::SignedCheckpoint> {
    let Some(node) = node else {
        return Ok(client
            .get_checkpoint(pb::GetCheckpointRequest {})
            .await
            .map_err(status_error)?
            .into_inner());
    };
    let all = client
        .list_checkpoints(pb::ListCheckpointsRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    if let Some(m) = all.missing.iter().find(|m| m.node == node) {
        anyhow::bail!("node {node} did not answer ({}); retry later", m.reason);
    }
    all.checkpoints
        .into_iter()
        .find(|cp| cp.node == node)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the gateway knows no node `{node}`; `jisr audit checkpoints` lists its nodes"
            )
        })
}

/// How `prove` writes a receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Jisr's JSON receipt (with the node's verifier key inside).
    Json,
    /// The C2SP tlog-proof text form (c2sp.org/tlog-proof), the entry in
    /// its `extra` line.
    TlogProof,
}

pub(super) async fn prove(
    conn: &Connection,
    index: u64,
    node: Option<&str>,
    (out, format): (Option<&Path>, Format),
) -> anyhow::Result<()> {
    let mut client = connect(conn).await?;
    let mut checkpoint = checkpoint_of(&mut client, node).await?;
    // The latest witnessed checkpoint, when it covers the entry: the
    // receipt then carries the witnesses' cosignatures.
    if index < checkpoint.witnessed_size {
        checkpoint.size = checkpoint.witnessed_size;
        checkpoint.note = std::mem::take(&mut checkpoint.witnessed_note);
    } else if checkpoint.witnessed_size > 0 {
        eprintln!("note: entry {index} is not under a witnessed checkpoint yet (witnessed up to {}): the receipt carries no cosignature; fetch it again later for one", checkpoint.witnessed_size);
    }
    // Asked with tree_size 0, the gateway would prove against whatever
    // checkpoint is latest by then, not the one this receipt carries.
    if index >= checkpoint.size {
        anyhow::bail!(
            "entry {index} is not covered by the latest signed checkpoint (of {} entries) yet; a new checkpoint is signed within a second — retry",
            checkpoint.size
        );
    }
    let entry = client
        .get_entry(pb::GetEntryRequest {
            index,
            tree_size: checkpoint.size,
            node: node.unwrap_or_default().to_owned(),
            ..Default::default()
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
    let text = match format {
        Format::Json => format!("{}\n", serde_json::to_string_pretty(&receipt)?),
        Format::TlogProof => super::tlog_proof::write(&receipt),
    };
    match out {
        Some(path) => {
            std::fs::write(path, &text)?;
            println!(
                "wrote the receipt of entry {index} (tree size {}) to {}",
                receipt.tree_size,
                path.display()
            );
        }
        None => print!("{text}"),
    }
    Ok(())
}

pub(super) fn check_receipt(
    path: &Path,
    key: Option<&Path>,
    trust: Option<&Path>,
) -> anyhow::Result<bool> {
    let policy = trust.map(super::trust::Policy::load).transpose()?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let receipt = if text.starts_with(super::tlog_proof::HEADER) {
        // A tlog-proof names no key: the reader must bring the node's.
        let Some(key) = key else {
            anyhow::bail!("{} is a tlog-proof, which carries no verifier key: pass --key with the node's published verifier key (its verifier.key)", path.display());
        };
        let verifier = read_verifier(key)?;
        super::tlog_proof::read(&text, verifier.to_text())
            .map_err(|e| anyhow::anyhow!("{} is not a tlog-proof: {e}", path.display()))?
    } else {
        Receipt::parse(&text)
            .map_err(|e| anyhow::anyhow!("{} is not a receipt: {e}", path.display()))?
    };
    let verifier = match key {
        Some(k) => read_verifier(k)?,
        None => {
            println!("note: checking with the key inside the receipt; pass --key with the node's published key for an independent check");
            NoteVerifier::from_text(&receipt.verifier_key)
                .map_err(|e| anyhow::anyhow!("bad verifier key in the receipt: {e}"))?
        }
    };
    let outcome = prove_inclusion(&receipt, &verifier).and_then(|(size, record, text)| {
        let witnessed = match &policy {
            Some(policy) => {
                let n = policy.check(&receipt.checkpoint, &text)?;
                format!(", cosigned by {n} trusted witness(es)")
            }
            None => String::new(),
        };
        Ok((size, record, witnessed))
    });
    match outcome {
        Ok((size, record, witnessed)) => {
            println!("{}", render(receipt.index, &record, false));
            println!("OK: entry {} is in the log of {} (tree of {size} entries, signed checkpoint verified{witnessed})", receipt.index, verifier.name());
            Ok(true)
        }
        Err(e) => {
            println!("FAIL: {e}");
            Ok(false)
        }
    }
}

impl Receipt {
    /// A receipt file's JSON: what `prove` writes and the citizen page
    /// offers (which adds the node, ignored here).
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Checks the checkpoint's signature, then the entry's inclusion in the
    /// tree it signs; returns the tree size and the entry.
    pub fn check(&self, verifier: &NoteVerifier) -> anyhow::Result<(u64, pb::AuditRecord)> {
        prove_inclusion(self, verifier).map(|(size, record, _)| (size, record))
    }
}

/// Checks the checkpoint's signature, then the entry's inclusion in the
/// tree it signs; returns the tree size, the entry and the checkpoint's
/// text (which a trust policy's cosignatures are checked on).
fn prove_inclusion(
    receipt: &Receipt,
    verifier: &NoteVerifier,
) -> anyhow::Result<(u64, pb::AuditRecord, String)> {
    let body = audit::note::open_note(&receipt.checkpoint, verifier)
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
    Ok((checkpoint.size, record, body.to_owned()))
}

fn decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    base64::engine::general_purpose::STANDARD.decode(text)
}
