//! RFC 9162 inclusion and consistency proofs: built from stored hashes
//! (reading only the O(log n) subtree hashes a proof needs, as Go's tlog
//! `ProveRecord`/`ProveTree` do) and checked with the RFC 9162 §2.1.3.2 and
//! §2.1.4.2 algorithms, so the two sides share no code.

use super::{
    empty_root, node_hash, read_exact, split, subtree_hash, subtree_indexes, Hash, HashReader,
    MerkleError,
};

/// The RFC 9162 inclusion proof (audit path, leaf to root) of leaf `index`
/// in the tree of the first `size` leaves.
pub fn prove_inclusion(
    size: u64,
    index: u64,
    r: &(impl HashReader + ?Sized),
) -> Result<Vec<Hash>, MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let mut indexes = Vec::new();
    inclusion_indexes(0, size, index, &mut indexes);
    let hashes = read_exact(r, &indexes)?;
    let (proof, rest) = inclusion_path(0, size, index, &hashes);
    debug_assert!(rest.is_empty());
    Ok(proof)
}

/// The stored-hash indexes [`inclusion_path`] consumes, in the order it
/// consumes them (which is increasing index order).
fn inclusion_indexes(lo: u64, hi: u64, index: u64, need: &mut Vec<u64>) {
    if lo + 1 == hi {
        return;
    }
    let (k, _) = split(hi - lo);
    if index < lo + k {
        inclusion_indexes(lo, lo + k, index, need);
        subtree_indexes(lo + k, hi, need);
    } else {
        subtree_indexes(lo, lo + k, need);
        inclusion_indexes(lo + k, hi, index, need);
    }
}

/// RFC 6962 `PATH(index, D[lo:hi])`: the sibling subtree at each split,
/// deepest first.
fn inclusion_path(lo: u64, hi: u64, index: u64, hashes: &[Hash]) -> (Vec<Hash>, &[Hash]) {
    if lo + 1 == hi {
        return (Vec::new(), hashes);
    }
    let (k, _) = split(hi - lo);
    let (mut path, sibling, rest) = if index < lo + k {
        let (path, rest) = inclusion_path(lo, lo + k, index, hashes);
        let (sibling, rest) = subtree_hash(lo + k, hi, rest);
        (path, sibling, rest)
    } else {
        let (sibling, rest) = subtree_hash(lo, lo + k, hashes);
        let (path, rest) = inclusion_path(lo + k, hi, index, rest);
        (path, sibling, rest)
    };
    path.push(sibling);
    (path, rest)
}

/// Checks an RFC 9162 inclusion proof that `leaf` (a leaf hash) is leaf
/// `index` of the tree of `size` leaves with root `root`.
pub fn verify_inclusion(
    proof: &[Hash],
    size: u64,
    root: &Hash,
    index: u64,
    leaf: &Hash,
) -> Result<(), MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    // RFC 9162 §2.1.3.2, step for step.
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err(MerkleError::BadProof {
                what: "inclusion proof too long",
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(MerkleError::BadProof {
            what: "inclusion proof too short",
        });
    }
    if r != *root {
        return Err(MerkleError::BadProof {
            what: "inclusion proof leads to another root",
        });
    }
    Ok(())
}

/// The RFC 9162 consistency proof that the tree of `old_size` leaves is a
/// prefix of the tree of `new_size` leaves. Empty when `old_size` is 0 or
/// equals `new_size` (nothing to prove).
pub fn prove_consistency(
    new_size: u64,
    old_size: u64,
    r: &(impl HashReader + ?Sized),
) -> Result<Vec<Hash>, MerkleError> {
    if old_size > new_size {
        return Err(MerkleError::BadSizes {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == 0 || old_size == new_size {
        return Ok(Vec::new());
    }
    let mut indexes = Vec::new();
    consistency_indexes(0, new_size, old_size, &mut indexes);
    let hashes = read_exact(r, &indexes)?;
    let (proof, rest) = consistency_path(0, new_size, old_size, &hashes);
    debug_assert!(rest.is_empty());
    Ok(proof)
}

/// The stored-hash indexes [`consistency_path`] consumes, in order.
fn consistency_indexes(lo: u64, hi: u64, old: u64, need: &mut Vec<u64>) {
    if old == hi {
        // The old tree's subtree at this node is whole: RFC 6962 includes
        // its hash, except at the top where the verifier already has it.
        if lo != 0 {
            subtree_indexes(lo, hi, need);
        }
        return;
    }
    let (k, _) = split(hi - lo);
    if old <= lo + k {
        consistency_indexes(lo, lo + k, old, need);
        subtree_indexes(lo + k, hi, need);
    } else {
        subtree_indexes(lo, lo + k, need);
        consistency_indexes(lo + k, hi, old, need);
    }
}

/// RFC 6962 `SUBPROOF(old, D[lo:hi], lo == 0)`.
fn consistency_path(lo: u64, hi: u64, old: u64, hashes: &[Hash]) -> (Vec<Hash>, &[Hash]) {
    if old == hi {
        if lo == 0 {
            return (Vec::new(), hashes);
        }
        let (h, rest) = subtree_hash(lo, hi, hashes);
        return (vec![h], rest);
    }
    let (k, _) = split(hi - lo);
    let (mut path, sibling, rest) = if old <= lo + k {
        let (path, rest) = consistency_path(lo, lo + k, old, hashes);
        let (sibling, rest) = subtree_hash(lo + k, hi, rest);
        (path, sibling, rest)
    } else {
        let (sibling, rest) = subtree_hash(lo, lo + k, hashes);
        let (path, rest) = consistency_path(lo + k, hi, old, rest);
        (path, sibling, rest)
    };
    path.push(sibling);
    (path, rest)
}

/// Checks an RFC 9162 consistency proof that the tree of `old_size` leaves
/// with root `old_root` is a prefix of the tree of `new_size` leaves with
/// root `new_root`.
///
/// Equal sizes need an empty proof and equal roots; an old size of 0 needs
/// an empty proof and `old_root` equal to [`empty_root`].
pub fn verify_consistency(
    proof: &[Hash],
    new_size: u64,
    new_root: &Hash,
    old_size: u64,
    old_root: &Hash,
) -> Result<(), MerkleError> {
    if old_size > new_size {
        return Err(MerkleError::BadSizes {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == new_size || old_size == 0 {
        return verify_trivial_consistency(proof, new_root, old_size, old_root);
    }
    // RFC 9162 §2.1.4.2, step for step.
    let Some((&first, rest)) = proof.split_first() else {
        return Err(MerkleError::BadProof {
            what: "empty consistency proof",
        });
    };
    // When the old tree is a complete subtree its root is the path's seed.
    let (seed, path) = if old_size.is_power_of_two() {
        (*old_root, proof)
    } else {
        (first, rest)
    };
    let (fr, sr) = consistency_roots(seed, path, old_size, new_size)?;
    if fr != *old_root {
        return Err(MerkleError::BadProof {
            what: "consistency proof does not lead to the old root",
        });
    }
    if sr != *new_root {
        return Err(MerkleError::BadProof {
            what: "consistency proof does not lead to the new root",
        });
    }
    Ok(())
}

/// Equal sizes, or an empty old tree: nothing to prove, so the proof must
/// be empty and the old root the one it must be.
fn verify_trivial_consistency(
    proof: &[Hash],
    new_root: &Hash,
    old_size: u64,
    old_root: &Hash,
) -> Result<(), MerkleError> {
    if !proof.is_empty() {
        return Err(MerkleError::BadProof {
            what: "consistency proof should be empty",
        });
    }
    let expected = if old_size == 0 {
        empty_root()
    } else {
        *new_root
    };
    if *old_root != expected {
        return Err(MerkleError::BadProof {
            what: "roots differ for trivially consistent sizes",
        });
    }
    Ok(())
}

/// The old and new roots that `path`, from `seed`, leads to (RFC 9162
/// §2.1.4.2, the walk along the path); a path of the wrong length is an error.
fn consistency_roots(
    seed: Hash,
    path: &[Hash],
    old_size: u64,
    new_size: u64,
) -> Result<(Hash, Hash), MerkleError> {
    let (mut fn_, mut sn) = (old_size - 1, new_size - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (seed, seed);
    for c in path {
        if sn == 0 {
            return Err(MerkleError::BadProof {
                what: "consistency proof too long",
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(MerkleError::BadProof {
            what: "consistency proof too short",
        });
    }
    Ok((fr, sr))
}
