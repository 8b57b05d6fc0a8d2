//! Properties on random trees of up to 300 leaves: proofs verify, fail when
//! anything is changed, equal the naive RFC 6962 `PATH`/`PROOF`, and read
//! only O(log n) stored hashes; roots equal the naive root and the frontier.

use proptest::prelude::*;

use super::*;

fn arb_tree() -> impl Strategy<Value = (Vec<Hash>, Vec<Hash>)> {
    (1usize..=300, any::<u64>()).prop_map(|(n, seed)| {
        let leaves: Vec<Hash> = (0..n)
            .map(|i| leaf_hash(format!("{seed}/{i}").as_bytes()))
            .collect();
        let stored = store(&leaves);
        (leaves, stored)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn inclusion_round_trip((leaves, stored) in arb_tree(), pick in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>()) {
        let n = leaves.len() as u64;
        let i = pick.index(leaves.len());
        let index = i as u64;
        let root = tree_hash(n, &stored).unwrap();
        let reader = counting(&stored);
        let proof = prove_inclusion(n, index, &reader).unwrap();
        prop_assert!(*reader.asked.borrow() <= 2 * bits(n), "read {} hashes", reader.asked.borrow());
        prop_assert_eq!(&proof, &naive_path(i, &leaves));
        prop_assert!(verify_inclusion(&proof, n, &root, index, &leaves[i]).is_ok());
        let other = leaf_hash(b"not in the log");
        prop_assert!(verify_inclusion(&proof, n, &root, index, &other).is_err());
        prop_assert!(verify_inclusion(&proof, n, &empty_root(), index, &leaves[i]).is_err());
        if n > 1 {
            let j = (i + 1) % leaves.len();
            prop_assert!(verify_inclusion(&proof, n, &root, j as u64, &leaves[i]).is_err());
            let mut bad = proof.clone();
            bad[flip.index(proof.len())][31] ^= 1;
            prop_assert!(verify_inclusion(&bad, n, &root, index, &leaves[i]).is_err());
        }
    }

    #[test]
    fn consistency_round_trip((leaves, stored) in arb_tree(), pick in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>()) {
        let n = leaves.len() as u64;
        let m = pick.index(leaves.len() + 1);
        let old = m as u64;
        let (old_root, new_root) = (tree_hash(old, &stored).unwrap(), tree_hash(n, &stored).unwrap());
        let reader = counting(&stored);
        let proof = prove_consistency(n, old, &reader).unwrap();
        prop_assert!(*reader.asked.borrow() <= 2 * bits(n), "read {} hashes", reader.asked.borrow());
        if m > 0 && old < n {
            prop_assert_eq!(&proof, &naive_subproof(m, &leaves, true));
        }
        prop_assert!(verify_consistency(&proof, n, &new_root, old, &old_root).is_ok());
        if !proof.is_empty() {
            let mut bad = proof.clone();
            bad[flip.index(proof.len())][0] ^= 0x80;
            prop_assert!(verify_consistency(&bad, n, &new_root, old, &old_root).is_err());
            let wrong = leaf_hash(b"forked");
            prop_assert!(verify_consistency(&proof, n, &new_root, old, &wrong).is_err());
            prop_assert!(verify_consistency(&proof, n, &wrong, old, &old_root).is_err());
        }
    }

    #[test]
    fn roots_match_naive_and_frontier((leaves, stored) in arb_tree(), pick in any::<prop::sample::Index>()) {
        let n = leaves.len();
        let k = pick.index(n) + 1;
        prop_assert_eq!(tree_hash(k as u64, &stored).unwrap(), naive_root(&leaves[..k]));
        prop_assert_eq!(tree_hash(n as u64, &stored).unwrap(), naive_root(&leaves));
        let mut frontier = Frontier::default();
        prop_assert_eq!(frontier.root(), empty_root());
        for k in 1..=leaves.len() {
            frontier.push(leaves[k - 1]);
            let reader = counting(&stored);
            let root = tree_hash(k as u64, &reader).unwrap();
            prop_assert!(*reader.asked.borrow() <= bits(k as u64));
            prop_assert_eq!(frontier.root(), root);
            prop_assert_eq!(frontier.size(), k as u64);
            prop_assert_eq!(&Frontier::from_stored(k as u64, &stored).unwrap(), &frontier);
        }
    }
}
