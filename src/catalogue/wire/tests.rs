//! The walk is checked against a full decode with prost-reflect: both must
//! accept the same byte strings, and agree on the subject (an absent
//! subject is `None` here and `""` there).

use super::*;
use proptest::prelude::*;
use proptest::sample::Index;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, FieldDescriptor, Value};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};
use std::sync::LazyLock;

const WIRETEST: &str = r#"
syntax = "proto3";
package wiretest;
import "jisr/annotations.proto";

enum Colour { COLOUR_UNSPECIFIED = 0; RED = 1; GREEN = 2; }

message Inner {
  string citizen_id = 1 [(jisr.subject) = true];
  int32 n = 2;
}

message Node {
  Node child = 1;
  int32 value = 2;
  repeated Node children = 3;
  map<string, Node> named = 4;
}

message Outer {
  int32 i32 = 1;
  int64 i64 = 2;
  Inner who = 3;
  uint32 u32 = 4;
  sint64 s64 = 5;
  bool flag = 6;
  Colour colour = 7;
  fixed32 f32 = 8;
  fixed64 f64 = 9;
  sfixed32 sf32 = 10;
  sfixed64 sf64 = 11;
  float fl = 12;
  double db = 13;
  string name = 14;
  bytes blob = 15;
  Node tree = 16;
  repeated int32 packed_i32 = 17;
  repeated sint32 unpacked_s32 = 18 [packed = false];
  repeated fixed64 packed_f64 = 19;
  repeated string tags = 20;
  map<string, int32> counts = 21;
  oneof choice {
string text = 22;
Inner other = 23;
uint64 number = 24;
  }
  repeated Colour colours = 25;
  uint64 u64 = 26;
  sint32 s32 = 27;
  repeated double doubles = 28 [packed = false];
  optional string nick = 29;
}

// The subject behind a oneof: a later sibling clears it.
message Chosen {
  oneof who {
Inner person = 1;
string passport = 2;
  }
}

message Direct {
  oneof id {
string citizen_id = 1 [(jisr.subject) = true];
string passport = 2;
  }
}
"#;

const LEGACY: &str = r#"
syntax = "proto2";
package legacy;

message Legacy {
  optional group Who = 1 { optional string citizen_id = 1; }
  repeated group Item = 2 { optional int32 x = 1; }
  optional int32 plain = 3;
  extensions 100 to 199;
}

extend Legacy {
  optional int32 ext_num = 100;
  optional string ext_str = 101;
  repeated fixed32 ext_list = 102;
}

// Recursion through a message, a group and a map value.
message GNode {
  optional GNode child = 1;
  optional group G = 2 { optional GNode inner = 1; }
  map<string, GNode> named = 3;
}
"#;

struct Sources;

impl FileResolver for Sources {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match name {
            "wiretest.proto" => File::from_source(name, WIRETEST),
            "legacy.proto" => File::from_source(name, LEGACY),
            "jisr/annotations.proto" => {
                File::from_source(name, crate::catalogue::ANNOTATIONS_PROTO)
            }
            _ => Err(protox::Error::file_not_found(name)),
        }
    }
}

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    let mut resolver = ChainFileResolver::new();
    resolver.add(Sources);
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true);
    compiler
        .open_files(["wiretest.proto", "legacy.proto"])
        .expect("test protos compile");
    compiler.descriptor_pool()
});

/// A request type under test with its compiled schema.
struct Case {
    desc: MessageDescriptor,
    schema: Schema,
    path: Vec<u32>,
}

fn case(name: &str, path: &[u32]) -> Case {
    let desc = POOL.get_message_by_name(name).expect(name);
    Case {
        schema: Schema::compile(&desc, path.to_vec()),
        desc,
        path: path.to_vec(),
    }
}

static OUTER: LazyLock<Case> = LazyLock::new(|| case("wiretest.Outer", &[3, 1]));

/// Every schema the wire-level generators are run against.
static CASES: LazyLock<Vec<Case>> = LazyLock::new(|| {
    vec![
        case("wiretest.Outer", &[3, 1]),
        case("wiretest.Outer", &[14]),
        case("wiretest.Node", &[]),
        case("wiretest.Chosen", &[1, 1]),
        case("wiretest.Direct", &[1]),
        case("legacy.Legacy", &[1, 1]),
        case("legacy.GNode", &[]),
    ]
});

/// The subject as a full decode sees it.
fn decoded_subject(msg: &DynamicMessage, path: &[u32]) -> String {
    let Some((last, init)) = path.split_last() else {
        return String::new();
    };
    let mut current = msg.clone();
    for &n in init {
        current = match current.get_field_by_number(n).as_deref() {
            Some(Value::Message(m)) => m.clone(),
            other => panic!("field {n} is not a message: {other:?}"),
        };
    }
    match current.get_field_by_number(*last).as_deref() {
        Some(Value::String(s)) => s.clone(),
        other => panic!("field {last} is not a string: {other:?}"),
    }
}

fn agree(case: &Case, bytes: &[u8]) -> Result<(), TestCaseError> {
    let walked = case.schema.walk(bytes);
    let decoded = DynamicMessage::decode(case.desc.clone(), bytes);
    match (&walked, &decoded) {
        (Ok(subject), Ok(msg)) => prop_assert_eq!(
            subject.unwrap_or(""),
            decoded_subject(msg, &case.path),
            "{} path {:?} bytes {:02x?}",
            case.desc.full_name(),
            case.path,
            bytes
        ),
        (Err(_), Err(_)) => {}
        (Err(WireError::WrongWireType { field, name, .. }), Ok(_))
            if is_map_field(*field, name) => {}
        _ => prop_assert!(
            false,
            "{}: walk {:?} but decode {:?} for {:02x?}",
            case.desc.full_name(),
            walked,
            decoded.map(drop),
            bytes
        ),
    }
    Ok(())
}

/// prost (generated and reflective) reads a map field's entry as
/// length-delimited whatever the key's wire type says; the walk follows
/// the protobuf spec and refuses it. That is the one known disagreement,
/// and in the safe direction: no encoder writes a map entry that way.
fn is_map_field(number: u32, name: &str) -> bool {
    POOL.all_messages()
        .flat_map(|m| m.fields().collect::<Vec<_>>())
        .any(|f| f.is_map() && f.number() == number && f.name() == name)
}

// ---- valid messages -------------------------------------------------

fn text() -> BoxedStrategy<String> {
    prop_oneof!["[A-Z]{1,2}[0-9]{1,6}", ".{0,6}", Just(String::new())].boxed()
}

fn scalar(kind: &Kind) -> BoxedStrategy<Value> {
    match kind {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => any::<i32>().prop_map(Value::I32).boxed(),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => any::<i64>().prop_map(Value::I64).boxed(),
        Kind::Uint32 | Kind::Fixed32 => any::<u32>().prop_map(Value::U32).boxed(),
        Kind::Uint64 | Kind::Fixed64 => any::<u64>().prop_map(Value::U64).boxed(),
        Kind::Float => any::<f32>().prop_map(Value::F32).boxed(),
        Kind::Double => any::<f64>().prop_map(Value::F64).boxed(),
        Kind::Bool => any::<bool>().prop_map(Value::Bool).boxed(),
        Kind::Enum(_) => prop_oneof![0..3i32, any::<i32>()]
            .prop_map(Value::EnumNumber)
            .boxed(),
        Kind::String => text().prop_map(Value::String).boxed(),
        Kind::Bytes => prop::collection::vec(any::<u8>(), 0..8)
            .prop_map(|b| Value::Bytes(b.into()))
            .boxed(),
        Kind::Message(m) => panic!("{} is not a scalar", m.full_name()),
    }
}

/// A value of one element of the field; `None` for a message once the
/// depth budget is spent.
fn element(kind: &Kind, depth: u32) -> Option<BoxedStrategy<Value>> {
    match kind {
        Kind::Message(m) => (depth > 0).then(|| {
            message_value(m.clone(), depth - 1)
                .prop_map(Value::Message)
                .boxed()
        }),
        other => Some(scalar(other)),
    }
}

fn field_value(
    field: FieldDescriptor,
    depth: u32,
) -> BoxedStrategy<Option<(FieldDescriptor, Value)>> {
    let kind = field.kind();
    let value = if field.is_map() {
        let entry = kind.as_message().expect("a map entry").clone();
        let key = scalar(&entry.map_entry_key_field().kind());
        element(&entry.map_entry_value_field().kind(), depth).map(|value| {
            prop::collection::vec((key, value), 0..3)
                .prop_map(|pairs| {
                    Value::Map(
                        pairs
                            .into_iter()
                            .map(|(k, v)| (k.into_map_key().expect("a key kind"), v))
                            .collect(),
                    )
                })
                .boxed()
        })
    } else if field.is_list() {
        element(&kind, depth).map(|e| prop::collection::vec(e, 0..4).prop_map(Value::List).boxed())
    } else {
        element(&kind, depth)
    };
    match value {
        Some(value) => proptest::option::of(value.prop_map(move |v| (field.clone(), v))).boxed(),
        None => Just(None).boxed(),
    }
}

/// Random messages of `desc`, nested at most `depth` levels.
fn message_value(desc: MessageDescriptor, depth: u32) -> BoxedStrategy<DynamicMessage> {
    let fields: Vec<_> = desc.fields().map(|f| field_value(f, depth)).collect();
    fields
        .prop_map(move |values| {
            let mut msg = DynamicMessage::new(desc.clone());
            // Fields of a oneof overwrite each other, as on the wire.
            for (field, value) in values.into_iter().flatten() {
                msg.set_field(&field, value);
            }
            msg
        })
        .boxed()
}

fn outer() -> BoxedStrategy<DynamicMessage> {
    message_value(OUTER.desc.clone(), 3)
}

/// One of the `CASES` and two valid messages of its type, encoded one
/// after the other: a decode merges them.
fn merged() -> impl Strategy<Value = (usize, Vec<u8>)> {
    (0..CASES.len())
        .prop_flat_map(|i| {
            let msg = || message_value(CASES[i].desc.clone(), 3);
            (Just(i), msg(), msg())
        })
        .prop_map(|(i, a, b)| (i, [a.encode_to_vec(), b.encode_to_vec()].concat()))
}

// ---- wire-level sequences ------------------------------------------

/// One field as written on the wire, possibly malformed.
#[derive(Debug, Clone)]
enum Chunk {
    /// A key and a varint.
    Varint(u32, u64),
    /// A key with any wire type (0..=7), then raw bytes.
    Raw(u32, u8, Vec<u8>),
    /// A length-delimited field holding UTF-8 text.
    Text(u32, String),
    /// A length-delimited field holding nested fields; the length is
    /// off by `skew`.
    Nested(u32, i8, Vec<Chunk>),
    /// A group; closed by an end-group tag of the given number, or not.
    Group(u32, Vec<Chunk>, Option<u32>),
    /// Bytes as they come, tags included.
    Junk(Vec<u8>),
}

fn put_varint(out: &mut Vec<u8>, value: u64) {
    prost::encoding::encode_varint(value, out);
}

fn put_key(out: &mut Vec<u8>, number: u32, wire_type: u8) {
    put_varint(out, u64::from(number) << 3 | u64::from(wire_type));
}

fn encode_chunks(chunks: &[Chunk], out: &mut Vec<u8>) {
    for chunk in chunks {
        match chunk {
            Chunk::Varint(n, v) => {
                put_key(out, *n, 0);
                put_varint(out, *v);
            }
            Chunk::Raw(n, wt, bytes) => {
                put_key(out, *n, *wt);
                out.extend_from_slice(bytes);
            }
            Chunk::Text(n, text) => {
                put_key(out, *n, 2);
                put_varint(out, text.len() as u64);
                out.extend_from_slice(text.as_bytes());
            }
            Chunk::Nested(n, skew, inner) => {
                let mut body = Vec::new();
                encode_chunks(inner, &mut body);
                put_key(out, *n, 2);
                put_varint(out, (body.len() as i64 + i64::from(*skew)).max(0) as u64);
                out.extend_from_slice(&body);
            }
            Chunk::Group(n, inner, end) => {
                put_key(out, *n, 3);
                encode_chunks(inner, out);
                if let Some(end) = end {
                    put_key(out, *end, 4);
                }
            }
            Chunk::Junk(bytes) => out.extend_from_slice(bytes),
        }
    }
}

/// Field numbers known to some schema under test, and unknown ones.
fn number() -> BoxedStrategy<u32> {
    prop_oneof![
        6 => 1..=4u32,
        6 => 1..=30u32,
        1 => prop::sample::select(vec![100, 101, 102, 150, 1000, (1 << 29) - 1]),
    ]
    .boxed()
}

fn raw_payload() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..12),
        1 => Just(vec![0xff; 10]),
        1 => Just([vec![0xff; 9], vec![0x01]].concat()),
        1 => Just([vec![0xff; 9], vec![0x02]].concat()),
        1 => Just([vec![0x80; 10], vec![0x00]].concat()),
    ]
    .boxed()
}

fn chunk() -> impl Strategy<Value = Chunk> {
    let leaf = prop_oneof![
        4 => (number(), prop_oneof![any::<u64>(), 0..300u64]).prop_map(|(n, v)| Chunk::Varint(n, v)),
        3 => (number(), 0..8u8, raw_payload()).prop_map(|(n, wt, b)| Chunk::Raw(n, wt, b)),
        3 => (number(), text()).prop_map(|(n, t)| Chunk::Text(n, t)),
        1 => prop::collection::vec(any::<u8>(), 1..4).prop_map(Chunk::Junk),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        let body = prop::collection::vec(inner, 0..4);
        prop_oneof![
            4 => (number(), prop_oneof![8 => Just(0i8), 1 => -2..=2i8], body.clone())
                .prop_map(|(n, skew, c)| Chunk::Nested(n, skew, c)),
            1 => (number(), body, prop_oneof![6 => Just(true), 1 => Just(false)], proptest::option::of(number()))
                .prop_map(|(n, c, same, other)| {
                    let end = if same { Some(n) } else { other };
                    Chunk::Group(n, c, end)
                }),
        ]
    })
}

fn chunks() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(chunk(), 0..8).prop_map(|c| {
        let mut out = Vec::new();
        encode_chunks(&c, &mut out);
        out
    })
}

// ---- mutations -----------------------------------------------------

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Truncate(Index),
    Insert(Index, u8),
    Delete(Index),
    Set(Index, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 0..8u8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<Index>().prop_map(Mutation::Truncate),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Delete),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        if let Mutation::Insert(_, b) = mutation {
            bytes.push(*b);
        }
        return;
    }
    let len = bytes.len();
    match mutation {
        Mutation::Flip(i, bit) => bytes[i.index(len)] ^= 1 << bit,
        Mutation::Truncate(i) => bytes.truncate(i.index(len)),
        Mutation::Insert(i, b) => bytes.insert(i.index(len + 1), *b),
        Mutation::Delete(i) => drop(bytes.remove(i.index(len))),
        Mutation::Set(i, b) => bytes[i.index(len)] = *b,
    }
}

// ---- deep nesting --------------------------------------------------

/// One level of nesting in a `legacy.GNode`.
#[derive(Debug, Clone, Copy)]
enum Level {
    Child,
    Group,
    MapValue,
    UnknownGroup,
}

/// What the innermost level holds.
#[derive(Debug, Clone, Copy)]
enum Leaf {
    Nothing,
    UnknownVarint,
    UnknownGroup,
    EntryWithUnknown,
    EntryWithUnknownGroup,
    EntryWithFullGroup,
}

fn deep(levels: &[Level], leaf: Leaf) -> Vec<u8> {
    let mut body = Vec::new();
    match leaf {
        Leaf::Nothing => {}
        Leaf::UnknownVarint => body.extend_from_slice(&[7 << 3, 1]),
        Leaf::UnknownGroup => body.extend_from_slice(&[7 << 3 | 3, 7 << 3 | 4]),
        Leaf::EntryWithUnknown => body.extend_from_slice(&[3 << 3 | 2, 2, 7 << 3, 1]),
        Leaf::EntryWithUnknownGroup => {
            body.extend_from_slice(&[3 << 3 | 2, 2, 7 << 3 | 3, 7 << 3 | 4])
        }
        Leaf::EntryWithFullGroup => {
            body.extend_from_slice(&[3 << 3 | 2, 4, 7 << 3 | 3, 8 << 3, 1, 7 << 3 | 4])
        }
    }
    for level in levels.iter().rev() {
        let mut out = Vec::new();
        match level {
            Level::Child => {
                put_key(&mut out, 1, 2);
                put_varint(&mut out, body.len() as u64);
                out.extend_from_slice(&body);
            }
            Level::Group => {
                put_key(&mut out, 2, 3);
                put_key(&mut out, 1, 2);
                put_varint(&mut out, body.len() as u64);
                out.extend_from_slice(&body);
                put_key(&mut out, 2, 4);
            }
            Level::MapValue => {
                let mut entry = vec![1 << 3 | 2, 1, b'k'];
                put_key(&mut entry, 2, 2);
                put_varint(&mut entry, body.len() as u64);
                entry.extend_from_slice(&body);
                put_key(&mut out, 3, 2);
                put_varint(&mut out, entry.len() as u64);
                out.extend_from_slice(&entry);
            }
            Level::UnknownGroup => {
                put_key(&mut out, 9, 3);
                out.extend_from_slice(&body);
                put_key(&mut out, 9, 4);
            }
        }
        body = out;
    }
    body
}

fn level() -> impl Strategy<Value = Level> {
    prop_oneof![
        4 => Just(Level::Child),
        1 => Just(Level::Group),
        4 => Just(Level::MapValue),
        1 => Just(Level::UnknownGroup),
    ]
}

fn leaf() -> impl Strategy<Value = Leaf> {
    prop_oneof![
        Just(Leaf::Nothing),
        Just(Leaf::UnknownVarint),
        Just(Leaf::UnknownGroup),
        Just(Leaf::EntryWithUnknown),
        Just(Leaf::EntryWithUnknownGroup),
        Just(Leaf::EntryWithFullGroup),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn valid_messages_walk_and_yield_the_subject(msg in outer()) {
        let bytes = msg.encode_to_vec();
        let walked = OUTER.schema.walk(&bytes);
        prop_assert!(walked.is_ok(), "{:?} for {:02x?}", walked, bytes);
        prop_assert_eq!(walked.unwrap().unwrap_or(""), decoded_subject(&msg, &OUTER.path));
        agree(&OUTER, &bytes)?;
    }

    #[test]
    fn merged_messages_walk_and_the_last_subject_wins((i, bytes) in merged()) {
        prop_assert!(CASES[i].schema.walk(&bytes).is_ok());
        agree(&CASES[i], &bytes)?;
    }

    #[test]
    fn mutated_messages_agree_with_a_full_decode(
        (_, mut bytes) in merged(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        for case in CASES.iter() {
            agree(case, &bytes)?;
        }
    }

    #[test]
    fn wire_sequences_agree_with_a_full_decode(bytes in chunks()) {
        for case in CASES.iter() {
            agree(case, &bytes)?;
        }
    }

    #[test]
    fn mutated_wire_sequences_agree_with_a_full_decode(
        mut bytes in chunks(),
        mutations in prop::collection::vec(mutation(), 1..3),
    ) {
        for m in &mutations {
            mutate(&mut bytes, m);
        }
        for case in CASES.iter() {
            agree(case, &bytes)?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn nesting_depth_limits_agree_with_a_full_decode(
        levels in prop::collection::vec(level(), 30..=101),
        leaf in leaf(),
    ) {
        let case = &CASES[6];
        agree(case, &deep(&levels, leaf))?;
    }
}

// ---- known cases ---------------------------------------------------

#[track_caller]
fn walk(bytes: &[u8]) -> Result<Option<&str>, WireError> {
    let walked = OUTER.schema.walk(bytes);
    let decoded = DynamicMessage::decode(OUTER.desc.clone(), bytes);
    assert_eq!(walked.is_ok(), decoded.is_ok(), "{walked:?} vs {decoded:?}");
    walked
}

/// A key followed by `rest`.
fn key(number: u32, wire_type: u8, rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_key(&mut out, number, wire_type);
    out.extend_from_slice(rest);
    out
}

/// A length-delimited field.
fn ld(number: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    put_key(&mut out, number, 2);
    put_varint(&mut out, body.len() as u64);
    out.extend_from_slice(body);
    out
}

/// `who { citizen_id: id }` (Outer field 3, Inner field 1).
fn who(id: &[u8]) -> Vec<u8> {
    ld(3, &ld(1, id))
}

#[test]
fn subject_is_found_through_the_nested_message() {
    assert_eq!(walk(&who(b"AB123")), Ok(Some("AB123")));
    assert_eq!(walk(&[]), Ok(None));
    assert_eq!(walk(&ld(3, &[])), Ok(None));
}

#[test]
fn last_subject_wins() {
    let bytes = [who(b"AB1"), key(1, 0, &[5]), who(b"CD2"), who(b"")].concat();
    assert_eq!(walk(&bytes), Ok(Some("")));
    let bytes = [who(b"AB1"), ld(3, &key(2, 0, &[1])), who(b"CD2")].concat();
    assert_eq!(walk(&bytes), Ok(Some("CD2")));
    // A later `who` without a citizen id keeps the earlier one (merge).
    let bytes = [who(b"AB1"), ld(3, &key(2, 0, &[1]))].concat();
    assert_eq!(walk(&bytes), Ok(Some("AB1")));
}

#[test]
fn a_string_elsewhere_is_not_the_subject() {
    // `other` (23) is also an Inner, and `name` (14) a string.
    let bytes = [ld(23, &ld(1, b"XY")), ld(14, b"Z")].concat();
    assert_eq!(walk(&bytes), Ok(None));
}

#[test]
fn truncated_varint() {
    assert_eq!(
        walk(&key(1, 0, &[0x80])),
        Err(WireError::Truncated { field: 1 })
    );
    assert_eq!(walk(&[0x80]), Err(WireError::Truncated { field: 0 }));
}

#[test]
fn overlong_varints() {
    let ten = key(1, 0, &[[0xff; 9].as_slice(), &[0x01]].concat());
    assert_eq!(walk(&ten), Ok(None));
    let overflow = key(1, 0, &[[0xff; 9].as_slice(), &[0x02]].concat());
    assert_eq!(walk(&overflow), Err(WireError::BadVarint { field: 1 }));
    let eleven = key(1, 0, &[[0x80; 10].as_slice(), &[0x00]].concat());
    assert_eq!(walk(&eleven), Err(WireError::BadVarint { field: 1 }));
}

#[test]
fn bad_tags() {
    assert!(matches!(
        walk(&[0]),
        Err(WireError::BadTag { field: 0, .. })
    ));
    assert!(matches!(
        walk(&key(1, 6, &[])),
        Err(WireError::BadTag { wire_type: 6, .. })
    ));
    assert!(matches!(
        walk(&key(1, 7, &[])),
        Err(WireError::BadTag { wire_type: 7, .. })
    ));
    // A key above u32::MAX.
    assert!(walk(&[0x80, 0x80, 0x80, 0x80, 0x10, 0]).is_err());
}

#[test]
fn wrong_wire_type_for_known_fields() {
    let wrong = |bytes: &[u8]| matches!(walk(bytes), Err(WireError::WrongWireType { .. }));
    assert!(wrong(&key(1, 5, &[0; 4]))); // int32 as fixed32
    assert!(wrong(&key(8, 0, &[1]))); // fixed32 as varint
    assert!(wrong(&key(9, 5, &[0; 4]))); // fixed64 as fixed32
    assert!(wrong(&key(14, 0, &[1]))); // string as varint
    assert!(wrong(&key(3, 1, &[0; 8]))); // message as fixed64
    assert!(wrong(&ld(1, &[1]))); // singular int32 packed
    assert!(wrong(&key(20, 0, &[1]))); // repeated string as varint
    assert!(wrong(&[key(3, 3, &[]), key(3, 4, &[])].concat())); // message as a group
}

#[test]
fn packed_and_unpacked_repeated_fields() {
    assert_eq!(walk(&ld(17, &[1, 0x80, 1])), Ok(None));
    assert_eq!(
        walk(&[key(17, 0, &[1]), key(17, 0, &[2])].concat()),
        Ok(None)
    );
    // `[packed = false]` still accepts the packed form.
    assert_eq!(walk(&ld(18, &[1, 2])), Ok(None));
    assert!(matches!(
        walk(&ld(17, &[0x80])),
        Err(WireError::BadPacked { .. })
    ));
    assert!(matches!(
        walk(&ld(19, &[0; 4])),
        Err(WireError::BadPacked { .. })
    ));
    assert_eq!(walk(&ld(19, &[0; 8])), Ok(None));
}

#[test]
fn invalid_utf8() {
    assert!(matches!(
        walk(&who(&[0xc3, 0x28])),
        Err(WireError::BadUtf8 { field: 1, .. })
    ));
    assert!(matches!(
        walk(&ld(14, &[0xff])),
        Err(WireError::BadUtf8 { .. })
    ));
    assert!(walk(&ld(21, &ld(1, &[0xff]))).is_err()); // a map key is a string
    assert_eq!(walk(&ld(15, &[0xff])), Ok(None)); // bytes need not be text
}

#[test]
fn unknown_fields_of_every_wire_type_are_skipped() {
    let bytes = [
        key(40, 0, &[0x96, 0x01]),
        key(41, 1, &[1, 2, 3, 4, 5, 6, 7, 8]),
        ld(42, &[0xff, 0xfe]),
        key(43, 3, &[]),
        key(44, 0, &[1]),
        key(45, 3, &[]),
        key(45, 4, &[]),
        key(43, 4, &[]),
        key(46, 5, &[1, 2, 3, 4]),
        who(b"AB1"),
    ]
    .concat();
    assert_eq!(walk(&bytes), Ok(Some("AB1")));
}

#[test]
fn malformed_groups() {
    assert_eq!(walk(&key(40, 3, &[])), Err(WireError::BadGroup));
    assert_eq!(
        walk(&key(40, 3, &key(41, 4, &[]))),
        Err(WireError::BadGroup)
    );
    assert_eq!(walk(&key(40, 4, &[])), Err(WireError::BadGroup));
}

#[test]
fn truncated_fields() {
    assert_eq!(
        walk(&key(8, 5, &[1, 2, 3])),
        Err(WireError::Truncated { field: 8 })
    );
    assert_eq!(
        walk(&key(9, 1, &[1])),
        Err(WireError::Truncated { field: 9 })
    );
    assert_eq!(
        walk(&key(14, 2, &[5, b'a'])),
        Err(WireError::Truncated { field: 14 })
    );
    // A nested length running past its parent.
    assert!(walk(&[ld(3, &key(1, 2, &[5])), b"abc".to_vec()].concat()).is_err());
}

// ---- regressions: the walk disagreed with a full decode -------------

#[track_caller]
fn agrees(case: &Case, bytes: &[u8]) -> Result<Option<String>, WireError> {
    agree(case, bytes).unwrap();
    case.schema.walk(bytes).map(|s| s.map(str::to_owned))
}

#[test]
fn a_later_oneof_sibling_clears_the_subject() {
    let chosen = &CASES[3];
    let person = ld(1, &ld(1, b"AB1"));
    assert_eq!(
        agrees(chosen, &[person.clone(), ld(2, b"P")].concat()),
        Ok(None)
    );
    assert_eq!(
        agrees(chosen, &[ld(2, b"P"), person].concat()),
        Ok(Some("AB1".into()))
    );
    let direct = &CASES[4];
    assert_eq!(
        agrees(direct, &[ld(1, b"AB1"), ld(2, b"P")].concat()),
        Ok(None)
    );
    assert_eq!(
        agrees(direct, &[ld(2, b"P"), ld(1, b"AB1")].concat()),
        Ok(Some("AB1".into()))
    );
    // Outer's oneof does not hold the path: `text` leaves `who` alone.
    assert_eq!(
        agrees(&OUTER, &[who(b"AB1"), ld(22, b"T")].concat()),
        Ok(Some("AB1".into()))
    );
}

#[test]
fn the_subject_is_found_inside_a_group() {
    let legacy = &CASES[5];
    let bytes = [key(1, 3, &ld(1, b"AB1")), key(1, 4, &[])].concat();
    assert_eq!(agrees(legacy, &bytes), Ok(Some("AB1".into())));
}

#[test]
fn extensions_are_known_fields() {
    let legacy = &CASES[5];
    assert_eq!(agrees(legacy, &key(100, 0, &[1])), Ok(None));
    assert!(agrees(legacy, &ld(100, &[])).is_err()); // an int32 as bytes
    assert!(agrees(legacy, &ld(101, &[0xff])).is_err()); // a string, not UTF-8
    assert_eq!(agrees(legacy, &ld(102, &[0; 8])), Ok(None)); // packed fixed32
    assert!(agrees(legacy, &ld(102, &[0; 3])).is_err());
    assert_eq!(agrees(legacy, &ld(150, &[0xff])), Ok(None)); // in range, undeclared
}

#[test]
fn map_entries_take_no_recursion_level() {
    let gnode = &CASES[6];
    for n in [49, 50, 51, 99, 100, 101] {
        let levels = vec![Level::MapValue; n];
        let ok = agrees(gnode, &deep(&levels, Leaf::Nothing)).is_ok();
        assert_eq!(ok, n <= 100, "{n} levels");
    }
    // Unknown fields of a map entry count one level more.
    let levels = vec![Level::Child; 99];
    assert!(agrees(gnode, &deep(&levels, Leaf::EntryWithUnknown)).is_ok());
    assert!(agrees(gnode, &deep(&levels, Leaf::EntryWithUnknownGroup)).is_ok());
    assert!(agrees(gnode, &deep(&levels, Leaf::EntryWithFullGroup)).is_err());
    let levels = vec![Level::Child; 100];
    assert!(agrees(gnode, &deep(&levels, Leaf::EntryWithUnknown)).is_err());
    assert!(agrees(gnode, &deep(&levels, Leaf::UnknownVarint)).is_ok());
    assert!(agrees(gnode, &deep(&levels, Leaf::UnknownGroup)).is_err());
}

#[test]
fn a_map_field_with_another_wire_type_is_refused_though_prost_reads_it() {
    let entry = [ld(1, b"k"), key(2, 0, &[1])].concat();
    let mut bytes = key(21, 0, &[entry.len() as u8]);
    bytes.extend_from_slice(&entry);
    assert!(DynamicMessage::decode(OUTER.desc.clone(), &bytes[..]).is_ok());
    assert!(matches!(
        OUTER.schema.walk(&bytes),
        Err(WireError::WrongWireType { field: 21, .. })
    ));
}
