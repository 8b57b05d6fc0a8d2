//! Checking `tree.hashes` against the entries while they are replayed:
//! every stored hash (the leaves' and every subtree's), read in the order
//! they were appended, so one altered byte anywhere in the file is found
//! with one sequential read of it.

use crate::audit::merkle::{self, Hash};
use std::fs::File;
use std::io::{BufReader, Read as _};
use std::path::Path;

/// The comparison so far.
#[derive(Debug)]
pub(crate) struct StoredCheck {
    /// The tree's right edge, rebuilt from the entries alone: the hash of
    /// each perfect subtree with its height, left to right.
    edge: Vec<(u32, Hash)>,
    file: Option<BufReader<File>>,
    /// Whole hashes the file holds.
    count: u64,
    /// Hashes compared so far.
    read: u64,
    /// The first entry whose stored hashes differ from the entries'.
    pub(crate) first_bad: Option<u64>,
    /// The last such entry.
    pub(crate) last_bad: Option<u64>,
}

impl StoredCheck {
    /// Starts comparing with the file at `path` (none: nothing to compare).
    pub(crate) fn open(path: &Path) -> Self {
        let file = File::open(path).ok();
        let count = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len() / 32);
        Self {
            edge: Vec::new(),
            file: file.map(|f| BufReader::with_capacity(1 << 20, f)),
            count,
            read: 0,
            first_bad: None,
            last_bad: None,
        }
    }

    /// Adds entry `n` with leaf hash `leaf` and compares the stored hashes
    /// it adds with the file's; a file that ends early is not a
    /// difference (the hashes are rebuilt at start). The hashes compared
    /// are made from the entries alone, so comparing goes on after a
    /// difference: one altered hash does not hide the others.
    pub(crate) fn leaf(&mut self, n: u64, leaf: Hash) {
        if self.read >= self.count {
            return;
        }
        let stored = self.add_leaf(leaf);
        let Some(file) = self.file.as_mut() else {
            return;
        };
        for h in stored {
            if self.read >= self.count {
                return;
            }
            let mut have = [0u8; 32];
            if file.read_exact(&mut have).is_err() {
                self.count = self.read;
                return;
            }
            self.read += 1;
            if have != h {
                self.first_bad.get_or_insert(n);
                self.last_bad = Some(n);
            }
        }
    }

    /// Adds a leaf to the edge; returns the stored hashes it adds, in the
    /// order the writer appends them (`merkle::stored_hashes_for_leaf`):
    /// the leaf's, then each subtree it completes, smallest first.
    fn add_leaf(&mut self, leaf: Hash) -> Vec<Hash> {
        let mut h = leaf;
        let mut out = vec![h];
        let mut height = 0;
        while let Some(&(top, left)) = self.edge.last() {
            if top != height {
                break;
            }
            self.edge.pop();
            h = merkle::node_hash(&left, &h);
            out.push(h);
            height += 1;
        }
        self.edge.push((height, h));
        out
    }

    /// How many entries have all their stored hashes in the file: the
    /// writer appends them only once the entries are durable, just before
    /// acknowledging them.
    pub(crate) fn hashed_entries(&self) -> u64 {
        // stored_hash_count grows with n: the largest n it fits.
        let (mut lo, mut hi) = (0u64, self.count + 1);
        while lo + 1 < hi {
            let mid = lo + (hi - lo) / 2;
            if merkle::stored_hash_count(mid) <= self.count {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    }
}
