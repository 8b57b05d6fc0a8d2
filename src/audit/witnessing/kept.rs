//! The cosigned checkpoints the node keeps, beside its checkpoint history:
//! `<audit dir>/witnessed.json`, each of the log's signed checkpoints with
//! the witnesses' cosignature lines on it. Only a cosignature verified with
//! its witness's configured key is ever kept, and the file is replaced
//! whole (temporary file, fsync, rename, fsync of the directory) before the
//! node counts it: a crash leaves the previous file or the new one, never
//! a cosignature it did not verify, never one less than it counted.
//!
//! Read back at start, every checkpoint is checked again against the log
//! (its signature and its root) and every line against the witnesses now
//! configured: a witness removed from the configuration no longer counts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::audit::log::SignedCheckpoint;
use crate::audit::note::{open_note, Checkpoint, CosignatureVerifier};
use crate::audit::{AuditError, AuditLog};

/// The file, in the log directory.
pub const FILE: &str = "witnessed.json";
/// Checkpoints kept beyond the witnessed one and each witness's latest:
/// enough for witnesses a few checkpoints apart to meet on one.
const MAX_PENDING: usize = 64;

/// One checkpoint and who cosigned it.
#[derive(Debug, Clone)]
struct Cosigned {
    signed: SignedCheckpoint,
    /// Witness index (configuration order) → its cosignature line, no
    /// final newline.
    lines: BTreeMap<usize, String>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct OnDisk {
    checkpoints: Vec<OnDiskCheckpoint>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct OnDiskCheckpoint {
    /// The log's signed checkpoint note.
    note: String,
    /// The witnesses' cosignature lines over it.
    cosignatures: Vec<String>,
}

/// A checkpoint cosigned by at least the quorum: its size and its note with
/// the cosignature lines after the log's signature (the C2SP form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witnessed {
    /// The tree size.
    pub size: u64,
    /// The signed note, cosignature lines included.
    pub note: String,
    /// How many witnesses cosigned it.
    pub cosignatures: usize,
}

/// What the node keeps, in memory as on disk.
#[derive(Debug)]
pub(super) struct Kept {
    path: PathBuf,
    dir: PathBuf,
    quorum: usize,
    /// How many witnesses are configured.
    witnesses: usize,
    /// By tree size: one log has one root per size.
    checkpoints: BTreeMap<u64, Cosigned>,
}

impl Kept {
    /// Reads the file of `log` (none yet is empty), keeping what still
    /// verifies against the log and the witnesses in `verifiers`.
    pub(super) fn open(
        log: &AuditLog,
        verifiers: &[CosignatureVerifier],
        quorum: usize,
    ) -> Result<Self, AuditError> {
        let dir = log.dir().to_owned();
        let path = dir.join(FILE);
        let mut kept = Kept {
            path: path.clone(),
            dir,
            quorum,
            witnesses: verifiers.len(),
            checkpoints: BTreeMap::new(),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(kept),
            Err(e) => return Err(AuditError::io("read", &path, e)),
        };
        let disk: OnDisk = serde_json::from_str(&text).map_err(|e| {
            AuditError::Unavailable(format!(
                "{} is not a file of cosigned checkpoints ({e}); move it aside (the witnesses cosign again) and restart",
                path.display()
            ))
        })?;
        for one in disk.checkpoints {
            match check(log, verifiers, one) {
                Ok(c) => {
                    kept.checkpoints.insert(c.signed.checkpoint.size, c);
                }
                Err(why) => {
                    tracing::warn!(file = %path.display(), %why, "a kept cosigned checkpoint is left out");
                }
            }
        }
        Ok(kept)
    }

    /// The largest size witness `i` cosigned, as kept.
    pub(super) fn latest_of(&self, i: usize) -> Option<u64> {
        self.checkpoints
            .iter()
            .rev()
            .find(|(_, c)| c.lines.contains_key(&i))
            .map(|(size, _)| *size)
    }

    /// The largest checkpoint with at least the quorum of cosignatures.
    pub(super) fn witnessed(&self) -> Option<Witnessed> {
        let (size, c) = self
            .checkpoints
            .iter()
            .rev()
            .find(|(_, c)| self.quorum > 0 && c.lines.len() >= self.quorum)?;
        let mut note = c.signed.note.clone();
        for line in c.lines.values() {
            note.push_str(line);
            note.push('\n');
        }
        Some(Witnessed {
            size: *size,
            note,
            cosignatures: c.lines.len(),
        })
    }

    /// What the file would hold with witness `i`'s verified `line` on
    /// `signed` added: the caller writes it ([`write`]) and only then
    /// puts it in the place of this one.
    pub(super) fn with(&self, i: usize, signed: &SignedCheckpoint, line: &str) -> Self {
        let mut checkpoints = self.checkpoints.clone();
        checkpoints
            .entry(signed.checkpoint.size)
            .or_insert_with(|| Cosigned {
                signed: signed.clone(),
                lines: BTreeMap::new(),
            })
            .lines
            .insert(i, line.trim_end_matches('\n').to_owned());
        let mut next = Kept {
            path: self.path.clone(),
            dir: self.dir.clone(),
            quorum: self.quorum,
            witnesses: self.witnesses,
            checkpoints,
        };
        next.prune();
        next
    }

    /// Drops what no reader needs: checkpoints older than the witnessed
    /// one that are no witness's latest, then the oldest pending beyond
    /// [`MAX_PENDING`].
    fn prune(&mut self) {
        let floor = self.witnessed().map_or(0, |w| w.size);
        let latest: Vec<u64> = (0..self.witnesses)
            .filter_map(|i| self.latest_of(i))
            .collect();
        let keep = |size: &u64| *size >= floor || latest.contains(size);
        self.checkpoints.retain(|size, _| keep(size));
        while self.checkpoints.len() > MAX_PENDING + latest.len() + 1 {
            let oldest = self
                .checkpoints
                .keys()
                .copied()
                .find(|s| *s != floor && !latest.contains(s));
            match oldest {
                Some(s) => drop(self.checkpoints.remove(&s)),
                None => break,
            }
        }
    }

    /// The file's bytes.
    pub(super) fn to_bytes(&self) -> Vec<u8> {
        let disk = OnDisk {
            checkpoints: self
                .checkpoints
                .values()
                .map(|c| OnDiskCheckpoint {
                    note: c.signed.note.clone(),
                    cosignatures: c.lines.values().cloned().collect(),
                })
                .collect(),
        };
        // A struct of strings always serialises.
        let mut bytes = serde_json::to_vec_pretty(&disk).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// Where the file goes, and its directory.
    pub(super) fn paths(&self) -> (&Path, &Path) {
        (&self.path, &self.dir)
    }
}

/// Writes `kept` durably: the previous file or this one survives a crash.
pub(super) fn write(kept: &Kept) -> Result<(), AuditError> {
    let (path, dir) = kept.paths();
    crate::audit::log::write_durable(dir, path, &kept.to_bytes())
}

/// One kept checkpoint checked again: the log signed it, its root is the
/// log's at its size, and each line verifies with a configured witness.
fn check(
    log: &AuditLog,
    verifiers: &[CosignatureVerifier],
    one: OnDiskCheckpoint,
) -> Result<Cosigned, String> {
    let text = open_note(&one.note, log.verifier()).map_err(|e| e.to_string())?;
    let checkpoint = Checkpoint::parse(text).map_err(|e| e.to_string())?;
    let root = log.root(checkpoint.size).map_err(|e| e.to_string())?;
    if root != checkpoint.root {
        return Err(format!(
            "its root at size {} is not the log's: the log is not the one that was cosigned",
            checkpoint.size
        ));
    }
    let all: String = one.cosignatures.iter().map(|l| format!("{l}\n")).collect();
    let mut lines = BTreeMap::new();
    for (i, verifier) in verifiers.iter().enumerate() {
        if let Ok((line, _)) = verifier.verify(text, &all) {
            lines.insert(i, line.to_owned());
        }
    }
    Ok(Cosigned {
        signed: SignedCheckpoint {
            checkpoint,
            note: one.note,
        },
        lines,
    })
}
