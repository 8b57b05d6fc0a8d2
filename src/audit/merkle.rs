//! RFC 6962 / RFC 9162 Merkle tree hashing over a stored-hash sequence.
//!
//! The log keeps every hash of every complete subtree in one append-only
//! sequence, laid out as Go's `golang.org/x/mod/sumdb/tlog` lays it out: when
//! leaf `n` arrives, its hash is appended, followed by the hash of each
//! subtree that leaf completes. [`stored_hash_index`] says where a subtree's
//! hash lives, so roots and proofs read only the O(log n) hashes they need
//! through a [`HashReader`] instead of rehashing leaves. Proofs are the
//! standard RFC 9162 audit paths and consistency paths, so any RFC 9162
//! verifier (Go's `tlog.CheckRecord`, transparency-dev/merkle, …) accepts
//! them. [`Frontier`] keeps only the right edge of a tree, for appending and
//! recomputing roots without reads.

mod frontier;
mod memory;
mod proof;
#[cfg(test)]
mod tests;

use sha2::{Digest, Sha256};

pub use frontier::Frontier;
pub use memory::MemoryTree;
pub use proof::{prove_consistency, prove_inclusion, verify_consistency, verify_inclusion};

/// A SHA-256 hash: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// Why a Merkle computation or proof check failed.
#[derive(Debug, thiserror::Error)]
pub enum MerkleError {
    /// A leaf index at or beyond the tree size.
    #[error("index {index} is out of range for a tree of {size} leaves")]
    IndexOutOfRange {
        /// The index asked for.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A consistency proof was asked between sizes that cannot have one.
    #[error("no consistency proof from a tree of {old} leaves to one of {new}")]
    BadSizes {
        /// The older (smaller) tree size.
        old: u64,
        /// The newer (larger) tree size.
        new: u64,
    },
    /// A proof did not verify.
    #[error("proof does not verify: {what}")]
    BadProof {
        /// What was wrong.
        what: &'static str,
    },
    /// The stored hashes could not be read.
    #[error("cannot read stored hashes: {0}")]
    Read(String),
}

/// `SHA-256(0x00 ‖ data)`: the RFC 6962 hash of a leaf.
pub fn leaf_hash(data: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([0x00])
        .chain_update(data)
        .finalize()
        .into()
}

/// `SHA-256(0x01 ‖ left ‖ right)`: the RFC 6962 hash of an interior node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new()
        .chain_update([0x01])
        .chain_update(left)
        .chain_update(right)
        .finalize()
        .into()
}

/// `SHA-256("")`: the root of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Index in the stored-hash sequence of the hash of the complete subtree at
/// `level` whose leftmost leaf is `n << level` (Go tlog's `StoredHashIndex`).
///
/// Level `L`'s `n`-th hash is written right after level `L+1`'s `(2n+1)`-th
/// one, so walk down to level 0, where leaf `m` sits after `m + m/2 + m/4 + …`
/// earlier hashes, then add back one slot per level climbed.
pub fn stored_hash_index(level: u32, n: u64) -> u64 {
    let mut m = n;
    for _ in 0..level {
        m = 2 * m + 1;
    }
    let mut index = 0;
    while m > 0 {
        index += m;
        m >>= 1;
    }
    index + u64::from(level)
}

/// How many stored hashes exist for a tree of `n` leaves (Go tlog's
/// `StoredHashCount`): everything up to the last leaf's hash, plus the hashes
/// of the subtrees that leaf completed (one per trailing 1 bit of `n - 1`).
pub fn stored_hash_count(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    stored_hash_index(0, n - 1) + 1 + u64::from((n - 1).trailing_ones())
}

/// A source of stored hashes (file-backed in the log, in memory in tests).
pub trait HashReader {
    /// The stored hashes at `indexes`, in the same order. Callers in this
    /// module always ask in increasing index order, so a file-backed reader
    /// reads forwards.
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError>;
}

impl HashReader for [Hash] {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
        indexes
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| self.get(i))
                    .copied()
                    .ok_or_else(|| {
                        MerkleError::Read(format!("no stored hash {i} (have {})", self.len()))
                    })
            })
            .collect()
    }
}

impl HashReader for Vec<Hash> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
        self.as_slice().read_hashes(indexes)
    }
}

/// Reads `indexes` and checks the reader kept its side of the contract, so a
/// short answer is an error rather than a panic later.
fn read_exact(r: &(impl HashReader + ?Sized), indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
    if indexes.is_empty() {
        return Ok(Vec::new());
    }
    let hashes = r.read_hashes(indexes)?;
    if hashes.len() != indexes.len() {
        return Err(MerkleError::Read(format!(
            "asked for {} hashes, got {}",
            indexes.len(),
            hashes.len()
        )));
    }
    Ok(hashes)
}

/// The hashes to append to the stored sequence when leaf `n` (0-based) with
/// hash `leaf` is added (Go tlog's `StoredHashesForRecordHash`): the leaf
/// hash first, then the hash of each subtree it completes, smallest first.
/// Reads one stored hash per completed subtree (its left sibling).
pub fn stored_hashes_for_leaf(
    n: u64,
    leaf: Hash,
    r: &(impl HashReader + ?Sized),
) -> Result<Vec<Hash>, MerkleError> {
    // Each trailing 1 bit of n completes a subtree whose left half is the
    // subtree that ends just before this leaf's one at that level.
    let completed = n.trailing_ones();
    let mut indexes: Vec<u64> = (0..completed)
        .map(|level| stored_hash_index(level, (n >> level) - 1))
        .collect();
    indexes.reverse(); // increasing order for the reader
    let siblings = read_exact(r, &indexes)?;
    let mut out = Vec::with_capacity(1 + siblings.len());
    let mut h = leaf;
    out.push(h);
    for left in siblings.iter().rev() {
        h = node_hash(left, &h);
        out.push(h);
    }
    Ok(out)
}

/// The root of the tree made of the first `n` leaves ([`empty_root`] for 0),
/// from the O(log n) stored hashes of the complete subtrees covering it.
pub fn tree_hash(n: u64, r: &(impl HashReader + ?Sized)) -> Result<Hash, MerkleError> {
    if n == 0 {
        return Ok(empty_root());
    }
    let mut indexes = Vec::new();
    subtree_indexes(0, n, &mut indexes);
    let hashes = read_exact(r, &indexes)?;
    let (root, rest) = subtree_hash(0, n, &hashes);
    debug_assert!(rest.is_empty());
    Ok(root)
}

/// The largest power of two strictly below `n` and its log2, for `n >= 2`
/// (the RFC 6962 split point `k`); `(1, 0)` for smaller `n`.
fn split(n: u64) -> (u64, u32) {
    if n <= 2 {
        return (1, 0);
    }
    let level = (n - 1).ilog2();
    (1 << level, level)
}

/// Appends the stored-hash indexes of the complete subtrees that exactly
/// cover leaves `lo..hi`, left to right (largest first). `lo` must be aligned
/// to the first subtree's size, which holds for every range this module asks.
fn subtree_indexes(mut lo: u64, hi: u64, need: &mut Vec<u64>) {
    while lo < hi {
        let (k, level) = split(hi - lo + 1);
        debug_assert_eq!(lo & (k - 1), 0, "unaligned subtree");
        need.push(stored_hash_index(level, lo >> level));
        lo += k;
    }
}

/// Combines the hashes read for [`subtree_indexes`]`(lo, hi)` (the first
/// ones in `hashes`) into the RFC 6962 hash of leaves `lo..hi`, right to
/// left; returns it and the hashes not consumed.
fn subtree_hash(mut lo: u64, hi: u64, hashes: &[Hash]) -> (Hash, &[Hash]) {
    let mut count = 0;
    while lo < hi {
        lo += split(hi - lo + 1).0;
        count += 1;
    }
    let (mine, rest) = hashes.split_at(count);
    let mut acc = mine[count - 1];
    for left in mine[..count - 1].iter().rev() {
        acc = node_hash(left, &acc);
    }
    (acc, rest)
}
