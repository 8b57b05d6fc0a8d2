//! Sign-in links: `jisr console login --as <agency>` mints one from the key
//! file `[console] signin_key` names, without asking the gateway; the
//! console accepts it once, before it expires.
//!
//! A link's token is `v1.<agency>.<expires unix s>.<nonce hex>.<mac hex>`,
//! the MAC being HMAC-SHA-256 under the key over everything before it.
//! Whoever can read the key file can sign in as any agency, so it is a
//! secret of the operator, like the audit signing key (mode 0600).

use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::identity::AgencyId;

/// Labels the MAC so it cannot be confused with another use of the key.
const DOMAIN: &[u8] = b"jisr-console-signin-v1\n";

/// Why a link key could not be read or made.
#[derive(Debug, thiserror::Error)]
#[error("console sign-in key {}: {what}", path.display())]
pub struct KeyError {
    path: PathBuf,
    what: String,
}

/// The key that signs sign-in links. `Debug` does not show it.
#[derive(Clone)]
pub struct LinkKey([u8; 32]);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(<redacted>)")
    }
}

impl LinkKey {
    /// Reads the key at `path` (64 hex digits), or makes one there (mode
    /// 0600) when the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let error = |what: String| KeyError {
            path: path.to_owned(),
            what,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => parse_hex32(text.trim()).map(Self).ok_or_else(|| {
                error("not 64 hexadecimal digits; remove the file to make a new key (links already printed stop working)".into())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = rand::random();
                match create_secret(path, &format!("{}\n", hex(&key))) {
                    Ok(()) => {
                        tracing::info!(key = %path.display(), "created the console's sign-in key");
                        Ok(Self(key))
                    }
                    // The gateway and `jisr console login` raced to make
                    // it: the one written first is the key.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load_or_create(path),
                    Err(e) => Err(error(format!("cannot create it: {e}"))),
                }
            }
            Err(e) => Err(error(format!("cannot read it: {e}"))),
        }
    }

    /// A token for `agency`, valid until `expires` (Unix seconds).
    pub fn mint(&self, agency: &AgencyId, expires: u64) -> String {
        let nonce: [u8; 16] = rand::random();
        let body = format!("v1.{agency}.{expires}.{}", hex(&nonce));
        let mac = self.mac(&body);
        format!("{body}.{}", hex(&mac))
    }

    /// A token for `agency` valid for `ttl` from now.
    pub fn mint_for(&self, agency: &AgencyId, ttl: Duration) -> String {
        self.mint(agency, unix_now() + ttl.as_secs())
    }

    /// Checks a token's MAC and expiry at `now` (Unix seconds); the caller
    /// still has to check that its nonce was not used before.
    pub fn open(&self, token: &str, now: u64) -> Result<Opened, LinkError> {
        let (body, mac) = token.rsplit_once('.').ok_or(LinkError::Malformed)?;
        let mac = parse_hex32(mac).ok_or(LinkError::Malformed)?;
        let expected = self.mac(body);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&mac[..], &expected[..])) {
            return Err(LinkError::Forged);
        }
        let mut parts = body.split('.');
        let (Some("v1"), Some(agency), Some(expires), Some(nonce), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(LinkError::Malformed);
        };
        let agency = AgencyId::parse(agency).map_err(|_| LinkError::Malformed)?;
        let expires: u64 = expires.parse().map_err(|_| LinkError::Malformed)?;
        if now >= expires {
            return Err(LinkError::Expired);
        }
        Ok(Opened {
            agency,
            expires,
            nonce: nonce.to_owned(),
        })
    }

    fn mac(&self, body: &str) -> [u8; 32] {
        // HMAC takes a key of any length: `new_from_slice` cannot fail.
        let mut mac = <Hmac<Sha256>>::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(DOMAIN);
        mac.update(body.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// A token whose MAC and expiry check out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Who it signs in.
    pub agency: AgencyId,
    /// Until when it may be used (Unix seconds).
    pub expires: u64,
    /// Its single-use nonce.
    pub nonce: String,
}

/// Why a link was refused; the page tells the operator to ask for a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not a token this console makes.
    #[error("this is not a sign-in link of this console")]
    Malformed,
    /// The MAC does not match: altered, or made with another key.
    #[error("this link was not made with this console's sign-in key")]
    Forged,
    /// Past its expiry.
    #[error("this link has expired")]
    Expired,
    /// Its nonce was already exchanged for a session.
    #[error("this link was already used")]
    Used,
    /// The agency is no longer declared.
    #[error("this link's agency is not declared in the configuration")]
    Unknown,
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Lowercase hex.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn create_secret(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
