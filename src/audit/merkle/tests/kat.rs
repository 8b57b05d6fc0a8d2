//! Known answers. The 8-leaf RFC 6962 vectors (`testdata/rfc6962.txt`) are
//! the ones transparency-dev/merkle tests with (`proof/verify_test.go`, from
//! the Certificate Transparency reference code), probed with the same
//! corruptions; the stored-hash layout values follow the layout documented
//! in Go's `golang.org/x/mod/sumdb/tlog`.

use super::*;

type Path = (u64, u64, Vec<Hash>);

/// The parsed `testdata/rfc6962.txt`.
#[derive(Default)]
struct Vectors {
    leaves: Vec<Hash>,
    roots: Vec<Hash>,
    inclusion: Vec<Path>,
    consistency: Vec<Path>,
}

fn vectors() -> Vectors {
    let mut v = Vectors::default();
    for line in include_str!("../../testdata/rfc6962.txt").lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| -> u64 { words[i].parse().expect("number") };
        let hashes = |from: usize| -> Vec<Hash> { words[from..].iter().map(|w| h(w)).collect() };
        match words.first().copied() {
            Some("leaf") => v
                .leaves
                .push(leaf_hash(&unhex(words[1].trim_start_matches('-')))),
            Some("root") => {
                assert_eq!(num(1), v.roots.len() as u64 + 1, "roots in order");
                v.roots.push(h(words[2]));
            }
            Some("inclusion") => v.inclusion.push((num(1), num(2), hashes(3))),
            Some("consistency") => v.consistency.push((num(1), num(2), hashes(3))),
            _ => assert!(
                line.is_empty() || line.starts_with('#'),
                "bad line {line:?}"
            ),
        }
    }
    assert_eq!((v.leaves.len(), v.roots.len()), (8, 8));
    v
}

fn kat_store() -> (Vectors, Vec<Hash>) {
    let v = vectors();
    let stored = store(&v.leaves);
    (v, stored)
}

#[test]
fn basic_hashes() {
    assert_eq!(
        empty_root(),
        h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
    assert_eq!(leaf_hash(b""), vectors().roots[0]);
}

#[test]
fn stored_hash_layout() {
    // leaf0 leaf1 [0..2) leaf2 leaf3 [2..4) [0..4) leaf4 …
    let expected = [
        (0, 0, 0),
        (0, 1, 1),
        (1, 0, 2),
        (0, 2, 3),
        (0, 3, 4),
        (1, 1, 5),
        (2, 0, 6),
        (0, 4, 7),
    ];
    for (level, n, index) in expected {
        assert_eq!(stored_hash_index(level, n), index, "level {level} n {n}");
    }
    let counts = [0, 1, 3, 4, 7, 8, 10, 11, 15];
    for (n, count) in (0u64..).zip(counts) {
        assert_eq!(stored_hash_count(n), count, "n {n}");
    }
}

#[test]
fn known_roots() {
    let (v, stored) = kat_store();
    let mut frontier = Frontier::default();
    assert_eq!(tree_hash(0, &stored).unwrap(), empty_root());
    for (n, root) in (1u64..).zip(v.roots) {
        frontier.push(v.leaves[n as usize - 1]);
        assert_eq!(tree_hash(n, &stored).unwrap(), root, "size {n}");
        assert_eq!(frontier.root(), root, "frontier size {n}");
        assert_eq!(Frontier::from_stored(n, &stored).unwrap(), frontier);
    }
}

#[test]
fn known_inclusion_proofs() {
    let (v, stored) = kat_store();
    for (index, size, want) in v.inclusion {
        assert_eq!(
            prove_inclusion(size, index, &stored).unwrap(),
            want,
            "leaf {index} size {size}"
        );
        let root = v.roots[size as usize - 1];
        let leaf = v.leaves[index as usize];
        verify_inclusion(&want, size, &root, index, &leaf).unwrap();
        for (what, bad) in corrupt_inclusion(&want, size, index, root, leaf) {
            let (proof, size, root, index, leaf) = bad;
            assert!(
                verify_inclusion(&proof, size, &root, index, &leaf).is_err(),
                "accepted {what}"
            );
        }
    }
}

type InclusionProbe = (Vec<Hash>, u64, Hash, u64, Hash);

/// The corruptions transparency-dev/merkle probes its verifier with.
fn corrupt_inclusion(
    proof: &[Hash],
    size: u64,
    index: u64,
    root: Hash,
    leaf: Hash,
) -> Vec<(String, InclusionProbe)> {
    let p = proof.to_vec();
    let with = |f: &dyn Fn(&mut Vec<Hash>)| {
        let mut q = p.clone();
        f(&mut q);
        q
    };
    let mut probes = vec![
        (
            "index - 1",
            (p.clone(), size, root, index.wrapping_sub(1), leaf),
        ),
        ("index + 1", (p.clone(), size, root, index + 1, leaf)),
        ("index ^ 2", (p.clone(), size, root, index ^ 2, leaf)),
        ("size * 2", (p.clone(), size * 2, root, index, leaf)),
        ("size / 2", (p.clone(), size / 2, root, index, leaf)),
        (
            "wrong leaf",
            (p.clone(), size, root, index, leaf_hash(b"WrongLeaf")),
        ),
        ("empty root", (p.clone(), size, empty_root(), index, leaf)),
        (
            "trailing root",
            (with(&|q| q.push(root)), size, root, index, leaf),
        ),
        (
            "preceding root",
            (with(&|q| q.insert(0, root)), size, root, index, leaf),
        ),
    ]
    .into_iter()
    .map(|(w, probe)| (w.to_owned(), probe))
    .collect::<Vec<_>>();
    for i in 0..p.len() {
        probes.push((
            format!("flipped proof[{i}]"),
            (with(&|q| q[i][0] ^= 8), size, root, index, leaf),
        ));
    }
    if !p.is_empty() {
        probes.push((
            "removed component".into(),
            (
                with(&|q| {
                    q.pop();
                }),
                size,
                root,
                index,
                leaf,
            ),
        ));
    }
    probes
}

#[test]
fn known_consistency_proofs() {
    let (v, stored) = kat_store();
    for (old, new, want) in v.consistency {
        assert_eq!(
            prove_consistency(new, old, &stored).unwrap(),
            want,
            "{old} -> {new}"
        );
        let (old_root, new_root) = (v.roots[old as usize - 1], v.roots[new as usize - 1]);
        verify_consistency(&want, new, &new_root, old, &old_root).unwrap();
        if want.is_empty() {
            continue;
        }
        let mut probes: Vec<(Vec<Hash>, u64, Hash, u64, Hash)> = vec![
            (want.clone(), new, new_root, old - 1, old_root),
            (want.clone(), new, new_root, old + 1, old_root),
            (want.clone(), new, new_root, old ^ 2, old_root),
            (want.clone(), new * 2, new_root, old, old_root),
            (want.clone(), new / 2, new_root, old, old_root),
            (want.clone(), new, new_root, old, empty_root()),
            (want.clone(), new, empty_root(), old, old_root),
            (want.clone(), new, old_root, old, new_root),
            (Vec::new(), new, new_root, old, old_root),
            (
                [want.clone(), vec![old_root]].concat(),
                new,
                new_root,
                old,
                old_root,
            ),
            (
                [want.clone(), vec![new_root]].concat(),
                new,
                new_root,
                old,
                old_root,
            ),
            (
                [vec![old_root], want.clone()].concat(),
                new,
                new_root,
                old,
                old_root,
            ),
            (
                [vec![new_root], want.clone()].concat(),
                new,
                new_root,
                old,
                old_root,
            ),
            (
                [vec![want[0]], want.clone()].concat(),
                new,
                new_root,
                old,
                old_root,
            ),
            (
                want[..want.len() - 1].to_vec(),
                new,
                new_root,
                old,
                old_root,
            ),
        ];
        for i in 0..want.len() {
            let mut bad = want.clone();
            bad[i][0] ^= 16;
            probes.push((bad, new, new_root, old, old_root));
        }
        for (k, (proof, new, new_root, old, old_root)) in probes.into_iter().enumerate() {
            assert!(
                verify_consistency(&proof, new, &new_root, old, &old_root).is_err(),
                "probe {k} accepted"
            );
        }
    }
}

#[test]
fn trivial_consistency() {
    let (a, b) = (leaf_hash(b"a"), leaf_hash(b"b"));
    verify_consistency(&[], 0, &empty_root(), 0, &empty_root()).unwrap();
    verify_consistency(&[], 1, &a, 0, &empty_root()).unwrap();
    verify_consistency(&[], 1, &a, 1, &a).unwrap();
    assert!(verify_consistency(&[], 1, &a, 1, &b).is_err());
    assert!(verify_consistency(&[], 1, &a, 0, &b).is_err());
    assert!(verify_consistency(&[empty_root()], 1, &a, 1, &a).is_err());
    assert!(
        verify_consistency(&[], 1, &a, 2, &b).is_err(),
        "time travel"
    );
    assert!(
        verify_consistency(&[], 2, &a, 1, &b).is_err(),
        "empty proof"
    );
    assert!(verify_inclusion(&[], 0, &a, 0, &a).is_err());
    assert!(verify_inclusion(&[], 1, &a, 1, &a).is_err());
}

#[test]
fn reader_errors_are_errors() {
    let (_, stored) = kat_store();
    let short = &stored[..5];
    assert!(matches!(tree_hash(8, short), Err(MerkleError::Read(_))));
    assert!(matches!(
        prove_inclusion(8, 7, short),
        Err(MerkleError::Read(_))
    ));
    assert!(matches!(
        prove_consistency(8, 3, short),
        Err(MerkleError::Read(_))
    ));
    assert!(matches!(
        prove_inclusion(8, 8, &stored),
        Err(MerkleError::IndexOutOfRange { index: 8, size: 8 })
    ));
    assert!(matches!(
        prove_consistency(3, 8, &stored),
        Err(MerkleError::BadSizes { old: 8, new: 3 })
    ));
    assert!(Frontier::from_stored(8, short).is_err());
}
