use super::*;
use crate::config::Location;
use proptest::prelude::*;

const CONSUMERS: [&str; 3] = ["education", "tax", "portal"];
const PURPOSES: [&str; 3] = ["bac-candidature", "tax-household", "emergency"];
const METHODS: [(&str, &str); 4] = [
    ("ma.civilstatus.v1.CivilStatus", "GetBirthRecord"),
    ("ma.civilstatus.v1.CivilStatus", "GetFamilyRecord"),
    ("ma.tax.v1.TaxRecords", "GetTaxStatus"),
    ("ma.health.v1.HealthRecords", "GetVaccinationRecord"),
];

fn at() -> Location {
    Location {
        file: "test.toml".into(),
        line: 1,
        column: 1,
    }
}

fn rule(consumer: &str, methods: &[&str], purposes: &[&str], basis: &str) -> RuleConfig {
    RuleConfig {
        consumer: AgencyId::parse(consumer).unwrap(),
        methods: methods
            .iter()
            .map(|m| MethodPattern::parse(m).unwrap())
            .collect(),
        purposes: purposes.iter().map(|p| (*p).to_owned()).collect(),
        basis: Basis::Law(basis.to_owned()),
        at: at(),
        methods_at: methods.iter().map(|_| at()).collect(),
        release: None,
        break_glass: false,
        disclose_from: None,
    }
}

fn id(s: &str) -> AgencyId {
    AgencyId::parse(s).unwrap()
}

#[test]
fn a_rule_grants_its_methods_for_its_purposes_only() {
    let rules = [rule(
        "education",
        &[
            "ma.civilstatus.v1.CivilStatus/GetBirthRecord",
            "ma.tax.v1.TaxRecords/*",
        ],
        &["bac-candidature"],
        "55-19",
    )];
    let (policy, conflicts) = Policy::build(&rules, &METHODS);
    assert!(conflicts.is_empty());
    let education = id("education");
    let birth = policy
        .access("/ma.civilstatus.v1.CivilStatus/GetBirthRecord")
        .unwrap();
    let grant = birth.check(&education, "bac-candidature").unwrap();
    assert_eq!(grant.basis(), &Basis::Law("55-19".into()));
    assert_eq!(grant.rule(), 0);
    assert_eq!(
        birth.check(&education, "tax-household"),
        Err(Denial::PurposeNotAllowed {
            allowed: vec!["bac-candidature".into()]
        })
    );
    assert_eq!(
        birth.check(&id("tax"), "bac-candidature"),
        Err(Denial::NoRule)
    );
    assert!(policy
        .access("/ma.tax.v1.TaxRecords/GetTaxStatus")
        .is_some());
    assert!(policy
        .access("/ma.civilstatus.v1.CivilStatus/GetFamilyRecord")
        .is_none());
}

#[test]
fn conflicting_bases_are_reported() {
    let rules = [
        rule(
            "tax",
            &["ma.tax.v1.TaxRecords/GetTaxStatus"],
            &["tax-household"],
            "a",
        ),
        rule("tax", &["ma.tax.v1.TaxRecords/*"], &["tax-household"], "b"),
        rule("tax", &["ma.tax.v1.TaxRecords/*"], &["tax-household"], "a"),
    ];
    let (policy, conflicts) = Policy::build(&rules, &METHODS);
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].0, 1);
    assert!(
        conflicts[0].1.contains("already allowed on basis `law:a`"),
        "{}",
        conflicts[0].1
    );
    let access = policy.access("/ma.tax.v1.TaxRecords/GetTaxStatus").unwrap();
    assert_eq!(access.check(&id("tax"), "tax-household").unwrap().rule(), 0);
}

#[test]
fn suggestions_name_the_closest_method() {
    let pattern = MethodPattern::parse("ma.tax.v1.TaxRecords/GetTaxStatuss").unwrap();
    assert!(suggest(&pattern, &METHODS).contains("`ma.tax.v1.TaxRecords/GetTaxStatus`"));
    let far = MethodPattern::parse("ma.other.v1.Other/Thing").unwrap();
    assert!(suggest(&far, &METHODS).contains("jisr catalog"));
}

fn arb_rule() -> impl Strategy<Value = RuleConfig> {
    let pattern = prop_oneof![
        (0..METHODS.len()).prop_map(|i| format!("{}/{}", METHODS[i].0, METHODS[i].1)),
        (0..METHODS.len()).prop_map(|i| format!("{}/*", METHODS[i].0)),
    ];
    (
        0..CONSUMERS.len(),
        proptest::collection::vec(pattern, 1..3),
        proptest::collection::vec(0..PURPOSES.len(), 1..3),
        0..2usize,
    )
        .prop_map(|(c, methods, purposes, basis)| {
            let methods: Vec<&str> = methods.iter().map(String::as_str).collect();
            let purposes: Vec<&str> = purposes.iter().map(|&p| PURPOSES[p]).collect();
            rule(CONSUMERS[c], &methods, &purposes, &format!("basis-{basis}"))
        })
}

proptest! {
    /// The compiled tables agree with the plain reading of the rules: a call
    /// is granted iff some rule names the consumer, a pattern matching the
    /// method, and the purpose; the basis is the first such rule's.
    #[test]
    fn compiled_policy_matches_the_rules(rules in proptest::collection::vec(arb_rule(), 0..6)) {
        let (policy, _) = Policy::build(&rules, &METHODS);
        for consumer in CONSUMERS {
            let consumer = id(consumer);
            for (service, method) in METHODS {
                for purpose in PURPOSES {
                    let first = rules.iter().enumerate().find(|(_, r)| {
                        r.consumer == consumer
                            && r.methods.iter().any(|p| p.matches(service, method))
                            && r.purposes.iter().any(|p| p == purpose)
                    });
                    let any_for_consumer = rules.iter().any(|r| {
                        r.consumer == consumer && r.methods.iter().any(|p| p.matches(service, method))
                    });
                    let got = policy
                        .access(&format!("/{service}/{method}"))
                        .map(|a| a.check(&consumer, purpose).map(|g| (g.rule(), g.basis().clone())));
                    match (first, got) {
                        (Some((i, r)), Some(Ok((rule, basis)))) => {
                            prop_assert_eq!(rule, i);
                            prop_assert_eq!(basis, r.basis.clone());
                        }
                        (None, None) => prop_assert!(!any_for_consumer),
                        (None, Some(Err(Denial::NoRule))) => prop_assert!(!any_for_consumer),
                        (None, Some(Err(Denial::PurposeNotAllowed { .. }))) => prop_assert!(any_for_consumer),
                        (expected, got) => prop_assert!(false, "expected {:?}, got {:?}", expected.map(|e| e.0), got),
                    }
                }
            }
        }
    }
}
