//! A receipt in the C2SP tlog-proof form (c2sp.org/tlog-proof, `@v1`): a
//! text file anyone can check offline, with any tlog-proof reader.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64 of the entry: the encoded audit record>
//! index <entry index>
//! <inclusion proof, one base64 hash a line, leaf's sibling first>
//!
//! <the checkpoint note, verbatim, cosignature lines included>
//! ```
//!
//! The spec leaves the entry to the application: Jisr puts it in the
//! `extra` line, so the file is self-contained and the verifier recomputes
//! the leaf hash from it. Reading gives back a [`Receipt`], checked by the
//! same code as a JSON receipt (signature, inclusion, trust policy).

use super::receipt::Receipt;

/// The first line of a tlog-proof.
pub(super) const HEADER: &str = "c2sp.org/tlog-proof@v1";

/// The tlog-proof text of `receipt`.
pub(super) fn write(receipt: &Receipt) -> String {
    let mut out = format!(
        "{HEADER}\nextra {}\nindex {}\n",
        receipt.record, receipt.index
    );
    for hash in &receipt.inclusion_proof {
        out.push_str(hash);
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&receipt.checkpoint);
    out
}

/// Reads a tlog-proof, whose checkpoint is to be checked with
/// `verifier_key` (a tlog-proof carries no key: the reader supplies it).
pub(super) fn read(text: &str, verifier_key: String) -> anyhow::Result<Receipt> {
    let (head, checkpoint) = text
        .split_once("\n\n")
        .ok_or_else(|| anyhow::anyhow!("no empty line before the checkpoint"))?;
    let mut lines = head.split('\n');
    anyhow::ensure!(
        lines.next() == Some(HEADER),
        "the first line is not `{HEADER}`"
    );
    let mut line = lines.next();
    let record = match line.and_then(|l| l.strip_prefix("extra ")) {
        Some(extra) => {
            line = lines.next();
            extra.to_owned()
        }
        None => anyhow::bail!("no `extra` line: Jisr's tlog-proofs carry the entry there, and without it the entry cannot be checked; export the receipt again with `jisr audit prove --format tlog-proof`"),
    };
    let index = line
        .and_then(|l| l.strip_prefix("index "))
        .ok_or_else(|| anyhow::anyhow!("no `index <n>` line after `extra`"))?;
    let parsed: u64 = index
        .parse()
        .ok()
        .filter(|n: &u64| n.to_string() == index)
        .ok_or_else(|| anyhow::anyhow!("index `{index}` is not a decimal without leading zeros"))?;
    let inclusion_proof: Vec<String> = lines.map(str::to_owned).collect();
    // The size the proof is for is the checkpoint's (its second line);
    // the signature over it is checked with the rest.
    let tree_size = checkpoint
        .lines()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("the checkpoint has no tree size on its second line"))?;
    Ok(Receipt {
        index: parsed,
        tree_size,
        record,
        inclusion_proof,
        checkpoint: checkpoint.to_owned(),
        verifier_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt() -> Receipt {
        Receipt {
            index: 7,
            tree_size: 9,
            record: "AAEC".into(),
            inclusion_proof: vec!["a".repeat(44), "b".repeat(44)],
            checkpoint: "o\n9\nroot\n\n— o sig\n— w cosig\n".into(),
            verifier_key: "key".into(),
        }
    }

    #[test]
    fn a_proof_reads_back_as_written() {
        let r = receipt();
        let text = write(&r);
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra AAEC\nindex 7\naaaa"));
        let back = read(&text, "key".into()).unwrap();
        assert_eq!(
            (
                back.index,
                back.tree_size,
                back.record,
                back.inclusion_proof
            ),
            (r.index, r.tree_size, r.record, r.inclusion_proof)
        );
        assert_eq!(back.checkpoint, r.checkpoint);
    }

    #[test]
    fn malformed_proofs_say_what_is_wrong() {
        let good = write(&receipt());
        for (bad, says) in [
            (good.replace("@v1", "@v2"), "first line"),
            (good.replace("extra AAEC\n", ""), "no `extra` line"),
            (good.replace("index 7", "index 07"), "leading zeros"),
            (good.replace("index 7", "idx 7"), "no `index"),
            (
                good[..good.find("\n\n").unwrap()].to_owned(),
                "no empty line",
            ),
        ] {
            let e = read(&bad, String::new()).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        }
    }
}
