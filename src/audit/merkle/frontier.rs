//! The right edge of a tree: the hashes of its complete subtrees, one per 1
//! bit of the size, enough to append leaves and compute the root with no
//! reads (a "compact range" covering the whole tree).

use super::{empty_root, node_hash, read_exact, stored_hash_index, Hash, HashReader, MerkleError};

/// The right edge of an RFC 6962 tree: at most 64 hashes of complete
/// subtrees, largest (leftmost) first. `Default` is the empty tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// Subtree hashes for the 1 bits of `size`, highest bit first.
    edge: Vec<Hash>,
}

impl Frontier {
    /// The edge of the tree of the first `size` leaves, read from its stored
    /// hashes (one per 1 bit of `size`).
    pub fn from_stored(size: u64, r: &(impl HashReader + ?Sized)) -> Result<Self, MerkleError> {
        let indexes: Vec<u64> = (0..u64::BITS)
            .rev()
            .filter(|level| size >> level & 1 == 1)
            .map(|level| stored_hash_index(level, (size >> level) - 1))
            .collect();
        let edge = read_exact(r, &indexes)?;
        Ok(Frontier { size, edge })
    }

    /// Appends a leaf, given its leaf hash ([`super::leaf_hash`]).
    pub fn push(&mut self, leaf: Hash) {
        // Like a binary increment: every trailing 1 bit is a complete subtree
        // of the same size as the carry, and merges with it.
        let mut h = leaf;
        for _ in 0..self.size.trailing_ones() {
            // The edge holds one hash per 1 bit, so it has at least as many
            // as there are trailing 1 bits.
            let left = self.edge.pop().unwrap_or_default();
            h = node_hash(&left, &h);
        }
        self.edge.push(h);
        self.size += 1;
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tree's root hash ([`empty_root`] when empty).
    pub fn root(&self) -> Hash {
        let mut hashes = self.edge.iter().rev();
        let Some(&last) = hashes.next() else {
            return empty_root();
        };
        hashes.fold(last, |acc, left| node_hash(left, &acc))
    }
}
