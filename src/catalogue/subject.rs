//! Finding the citizen identifier in a message type: the one singular
//! string field marked `(jisr.subject)`, possibly inside nested messages.

use prost_reflect::{DescriptorPool, ExtensionDescriptor, Kind, MessageDescriptor, Value};
use std::collections::HashSet;

/// How deep to look for a `(jisr.subject)` field in nested request messages.
const SUBJECT_SEARCH_DEPTH: usize = 8;

/// The path (field number, field name) to the field of `message` marked
/// `(jisr.subject)`, if any (used for bus event types).
pub fn subject_path(
    pool: &DescriptorPool,
    message: &MessageDescriptor,
) -> Result<Option<Vec<(u32, String)>>, String> {
    match pool.get_extension_by_name("jisr.subject") {
        Some(ext) => find_subject(message, &ext),
        None => Ok(None),
    }
}

/// The path (field number, field name) to the one field marked
/// `(jisr.subject)`, searched through singular nested messages.
pub(super) fn find_subject(
    root: &MessageDescriptor,
    ext: &ExtensionDescriptor,
) -> Result<Option<Vec<(u32, String)>>, String> {
    let mut found = Vec::new();
    let mut misplaced = Vec::new();
    let mut seen = HashSet::new();
    search(
        root,
        ext,
        &mut Vec::new(),
        &mut found,
        &mut misplaced,
        &mut seen,
        0,
    );
    if !misplaced.is_empty() {
        return Err(format!(
            "field(s) {} marked (jisr.subject) must be a single (not repeated) string",
            misplaced.join(", ")
        ));
    }
    match found.len() {
        0 => Ok(None),
        1 => {
            let path = found.remove(0);
            Ok(Some(path))
        }
        _ => {
            let names: Vec<String> = found
                .iter()
                .map(|p| {
                    p.iter()
                        .map(|(_, n)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(".")
                })
                .collect();
            Err(format!(
                "request type `{}` has several (jisr.subject) fields: {}",
                root.full_name(),
                names.join(", ")
            ))
        }
    }
}

fn search(
    msg: &MessageDescriptor,
    ext: &ExtensionDescriptor,
    path: &mut Vec<(u32, String)>,
    found: &mut Vec<Vec<(u32, String)>>,
    misplaced: &mut Vec<String>,
    seen: &mut HashSet<String>,
    depth: usize,
) {
    if depth > SUBJECT_SEARCH_DEPTH || !seen.insert(msg.full_name().to_owned()) {
        return;
    }
    for field in msg.fields() {
        path.push((field.number(), field.name().to_owned()));
        let marked = matches!(
            field.options().get_extension(ext).as_ref(),
            Value::Bool(true)
        );
        if marked && field.kind() == Kind::String && !field.is_list() {
            found.push(path.clone());
        } else if marked {
            misplaced.push(field.full_name().to_owned());
        } else if let Kind::Message(inner) = field.kind() {
            if !field.is_list() && !field.is_map() {
                search(&inner, ext, path, found, misplaced, seen, depth + 1);
            }
        }
        path.pop();
    }
    seen.remove(msg.full_name());
}
