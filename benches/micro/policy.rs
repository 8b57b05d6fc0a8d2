//! Rule matching: the compiled policy's per-method access decision, as the
//! exchange path makes it (`Policy::access` by gRPC path, then
//! `MethodAccess::check`), on the demo's rules and on ~200 rules.

use crate::{demo_catalogue, demo_config};
use criterion::{BenchmarkId, Criterion};
use jisr::identity::AgencyId;
use jisr::policy::{Denial, Policy};
use std::fmt::Write as _;
use std::hint::black_box;

const BIRTH: &str = "/ma.civilstatus.v1.CivilStatus/GetBirthRecord";
const FAMILY: &str = "/ma.civilstatus.v1.CivilStatus/GetFamilyRecord";

/// Agencies and rules in the large policy.
const AGENCIES: usize = 200;
/// Purposes each agency of the large policy may use (out of `PURPOSES`).
const PURPOSES_PER_RULE: usize = 4;
const PURPOSES: usize = 40;

/// ~200 more rules: agency `a-<i>` may call one sample service's methods
/// for four of forty purposes, on a law.
fn many_rules() -> String {
    let services = [
        "ma.civilstatus.v1.CivilStatus/*",
        "ma.tax.v1.TaxRecords/*",
        "ma.health.v1.HealthRecords/*",
    ];
    let mut text = String::new();
    for p in 0..PURPOSES {
        let _ = write!(
            text,
            "\n[[purpose]]\ncode = \"purpose-{p:02}\"\ndescription = \"Procedure {p}\"\n"
        );
    }
    for i in 0..AGENCIES {
        let _ = write!(text, "\n[[agency]]\nid = \"a-{i:03}\"\n");
    }
    for i in 0..AGENCIES {
        let purposes: Vec<String> = (0..PURPOSES_PER_RULE)
            .map(|k| format!("\"purpose-{:02}\"", (i + k * 7) % PURPOSES))
            .collect();
        let _ = write!(
            text,
            "\n[[rule]]\nconsumer = \"a-{i:03}\"\nmethods = [\"{}\"]\npurposes = [{}]\nbasis = \"law:decree-{i}\"\n",
            services[i % services.len()],
            purposes.join(", "),
        );
    }
    text
}

fn decide(policy: &Policy, path: &str, consumer: &AgencyId, purpose: &str) -> bool {
    match policy.access(path) {
        Some(access) => access.check(consumer, purpose).is_ok(),
        None => false,
    }
}

pub(crate) fn benches(c: &mut Criterion) {
    let agency = |id: &str| AgencyId::parse(id).expect("valid agency id");
    let demo = demo_config("");
    let catalogue = demo_catalogue(&demo);
    let small = Policy::compile(&demo, &catalogue).expect("the demo's rules compile");
    let large_config = demo_config(&many_rules());
    let large = Policy::compile(&large_config, &catalogue).expect("the large policy compiles");
    assert!(large_config.rules.len() >= AGENCIES);

    let education = agency("education");
    let tax = agency("tax");
    let portal = agency("portal");
    // The granted and refused cases must be what they say.
    assert!(decide(&small, BIRTH, &education, "bac-candidature"));
    assert!(matches!(
        small
            .access(BIRTH)
            .map(|a| a.check(&education, "tax-household")),
        Some(Err(Denial::PurposeNotAllowed { .. }))
    ));
    assert!(matches!(
        small
            .access(BIRTH)
            .map(|a| a.check(&portal, "bac-candidature")),
        Some(Err(Denial::NoRule))
    ));

    let mut g = c.benchmark_group("policy");
    // (name, policy, path, consumer, purpose, granted?)
    let cases: [(&str, &Policy, &str, AgencyId, &str, bool); 7] = [
        (
            "demo/granted",
            &small,
            BIRTH,
            education,
            "bac-candidature",
            true,
        ),
        (
            "demo/refused_no_rule",
            &small,
            BIRTH,
            portal,
            "bac-candidature",
            false,
        ),
        (
            "demo/refused_purpose",
            &small,
            BIRTH,
            agency("education"),
            "tax-household",
            false,
        ),
        (
            "demo/granted_tax_family",
            &small,
            FAMILY,
            tax,
            "tax-household",
            true,
        ),
        // a-198 may call the civil status service for purposes 38, 05, 12, 19.
        (
            "rules_200/granted",
            &large,
            BIRTH,
            agency("a-198"),
            "purpose-19",
            true,
        ),
        (
            "rules_200/refused_purpose",
            &large,
            BIRTH,
            agency("a-198"),
            "purpose-00",
            false,
        ),
        // a-199 has a rule on the tax service only.
        (
            "rules_200/refused_no_rule",
            &large,
            BIRTH,
            agency("a-199"),
            "purpose-00",
            false,
        ),
    ];
    for (name, policy, path, consumer, purpose, granted) in &cases {
        assert_eq!(decide(policy, path, consumer, purpose), *granted, "{name}");
        g.bench_function(*name, |b| {
            b.iter(|| {
                decide(
                    policy,
                    black_box(path),
                    black_box(consumer),
                    black_box(purpose),
                )
            })
        });
    }
    g.finish();

    // Compiling happens at start and on reload, not per call; a slow
    // compile shows here before it shows as a slow reload.
    let mut g = c.benchmark_group("policy/compile");
    g.sample_size(20);
    for (name, config) in [("demo", &demo), ("rules_200", &large_config)] {
        g.bench_with_input(BenchmarkId::from_parameter(name), config, |b, config| {
            b.iter(|| Policy::compile(config, &catalogue).expect("compiles"))
        });
    }
    g.finish();
}
