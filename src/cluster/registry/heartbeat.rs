//! The registration's heartbeat: renews the entry, claims it again when
//! lost, and never takes it from another instance.

use std::sync::{Arc, Mutex};

use super::{describe, lock, Claim, NodeEntry, Registry};

/// Renews the entry every third of its TTL; claims it again when it was
/// lost (Redis was down at start, restarted empty, or failed over). Logs
/// only when the state changes, not at every beat.
pub(super) async fn heartbeat(
    registry: Registry,
    entry: Arc<Mutex<NodeEntry>>,
    mut registered: bool,
) {
    let mut conflict = false;
    loop {
        tokio::time::sleep(registry.ttl / 3).await;
        let current = lock(&entry).clone();
        let outcome = match registry.renew(&current).await {
            Ok(true) => Ok(None),
            Ok(false) => registry
                .claim(&current, false)
                .await
                .map(|claim| match claim {
                    Claim::Ours | Claim::TookOver(_) => None,
                    Claim::Held(holder) => Some(holder),
                }),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(None) => {
                if !registered || conflict {
                    tracing::info!(node = %current.node, "registered in the replica registry");
                }
                (registered, conflict) = (true, false);
            }
            Ok(Some(holder)) => {
                if !conflict {
                    tracing::error!(node = %current.node, holder = %describe(&holder), "another replica holds this node id: two nodes now write logs under one name; stop one and give each replica its own node id");
                }
                (registered, conflict) = (false, true);
            }
            Err(e) => {
                if registered {
                    tracing::warn!(node = %current.node, error = %e, "cannot renew the node's registration; retrying");
                }
                registered = false;
            }
        }
    }
}
