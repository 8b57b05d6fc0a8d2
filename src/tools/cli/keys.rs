//! `jisr keys init`: the keys every replica of a deployment must share, made
//! once on an admin machine without starting a node: the pseudonym key
//! (`[audit] pseudonym_key`: citizen pseudonyms in the audit log, and the
//! keys that seal what Redis holds about a citizen) and the consent signing
//! key (`[consent] signing_key`, named `<trust-domain>/jisr/consents`). Each
//! replica's audit signing key is not shared: the node makes its own.

use crate::audit::keys::hex;
use crate::audit::note::NoteSigner;
use crate::identity::TrustDomain;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

/// `jisr keys …`.
#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Create the keys every replica shares (pseudonym.key,
    /// consent-signing.key) in DIR, mode 0600, and say where each goes.
    Init {
        /// Output directory (created if absent).
        #[arg(long)]
        dir: PathBuf,
        /// The deployment's trust domain (`[node] trust_domain`), which names
        /// the consent signing key.
        #[arg(long)]
        trust_domain: String,
        /// Replace keys already in DIR. Pseudonyms made with the old
        /// pseudonym key no longer match, and consents signed with the old
        /// signing key no longer verify.
        #[arg(long)]
        force: bool,
    },
}

/// The file names, as `deploy/` and the docs use them.
const PSEUDONYM: &str = "pseudonym.key";
const CONSENT: &str = "consent-signing.key";

/// Runs a keys subcommand.
pub fn run(command: KeysCommand) -> anyhow::Result<()> {
    let KeysCommand::Init {
        dir,
        trust_domain,
        force,
    } = command;
    let domain = TrustDomain::parse(&trust_domain)
        .map_err(|e| anyhow::anyhow!("--trust-domain `{trust_domain}`: {e}"))?;
    let paths = [dir.join(PSEUDONYM), dir.join(CONSENT)];
    // Checked before anything is written: a refusal leaves DIR as it was.
    if !force {
        if let Some(existing) = paths.iter().find(|p| p.exists()) {
            anyhow::bail!(
                "{} already exists: replacing it would cut citizens' histories in two (pseudonym key) or make recorded consents unverifiable (consent key); keep it, or pass --force to replace both",
                existing.display()
            );
        }
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let pseudonym: [u8; 32] = rand::random();
    write_secret(&paths[0], &format!("{}\n", hex(&pseudonym)))?;
    let name = format!("{domain}/jisr/consents");
    let signer = NoteSigner::generate(&name)
        .map_err(|e| anyhow::anyhow!("cannot make a consent signing key `{name}`: {e}"))?;
    write_secret(&paths[1], &format!("{}\n", signer.to_secret_text()))?;
    let [p, c] = paths.map(|p| p.display().to_string());
    println!("wrote {p} (mode 0600): [audit] pseudonym_key of every replica");
    println!("wrote {c} (mode 0600): [consent] signing_key of every replica");
    println!(
        "consent verifier key (publish it to check consent receipts): {}",
        signer.verifier().to_text()
    );
    println!("Kubernetes (deploy/kubernetes, Secret jisr-keys):");
    println!("  kubectl create secret generic jisr-keys --from-file={PSEUDONYM}={p} --from-file={CONSENT}={c}");
    println!("Compose or systemd: copy both to every replica, at the paths its configuration names; back them up apart from the nodes");
    Ok(())
}

/// Writes a secret file with mode 0600 through a temporary file beside it,
/// synced and renamed over `path`: never a half-written key.
fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("key")
    ));
    let fail = |e: std::io::Error| anyhow::anyhow!("cannot write {}: {e}", path.display());
    let _ = std::fs::remove_file(&temp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    std::fs::rename(&temp, path).map_err(fail)?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(fail)
}
