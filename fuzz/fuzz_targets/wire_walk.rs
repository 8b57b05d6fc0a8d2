//! The wire walk against the sample contracts (and `proto/fuzz`, which has
//! every wire shape): it must not panic, and must accept exactly what a full
//! decode with prost-reflect accepts, with the same subject.
//!
//! The first input byte picks the method, the rest is the request body.

#![no_main]

#[path = "common.rs"]
mod common;

use jisr::catalogue::wire::WireError;
use jisr::catalogue::MethodRoute;
use libfuzzer_sys::fuzz_target;
use prost_reflect::{DynamicMessage, MessageDescriptor, Value};
use std::sync::{Arc, LazyLock};

struct Target {
    route: Arc<MethodRoute>,
    request: MessageDescriptor,
}

static TARGETS: LazyLock<Vec<Target>> = LazyLock::new(|| {
    let catalogue = &common::DEPLOYMENT.catalogue;
    catalogue
        .methods()
        .iter()
        .map(|route| Target {
            request: catalogue
                .pool()
                .get_message_by_name(&route.request_type)
                .expect("the request type is in the pool"),
            route: route.clone(),
        })
        .collect()
});

/// The subject as the full decode sees it (`""` when absent).
fn decoded_subject(msg: &DynamicMessage, path: Option<&str>) -> String {
    let Some(path) = path else {
        return String::new();
    };
    let mut current = msg.clone();
    let names: Vec<&str> = path.split('.').collect();
    let (last, init) = names.split_last().expect("a non-empty path");
    for name in init {
        current = match current.get_field_by_name(name).as_deref() {
            Some(Value::Message(m)) => m.clone(),
            other => panic!("{name} is not a message: {other:?}"),
        };
    }
    match current.get_field_by_name(last).as_deref() {
        Some(Value::String(s)) => s.clone(),
        other => panic!("{last} is not a string: {other:?}"),
    }
}

/// prost reads a map field's entry as length-delimited whatever its wire
/// type; the walk follows the spec and refuses it (the safe direction).
fn map_quirk(request: &MessageDescriptor, error: &WireError) -> bool {
    let WireError::WrongWireType { field, name, .. } = error else {
        return false;
    };
    let mut seen = Vec::new();
    let mut queue = vec![request.clone()];
    while let Some(m) = queue.pop() {
        if seen.contains(&m) {
            continue;
        }
        for f in m.fields() {
            if f.is_map() && f.number() == *field && f.name() == name {
                return true;
            }
            if let Some(inner) = f.kind().as_message() {
                queue.push(inner.clone());
            }
        }
        seen.push(m);
    }
    false
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let target = &TARGETS[usize::from(pick) % TARGETS.len()];
    let walked = target.route.schema.walk(body);
    let decoded = DynamicMessage::decode(target.request.clone(), body);
    match (&walked, &decoded) {
        (Ok(subject), Ok(msg)) => assert_eq!(
            subject.unwrap_or(""),
            decoded_subject(msg, target.route.subject_field.as_deref()),
            "{}: subjects differ",
            target.route.path
        ),
        (Err(_), Err(_)) => {}
        (Err(e), Ok(_)) if map_quirk(&target.request, e) => {}
        _ => panic!(
            "{}: walk {walked:?} but decode {:?}",
            target.route.path,
            decoded.map(drop)
        ),
    }
});
