//! Waiting for a node's checkpoint through the audit API (as `cndp`, the
//! auditor): until it covers a size, or until a witnessed one does. One
//! bounded poll shared by the audit, tiles, witnessing and console tests.

use jisr::proto::jisr::audit::v1 as pb;
use pb::audit_client::AuditClient;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// How often the checkpoint is asked for.
const POLL: Duration = Duration::from_millis(50);

/// Asks for the latest checkpoint until `done` holds of it (returned), and
/// fails the test with `what` and the last one seen after `within`.
pub async fn checkpoint_until(
    client: &mut AuditClient<Channel>,
    within: Duration,
    what: &str,
    done: impl Fn(&pb::SignedCheckpoint) -> bool,
) -> pb::SignedCheckpoint {
    let start = Instant::now();
    loop {
        let cp = client
            .get_checkpoint(pb::GetCheckpointRequest {})
            .await
            .unwrap()
            .into_inner();
        if done(&cp) {
            return cp;
        }
        assert!(
            start.elapsed() < within,
            "{what}: not within {within:?}: {cp:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Waits (up to `within`) until the latest checkpoint covers `size` entries.
pub async fn checkpoint_at_least(
    client: &mut AuditClient<Channel>,
    size: u64,
    within: Duration,
) -> pb::SignedCheckpoint {
    let what = format!("no checkpoint of {size} entries");
    checkpoint_until(client, within, &what, |cp| cp.size >= size).await
}

/// Waits (up to 20 s) until a witnessed checkpoint covers `size` entries.
pub async fn witnessed_at_least(
    client: &mut AuditClient<Channel>,
    size: u64,
) -> pb::SignedCheckpoint {
    let what = format!("no witnessed checkpoint of {size} entries");
    checkpoint_until(client, Duration::from_secs(20), &what, |cp| {
        cp.witnessed_size >= size
    })
    .await
}
