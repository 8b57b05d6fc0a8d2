//! Subject extraction: the validating wire walk (`catalogue::wire`) over
//! requests of the sample contracts, as the exchange path runs it, with a
//! full dynamic decode of the same bytes for comparison.

use crate::{demo_catalogue, demo_config};
use criterion::{Criterion, Throughput};
use jisr::catalogue::wire::Schema;
use jisr::proto::ma::civilstatus::v1::{FamilyMember, FamilyRecord};
use jisr::proto::ma::tax::v1::GetTaxStatusRequest;
use prost::Message as _;
use prost_reflect::DynamicMessage;
use std::hint::black_box;

const TAX: &str = "/ma.tax.v1.TaxRecords/GetTaxStatus";

/// A `FamilyRecord` of `members` members, ~100 bytes each.
fn family(members: usize) -> Vec<u8> {
    FamilyRecord {
        citizen_id: "AB123456".into(),
        household_id: "HH-2027-000431".into(),
        members: (0..members)
            .map(|i| FamilyMember {
                citizen_id: format!("CD{:06}", 100_000 + i),
                full_name: format!("Fatima-Zahra El Alaoui Benmoussa {i}"),
                relation: if i == 0 { "head" } else { "child" }.into(),
                birth_date: "2007-03-14".into(),
            })
            .collect(),
    }
    .encode_to_vec()
}

/// A `GetTaxStatusRequest` followed by an unknown length-delimited field
/// (number 15) of `padding` bytes: what a newer client's request looks like
/// to a gateway holding an older contract.
fn tax_with_unknown(padding: usize) -> Vec<u8> {
    let mut buf = GetTaxStatusRequest {
        citizen_id: "AB123456".into(),
        fiscal_year: 2026,
    }
    .encode_to_vec();
    prost::encoding::bytes::encode(15, &vec![b'x'; padding], &mut buf);
    buf
}

pub(crate) fn benches(c: &mut Criterion) {
    let config = demo_config("");
    let catalogue = demo_catalogue(&config);
    let tax = catalogue.get(TAX).expect("the tax contract is loaded");
    let tax_desc = catalogue
        .pool()
        .get_message_by_name(&tax.request_type)
        .expect("the request type is in the pool");
    let family_desc = catalogue
        .pool()
        .get_message_by_name("ma.civilstatus.v1.FamilyRecord")
        .expect("FamilyRecord is in the pool");
    // The sample requests are a citizen id and at most a year: a ~4 KiB
    // message of the contracts is the family record (repeated nested
    // messages of strings), walked with its `citizen_id` (1) as subject.
    let family_schema = Schema::compile(&family_desc, vec![1]);

    let small = GetTaxStatusRequest {
        citizen_id: "AB123456".into(),
        fiscal_year: 2026,
    }
    .encode_to_vec();
    let family_4k = family(60);
    let unknown_4k = tax_with_unknown(4096 - small.len() - 3);
    assert!(
        (3900..4400).contains(&family_4k.len()),
        "the family record is {} bytes, not ~4 KiB: adjust its member count",
        family_4k.len()
    );
    assert!(
        (4000..4200).contains(&unknown_4k.len()),
        "the padded request is {} bytes, not ~4 KiB: adjust its padding",
        unknown_4k.len()
    );

    let cases: [(&str, &Schema, &prost_reflect::MessageDescriptor, &[u8]); 3] = [
        ("tax_request_small", &tax.schema, &tax_desc, &small),
        ("family_record_4k", &family_schema, &family_desc, &family_4k),
        (
            "tax_request_4k_unknown_field",
            &tax.schema,
            &tax_desc,
            &unknown_4k,
        ),
    ];
    let mut g = c.benchmark_group("wire");
    for (name, schema, desc, bytes) in cases {
        assert_eq!(schema.walk(bytes), Ok(Some("AB123456")), "{name}");
        g.throughput(Throughput::Bytes(bytes.len() as u64));
        g.bench_function(format!("walk/{name}"), |b| {
            b.iter(|| schema.walk(black_box(bytes)))
        });
        // What the walk avoids: decoding into a dynamic message.
        g.bench_function(format!("decode_dynamic/{name}"), |b| {
            b.iter(|| DynamicMessage::decode(desc.clone(), black_box(bytes)).expect("decodes"))
        });
    }
    g.finish();
}
