//! The audit log's two secrets, kept in files the operator controls: the
//! checkpoint signing key and the pseudonym key. Both are created at first
//! start when absent (mode 0600) and never logged.

use super::note::{open_note, NoteSigner, NoteVerifier};
use super::AuditError;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// Writes a new secret file, refusing to replace one.
fn create_secret(path: &Path, text: &str) -> Result<(), AuditError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| AuditError::io("create", parent, e))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| AuditError::io("create", path, e))?;
    file.write_all(text.as_bytes())
        .map_err(|e| AuditError::io("write", path, e))?;
    file.sync_all().map_err(|e| AuditError::io("sync", path, e))
}

/// What a signing key signs, so the line logged when one is created names
/// the right key (the operator must back up and publish each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// The audit log's checkpoints (`[audit] signing_key`).
    Checkpoints,
    /// Consent artefacts (`[consent] signing_key`).
    Consents,
}

impl KeyUse {
    /// What the key's name must be, for an error about a wrong one.
    fn expected_name(self) -> &'static str {
        match self {
            Self::Checkpoints => "this node's log origin (<trust-domain>/jisr/<node-id>) is",
            Self::Consents => "the consent key of this trust domain must be named",
        }
    }

    /// What to do about a damaged or wrong key file. The two keys differ:
    /// a new checkpoint key can start a new log, but a new consent key
    /// would make every consent already given fail verification.
    fn restore(self) -> &'static str {
        match self {
            Self::Checkpoints => "restore the node's key from its backup, or remove the file to start a new log with a new key",
            Self::Consents => "restore the consent signing key from its backup (every replica holds the same one); do not remove it: a new key would make every consent citizens already gave fail verification",
        }
    }
}

/// Loads the checkpoint signing key, or creates it for `origin`.
pub fn load_or_create_signer(path: &Path, origin: &str) -> Result<NoteSigner, AuditError> {
    load_or_create_key(path, origin, KeyUse::Checkpoints)
}

/// Loads a signing key named `origin`, or creates it, logging which key was
/// created and what to do with it.
pub fn load_or_create_key(
    path: &Path,
    origin: &str,
    used_for: KeyUse,
) -> Result<NoteSigner, AuditError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let signer =
                NoteSigner::from_secret_text(text.trim()).map_err(|e| AuditError::Key {
                    path: path.to_owned(),
                    what: format!(
                        "not a signed-note private key ({e}); {}",
                        used_for.restore()
                    ),
                })?;
            if signer.name() != origin {
                return Err(AuditError::Key {
                    path: path.to_owned(),
                    what: format!(
                        "the key is named `{}` but {} `{origin}`; {}",
                        signer.name(),
                        used_for.expected_name(),
                        used_for.restore()
                    ),
                });
            }
            Ok(signer)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let signer = NoteSigner::generate(origin).map_err(|e| AuditError::Key {
                path: path.to_owned(),
                what: format!("cannot make a key for origin `{origin}`: {e}"),
            })?;
            create_secret(path, &format!("{}\n", signer.to_secret_text()))?;
            let verifier = signer.verifier().to_text();
            match used_for {
                KeyUse::Checkpoints => tracing::warn!(
                    key = %path.display(),
                    %verifier,
                    "created a new audit signing key; publish the verifier key so others can check this node's checkpoints"
                ),
                KeyUse::Consents => tracing::warn!(
                    key = %path.display(),
                    %verifier,
                    "created a new consent signing key; copy it to every replica and keep it safe: it signs the consents citizens give"
                ),
            }
            Ok(signer)
        }
        Err(e) => Err(AuditError::io("read", path, e)),
    }
}

/// Checks that `signer` (from `key`) is the key that signed the log in
/// `dir`: when the log's published checkpoint does not verify with it but
/// does with the log's own `verifier.key`, the key file is what changed,
/// and the error names it (otherwise the log's own checks name what is
/// wrong).
pub fn check_signer(dir: &Path, signer: &NoteSigner, key: &Path) -> Result<(), AuditError> {
    let Ok(checkpoint) = std::fs::read_to_string(dir.join("checkpoint")) else {
        return Ok(());
    };
    if open_note(&checkpoint, &signer.verifier()).is_ok() {
        return Ok(());
    }
    let logs_own = std::fs::read_to_string(dir.join("verifier.key"))
        .ok()
        .and_then(|t| NoteVerifier::from_text(t.trim()).ok());
    match logs_own {
        Some(own) if open_note(&checkpoint, &own).is_ok() => Err(AuditError::Key {
            path: key.to_owned(),
            what: format!(
                "it is not the key that signed the log in {} (the log's verifier.key, {}, verifies its checkpoints): the key file was replaced or altered; restore the node's signing key from its backup",
                dir.display(),
                own.to_text()
            ),
        }),
        _ => Ok(()),
    }
}

/// The file in the log directory that remembers which pseudonym key made
/// the log's pseudonyms (a keyed digest of a fixed text: it reveals
/// nothing of the key).
const PSEUDONYM_CHECK: &str = "pseudonym.check";

/// Turns citizen ids into pseudonyms with a keyed hash (HMAC-SHA-256): the
/// same citizen gets the same pseudonym on every node sharing the key, and
/// nobody without the key can recover the id.
#[derive(Clone)]
pub struct Pseudonymizer {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer(<redacted>)")
    }
}

impl Pseudonymizer {
    /// A pseudonymizer with this 32-byte key.
    pub fn new(key: &[u8; 32]) -> Self {
        // HMAC takes keys of any length.
        let mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
        Self { mac }
    }

    /// Loads the key (64 hex digits), or creates a random one.
    pub fn load_or_create(path: &Path) -> Result<Self, AuditError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let key = parse_hex32(text.trim()).ok_or_else(|| AuditError::Key {
                    path: path.to_owned(),
                    what: "not 64 hexadecimal digits; restore the operator's pseudonym key (every replica must share it)".into(),
                })?;
                Ok(Self::new(&key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = rand::random();
                create_secret(path, &format!("{}\n", hex(&key)))?;
                tracing::warn!(key = %path.display(), "created a new pseudonym key; copy it to every replica and keep it safe");
                Ok(Self::new(&key))
            }
            Err(e) => Err(AuditError::io("read", path, e)),
        }
    }

    /// Checks that this is the key that made the pseudonyms of the log in
    /// `dir` (remembered there on first use): a replaced key would give
    /// every citizen new pseudonyms, hiding their past entries.
    pub fn check_log(&self, dir: &Path, key: &Path) -> Result<(), AuditError> {
        let path = dir.join(PSEUDONYM_CHECK);
        let mine = format!("{}\n", hex(&self.digest(b"jisr-pseudonym-key-check")));
        match std::fs::read_to_string(&path) {
            Ok(have) if have == mine => Ok(()),
            Ok(_) => Err(AuditError::Key {
                path: key.to_owned(),
                what: format!(
                    "it is not the key that made the pseudonyms of the log in {} ({} differs): the key file was replaced or altered; restore the operator's pseudonym key from its backup",
                    dir.display(),
                    path.display()
                ),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(|e| AuditError::io("create", dir, e))?;
                std::fs::write(&path, mine).map_err(|e| AuditError::io("write", &path, e))
            }
            Err(e) => Err(AuditError::io("read", &path, e)),
        }
    }

    /// A keyed digest of a message (HMAC-SHA-256 under a key derived from
    /// the pseudonym key): proves what was exchanged to the key holder, but
    /// unlike a plain hash cannot be matched against guessed messages such
    /// as a request naming a candidate citizen id.
    pub fn digest(&self, message: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(b"jisr-digest-v1\0");
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// The pseudonym of a citizen id.
    pub fn pseudonym(&self, citizen_id: &str) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(citizen_id.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_or_misnamed_key_gets_the_advice_of_its_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "not a key").unwrap();
        let consent = load_or_create_key(&path, "example.ma/jisr/consents", KeyUse::Consents)
            .unwrap_err()
            .to_string();
        assert!(
            consent.contains("restore the consent signing key")
                && consent.contains("do not remove it")
                && !consent.contains("new log"),
            "{consent}"
        );
        let audit = load_or_create_signer(&path, "example.ma/jisr/gw-1")
            .unwrap_err()
            .to_string();
        assert!(audit.contains("start a new log"), "{audit}");

        std::fs::remove_file(&path).unwrap();
        load_or_create_key(&path, "other.ma/jisr/consents", KeyUse::Consents).unwrap();
        let misnamed = load_or_create_key(&path, "example.ma/jisr/consents", KeyUse::Consents)
            .unwrap_err()
            .to_string();
        assert!(
            misnamed.contains("named `other.ma/jisr/consents`")
                && misnamed.contains(
                    "consent key of this trust domain must be named `example.ma/jisr/consents`"
                )
                && misnamed.contains("do not remove it"),
            "{misnamed}"
        );
        let node = load_or_create_signer(&path, "example.ma/jisr/gw-1")
            .unwrap_err()
            .to_string();
        assert!(
            node.contains("log origin (<trust-domain>/jisr/<node-id>) is `example.ma/jisr/gw-1`"),
            "{node}"
        );
    }

    #[test]
    fn pseudonyms_are_stable_keyed_and_not_the_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pseudonym.key");
        let a = Pseudonymizer::load_or_create(&path).unwrap();
        let b = Pseudonymizer::load_or_create(&path).unwrap();
        assert_eq!(a.pseudonym("AB123456"), b.pseudonym("AB123456"));
        assert_ne!(a.pseudonym("AB123456"), a.pseudonym("AB123457"));
        let other = Pseudonymizer::new(&[7; 32]);
        assert_ne!(a.pseudonym("AB123456"), other.pseudonym("AB123456"));
        let mode = std::fs::metadata(&path).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        std::fs::write(&path, "nothex").unwrap();
        assert!(Pseudonymizer::load_or_create(&path).is_err());
    }
}
