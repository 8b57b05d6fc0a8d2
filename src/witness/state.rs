//! The witness's durable memory: for each log, the latest checkpoint it
//! cosigned. A record is written to a temporary file, fsynced, renamed over
//! the old one and the directory fsynced before the witness answers, so a
//! witness killed at any instant restarts from a checkpoint it really
//! cosigned, or from the one before it — never from nothing, and never
//! from a half-written file. Refused checkpoints whose signature verified
//! are kept as evidence: they may prove that the log forked.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::WitnessError;
use crate::audit::merkle::Hash;

/// The latest checkpoint cosigned for one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Recorded {
    pub(super) size: u64,
    pub(super) root: Hash,
    /// The signed checkpoint note as the log sent it.
    pub(super) note: String,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    origin: String,
    size: u64,
    root: String,
    checkpoint: String,
}

/// The state directory: `logs/<sha256(origin)>.json`, `evidence/`.
#[derive(Debug, Clone)]
pub(super) struct Store {
    dir: PathBuf,
}

fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> WitnessError + 'a {
    move |source| WitnessError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

impl Store {
    pub(super) fn open(dir: &Path) -> Result<Self, WitnessError> {
        for sub in ["logs", "evidence"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path).map_err(io("create", &path))?;
        }
        Ok(Store {
            dir: dir.to_owned(),
        })
    }

    fn path(&self, origin: &str) -> PathBuf {
        let digest = Sha256::digest(origin.as_bytes());
        let name: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join("logs").join(format!("{name}.json"))
    }

    /// The latest cosigned checkpoint of `origin`, if any.
    pub(super) fn load(&self, origin: &str) -> Result<Option<Recorded>, WitnessError> {
        let path = self.path(origin);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("read", &path)(e)),
        };
        let damaged = |what: String| WitnessError::State {
            path: path.clone(),
            what,
        };
        let disk: OnDisk = serde_json::from_str(&text).map_err(|e| damaged(e.to_string()))?;
        if disk.origin != origin {
            return Err(damaged(format!("it records origin `{}`", disk.origin)));
        }
        let root = B64
            .decode(&disk.root)
            .ok()
            .and_then(|r| Hash::try_from(r).ok())
            .ok_or_else(|| damaged("its root is not base64 of 32 bytes".into()))?;
        Ok(Some(Recorded {
            size: disk.size,
            root,
            note: disk.checkpoint,
        }))
    }

    /// Makes `recorded` the latest cosigned checkpoint of `origin`, durably.
    pub(super) fn save(&self, origin: &str, recorded: &Recorded) -> Result<(), WitnessError> {
        let disk = OnDisk {
            origin: origin.to_owned(),
            size: recorded.size,
            root: B64.encode(recorded.root),
            checkpoint: recorded.note.clone(),
        };
        let text = serde_json::to_string_pretty(&disk).map_err(|e| WitnessError::State {
            path: self.path(origin),
            what: e.to_string(),
        })?;
        write_durably(&self.path(origin), text.as_bytes())
    }

    /// Keeps a refused, validly signed checkpoint for the operator.
    pub(super) fn keep_evidence(&self, origin: &str, why: &str, body: &str) {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let path = self.dir.join("evidence").join(format!("{stamp}.txt"));
        let text = format!("origin: {origin}\nrefused: {why}\n\n{body}");
        if let Err(e) = write_durably(&path, text.as_bytes()) {
            tracing::error!(path = %path.display(), error = %e, "cannot keep the evidence of a refused checkpoint");
        }
    }
}

/// Temp file, fsync, rename, fsync of the directory.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), WitnessError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(io("create", dir))?;
    file.write_all(bytes).map_err(io("write", path))?;
    file.as_file().sync_all().map_err(io("sync", path))?;
    file.persist(path)
        .map_err(|e| io("rename", path)(e.error))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", dir))
}
