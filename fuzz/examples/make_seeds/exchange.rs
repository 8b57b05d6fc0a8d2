//! Seeds of the exchange-side targets: consents, bus events, request and
//! response bodies, call metadata.

use crate::common::{self, DEPLOYMENT};
use crate::Seeds;
use jisr::audit::note::NoteSigner;
use jisr::consent::artefact::ConsentSigner;
use jisr::proto::jisr::bus::v1::PublishRequest;
use jisr::proto::jisr::consent::v1::{Consent, SignedConsent, VerifyRequest};
use jisr::proto::ma::civilstatus::v1::{
    BirthRegistered, DeathRegistered, GetBirthRecordRequest, GetFamilyRecordRequest,
};
use jisr::proto::ma::health::v1::GetVaccinationRecordRequest;
use jisr::proto::ma::tax::v1::GetTaxStatusRequest;
use jisr::tools::samples::dataset;
use prost::Message;
use prost_reflect::{DynamicMessage, Value};

fn citizens() -> Vec<&'static str> {
    dataset::citizen_ids().take(3).collect()
}

/// A gRPC length-prefixed message.
fn framed(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

fn prefixed(head: &[u8], body: &[u8]) -> Vec<u8> {
    [head, body].concat()
}

pub fn consent_artefact() {
    let seeds = Seeds::of("consent_artefact");
    let signer = ConsentSigner::new(common::consent_key());
    let stranger =
        ConsentSigner::new(NoteSigner::generate("fuzz.example/jisr/consents").expect("a key"));
    let now = jisr::consent::artefact::now_micros();
    let consents = [
        Consent {
            id: format!("{:032x}", rand_id()),
            subject: citizens()[0].to_owned(),
            consumer: "education".into(),
            purpose: "bac-candidature".into(),
            procedure: "bac-2027".into(),
            categories: vec!["CIVIL".into()],
            not_before_unix_micros: now,
            not_after_unix_micros: now + 86_400_000_000,
            recorded_by: "portal".into(),
            granted_by: "citizen".into(),
            recorded_unix_micros: now,
            ..Default::default()
        },
        Consent {
            id: format!("{:032x}", rand_id()),
            subject: citizens()[1].to_owned(),
            consumer: "tax".into(),
            purpose: "tax-household".into(),
            methods: vec!["/ma.civilstatus.v1.CivilStatus/GetFamilyRecord".into()],
            not_after_unix_micros: now + 3_600_000_000,
            max_uses: 3,
            recorded_by: "portal".into(),
            recorded_unix_micros: now,
            ..Default::default()
        },
    ];
    for (i, consent) in consents.iter().enumerate() {
        for (who, key) in [("signed", &signer), ("stranger", &stranger)] {
            let (encoded, signature) = key.sign(consent);
            let request = VerifyRequest {
                consent: Some(SignedConsent {
                    consent: encoded,
                    signature,
                    verifier_key: key.verifier().to_text(),
                    decoded: Some(consent.clone()),
                    ..Default::default()
                }),
            };
            seeds.put(&format!("verify-{who}-{i}"), &request.encode_to_vec());
        }
        seeds.put(&format!("consent-{i}"), &consent.encode_to_vec());
    }
}

fn rand_id() -> u128 {
    u128::from_str_radix(&jisr::gateway::metadata::new_request_id(), 16).unwrap_or(1)
}

fn any(type_url: &str, value: Vec<u8>) -> Option<prost_types::Any> {
    Some(prost_types::Any {
        type_url: type_url.to_owned(),
        value,
    })
}

pub fn bus_event() {
    let seeds = Seeds::of("bus_event");
    let topic = |i: usize| {
        DEPLOYMENT
            .topics
            .get(common::TOPICS[i])
            .expect("a fuzz topic")
    };
    let id = citizens()[0];
    let birth = dataset::birth_record(id).expect("a dataset citizen");
    let events: [(usize, Vec<u8>, &str, String); 4] = [
        (
            0,
            BirthRegistered {
                citizen_id: birth.citizen_id.clone(),
                first_name: birth.first_name.clone(),
                last_name: birth.last_name.clone(),
                birth_date: birth.birth_date.clone(),
                birth_place: birth.birth_place.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
            "",
            birth.act_number.clone(),
        ),
        (
            1,
            DeathRegistered {
                citizen_id: citizens()[1].to_owned(),
                death_date: "2026-03-02".into(),
                act_number: "D-2026-0042".into(),
                cause: "natural".into(),
                ..Default::default()
            }
            .encode_to_vec(),
            citizens()[1],
            "D-2026-0042".into(),
        ),
        (2, outer(id).encode_to_vec(), id, "outer-1".into()),
        (3, other(id).encode_to_vec(), id, "other-1".into()),
    ];
    for (i, value, subject, key) in events {
        let t = topic(i);
        let request = PublishRequest {
            topic: t.name.clone(),
            event: any(&t.type_url, value),
            idempotency_key: key,
            subject: subject.to_owned(),
        };
        seeds.put(
            &format!("publish-{}", t.name),
            &prefixed(&[i as u8], &request.encode_to_vec()),
        );
    }
}

fn rich(name: &str) -> DynamicMessage {
    let desc = DEPLOYMENT
        .catalogue
        .pool()
        .get_message_by_name(name)
        .expect("a fuzz.v1 message");
    DynamicMessage::new(desc)
}

fn other(id: &str) -> DynamicMessage {
    let mut m = rich("fuzz.v1.Other");
    m.set_field_by_name("citizen_id", Value::String(id.into()));
    m.set_field_by_name("n", Value::I32(7));
    m
}

/// A `fuzz.v1.Outer` with every shape set: nested, repeated, map, oneof.
fn outer(id: &str) -> DynamicMessage {
    let mut who = rich("fuzz.v1.Inner");
    who.set_field_by_name("citizen_id", Value::String(id.into()));
    let mut m = rich("fuzz.v1.Outer");
    m.set_field_by_name("i64", Value::I64(-5));
    m.set_field_by_name("who", Value::Message(who));
    m.set_field_by_name("f64", Value::U64(9));
    m.set_field_by_name("db", Value::F64(0.5));
    m.set_field_by_name("name", Value::String("x".into()));
    m.set_field_by_name(
        "packed_i32",
        Value::List(vec![Value::I32(1), Value::I32(-1)]),
    );
    m.set_field_by_name("unpacked_s32", Value::List(vec![Value::I32(-2)]));
    m.set_field_by_name("tags", Value::List(vec![Value::String("a".into())]));
    let counts = [("a", 1), ("b", 2)]
        .into_iter()
        .map(|(k, v)| (prost_reflect::MapKey::String(k.into()), Value::I32(v)))
        .collect();
    m.set_field_by_name("counts", Value::Map(counts));
    m.set_field_by_name("other", Value::Message(other(id)));
    m
}

/// Real requests of each sample method, by the method's index.
fn requests() -> Vec<(String, Vec<u8>)> {
    let id = citizens()[0].to_owned();
    let bodies: [(&str, Vec<u8>); 5] = [
        (
            "GetBirthRecord",
            GetBirthRecordRequest {
                citizen_id: id.clone(),
            }
            .encode_to_vec(),
        ),
        (
            "GetFamilyRecord",
            GetFamilyRecordRequest {
                citizen_id: id.clone(),
            }
            .encode_to_vec(),
        ),
        (
            "GetTaxStatus",
            GetTaxStatusRequest {
                citizen_id: id.clone(),
                fiscal_year: 2024,
            }
            .encode_to_vec(),
        ),
        (
            "GetVaccinationRecord",
            GetVaccinationRecordRequest {
                citizen_id: id.clone(),
            }
            .encode_to_vec(),
        ),
        ("Get", outer(&id).encode_to_vec()),
    ];
    bodies
        .into_iter()
        .map(|(method, body)| (method.to_owned(), body))
        .collect()
}

/// The index of the sample method of that name (the targets' first byte).
fn method_index(method: &str) -> u8 {
    let at = DEPLOYMENT
        .catalogue
        .methods()
        .iter()
        .position(|r| r.method == method)
        .expect("a sample method");
    u8::try_from(at).expect("few methods")
}

pub fn wire_walk() {
    let seeds = Seeds::of("wire_walk");
    for (method, body) in requests() {
        seeds.put(&method, &prefixed(&[method_index(&method)], &body));
    }
}

pub fn grpc_body() {
    let seeds = Seeds::of("grpc_body");
    let (_, body) = requests().swap_remove(0);
    let one = framed(&body);
    let exact = (body.len() as u16).to_be_bytes();
    seeds.put("one-message", &prefixed(&[0x10, 0x00, 3], &one));
    seeds.put("at-the-limit", &prefixed(&[exact[0], exact[1], 5], &one));
    seeds.put(
        "two-messages",
        &prefixed(&[0x10, 0x00, 1], &[one.clone(), one].concat()),
    );
}

pub fn minimise() {
    let seeds = Seeds::of("minimise");
    let ids = citizens();
    let answers: [(&str, Vec<u8>); 5] = [
        (
            "GetBirthRecord",
            dataset::birth_record(ids[0])
                .expect("a record")
                .encode_to_vec(),
        ),
        (
            "GetFamilyRecord",
            dataset::family_record(ids[0])
                .expect("a record")
                .encode_to_vec(),
        ),
        (
            "ListCivilEvents",
            dataset::civil_events(ids[0])
                .iter()
                .flat_map(|e| framed(&e.encode_to_vec()))
                .collect(),
        ),
        (
            "GetTaxStatus",
            dataset::tax_status(ids[1], 2024)
                .map(|t| t.encode_to_vec())
                .unwrap_or_default(),
        ),
        ("Get", outer(ids[0]).encode_to_vec()),
    ];
    for (i, (method, answer)) in answers.into_iter().enumerate() {
        // ListCivilEvents streams: its answer is several framed messages.
        let body = if method == "ListCivilEvents" {
            answer
        } else {
            framed(&answer)
        };
        let mask = [0b0101_0101u8.rotate_left(i as u32), 0b0000_0011];
        seeds.put(
            method,
            &prefixed(&[method_index(method), mask[0], mask[1]], &body),
        );
    }
}

/// Headers in the target's encoding: a byte naming the header (its index
/// there), a byte of length, the value.
pub fn call_metadata() {
    use jisr::gateway::metadata;
    let seeds = Seeds::of("call_metadata");
    let header = |which: u8, value: &str| {
        let mut out = vec![which, value.len() as u8];
        out.extend_from_slice(value.as_bytes());
        out
    };
    let traceparent = format!("00-{:032x}-{:016x}-01", rand_id(), rand_id() as u64);
    let full = [
        header(0, "bac-candidature"),
        header(1, "bac-2027"),
        header(2, "agent-4711"),
        header(3, &metadata::new_request_id()),
        header(
            6,
            &metadata::format_timeout(std::time::Duration::from_millis(2500)),
        ),
        header(7, &traceparent),
    ]
    .concat();
    seeds.put("exchange", &full);
    let consent = [
        header(0, "tax-household"),
        header(4, &format!("{:032x}", rand_id())),
    ]
    .concat();
    seeds.put("consent", &consent);
    let glass = [
        header(0, "emergency-care"),
        header(5, "patient unconscious, ER admission 2026-12-07"),
    ]
    .concat();
    seeds.put("break-glass", &glass);
}
