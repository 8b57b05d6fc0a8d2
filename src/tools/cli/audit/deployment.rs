//! `jisr audit verify --gateway …`: every node of a running deployment,
//! asked of any replica. Each node's latest signed checkpoint is checked
//! against its verifier key; with `--state`, that key against the one
//! pinned when the node was first seen, and the checkpoint against the one
//! the previous run verified (a consistency proof from the old size to the
//! new, fetched through the replica asked, so the log only grew). One line
//! per node; a node that did not answer makes the run partial.

use super::seen::{NodeSeen, Seen};
use super::{b64, connect, status_error, Connection};
use crate::audit::{merkle, note};
use crate::proto::jisr::audit::v1 as pb;
use pb::audit_client::AuditClient;
use std::collections::BTreeSet;
use std::path::Path;
use tonic::transport::Channel;

/// What one node's check found.
enum Verdict {
    /// Verified, and consistent with what was seen before (when anything was).
    Ok(String, NodeSeen),
    /// Verified, first seen: its key is pinned now.
    New(String, NodeSeen),
    /// Did not verify: what is wrong and what to do.
    Fail(String),
}

/// Checks every node; `false` when one failed or did not answer.
pub(super) async fn verify(conn: &Connection, state: Option<&Path>) -> anyhow::Result<bool> {
    let (mut seen, first) = match state {
        Some(path) => Seen::load(path)?,
        None => {
            println!("note: no --state: keys are not pinned and a rolled-back log cannot be told from a new one; keep a state file between runs");
            (Seen::default(), false)
        }
    };
    if first {
        if let Some(path) = state {
            println!(
                "note: {} does not exist yet: every node is new, its key pinned now",
                path.display()
            );
        }
    }
    let mut client = connect(conn).await?;
    let all = client
        .list_checkpoints(pb::ListCheckpointsRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    let mut listed = BTreeSet::new();
    let mut failed = 0usize;
    for cp in &all.checkpoints {
        let verdict = if listed.insert(cp.node.clone()) {
            check(&mut client, cp, seen.nodes.get(&cp.node)).await
        } else {
            Verdict::Fail("listed twice by the deployment: two replicas share this node id; give each its own (see Node identities in docs/operations.md)".into())
        };
        match verdict {
            Verdict::Ok(line, now) => {
                println!("OK {}: {line}", cp.node);
                seen.nodes.insert(cp.node.clone(), now);
            }
            Verdict::New(line, now) => {
                println!("NEW {}: {line}", cp.node);
                seen.nodes.insert(cp.node.clone(), now);
            }
            Verdict::Fail(why) => {
                println!("FAIL {}: {why}", cp.node);
                failed += 1;
            }
        }
    }
    let missing = report_missing(&all.missing, &seen, &listed);
    if let Some(path) = state {
        seen.save(path)?;
        println!(
            "state saved to {} ({} nodes)",
            path.display(),
            seen.nodes.len()
        );
    }
    summary(listed.len(), failed, &missing);
    Ok(failed == 0 && missing.is_empty())
}

/// Prints a line for each node that did not answer, and for each node of
/// the state the deployment no longer lists; returns their ids.
fn report_missing(
    missing: &[pb::MissingNode],
    seen: &Seen,
    listed: &BTreeSet<String>,
) -> Vec<String> {
    let mut nodes = Vec::new();
    for m in missing {
        println!(
            "MISSING {}: did not answer ({}); not checked — run again once it is back",
            m.node, m.reason
        );
        nodes.push(m.node.clone());
    }
    for node in seen.nodes.keys() {
        if !listed.contains(node) && !nodes.contains(node) {
            println!("MISSING {node}: seen before but no longer listed by the deployment (down longer than the registry remembers, or retired); not checked — if it was retired, remove it from the state file");
            nodes.push(node.clone());
        }
    }
    nodes
}

fn summary(checked: usize, failed: usize, missing: &[String]) {
    if !missing.is_empty() {
        println!(
            "PARTIAL: {} node(s) not checked: {}; {checked} checked, {failed} failed",
            missing.len(),
            missing.join(", ")
        );
    } else if failed > 0 {
        println!("FAIL: {failed} of {checked} node(s) do not verify");
    } else {
        println!("OK: every node of the deployment verifies ({checked} nodes)");
    }
}

/// Checks one node's checkpoint, and its consistency with `before`.
async fn check(
    client: &mut AuditClient<Channel>,
    cp: &pb::SignedCheckpoint,
    before: Option<&NodeSeen>,
) -> Verdict {
    let checkpoint = match signed(cp) {
        Ok(c) => c,
        Err(why) => return Verdict::Fail(why),
    };
    let now = NodeSeen {
        verifier_key: cp.verifier_key.clone(),
        size: checkpoint.size,
        root: b64(&checkpoint.root),
        note: cp.note.clone(),
    };
    let Some(before) = before else {
        let line = format!(
            "{} entries; first seen, key {} pinned",
            checkpoint.size, cp.verifier_key
        );
        return Verdict::New(line, now);
    };
    if before.verifier_key != cp.verifier_key {
        return Verdict::Fail(format!(
            "its verifier key changed: pinned `{}`, now `{}`. A node's key changes only with a new log: ask the operator why; once the change is explained, remove the node from the state file to pin the new key",
            before.verifier_key, cp.verifier_key
        ));
    }
    match consistent(client, &cp.node, before, &checkpoint).await {
        Ok(()) if before.size == checkpoint.size => Verdict::Ok(
            format!("{} entries, unchanged since the last run", checkpoint.size),
            now,
        ),
        Ok(()) => Verdict::Ok(
            format!(
                "{} entries, consistent with the {} seen before",
                checkpoint.size, before.size
            ),
            now,
        ),
        Err(why) => Verdict::Fail(why),
    }
}

/// The checkpoint of `cp`, once its signature verifies with its key and its
/// origin names its node.
fn signed(cp: &pb::SignedCheckpoint) -> Result<note::Checkpoint, String> {
    let verifier = note::NoteVerifier::from_text(&cp.verifier_key).map_err(|e| {
        format!(
            "its verifier key `{}` is not a signed-note key ({e}); report it to the operator",
            cp.verifier_key
        )
    })?;
    let body = note::open_note(&cp.note, &verifier).map_err(|e| {
        format!("its checkpoint's signature does not verify with its own verifier key ({e}); report it to the operator")
    })?;
    let checkpoint = note::Checkpoint::parse(body)
        .map_err(|e| format!("its signed checkpoint is malformed ({e})"))?;
    let suffix = format!("/jisr/{}", cp.node);
    if !checkpoint.origin.ends_with(&suffix) {
        return Err(format!(
            "its checkpoint is signed for origin `{}`, which does not name node `{}`: another node's log is answering under this id",
            checkpoint.origin, cp.node
        ));
    }
    Ok(checkpoint)
}

/// Checks that `now` extends `before`: the same root at the same size, a
/// verifying consistency proof at a larger one, never a smaller size.
async fn consistent(
    client: &mut AuditClient<Channel>,
    node: &str,
    before: &NodeSeen,
    now: &note::Checkpoint,
) -> Result<(), String> {
    let rewritten = "entries that were acknowledged before have been altered or the log was rebuilt: keep the state file and both checkpoints as evidence, and report it to the operator and the data protection authority";
    if now.size < before.size {
        return Err(format!(
            "rolled back: its checkpoint covers {} entries, but {} were signed before; acknowledged entries are missing — the operator must restore the node's log (see \"A replica's disk is lost\" in docs/operations.md)",
            now.size, before.size
        ));
    }
    let old_root = decode_hash(&before.root)
        .ok_or_else(|| format!("the state file's root for `{node}` is not a base64 hash; restore the state file from your backup"))?;
    let proof = if before.size == now.size || before.size == 0 {
        Vec::new()
    } else {
        let answer = client
            .get_consistency_proof(pb::GetConsistencyProofRequest {
                old_size: before.size,
                new_size: now.size,
                node: node.to_owned(),
            })
            .await
            .map_err(|s| {
                format!(
                    "no consistency proof from {} to {} entries: {}",
                    before.size,
                    now.size,
                    status_error(s)
                )
            })?
            .into_inner();
        answer
            .hashes
            .iter()
            .map(|h| <[u8; 32]>::try_from(h.as_slice()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| "its consistency proof holds a hash that is not 32 bytes".to_owned())?
    };
    merkle::verify_consistency(&proof, now.size, &now.root, before.size, &old_root).map_err(|e| {
        format!(
            "its log of {} entries does not extend the {} seen before ({e}): {rewritten}",
            now.size, before.size
        )
    })
}

fn decode_hash(text: &str) -> Option<[u8; 32]> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
}
