//! The log served read-only in the C2SP tlog-tiles layout
//! (c2sp.org/tlog-tiles), so that any transparency-log client fetches the
//! checkpoint, the Merkle tree and the entries, and computes its own proofs,
//! without Jisr's API: `[audit.tiles]` turns it on (`serve.rs`, HTTPS).
//!
//! Nothing is rehashed per request: the hashes of a tile at level `L` are
//! the stored subtree hashes at Merkle level `8L` ([`merkle::stored_hash_index`]),
//! which the log already keeps (level 0 holds the leaf hashes). An entry
//! bundle holds each entry's exact leaf data, the encoded audit record the
//! tree hashes, so a client recomputes the leaf hash; the record already
//! carries the citizen's pseudonym, never the identifier.
//!
//! Everything served is bounded by one checkpoint: the log's latest signed
//! one or, with witnesses configured, the latest witnessed (cosigned) one,
//! the very note the audit API serves as `witnessed_note`.

mod path;
mod serve;

use std::sync::Arc;

pub use path::{encode_index, Resource, WIDTH};
pub use serve::serve;

use crate::audit::merkle::stored_hash_index;
use crate::audit::witnessing::Witnessing;
use crate::audit::AuditLog;

/// How long a served checkpoint may be cached: the spec asks for no more
/// than a few seconds, since it changes with every new checkpoint.
pub const CHECKPOINT_CACHE: &str = "public, max-age=2";
/// Tiles and bundles never change once served (a partial tile of width W
/// is the same W hashes forever), so they may be cached for good.
pub const IMMUTABLE_CACHE: &str = "public, max-age=31536000, immutable";

/// Why a resource is not served.
#[derive(Debug, thiserror::Error)]
pub enum TileError {
    /// It does not exist at the served checkpoint (or never will).
    #[error("{0}")]
    NotFound(String),
    /// Nothing can be served yet (no witnessed checkpoint so far).
    #[error("{0}")]
    NotYet(String),
    /// The log could not be read.
    #[error("{0}")]
    Failed(String),
}

/// One answer: its bytes, content type and caching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The body.
    pub body: Vec<u8>,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// `Cache-Control`.
    pub cache: &'static str,
}

/// The node's log as tiles.
#[derive(Debug, Clone)]
pub struct Tiles {
    log: Arc<AuditLog>,
    witnessing: Option<Arc<Witnessing>>,
}

impl Tiles {
    /// The tiles of `log`, bounded by the witnessed checkpoint when
    /// `witnessing` has witnesses.
    pub fn new(log: Arc<AuditLog>, witnessing: Option<Arc<Witnessing>>) -> Self {
        Self { log, witnessing }
    }

    /// The checkpoint served now: its tree size and its note.
    pub fn checkpoint(&self) -> Result<(u64, String), TileError> {
        match &self.witnessing {
            Some(w) if w.is_on() => w.witnessed().map(|w| (w.size, w.note)).ok_or_else(|| {
                TileError::NotYet(
                    "no checkpoint has been cosigned by the witnesses' quorum yet; try again later (the node's /readyz says how witnessing is doing)".into(),
                )
            }),
            _ => {
                let signed = self.log.checkpoint();
                Ok((signed.checkpoint.size, signed.note))
            }
        }
    }

    /// Answers `resource`; reads the log (blocking file reads).
    pub fn get(&self, resource: Resource) -> Result<Served, TileError> {
        let (size, note) = self.checkpoint()?;
        let cached = |body| Served {
            body,
            content_type: "application/octet-stream",
            cache: IMMUTABLE_CACHE,
        };
        match resource {
            Resource::Checkpoint => Ok(Served {
                body: note.into_bytes(),
                content_type: "text/plain; charset=utf-8",
                cache: CHECKPOINT_CACHE,
            }),
            Resource::Tile {
                level,
                index,
                width,
            } => self.hashes(size, level, index, width).map(cached),
            Resource::Entries { index, width } => self.entries(size, index, width).map(cached),
        }
    }

    /// The hashes of tile `index` at `level`: the stored hashes of the
    /// complete subtrees of `256^level` leaves, `index * 256` onwards.
    fn hashes(
        &self,
        size: u64,
        level: u8,
        index: u64,
        width: Option<u8>,
    ) -> Result<Vec<u8>, TileError> {
        let merkle_level = 8 * u32::from(level);
        // Complete subtrees of 256^level leaves in the served tree.
        let have = size.checked_shr(merkle_level).unwrap_or(0);
        let (first, count) = span(
            have,
            index,
            width,
            &Resource::Tile {
                level,
                index,
                width,
            },
        )?;
        let indexes: Vec<u64> = (first..first + count)
            .map(|n| stored_hash_index(merkle_level, n))
            .collect();
        let hashes = self
            .log
            .stored_hashes(size, &indexes)
            .map_err(|e| TileError::Failed(e.to_string()))?;
        Ok(hashes.concat())
    }

    /// Entries `index * 256` onwards, each as a big-endian u16 length and
    /// the exact bytes the tree hashes.
    fn entries(&self, size: u64, index: u64, width: Option<u8>) -> Result<Vec<u8>, TileError> {
        let (first, count) = span(size, index, width, &Resource::Entries { index, width })?;
        let mut out = Vec::new();
        for i in first..first + count {
            let entry = self
                .log
                .read(i)
                .map_err(|e| TileError::Failed(e.to_string()))?;
            let len = u16::try_from(entry.len()).map_err(|_| {
                TileError::Failed(format!(
                    "entry {i} is {} bytes, more than an entry bundle can carry (65535)",
                    entry.len()
                ))
            })?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&entry);
        }
        Ok(out)
    }
}

/// The first item and the count of a tile of `width` (full when `None`)
/// at `index`, when `have` items exist at its level.
fn span(
    have: u64,
    index: u64,
    width: Option<u8>,
    what: &Resource,
) -> Result<(u64, u64), TileError> {
    let count = width.map_or(WIDTH, u64::from);
    let first = index.checked_mul(WIDTH);
    match first {
        Some(first) if first.checked_add(count).is_some_and(|end| end <= have) => {
            Ok((first, count))
        }
        _ => Err(TileError::NotFound(format!(
            "{} is beyond the served checkpoint ({have} items at its level); fetch /checkpoint and only the tiles it covers",
            what.path()
        ))),
    }
}
