//! The C2SP tlog-checkpoint note body: origin, tree size, root hash and
//! optional extension lines.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use super::NoteError;
use crate::audit::merkle::Hash;

/// A log's signed statement of its tree at one size (the note text of a
/// c2sp.org/tlog-checkpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's identity, by convention its key name (e.g.
    /// `interop.gov.ma/jisr/gw-1`). Must be a non-empty single line.
    pub origin: String,
    /// The number of leaves.
    pub size: u64,
    /// The RFC 6962 root of the first `size` leaves.
    pub root: Hash,
    /// Opaque extension lines, each non-empty and single-line. The spec
    /// advises against them: monitors cannot audit them.
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note text: `origin\nsize\nbase64(root)\n`, then one line per
    /// extension. Not validated: the origin and extensions must be
    /// non-empty single lines, and `parse(&c.to_text())` gives back `c`
    /// exactly when they are.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for extension in &self.extensions {
            text.push_str(extension);
            text.push('\n');
        }
        text
    }

    /// Parses checkpoint note text (as [`super::open_note`] returns it,
    /// final newline included). Strict: decimal size without leading zeros,
    /// canonical base64 of exactly 32 bytes, no empty lines.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let bad = NoteError::MalformedCheckpoint;
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| bad("does not end in a newline"))?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err(bad("fewer than three lines"));
        };
        if origin.is_empty() {
            return Err(bad("empty origin"));
        }
        let size =
            parse_size(size).ok_or_else(|| bad("tree size is not a canonical decimal number"))?;
        let root = B64
            .decode(root)
            .ok()
            .and_then(|r| Hash::try_from(r).ok())
            .ok_or_else(|| bad("root hash is not base64 of 32 bytes"))?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(bad("empty extension line"));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }
}

/// ASCII decimal, no sign, no leading zeros (except `0` itself), fits u64.
pub(crate) fn parse_size(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}
