//! What an auditor's earlier runs of `jisr audit verify --gateway` saw, kept
//! in a file of theirs (`--state`): per node, the verifier key pinned at
//! first sight and the latest checkpoint that verified. The next run checks
//! that each node's log only grew from there, with the same key.
//!
//! The file is replaced atomically (written to a temporary file beside it,
//! synced, renamed over it, the directory synced), so a crash or a full disk
//! leaves the previous state whole, never half of a new one.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

/// The state file's format version.
const VERSION: u32 = 1;

/// Every node seen so far.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct Seen {
    version: u32,
    /// By node id.
    pub(super) nodes: BTreeMap<String, NodeSeen>,
}

/// One node as last verified.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct NodeSeen {
    /// The verifier key pinned when the node was first seen.
    pub(super) verifier_key: String,
    /// The size of its latest checkpoint that verified.
    pub(super) size: u64,
    /// That checkpoint's root, base64.
    pub(super) root: String,
    /// That checkpoint, as signed (evidence if a later one contradicts it).
    pub(super) note: String,
}

impl Seen {
    /// Reads the state, or an empty one when the file does not exist yet
    /// (`first` is then true). A file that exists but does not parse is an
    /// error: starting afresh would silently forget every pinned key.
    pub(super) fn load(path: &Path) -> anyhow::Result<(Self, bool)> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Self::default(), true))
            }
            Err(e) => anyhow::bail!("cannot read the state file {}: {e}", path.display()),
        };
        let seen: Self = serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{} is not a state file of `jisr audit verify` ({e}); restore it from your backup — starting without it would forget every pinned key",
                path.display()
            )
        })?;
        anyhow::ensure!(
            seen.version == VERSION,
            "{} is a state file of version {}; this jisr reads version {VERSION}",
            path.display(),
            seen.version
        );
        Ok((seen, false))
    }

    /// Replaces the file at `path` with this state, atomically.
    pub(super) fn save(&mut self, path: &Path) -> anyhow::Result<()> {
        self.version = VERSION;
        let text = serde_json::to_string_pretty(self)?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            anyhow::anyhow!(
                "cannot {what} the state file {}: {e}; the previous state is unchanged",
                path.display()
            )
        };
        let mut temp = tempfile::Builder::new()
            .prefix(".jisr-audit-state-")
            .tempfile_in(dir)
            .map_err(|e| fail("create a temporary file beside", &e))?;
        temp.write_all(format!("{text}\n").as_bytes())
            .map_err(|e| fail("write", &e))?;
        temp.as_file().sync_all().map_err(|e| fail("sync", &e))?;
        temp.persist(path).map_err(|e| fail("replace", &e.error))?;
        // The rename is durable only once the directory is synced.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| fail("sync the directory of", &e))?;
        Ok(())
    }
}
