//! `jisr audit verify DIR…`: log directories or archives checked offline.
//! One directory prints as it always did; several are the logs of several
//! nodes (each named by its log's origin, `<trust-domain>/jisr/<node>`),
//! checked one by one, each line prefixed with its node, then one verdict
//! line per node. Two directories of the same node are refused: which of
//! them is the deployment's log is the auditor's call, not this command's.

use super::{b64, read_verifier};
use crate::audit::{self, note::NoteVerifier, verify::Report};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Verifies `dirs` with the published `keys` (each matched to the
/// directory whose log has its name); `false` when any does not verify.
pub(super) fn verify(dirs: &[PathBuf], keys: &[PathBuf]) -> anyhow::Result<bool> {
    let keys = keys
        .iter()
        .map(|k| read_verifier(k))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let [dir] = dirs {
        anyhow::ensure!(
            keys.len() <= 1,
            "{} --key files for one directory: give the node's published key once",
            keys.len()
        );
        let report = audit::verify::verify(dir, keys.into_iter().next());
        print_report(dir, &report, "");
        return Ok(report.ok());
    }
    let nodes = nodes_of(dirs)?;
    let mut failed = Vec::new();
    for (origin, dir) in &nodes {
        let node = origin.rsplit('/').next().unwrap_or(origin);
        let key = if keys.is_empty() {
            None
        } else {
            Some(keys.iter().find(|k| k.name() == origin).cloned().ok_or_else(|| {
                anyhow::anyhow!("no --key is named `{origin}` (the origin of {}); give the published key of every node, or none", dir.display())
            })?)
        };
        let report = audit::verify::verify(dir, key);
        print_report(dir, &report, &format!("[{node}] "));
        if !report.ok() {
            failed.push(node.to_owned());
        }
    }
    for (origin, dir) in &nodes {
        let node = origin.rsplit('/').next().unwrap_or(origin);
        if failed.iter().any(|f| f == node) {
            println!("FAIL {node}: {} does not verify (problems above, prefixed [{node}]); keep it as it is for the investigation and restore the node's log from its archive or backup", dir.display());
        } else {
            println!("OK {node}: {} verifies", dir.display());
        }
    }
    match failed.len() {
        0 => println!("OK: the logs of {} nodes verify", nodes.len()),
        n => println!(
            "FAIL: {n} of {} nodes do not verify: {}",
            nodes.len(),
            failed.join(", ")
        ),
    }
    Ok(failed.is_empty())
}

/// Each directory by its log's origin; two directories of one node are
/// refused before anything is checked.
fn nodes_of(dirs: &[PathBuf]) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut nodes: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in dirs {
        let origin = origin_of(dir)?;
        if let Some(other) = nodes.get(&origin) {
            anyhow::bail!(
                "{} and {} both hold the log of `{origin}`: verify one directory per node (a node's live log and its archive one at a time)",
                other.display(),
                dir.display()
            );
        }
        nodes.insert(origin, dir.clone());
    }
    Ok(nodes)
}

/// The log's origin: its `verifier.key`'s name, or its latest checkpoint's
/// first line.
fn origin_of(dir: &Path) -> anyhow::Result<String> {
    if let Ok(text) = std::fs::read_to_string(dir.join("verifier.key")) {
        if let Ok(v) = NoteVerifier::from_text(text.trim()) {
            return Ok(v.name().to_owned());
        }
    }
    std::fs::read_to_string(dir.join("checkpoint"))
        .ok()
        .and_then(|t| t.lines().next().map(str::to_owned))
        .filter(|l| !l.is_empty())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{}: neither verifier.key nor checkpoint names the node; is it a Jisr audit log directory?",
                dir.display()
            )
        })
}

/// Prints one directory's report, each line after `prefix`.
fn print_report(dir: &Path, report: &Report, prefix: &str) {
    for note in &report.notes {
        println!("{prefix}note: {note}");
    }
    match &report.latest {
        Some(c) if report.archive => println!(
            "{prefix}archive: {} entries (sealed segments), {} of {} checkpoints checked against them; latest checkpoint: size {} root {}{}",
            report.entries,
            report.checkpoints,
            report.checkpoints + report.uncovered.len(),
            c.size,
            b64(&c.root),
            if c.size > report.entries {
                format!(
                    "; entries {}..{} not in the archive (tail segment)",
                    report.entries, c.size
                )
            } else {
                String::new()
            }
        ),
        Some(c) => println!(
            "{prefix}{} entries, {} checkpoints checked; latest checkpoint: size {} root {}",
            report.entries,
            report.checkpoints,
            c.size,
            b64(&c.root)
        ),
        None => println!("{prefix}{} entries, no checkpoint yet", report.entries),
    }
    if report.ok() && report.archive {
        println!(
            "{prefix}OK: the archive {} verifies: {} entries, checked against the checkpoint of size {}",
            dir.display(),
            report.entries,
            report.covered
        );
    } else if report.ok() {
        println!("{prefix}OK: {} verifies", dir.display());
    } else {
        for problem in &report.problems {
            println!("{prefix}FAIL: {problem}");
        }
    }
}
