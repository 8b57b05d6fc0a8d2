//! The replica's instance token: a random secret kept beside its audit log
//! (`<audit.dir>/instance.token`, 0600, made on first start). The log is
//! the replica's identity, and only one process at a time holds it (its
//! `LOCK`), so a process holding the token is that replica: a restart after
//! a crash proves itself by it and takes its registration back at once. The
//! registry holds only the token's SHA-256, so reading the registry does
//! not give the token.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// The token's file name in the audit log's directory.
pub const FILE: &str = "instance.token";

/// Why the token cannot be read or made.
#[derive(Debug, thiserror::Error)]
#[error("instance token {}: {what}", .path.display())]
pub struct TokenError {
    /// The token's file.
    pub path: PathBuf,
    /// What is wrong and what to do.
    pub what: String,
}

/// The token of the replica whose audit log is in `dir`, made (0600) on
/// first start.
pub fn load_or_create(dir: &Path) -> Result<String, TokenError> {
    let path = dir.join(FILE);
    let error = |what: String| TokenError {
        path: path.clone(),
        what,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let token = text.trim();
            if token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(token.to_owned());
            }
            Err(error("not a token Jisr wrote (64 hex digits); delete the file and start again (a new token is made; the replica then waits once for its old registration to expire)".into()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(&path).map_err(|e| {
            error(format!(
                "cannot create it: {e}; the audit log's directory must be writable"
            ))
        }),
        Err(e) => Err(error(format!(
            "cannot read it: {e}; check the file's owner and permissions"
        ))),
    }
}

fn create(path: &Path) -> std::io::Result<String> {
    let token = hex(&rand::random::<[u8; 32]>());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(format!("{token}\n").as_bytes())?;
    file.sync_all()?;
    Ok(token)
}

/// What the registry holds of a token: its SHA-256, in hex.
pub fn owner(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn the_token_is_made_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let token = load_or_create(dir.path()).unwrap();
        assert_eq!(token.len(), 64);
        let mode = std::fs::metadata(dir.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create(dir.path()).unwrap(), token);
        assert_ne!(owner(&token), token);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(load_or_create(other.path()).unwrap(), token);

        std::fs::write(dir.path().join(FILE), "garbage").unwrap();
        let e = load_or_create(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a token Jisr wrote"), "{e}");
    }
}
