//! Tests for the Merkle tree: known answers ([`kat`]) and properties
//! checked against a naive RFC 6962 implementation ([`props`]); the shared
//! helpers live here.

mod kat;
mod props;

use std::cell::RefCell;

use super::*;

fn h(hex: &str) -> Hash {
    let bytes = unhex(hex);
    bytes.try_into().expect("32-byte hash")
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect()
}

/// Builds the stored-hash sequence for `leaves`, checking the layout as it
/// goes: each leaf's hashes land where [`stored_hash_index`] says and the
/// sequence length is always [`stored_hash_count`].
fn store(leaves: &[Hash]) -> Vec<Hash> {
    let mut stored = Vec::new();
    for (n, leaf) in (0u64..).zip(leaves) {
        assert_eq!(stored.len() as u64, stored_hash_count(n));
        assert_eq!(
            stored_hash_index(0, n),
            stored_hash_count(n),
            "leaf {n} goes first"
        );
        let new = stored_hashes_for_leaf(n, *leaf, &stored).unwrap();
        for (level, hash) in (0u32..).zip(&new) {
            // The subtree at `level` ending with leaf n.
            assert_eq!(
                stored_hash_index(level, n >> level),
                stored.len() as u64 + u64::from(level)
            );
            assert_eq!(
                ((n + 1) >> level) << level,
                n + 1,
                "only completed subtrees are stored"
            );
            let first = usize::try_from((n >> level) << level).unwrap();
            let last = usize::try_from(n).unwrap();
            assert_eq!(*hash, naive_root(&leaves[first..=last]));
        }
        stored.extend(new);
    }
    assert_eq!(stored.len() as u64, stored_hash_count(leaves.len() as u64));
    stored
}

// --- A naive RFC 6962 §2.1 implementation to compare against. ---

fn naive_split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn naive_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = naive_split(n);
            node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
        }
    }
}

fn naive_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = naive_split(n);
    let (mut path, sibling) = if m < k {
        (naive_path(m, &leaves[..k]), naive_root(&leaves[k..]))
    } else {
        (naive_path(m - k, &leaves[k..]), naive_root(&leaves[..k]))
    };
    path.push(sibling);
    path
}

fn naive_subproof(m: usize, leaves: &[Hash], whole: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if whole {
            Vec::new()
        } else {
            vec![naive_root(leaves)]
        };
    }
    let k = naive_split(n);
    let (mut proof, sibling) = if m <= k {
        (
            naive_subproof(m, &leaves[..k], whole),
            naive_root(&leaves[k..]),
        )
    } else {
        (
            naive_subproof(m - k, &leaves[k..], false),
            naive_root(&leaves[..k]),
        )
    };
    proof.push(sibling);
    proof
}

/// A reader that records what it was asked for and insists on increasing
/// order, as a file-backed reader would like.
struct Counting<'a> {
    inner: &'a [Hash],
    asked: RefCell<usize>,
}

impl HashReader for Counting<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, MerkleError> {
        assert!(
            indexes.windows(2).all(|w| w[0] < w[1]),
            "indexes out of order: {indexes:?}"
        );
        *self.asked.borrow_mut() += indexes.len();
        self.inner.read_hashes(indexes)
    }
}

fn counting(inner: &[Hash]) -> Counting<'_> {
    Counting {
        inner,
        asked: RefCell::new(0),
    }
}

fn bits(n: u64) -> usize {
    (u64::BITS - n.leading_zeros()) as usize
}
