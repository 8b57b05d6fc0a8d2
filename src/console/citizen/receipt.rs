//! Each line's receipt: the entry's bytes, its inclusion proof, the signed
//! checkpoint it is proved against and the node's verifier key, in the
//! file format `jisr audit prove` writes and `jisr audit check-receipt`
//! checks. When the node's latest witnessed checkpoint covers the entry,
//! the receipt is proved against it and its note carries the witnesses'
//! cosignatures. The page's script checks it in the browser and offers it for
//! download.
//!
//! Read through the audit API's `GetEntry` as the portal, naming the
//! citizen: the API gives the portal an entry only when it is about that
//! citizen (and fetches another node's entry from that node).

use crate::console::exchanges::as_caller;
use crate::console::routes::Who;
use crate::console::Console;
use crate::proto::jisr::audit::v1 as pb;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use futures_util::StreamExt as _;
use pb::audit_server::Audit as _;
use std::collections::HashMap;

/// Receipts fetched at once: enough to overlap another node's answers,
/// few enough not to crowd out other requests.
const AT_ONCE: usize = 8;

/// The receipt of each of `entries` (same order); `None` for an entry not
/// yet under a signed checkpoint, or whose node did not answer.
pub(super) async fn receipts(
    console: &Console,
    who: &Who,
    citizen: &str,
    entries: &[pb::Entry],
) -> Vec<Option<serde_json::Value>> {
    let audit = console.backend.audit();
    // Each node's verifier key and the size of its latest witnessed
    // checkpoint (0 when none).
    let keys: HashMap<String, (String, u64)> = match audit
        .list_checkpoints(as_caller(who, pb::ListCheckpointsRequest::default()))
        .await
    {
        Ok(all) => all
            .into_inner()
            .checkpoints
            .into_iter()
            .map(|c| (c.node, (c.verifier_key, c.witnessed_size)))
            .collect(),
        Err(status) => {
            tracing::warn!(error = %status.message(), "citizen page: no verifier keys, so no receipts");
            return vec![None; entries.len()];
        }
    };
    // Each call owns what it needs: a future borrowing across `buffered`
    // would not be `Send` for the console's spawned connection task.
    let calls: Vec<_> = entries
        .iter()
        .map(|e| {
            let (key, witnessed) = keys.get(&e.node).cloned().unzip();
            // Proved against the latest witnessed checkpoint when it covers
            // the entry (the receipt then carries its cosignatures), else
            // against the latest signed one.
            let tree_size = witnessed.filter(|w| *w > e.index).unwrap_or(0);
            let ask = pb::GetEntryRequest {
                index: e.index,
                tree_size,
                node: e.node.clone(),
                citizen_id: citizen.to_owned(),
            };
            let request = as_caller(who, ask);
            let audit = audit.clone();
            let (index, node) = (e.index, e.node.clone());
            async move {
                let key = key?;
                match audit.get_entry(request).await {
                    Ok(entry) => Some(receipt(&entry.into_inner(), &key)),
                    Err(status) => {
                        // Not yet checkpointed is the usual case: the page
                        // says the receipt is not ready.
                        tracing::debug!(index, %node, error = %status.message(), "citizen page: no receipt");
                        None
                    }
                }
            }
        })
        .collect();
    futures_util::stream::iter(calls)
        .buffered(AT_ONCE)
        .collect()
        .await
}

/// The receipt file's JSON (the fields of `jisr audit prove`'s file, and
/// the node).
fn receipt(entry: &pb::Entry, verifier_key: &str) -> serde_json::Value {
    serde_json::json!({
        "node": entry.node,
        "index": entry.index,
        "tree_size": entry.tree_size,
        "record": B64.encode(&entry.record_bytes),
        "inclusion_proof": entry.inclusion_proof.iter().map(|h| B64.encode(h)).collect::<Vec<_>>(),
        "checkpoint": entry.checkpoint_note,
        "verifier_key": verifier_key,
    })
}
