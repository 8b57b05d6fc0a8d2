//! A validating walk over the protobuf wire format.
//!
//! The gateway never decodes a request into a message: it walks the bytes
//! once, checking that every field it knows has the wire type and shape the
//! contract declares (as a full decode would), and picks up the citizen
//! identifier at the field path marked `(jisr.subject)`. Nothing is allocated
//! and the bytes forwarded to the provider are the bytes that arrived.

use prost_reflect::{Kind, MessageDescriptor};
use std::collections::hash_map::{Entry, HashMap};

mod reader;
use reader::Reader;

/// Nesting limit, the same as prost's default recursion limit.
const MAX_DEPTH: usize = 100;

/// Why a body does not decode as the method's request type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The bytes end inside a field.
    #[error("the message ends in the middle of field {field}")]
    Truncated {
        /// Field number being read (0 for a tag).
        field: u32,
    },
    /// A varint longer than 10 bytes or overflowing 64 bits.
    #[error("field {field} holds an invalid varint")]
    BadVarint {
        /// Field number (0 for a tag).
        field: u32,
    },
    /// A tag with field number 0 or a reserved wire type.
    #[error("invalid tag (field number {field}, wire type {wire_type})")]
    BadTag {
        /// Field number.
        field: u32,
        /// Wire type.
        wire_type: u8,
    },
    /// A known field encoded with the wrong wire type.
    #[error("field {field} ({name}) has wire type {found}, but the contract declares {expected}")]
    WrongWireType {
        /// Field number.
        field: u32,
        /// Field name from the contract.
        name: String,
        /// Wire type found.
        found: u8,
        /// What the contract expects.
        expected: &'static str,
    },
    /// A string field that is not UTF-8.
    #[error("field {field} ({name}) is a string but is not valid UTF-8")]
    BadUtf8 {
        /// Field number.
        field: u32,
        /// Field name.
        name: String,
    },
    /// A packed repeated field whose length does not fit its elements.
    #[error("packed field {field} ({name}) has a length that does not fit its elements")]
    BadPacked {
        /// Field number.
        field: u32,
        /// Field name.
        name: String,
    },
    /// Groups are nested too deeply, or do not close.
    #[error("a group is not closed properly")]
    BadGroup,
    /// Messages nested deeper than the recursion limit.
    #[error("messages are nested more than {MAX_DEPTH} levels deep")]
    TooDeep,
}

/// How a known field must appear on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Varint,
    Fixed32,
    Fixed64,
    Bytes,
    Utf8,
    Message(usize),
    Group(usize),
}

#[derive(Debug, Clone)]
struct Field {
    name: String,
    shape: Shape,
    /// A repeated scalar numeric field may also arrive packed.
    packable: bool,
    /// The oneof the field belongs to (its position in the message): a
    /// later field of the same oneof clears it, as a decode does.
    oneof: Option<usize>,
}

#[derive(Debug, Clone, Default)]
struct MessageSchema {
    fields: HashMap<u32, Field>,
    /// A map entry. A decode reads it inline, without a recursion level of
    /// its own, and skips its unknown fields with prost's `skip_field`,
    /// which counts levels differently from a message's unknown fields.
    map_entry: bool,
}

/// The wire shapes of a request type and every message type it contains,
/// compiled once when the catalogue loads.
#[derive(Debug, Clone)]
pub struct Schema {
    messages: Vec<MessageSchema>,
    subject: Vec<u32>,
}

impl Schema {
    /// Compiles the shapes reachable from `root`; `subject` is the field
    /// number path of the citizen identifier (empty when there is none).
    pub fn compile(root: &MessageDescriptor, subject: Vec<u32>) -> Self {
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut messages = vec![MessageSchema::default()];
        let mut queue = vec![root.clone()];
        index.insert(root.full_name().to_owned(), 0);
        while let Some(desc) = queue.pop() {
            let at = index[desc.full_name()];
            let mut slot = |m: &MessageDescriptor| -> usize {
                if let Some(&i) = index.get(m.full_name()) {
                    return i;
                }
                let i = messages.len();
                messages.push(MessageSchema::default());
                index.insert(m.full_name().to_owned(), i);
                queue.push(m.clone());
                i
            };
            let oneofs: Vec<_> = desc.oneofs().map(|o| o.full_name().to_owned()).collect();
            let mut fields = HashMap::new();
            for field in desc.fields() {
                let oneof = field
                    .containing_oneof()
                    .and_then(|o| oneofs.iter().position(|name| name == o.full_name()));
                let shape = shape_of(field.kind(), field.is_group(), &mut slot);
                fields.insert(
                    field.number(),
                    Field::new(field.name(), shape, field.is_list(), oneof),
                );
            }
            // A decode also knows the extensions of the message that the
            // pool declares; a field of the same number takes precedence.
            for ext in desc.extensions() {
                if let Entry::Vacant(entry) = fields.entry(ext.number()) {
                    let shape = shape_of(ext.kind(), ext.is_group(), &mut slot);
                    entry.insert(Field::new(ext.full_name(), shape, ext.is_list(), None));
                }
            }
            messages[at] = MessageSchema {
                fields,
                map_entry: desc.is_map_entry(),
            };
        }
        Self { messages, subject }
    }

    /// Checks that `buf` decodes as the root message and returns the last
    /// value of the subject field, if the schema has one and it is present.
    pub fn walk<'a>(&self, buf: &'a [u8]) -> Result<Option<&'a str>, WireError> {
        let mut subject = None;
        let path = (!self.subject.is_empty()).then_some(self.subject.as_slice());
        let mut reader = Reader::new(buf);
        self.walk_message(0, &mut reader, None, 0, path, &mut subject)?;
        Ok(subject)
    }

    /// Walks fields until the end of `r`, or until the end-group tag of
    /// `group` when walking a group.
    fn walk_message<'a>(
        &self,
        msg: usize,
        r: &mut Reader<'a>,
        group: Option<u32>,
        depth: usize,
        path: Option<&[u32]>,
        subject: &mut Option<&'a str>,
    ) -> Result<(), WireError> {
        if depth > MAX_DEPTH {
            return Err(WireError::TooDeep);
        }
        let schema = &self.messages[msg];
        while !r.done() {
            let (number, wire_type) = r.tag()?;
            // Outside a group, an end-group tag is an unknown field that
            // cannot be skipped, or a known field of the wrong wire type.
            match (wire_type, group) {
                (4, Some(g)) if g == number => return Ok(()),
                (4, Some(_)) => return Err(WireError::BadGroup),
                _ => {}
            }
            let Some(field) = schema.fields.get(&number) else {
                r.skip(number, wire_type, depth, schema.map_entry)?;
                continue;
            };
            let on_path = match path {
                Some([next, rest @ ..]) if *next == number => Some(rest),
                Some([next, ..]) => {
                    // Another member of the path field's oneof replaces it,
                    // and with it any subject read so far.
                    let next_oneof = schema.fields.get(next).and_then(|f| f.oneof);
                    if field.oneof.is_some() && field.oneof == next_oneof {
                        *subject = None;
                    }
                    None
                }
                _ => None,
            };
            self.walk_field(field, number, wire_type, r, depth, on_path, subject)?;
        }
        match group {
            Some(_) => Err(WireError::BadGroup),
            None => Ok(()),
        }
    }

    #[allow(clippy::too_many_arguments)] // one recursive step; bundling would only rename them
    fn walk_field<'a>(
        &self,
        field: &Field,
        number: u32,
        wire_type: u8,
        r: &mut Reader<'a>,
        depth: usize,
        on_path: Option<&[u32]>,
        subject: &mut Option<&'a str>,
    ) -> Result<(), WireError> {
        let wrong = |expected| WireError::WrongWireType {
            field: number,
            name: field.name.clone(),
            found: wire_type,
            expected,
        };
        match (field.shape, wire_type) {
            (Shape::Varint, 0) => r.varint(number).map(drop),
            (Shape::Fixed64, 1) => r.take(8, number).map(drop),
            (Shape::Fixed32, 5) => r.take(4, number).map(drop),
            (Shape::Varint | Shape::Fixed32 | Shape::Fixed64, 2) if field.packable => {
                let bytes = r.len_delimited(number)?;
                check_packed(field, number, bytes)
            }
            (Shape::Varint, _) => Err(wrong("varint")),
            (Shape::Fixed64, _) => Err(wrong("64-bit")),
            (Shape::Fixed32, _) => Err(wrong("32-bit")),
            (Shape::Bytes, 2) => r.len_delimited(number).map(drop),
            (Shape::Utf8, 2) => {
                let bytes = r.len_delimited(number)?;
                let text = std::str::from_utf8(bytes).map_err(|_| WireError::BadUtf8 {
                    field: number,
                    name: field.name.clone(),
                })?;
                if on_path.is_some_and(<[u32]>::is_empty) {
                    *subject = Some(text);
                }
                Ok(())
            }
            (Shape::Message(m), 2) => {
                let bytes = r.len_delimited(number)?;
                let mut inner = Reader::new(bytes);
                let path = on_path.filter(|p| !p.is_empty());
                // A decode reads a map entry inline, at its map's level.
                let depth = if self.messages[m].map_entry {
                    depth
                } else {
                    depth + 1
                };
                self.walk_message(m, &mut inner, None, depth, path, subject)
            }
            (Shape::Group(m), 3) => {
                let path = on_path.filter(|p| !p.is_empty());
                self.walk_message(m, r, Some(number), depth + 1, path, subject)
            }
            (Shape::Bytes | Shape::Utf8 | Shape::Message(_), _) => Err(wrong("length-delimited")),
            (Shape::Group(_), _) => Err(wrong("group")),
        }
    }
}

impl Field {
    fn new(name: &str, shape: Shape, is_list: bool, oneof: Option<usize>) -> Self {
        Self {
            name: name.to_owned(),
            shape,
            packable: is_list && matches!(shape, Shape::Varint | Shape::Fixed32 | Shape::Fixed64),
            oneof,
        }
    }
}

/// The wire shape of a field of `kind`; `slot` numbers message types.
fn shape_of(
    kind: Kind,
    is_group: bool,
    slot: &mut impl FnMut(&MessageDescriptor) -> usize,
) -> Shape {
    match kind {
        Kind::Double | Kind::Fixed64 | Kind::Sfixed64 => Shape::Fixed64,
        Kind::Float | Kind::Fixed32 | Kind::Sfixed32 => Shape::Fixed32,
        Kind::Int32
        | Kind::Int64
        | Kind::Uint32
        | Kind::Uint64
        | Kind::Sint32
        | Kind::Sint64
        | Kind::Bool
        | Kind::Enum(_) => Shape::Varint,
        Kind::String => Shape::Utf8,
        Kind::Bytes => Shape::Bytes,
        Kind::Message(m) if is_group => Shape::Group(slot(&m)),
        Kind::Message(m) => Shape::Message(slot(&m)),
    }
}

fn check_packed(field: &Field, number: u32, bytes: &[u8]) -> Result<(), WireError> {
    let bad = || WireError::BadPacked {
        field: number,
        name: field.name.clone(),
    };
    match field.shape {
        Shape::Fixed32 if bytes.len().is_multiple_of(4) => Ok(()),
        Shape::Fixed64 if bytes.len().is_multiple_of(8) => Ok(()),
        Shape::Varint => {
            let mut inner = Reader::new(bytes);
            while !inner.done() {
                inner.varint(number).map_err(|_| bad())?;
            }
            Ok(())
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests;
