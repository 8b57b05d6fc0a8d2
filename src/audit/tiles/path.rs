//! The tlog-tiles paths (c2sp.org/tlog-tiles): `checkpoint`,
//! `tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]`, with `<N>` in
//! zero-padded 3-digit elements, all but the last starting with `x`
//! (1234067 is `x001/x234/067`). Only the canonical spelling is accepted,
//! so one resource has one URL (and one cache entry).

/// Hashes (or entries) in a full tile.
pub const WIDTH: u64 = 256;

/// What a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `checkpoint`.
    Checkpoint,
    /// `tile/<L>/<N>[.p/<W>]`: hashes at tile level `level`.
    Tile {
        /// The tile level, 0 to 63.
        level: u8,
        /// The tile's index within its level.
        index: u64,
        /// `Some(W)` for a partial tile of W (1 to 255) hashes.
        width: Option<u8>,
    },
    /// `tile/entries/<N>[.p/<W>]`: an entry bundle.
    Entries {
        /// The bundle's index.
        index: u64,
        /// `Some(W)` for a partial bundle of W (1 to 255) entries.
        width: Option<u8>,
    },
}

impl Resource {
    /// Reads a request path (with its leading `/`); `None` when it names
    /// nothing of the layout.
    pub fn parse(path: &str) -> Option<Self> {
        let rest = path.strip_prefix('/')?;
        if rest == "checkpoint" {
            return Some(Self::Checkpoint);
        }
        let rest = rest.strip_prefix("tile/")?;
        let (kind, rest) = rest.split_once('/')?;
        let (index, width) = index_and_width(rest)?;
        let parsed = if kind == "entries" {
            Self::Entries { index, width }
        } else {
            let level: u8 = decimal(kind)?;
            if level > 63 {
                return None;
            }
            Self::Tile {
                level,
                index,
                width,
            }
        };
        // One spelling per resource: what does not print back as it came
        // (leading zeros, a missing `x`, `x000/…`) names nothing.
        (parsed.path() == path).then_some(parsed)
    }

    /// The resource's path, with its leading `/`.
    pub fn path(&self) -> String {
        let (kind, index, width) = match *self {
            Self::Checkpoint => return "/checkpoint".to_owned(),
            Self::Tile {
                level,
                index,
                width,
            } => (level.to_string(), index, width),
            Self::Entries { index, width } => ("entries".to_owned(), index, width),
        };
        let mut out = format!("/tile/{kind}/{}", encode_index(index));
        if let Some(w) = width {
            out.push_str(&format!(".p/{w}"));
        }
        out
    }
}

/// `<N>` as the spec writes it: `x001/x234/067` for 1234067, `000` for 0.
pub fn encode_index(mut n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        groups.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

/// `<N>[.p/<W>]`: the index and, for a partial tile, its width.
fn index_and_width(text: &str) -> Option<(u64, Option<u8>)> {
    let (index, width) = match text.split_once(".p/") {
        Some((index, width)) => {
            let w: u8 = decimal(width)?;
            (index, Some(w).filter(|w| *w >= 1))
        }
        None => (text, None),
    };
    if text.contains(".p/") && width.is_none() {
        return None;
    }
    let mut n: u64 = 0;
    for group in index.split('/') {
        let digits = group.strip_prefix('x').unwrap_or(group);
        if digits.len() != 3 {
            return None;
        }
        n = n.checked_mul(1000)?.checked_add(decimal(digits)?)?;
    }
    Some((n, width))
}

/// A decimal of ASCII digits only (no sign, no space).
fn decimal<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_are_written_as_the_spec_writes_them() {
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(67), "067");
        assert_eq!(encode_index(1000), "x001/000");
        assert_eq!(encode_index(1_234_067), "x001/x234/067");
    }

    #[test]
    fn paths_parse_back_and_only_canonical_ones() {
        for r in [
            Resource::Checkpoint,
            Resource::Tile {
                level: 0,
                index: 1_234_067,
                width: None,
            },
            Resource::Tile {
                level: 2,
                index: 0,
                width: Some(17),
            },
            Resource::Entries {
                index: 5,
                width: Some(255),
            },
        ] {
            assert_eq!(Resource::parse(&r.path()), Some(r), "{}", r.path());
        }
        assert_eq!(
            Resource::parse("/tile/1/x001/234.p/7"),
            Some(Resource::Tile {
                level: 1,
                index: 1234,
                width: Some(7)
            })
        );
        for bad in [
            "/tile/0/1",
            "/tile/0/x000/001",
            "/tile/0/001/234",
            "/tile/01/000",
            "/tile/64/000",
            "/tile/0/000.p/0",
            "/tile/0/000.p/256",
            "/tile/0/000.p/07",
            "/tile/0/000.p/",
            "/tile/entries/-01",
            "/checkpoint/",
            "/tile/0/000/",
        ] {
            assert_eq!(Resource::parse(bad), None, "{bad}");
        }
    }
}
