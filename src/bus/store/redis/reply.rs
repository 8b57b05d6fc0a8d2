//! Reading Redis replies (RESP arrays) for the stream commands the bus uses.

use std::collections::HashMap;

use redis::Value;

/// A stream entry's fields.
pub(crate) type Fields = HashMap<String, Vec<u8>>;

pub(super) fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(super) fn int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        other => text(other).and_then(|s| s.parse().ok()).unwrap_or(0),
    }
}

pub(super) fn items(v: &Value) -> &[Value] {
    match v {
        Value::Array(a) | Value::Set(a) => a,
        _ => &[],
    }
}

/// Stream entries `[[id, [k, v, …]], …]`; deleted entries (nil fields) are skipped.
pub(super) fn entries(v: &Value) -> Vec<(String, Fields)> {
    items(v)
        .iter()
        .filter_map(|entry| {
            let parts = items(entry);
            let id = text(parts.first()?)?;
            let raw = items(parts.get(1)?);
            let fields = raw
                .chunks(2)
                .filter_map(|kv| match kv {
                    [Value::BulkString(k), Value::BulkString(v)] => {
                        Some((String::from_utf8_lossy(k).into_owned(), v.clone()))
                    }
                    _ => None,
                })
                .collect();
            Some((id, fields))
        })
        .collect()
}
