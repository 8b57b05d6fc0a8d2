//! A tree held in memory: the stored-hash sequence in a `Vec`. For tools
//! and tests that build small trees of their own (a witness's tests, a
//! fuzz target) without a log directory.

use super::{stored_hashes_for_leaf, tree_hash, Hash, HashReader, MerkleError};

/// The stored hashes of a tree of leaves appended one by one.
#[derive(Debug, Clone, Default)]
pub struct MemoryTree {
    hashes: Vec<Hash>,
    size: u64,
}

impl MemoryTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a leaf (its RFC 6962 leaf hash).
    pub fn push(&mut self, leaf: Hash) {
        let new = stored_hashes_for_leaf(self.size, leaf, self)
            // The siblings leaf n needs are the subtrees before it, all
            // stored by the earlier pushes.
            .expect("the stored hashes before a new leaf are all in memory");
        self.hashes.extend(new);
        self.size += 1;
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The root of the first `n` leaves.
    pub fn root(&self, n: u64) -> Result<Hash, MerkleError> {
        tree_hash(n, self)
    }
}

impl HashReader for MemoryTree {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
        indexes
            .iter()
            .map(|&i| {
                usize::try_from(i)
                    .ok()
                    .and_then(|i| self.hashes.get(i).copied())
                    .ok_or_else(|| MerkleError::Read(format!("no stored hash {i}")))
            })
            .collect()
    }
}
