//! The byte-level reader under the schema walk: the wire format's own
//! rules (varints, tags, lengths, groups), knowing nothing of contracts.

use super::{WireError, MAX_DEPTH};

/// A cursor over wire-format bytes: varints, tags, length-delimited
/// fields and skipping of unknown ones, each failure naming its field.
pub(super) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub(super) fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(super) fn varint(&mut self, field: u32) -> Result<u64, WireError> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(WireError::Truncated { field });
            };
            self.pos += 1;
            if i == 9 && byte > 1 {
                return Err(WireError::BadVarint { field });
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(WireError::BadVarint { field })
    }

    pub(super) fn tag(&mut self) -> Result<(u32, u8), WireError> {
        let key = self.varint(0)?;
        if key > u64::from(u32::MAX) {
            return Err(WireError::BadVarint { field: 0 });
        }
        let wire_type = (key & 7) as u8;
        let number = (key >> 3) as u32;
        if number == 0 || wire_type > 5 {
            return Err(WireError::BadTag {
                field: number,
                wire_type,
            });
        }
        Ok((number, wire_type))
    }

    pub(super) fn take(&mut self, n: usize, field: u32) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or(WireError::Truncated { field })?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    pub(super) fn len_delimited(&mut self, field: u32) -> Result<&'a [u8], WireError> {
        let len = self.varint(field)?;
        let len = usize::try_from(len).map_err(|_| WireError::Truncated { field })?;
        self.take(len, field)
    }

    /// Skips an unknown field, as a decoder keeps unknown fields. `strict`
    /// follows prost's `skip_field` (used inside map entries), which counts
    /// every field against the recursion limit, not only groups.
    pub(super) fn skip(
        &mut self,
        number: u32,
        wire_type: u8,
        depth: usize,
        strict: bool,
    ) -> Result<(), WireError> {
        if strict && depth >= MAX_DEPTH {
            return Err(WireError::TooDeep);
        }
        match wire_type {
            0 => self.varint(number).map(drop),
            1 => self.take(8, number).map(drop),
            2 => self.len_delimited(number).map(drop),
            5 => self.take(4, number).map(drop),
            3 => {
                if depth >= MAX_DEPTH {
                    return Err(WireError::TooDeep);
                }
                loop {
                    if self.done() {
                        return Err(WireError::BadGroup);
                    }
                    let (inner, inner_type) = self.tag()?;
                    if inner_type == 4 {
                        return if inner == number {
                            Ok(())
                        } else {
                            Err(WireError::BadGroup)
                        };
                    }
                    self.skip(inner, inner_type, depth + 1, strict)?;
                }
            }
            _ => Err(WireError::BadGroup),
        }
    }
}
