//! Data minimisation: a rule may release only named fields of a response for
//! a purpose (law 09-08: proportionality). This module owns the compiled set
//! of released fields and the rewrite of a gRPC response body that clears
//! every other field before the response leaves the gateway.

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message as _;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, Value};

/// Length of a gRPC message prefix: 1-byte compressed flag, 4-byte BE length.
const PREFIX_LEN: usize = 5;

/// The fields of a response type a rule releases, compiled once at load.
#[derive(Debug, Clone)]
pub struct Release {
    fields: Vec<String>,
    keep: Keep,
}

/// What survives in one message: the fields to keep, each whole or pruned.
#[derive(Debug, Clone)]
struct Keep {
    desc: MessageDescriptor,
    fields: Vec<(FieldDescriptor, Sub)>,
}

/// How much of a kept field survives.
#[derive(Debug, Clone)]
enum Sub {
    /// The field as received, nested fields and all.
    Whole,
    /// Only the named fields of the message (of every element or map value).
    Part(Keep),
}

/// Why a response body could not be minimised. The gateway must then refuse
/// to forward it: passing it through would release what the rule withholds.
#[derive(Debug, thiserror::Error)]
pub enum MinimiseError {
    /// A message has its compressed flag set.
    #[error("response message is compressed; the gateway cannot minimise what it cannot read")]
    Compressed,
    /// The body ends inside a message prefix or a message.
    #[error("response body ends inside a gRPC message")]
    Truncated,
    /// A message does not decode as the response type.
    #[error("response message does not decode as the response type: {0}")]
    Decode(String),
}

impl Release {
    /// Compiles `fields`, dotted field paths of the `response` message (e.g.
    /// `["first_name", "birth_date", "members.full_name"]`). A path through a
    /// repeated message field (or a map with message values) applies to every
    /// element; naming a message field releases it whole. An unknown path is
    /// an error that says which field does not exist in which message and
    /// lists that message's fields.
    pub fn compile(response: &MessageDescriptor, fields: &[String]) -> Result<Self, String> {
        let mut keep = Keep::new(response.clone());
        for path in fields {
            keep.insert(path)?;
        }
        Ok(Release {
            fields: fields.to_vec(),
            keep,
        })
    }

    /// The released paths, as configured, for logs and the audit entry.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// Rewrites a gRPC response body (zero or more length-prefixed messages)
    /// so that every message keeps only the released fields, and returns the
    /// new framed body. Unknown fields and extensions are cleared too: the
    /// gateway cannot tell what they hold.
    pub fn apply(&self, framed: &[u8]) -> Result<Bytes, MinimiseError> {
        // Clearing fields shrinks a message and re-encoding only normalises
        // it, so the input size is a good first guess at the output's.
        let mut out = BytesMut::with_capacity(framed.len());
        let mut rest = framed;
        while !rest.is_empty() {
            let (flag, len, tail) = split_prefix(rest)?;
            match flag {
                0 => {}
                1 => return Err(MinimiseError::Compressed),
                other => {
                    return Err(MinimiseError::Decode(format!(
                        "invalid compressed flag {other}"
                    )))
                }
            }
            let (body, tail) = tail.split_at_checked(len).ok_or(MinimiseError::Truncated)?;
            rest = tail;
            let mut msg = DynamicMessage::decode(self.keep.desc.clone(), body)
                .map_err(|e| MinimiseError::Decode(e.to_string()))?;
            self.keep.prune(&mut msg);
            let len = u32::try_from(msg.encoded_len())
                .map_err(|_| MinimiseError::Decode("minimised message exceeds 4 GiB".to_owned()))?;
            out.reserve(PREFIX_LEN + len as usize);
            out.put_u8(0);
            out.put_u32(len);
            msg.encode_raw(&mut out);
        }
        Ok(out.freeze())
    }
}

/// Splits a message prefix off `buf`: the flag, the message length and the
/// bytes after the prefix.
fn split_prefix(buf: &[u8]) -> Result<(u8, usize, &[u8]), MinimiseError> {
    let (prefix, tail) = buf
        .split_first_chunk::<PREFIX_LEN>()
        .ok_or(MinimiseError::Truncated)?;
    let [flag, len @ ..] = *prefix;
    // A u32 always fits in usize on the targets Jisr builds for (64-bit).
    let len = usize::try_from(u32::from_be_bytes(len)).map_err(|_| MinimiseError::Truncated)?;
    Ok((flag, len, tail))
}

impl Keep {
    fn new(desc: MessageDescriptor) -> Self {
        Keep {
            desc,
            fields: Vec::new(),
        }
    }

    /// Adds one dotted path below this message.
    fn insert(&mut self, path: &str) -> Result<(), String> {
        if path.is_empty() {
            return Err(format!(
                "an empty field path cannot be released from message `{}`",
                self.desc.full_name()
            ));
        }
        let mut keep = self;
        let mut segments = path.split('.').peekable();
        while let Some(name) = segments.next() {
            let field = keep.desc.get_field_by_name(name).ok_or_else(|| {
                format!(
                    "released field `{path}`: field `{name}` does not exist in message `{}` \
                     (its fields: {})",
                    keep.desc.full_name(),
                    field_names(&keep.desc)
                )
            })?;
            let at = keep.fields.iter().position(|(f, _)| *f == field);
            let Some(next) = segments.peek() else {
                match at {
                    Some(at) => keep.fields[at].1 = Sub::Whole,
                    None => keep.fields.push((field, Sub::Whole)),
                }
                return Ok(());
            };
            let inner = element_message(&field).ok_or_else(|| {
                format!(
                    "released field `{path}`: field `{name}` of message `{}` is not a message, \
                     so it has no field `{next}`",
                    keep.desc.full_name()
                )
            })?;
            let at = at.unwrap_or_else(|| {
                keep.fields.push((field, Sub::Part(Keep::new(inner))));
                keep.fields.len() - 1
            });
            keep = match &mut keep.fields[at].1 {
                // Already released whole: a narrower path adds nothing.
                Sub::Whole => return Ok(()),
                Sub::Part(sub) => sub,
            };
        }
        Ok(())
    }

    /// Replaces `msg` by a message holding only the kept fields.
    fn prune(&self, msg: &mut DynamicMessage) {
        let mut out = DynamicMessage::new(self.desc.clone());
        for (field, sub) in &self.fields {
            if let Some(mut value) = msg.take_field(field) {
                if let Sub::Part(keep) = sub {
                    keep.prune_value(&mut value);
                }
                out.set_field(field, value);
            }
        }
        *msg = out;
    }

    /// Prunes a message value, every element of a list, every map value.
    fn prune_value(&self, value: &mut Value) {
        match value {
            Value::Message(msg) => self.prune(msg),
            Value::List(items) => items.iter_mut().for_each(|v| self.prune_value(v)),
            Value::Map(entries) => entries.values_mut().for_each(|v| self.prune_value(v)),
            // `compile` only descends into message-typed fields.
            _ => {}
        }
    }
}

/// The message a path continues into through `field`: the field's message
/// type, or a map's message value type.
fn element_message(field: &FieldDescriptor) -> Option<MessageDescriptor> {
    let Kind::Message(desc) = field.kind() else {
        return None;
    };
    if !field.is_map() {
        return Some(desc);
    }
    match desc.map_entry_value_field().kind() {
        Kind::Message(value) => Some(value),
        _ => None,
    }
}

fn field_names(desc: &MessageDescriptor) -> String {
    let names: Vec<_> = desc.fields().map(|f| f.name().to_owned()).collect();
    names.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::ma::civilstatus::v1::{BirthRecord, CivilEvent, FamilyMember, FamilyRecord};
    use proptest::prelude::*;
    use prost_reflect::DescriptorPool;
    use std::sync::LazyLock;

    static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/proto");
        protox::Compiler::new([dir])
            .expect("compiler")
            .open_files(["agencies/civilstatus/v1/civilstatus.proto"])
            .expect("civil status contract compiles")
            .descriptor_pool()
    });

    fn desc(name: &str) -> MessageDescriptor {
        POOL.get_message_by_name(&format!("ma.civilstatus.v1.{name}"))
            .expect(name)
    }

    fn release(message: &str, fields: &[&str]) -> Release {
        let fields: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        Release::compile(&desc(message), &fields).expect("release compiles")
    }

    fn frame(msgs: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in msgs {
            out.push(0);
            out.extend_from_slice(&u32::try_from(m.len()).unwrap().to_be_bytes());
            out.extend_from_slice(m);
        }
        out
    }

    fn unframe<M: prost::Message + Default>(mut body: &[u8]) -> Vec<M> {
        let mut out = Vec::new();
        while !body.is_empty() {
            let (flag, len, tail) = split_prefix(body).unwrap();
            assert_eq!(flag, 0);
            out.push(M::decode(&tail[..len]).unwrap());
            body = &tail[len..];
        }
        out
    }

    fn birth() -> BirthRecord {
        BirthRecord {
            citizen_id: "AB123456".into(),
            first_name: "Yasmine".into(),
            last_name: "El Idrissi".into(),
            birth_date: "2007-03-14".into(),
            birth_place: "Fès".into(),
            sex: "F".into(),
            father_name: "Karim El Idrissi".into(),
            mother_name: "Salma Bennani".into(),
            registry_office: "Fès-Médina".into(),
            act_number: "1432/2007".into(),
        }
    }

    #[test]
    fn education_gets_name_birth_date_and_place_only() {
        let r = release(
            "BirthRecord",
            &["first_name", "last_name", "birth_date", "birth_place"],
        );
        let out = r.apply(&frame(&[birth().encode_to_vec()])).unwrap();
        let got: Vec<BirthRecord> = unframe(&out);
        let b = birth();
        assert_eq!(
            got,
            vec![BirthRecord {
                first_name: b.first_name,
                last_name: b.last_name,
                birth_date: b.birth_date,
                birth_place: b.birth_place,
                ..Default::default()
            }]
        );
        assert_eq!(
            r.fields(),
            ["first_name", "last_name", "birth_date", "birth_place"]
        );
    }

    fn family() -> FamilyRecord {
        let member = |id: &str, name: &str, rel: &str| FamilyMember {
            citizen_id: id.into(),
            full_name: name.into(),
            relation: rel.into(),
            birth_date: "1980-01-01".into(),
        };
        FamilyRecord {
            citizen_id: "AB123456".into(),
            household_id: "H-77".into(),
            members: vec![
                member("AB1", "Karim El Idrissi", "head"),
                member("AB2", "Salma Bennani", "spouse"),
                member("AB123456", "Yasmine El Idrissi", "child"),
            ],
        }
    }

    #[test]
    fn nested_paths_apply_to_every_repeated_element() {
        let r = release("FamilyRecord", &["household_id", "members.full_name"]);
        let got: Vec<FamilyRecord> =
            unframe(&r.apply(&frame(&[family().encode_to_vec()])).unwrap());
        let f = family();
        let want = FamilyRecord {
            household_id: f.household_id,
            members: f
                .members
                .into_iter()
                .map(|m| FamilyMember {
                    full_name: m.full_name,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        assert_eq!(got, vec![want]);
    }

    #[test]
    fn naming_a_message_field_releases_it_whole() {
        // The narrower path adds nothing once the whole field is released.
        let r = release("FamilyRecord", &["members.relation", "members"]);
        let got: Vec<FamilyRecord> =
            unframe(&r.apply(&frame(&[family().encode_to_vec()])).unwrap());
        let want = FamilyRecord {
            members: family().members,
            ..Default::default()
        };
        assert_eq!(got, vec![want]);
    }

    #[test]
    fn every_message_of_a_stream_is_minimised() {
        let event = |kind: &str, date: &str| CivilEvent {
            citizen_id: "AB123456".into(),
            kind: kind.into(),
            date: date.into(),
            place: "Fès".into(),
            act_number: "1/2007".into(),
        };
        let events = [
            event("birth", "2007-03-14"),
            event("marriage", "2030-06-01"),
        ];
        let body = frame(&events.iter().map(|e| e.encode_to_vec()).collect::<Vec<_>>());
        let r = release("CivilEvent", &["kind", "date"]);
        let got: Vec<CivilEvent> = unframe(&r.apply(&body).unwrap());
        let want: Vec<_> = events
            .into_iter()
            .map(|e| CivilEvent {
                kind: e.kind,
                date: e.date,
                ..Default::default()
            })
            .collect();
        assert_eq!(got, want);
        assert!(r.apply(&[]).unwrap().is_empty());
    }

    #[test]
    fn unknown_fields_are_cleared() {
        let mut msg = birth().encode_to_vec();
        // Field 99, length-delimited "secret": not in the contract.
        msg.extend_from_slice(&[0x9a, 0x06, 6]);
        msg.extend_from_slice(b"secret");
        let all = desc("BirthRecord")
            .fields()
            .map(|f| f.name().to_owned())
            .collect::<Vec<_>>();
        let r = Release::compile(&desc("BirthRecord"), &all).unwrap();
        let out = r.apply(&frame(&[msg])).unwrap();
        assert_eq!(out[PREFIX_LEN..], birth().encode_to_vec()[..]);
    }

    #[test]
    fn unknown_paths_are_refused_with_the_fields_there_are() {
        let err = Release::compile(&desc("BirthRecord"), &["parents".to_owned()]).unwrap_err();
        assert!(err.contains("`parents` does not exist"), "{err}");
        assert!(err.contains("ma.civilstatus.v1.BirthRecord"), "{err}");
        assert!(err.contains("first_name, last_name"), "{err}");

        let err =
            Release::compile(&desc("FamilyRecord"), &["members.name".to_owned()]).unwrap_err();
        assert!(err.contains("`name` does not exist"), "{err}");
        assert!(err.contains("ma.civilstatus.v1.FamilyMember"), "{err}");
        assert!(err.contains("full_name"), "{err}");

        let err = Release::compile(&desc("BirthRecord"), &["first_name.x".to_owned()]).unwrap_err();
        assert!(err.contains("not a message"), "{err}");
        for bad in ["", "members.", ".members"] {
            assert!(Release::compile(&desc("FamilyRecord"), &[bad.to_owned()]).is_err());
        }
    }

    #[test]
    fn unreadable_bodies_are_errors() {
        let r = release("BirthRecord", &["first_name"]);
        let mut body = frame(&[birth().encode_to_vec()]);
        body[0] = 1;
        assert!(matches!(r.apply(&body), Err(MinimiseError::Compressed)));

        let body = frame(&[birth().encode_to_vec()]);
        for cut in [1, PREFIX_LEN, body.len() - 1] {
            assert!(matches!(
                r.apply(&body[..cut]),
                Err(MinimiseError::Truncated)
            ));
        }

        // A field 2 (string) whose length runs past the message's end.
        let garbage = frame(&[vec![0x12, 0x7f, b'x'], vec![0xff; 7]]);
        assert!(matches!(r.apply(&garbage), Err(MinimiseError::Decode(_))));
    }

    #[test]
    fn an_empty_release_clears_everything() {
        let r = release("FamilyRecord", &[]);
        let out = r.apply(&frame(&[family().encode_to_vec()])).unwrap();
        assert_eq!(&out[..], &[0, 0, 0, 0, 0]);
    }

    const BIRTH_FIELDS: [&str; 10] = [
        "citizen_id",
        "first_name",
        "last_name",
        "birth_date",
        "birth_place",
        "sex",
        "father_name",
        "mother_name",
        "registry_office",
        "act_number",
    ];

    fn get<'a>(r: &'a BirthRecord, field: &str) -> &'a str {
        match field {
            "citizen_id" => &r.citizen_id,
            "first_name" => &r.first_name,
            "last_name" => &r.last_name,
            "birth_date" => &r.birth_date,
            "birth_place" => &r.birth_place,
            "sex" => &r.sex,
            "father_name" => &r.father_name,
            "mother_name" => &r.mother_name,
            "registry_office" => &r.registry_office,
            "act_number" => &r.act_number,
            _ => unreachable!("{field}"),
        }
    }

    fn any_birth() -> impl Strategy<Value = BirthRecord> {
        proptest::collection::vec(".{0,12}", 10).prop_map(|v| {
            let mut v = v.into_iter();
            let mut next = || v.next().unwrap();
            BirthRecord {
                citizen_id: next(),
                first_name: next(),
                last_name: next(),
                birth_date: next(),
                birth_place: next(),
                sex: next(),
                father_name: next(),
                mother_name: next(),
                registry_office: next(),
                act_number: next(),
            }
        })
    }

    proptest! {
        #[test]
        fn output_holds_exactly_the_released_fields(
            record in any_birth(),
            released in proptest::sample::subsequence(BIRTH_FIELDS.to_vec(), 0..=10),
        ) {
            let r = release("BirthRecord", &released);
            let out = r.apply(&frame(&[record.encode_to_vec()])).unwrap();
            let got: Vec<BirthRecord> = unframe(&out);
            prop_assert_eq!(got.len(), 1);
            for field in BIRTH_FIELDS {
                let want = if released.contains(&field) { get(&record, field) } else { "" };
                prop_assert_eq!(get(&got[0], field), want, "field {}", field);
            }
        }
    }
}
