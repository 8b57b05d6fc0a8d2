//! `jisr audit recover`: when start-up refuses a log that lost or had
//! altered entries and no archive or backup holds them, the operator
//! accepts the loss explicitly. Without `--accept-loss` it only says what
//! it would keep, lose and set aside; with it, it sets those files aside
//! (never deletes them), opens the log as a start would, and appends a
//! `LOG_LOSS_ACCEPTED` entry covered by a new signed checkpoint.

use crate::audit::log::{lock_dir, loss, RECORDS_PER_SEGMENT};
use crate::audit::{keys, AuditLog, LogOptions};
use crate::config::{self, Config};
use prost::Message as _;
use std::path::Path;

/// Runs the command; `Ok(false)` (exit 1) when it only described the plan.
pub(super) async fn run(config_path: &Path, accept_loss: bool) -> anyhow::Result<bool> {
    let config =
        Config::load(config_path).map_err(|e| anyhow::anyhow!("{}", config::report(&e)))?;
    let dir = config.audit.dir.clone();
    let origin = format!("{}/jisr/{}", config.node.trust_domain, config.node.id);
    let key = &config.audit.signing_key;
    if !key.exists() {
        anyhow::bail!(
            "the signing key {} is missing: restore the node's signing key first; a loss is recorded under the key that signed the log",
            key.display()
        );
    }
    let signer = keys::load_or_create_signer(key, &origin)?;
    keys::check_signer(&dir, &signer, key)?;
    let lock = lock_dir(&dir)?;
    let plan = loss::plan(&dir, &signer.verifier())?;
    if !plan.needed() {
        println!(
            "nothing to recover in {}: its entries, stored hashes and signed checkpoints agree ({} entries). If the node still refuses to start, its message names another cause (a key, a store).",
            dir.display(),
            plan.keep
        );
        return Ok(true);
    }
    println!("audit log {}: {}", dir.display(), plan.describe());
    if !accept_loss {
        println!(
            "nothing was changed. With --accept-loss, every file past the kept entries (segments, tree.hashes, index.redb, checkpoints.log and checkpoint, and their copies in [audit] archive_dir) is set aside as <file>.lost-<time>, never deleted; the node then starts from the kept entries, and a LOG_LOSS_ACCEPTED entry saying what was lost is appended and signed. Copy the directory elsewhere first, and run it only if no archive or backup holds the missing entries."
        );
        return Ok(false);
    }
    let evidence = plan.apply(config.audit.archive_dir.as_deref())?;
    let log = AuditLog::open_locked(
        LogOptions {
            dir: dir.clone(),
            signer,
            records_per_segment: RECORDS_PER_SEGMENT,
            checkpoint_interval: config.audit.checkpoint_interval,
            archive_dir: config.audit.archive_dir.clone(),
        },
        lock,
    )?;
    let record = plan.record(config.node.id.as_str(), &evidence);
    let index = log.append(record.encode_to_vec()).await?;
    log.close().await;
    let checkpoint = log.checkpoint().checkpoint;
    for e in &evidence {
        println!(
            "kept as evidence: {} ({} bytes, sha256 {})",
            e.path.display(),
            e.bytes,
            e.sha256
        );
    }
    println!(
        "recorded the loss as entry {index} (LOG_LOSS_ACCEPTED), signed in the checkpoint of size {} root {}; the node can start. Tell whoever holds this node's earlier checkpoints: they prove the lost entries existed.",
        checkpoint.size,
        keys::hex(&checkpoint.root)
    );
    Ok(true)
}
