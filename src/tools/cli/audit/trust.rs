//! A reader's trust policy for witnessed checkpoints: the witnesses whose
//! cosignatures count, and how many must have cosigned (k of n). Read by
//! `jisr audit check-receipt --trust`; docs/witness.md ("Trust policy").
//!
//! ```toml
//! quorum = 2
//! witnesses = [
//!   "witness.cndp.ma/jisr+1a2b3c4d+BA…",
//!   "witness.courdescomptes.ma/jisr+5e6f7a8b+BA…",
//! ]
//! ```

use std::path::Path;

use crate::audit::note::CosignatureVerifier;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    quorum: usize,
    witnesses: Vec<String>,
}

/// The witnesses trusted and the quorum.
#[derive(Debug)]
pub(super) struct Policy {
    quorum: usize,
    witnesses: Vec<CosignatureVerifier>,
}

impl Policy {
    /// Reads a policy file, saying what is wrong with it.
    pub(super) fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read the trust policy {}: {e}", path.display()))?;
        let file: PolicyFile = toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{} is not a trust policy ({e}); write `quorum = <k>` and `witnesses = [\"<verifier key>\", …]`",
                path.display()
            )
        })?;
        let mut witnesses = Vec::with_capacity(file.witnesses.len());
        for (n, key) in file.witnesses.iter().enumerate() {
            let verifier = CosignatureVerifier::from_text(key).map_err(|e| {
                anyhow::anyhow!(
                    "{}: witness {} is not a cosignature verifier key ({e}); paste the line `jisr witness verifier` prints",
                    path.display(),
                    n + 1
                )
            })?;
            witnesses.push(verifier);
        }
        anyhow::ensure!(
            (1..=witnesses.len()).contains(&file.quorum),
            "{}: quorum {} must be from 1 to the {} witness(es) listed",
            path.display(),
            file.quorum,
            witnesses.len()
        );
        Ok(Policy {
            quorum: file.quorum,
            witnesses,
        })
    }

    /// Checks the cosignatures on a checkpoint note whose log signature
    /// was verified (`text` is its body): prints one line per trusted
    /// witness; `Ok` with the count when at least the quorum cosigned.
    pub(super) fn check(&self, note: &str, text: &str) -> anyhow::Result<usize> {
        let signatures = &note[text.len()..];
        let signatures = signatures.strip_prefix('\n').unwrap_or(signatures);
        let mut cosigned = 0;
        for witness in &self.witnesses {
            match witness.verify(text, signatures) {
                Ok((_, time)) => {
                    cosigned += 1;
                    println!(
                        "  cosigned by {} (at {time}, POSIX seconds)",
                        witness.name()
                    );
                }
                Err(crate::audit::note::NoteError::NotSigned(_)) => {
                    println!("  not cosigned by {}", witness.name());
                }
                Err(e) => anyhow::bail!("a cosignature does not verify: {e}"),
            }
        }
        anyhow::ensure!(
            cosigned >= self.quorum,
            "the checkpoint is cosigned by {cosigned} trusted witness(es); the policy asks for {} (a receipt proved before its checkpoint was witnessed: fetch it again later)",
            self.quorum
        );
        Ok(cosigned)
    }
}
