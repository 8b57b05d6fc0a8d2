//! Receipts exported in the C2SP tlog-proof form (`jisr audit prove
//! --format tlog-proof`) and checked offline by `jisr audit check-receipt`
//! against the node's key and a trust policy: a good proof passes; one
//! flipped bit in the entry, the inclusion path, the checkpoint or a
//! cosignature fails, saying which; a policy needing two witnesses fails
//! with one cosignature. Run from `witnessing.rs`, whose gateway has two
//! witnesses.

use crate::support::proc::jisr;
use crate::support::Pki;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use std::path::Path;

/// `text` with one bit flipped in the base64 value of line `line`, after
/// the `skip` characters that precede the value, at byte `byte` of it.
fn flip(text: &str, line: usize, skip: usize, byte: usize) -> String {
    let mut lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
    let (head, value) = lines[line].split_at(skip);
    let mut bytes = B64.decode(value).unwrap();
    bytes[byte] ^= 0x01;
    lines[line] = format!("{head}{}", B64.encode(bytes));
    lines.join("\n")
}

fn check(proof: &Path, key: &Path, trust: &Path) -> (bool, String) {
    let out = jisr()
        .args(["audit", "check-receipt"])
        .arg(proof)
        .arg("--key")
        .arg(key)
        .arg("--trust")
        .arg(trust)
        .output()
        .unwrap();
    crate::support::outcome(&out)
}

/// Exports entry 1 of the gateway at `addr` as a tlog-proof and checks it
/// and its altered copies; `key` is the node's verifier key file, `both`
/// a policy of quorum 2 over the two witnesses that cosigned.
pub(crate) fn tlog_proofs_check_offline(addr: &str, pki: &Pki, key: &Path, both: &Path) {
    let proof = pki.root().join("entry-1.tlog-proof");
    let out = jisr()
        .args(["audit", "prove", "--gateway", addr, "--pki"])
        .arg(&pki.dir)
        .args(["--as", "cndp", "1", "--format", "tlog-proof", "--out"])
        .arg(&proof)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&proof).unwrap();
    assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra "), "{text}");
    assert!(text.contains("\nindex 1\n"), "{text}");
    let (ok, said) = check(&proof, key, both);
    assert!(
        ok && said.contains("OK: entry 1") && said.contains("cosigned by 2 trusted witness(es)"),
        "{said}"
    );

    // The checkpoint starts after the first empty line: origin, size, root.
    let lines: Vec<&str> = text.split('\n').collect();
    let blank = lines.iter().position(|l| l.is_empty()).unwrap();
    let cosignature = lines.len() - 2; // the last line before the final newline
    let altered = [
        (
            "entry",
            flip(&text, 1, "extra ".len(), 0),
            "the inclusion proof does not verify",
        ),
        (
            "path",
            flip(&text, 3, 0, 5),
            "the inclusion proof does not verify",
        ),
        (
            "checkpoint",
            flip(&text, blank + 3, 0, 0),
            "the checkpoint's signature does not verify",
        ),
        // Past the name: the key id (4 bytes) and time (8) stay, the
        // signature changes.
        (
            "cosignature",
            flip(
                &text,
                cosignature,
                lines[cosignature].rfind(' ').unwrap() + 1,
                20,
            ),
            "a cosignature does not verify",
        ),
    ];
    for (what, bad, says) in altered {
        std::fs::write(&proof, &bad).unwrap();
        let (ok, said) = check(&proof, key, both);
        assert!(
            !ok && said.contains("FAIL") && said.contains(says),
            "{what}: {said}"
        );
    }

    // One cosignature dropped: a policy needing both refuses the proof.
    let one = format!("{}\n", lines[..cosignature].join("\n"));
    std::fs::write(&proof, one).unwrap();
    let (ok, said) = check(&proof, key, both);
    assert!(
        !ok && said.contains("cosigned by 1 trusted witness(es); the policy asks for 2"),
        "{said}"
    );
}
