//! Data minimisation of a provider's answer (`policy::release::Release`):
//! an arbitrary response body, walked against a response type of the sample
//! contracts or of `proto/fuzz` with released fields the input picks.
//!
//! The rewrite succeeds exactly when every length-prefixed message of the
//! body is complete, uncompressed and decodes as the response type, else it
//! fails with the error of the first message that does not (the gateway
//! then refuses to forward the answer). What it gives back holds as many
//! messages, each with only the released fields and, where it pruned, no
//! unknown fields; minimising again changes nothing.
//!
//! Input: one byte picks the method, two bytes the released paths (a bit
//! each, of the type's fields and their fields), then the body.

#![no_main]

#[path = "common.rs"]
mod common;

use jisr::policy::release::{MinimiseError, Release};
use libfuzzer_sys::fuzz_target;
use prost_reflect::{DynamicMessage, Kind, MessageDescriptor, Value};

const PREFIX: usize = 5;

/// The paths one may release: each field, and each field of a message
/// field (or of a repeated message, or a map's message values).
fn paths(desc: &MessageDescriptor) -> Vec<String> {
    let mut all = Vec::new();
    for field in desc.fields() {
        all.push(field.name().to_owned());
        if let Some(inner) = element(&field) {
            all.extend(
                inner
                    .fields()
                    .map(|f| format!("{}.{}", field.name(), f.name())),
            );
        }
    }
    all
}

fn element(field: &prost_reflect::FieldDescriptor) -> Option<MessageDescriptor> {
    let Kind::Message(desc) = field.kind() else {
        return None;
    };
    if !field.is_map() {
        return Some(desc);
    }
    desc.map_entry_value_field().kind().as_message().cloned()
}

/// The messages of a body, or the error the rewrite must give.
fn messages(
    desc: &MessageDescriptor,
    mut body: &[u8],
) -> Result<Vec<DynamicMessage>, MinimiseError> {
    let mut all = Vec::new();
    while !body.is_empty() {
        let Some(([flag, len @ ..], tail)) = body.split_first_chunk::<PREFIX>() else {
            return Err(MinimiseError::Truncated);
        };
        match flag {
            0 => {}
            1 => return Err(MinimiseError::Compressed),
            _ => return Err(MinimiseError::Decode(String::new())),
        }
        let len = u32::from_be_bytes(*len) as usize;
        let (message, tail) = tail.split_at_checked(len).ok_or(MinimiseError::Truncated)?;
        all.push(
            DynamicMessage::decode(desc.clone(), message)
                .map_err(|e| MinimiseError::Decode(e.to_string()))?,
        );
        body = tail;
    }
    Ok(all)
}

/// Every field set in `msg` (at `prefix`) is released, whole or in part;
/// where it was pruned, nothing unknown is left.
fn only_released(msg: &DynamicMessage, prefix: &str, released: &[String]) {
    assert_eq!(
        msg.unknown_fields().count(),
        0,
        "unknown fields left at `{prefix}`"
    );
    for (field, value) in msg.fields() {
        let path = format!("{prefix}{}", field.name());
        if released.contains(&path) {
            continue;
        }
        let below = format!("{path}.");
        assert!(
            released.iter().any(|p| p.starts_with(&below)),
            "`{path}` is not released but survived"
        );
        let values: Vec<&Value> = match value {
            Value::List(items) => items.iter().collect(),
            Value::Map(entries) => entries.values().collect(),
            one => vec![one],
        };
        for value in values {
            if let Value::Message(inner) = value {
                only_released(inner, &below, released);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [pick, a, b, body @ ..] = data else {
        return;
    };
    let methods = common::DEPLOYMENT.catalogue.methods();
    let route = &methods[usize::from(*pick) % methods.len()];
    let mask = u16::from_be_bytes([*a, *b]);
    let released: Vec<String> = paths(&route.response)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i < 16 && mask & (1 << i) != 0)
        .map(|(_, p)| p)
        .collect();
    let release = Release::compile(&route.response, &released).expect("valid paths compile");
    let expected = messages(&route.response, body);
    let minimised = release.apply(body);
    let out = match (minimised, expected) {
        (Ok(out), Ok(input)) => {
            let output = messages(&route.response, &out).expect("the rewrite is well framed");
            assert_eq!(output.len(), input.len());
            out
        }
        (Err(got), Err(want)) => {
            assert_eq!(
                std::mem::discriminant(&got),
                std::mem::discriminant(&want),
                "{}: {got} but the body has {want}",
                route.path
            );
            return;
        }
        (got, want) => panic!("{}: minimised {got:?}, the body has {want:?}", route.path),
    };
    for msg in messages(&route.response, &out).expect("decodes") {
        only_released(&msg, "", &released);
    }
    // Maps encode in no fixed order, so the bytes may differ; the messages
    // may not (compared when they equal themselves: a NaN does not).
    let again = release.apply(&out).expect("minimises again");
    assert_eq!(again.len(), out.len(), "not idempotent");
    let (once, twice) = (
        messages(&route.response, &out),
        messages(&route.response, &again),
    );
    let (once, twice) = (once.expect("decodes"), twice.expect("decodes"));
    for (a, b) in once.iter().zip(&twice) {
        // Deliberate: a message holding a NaN does not equal itself, and
        // is not compared.
        #[allow(clippy::eq_op)]
        let comparable = a == a;
        if comparable {
            assert_eq!(a, b, "not idempotent");
        }
    }
});
