//! The sample agencies' data: eight fictional Moroccan citizens, two related
//! households and an unrelated couple, with their civil events, tax standing
//! and vaccinations. Pure static data, identical on every run, so tests and
//! demos can name citizens (`AB123456` is the main subject: a baccalauréat
//! free candidate born in Fès in 2007, whose parents are `CD234567` and
//! `EF345678` and whose brother is `GH456789`).

mod tables;

use crate::proto::ma::civilstatus::v1::{BirthRecord, CivilEvent, FamilyMember, FamilyRecord};
use crate::proto::ma::health::v1::{Vaccination, VaccinationRecord};
use crate::proto::ma::tax::v1::{Standing, TaxStatus};
use tables::{Filing, Person, EVENTS, HOUSEHOLDS, PEOPLE, TAX, VACCINATIONS};

/// The first fiscal year the tax administration has records for.
pub const FIRST_FISCAL_YEAR: u32 = 2015;

/// The last closed fiscal year, answered when a request asks for year 0.
///
/// Fixed rather than derived from the clock so the dataset stays deterministic.
pub const LAST_CLOSED_FISCAL_YEAR: u32 = 2024;

/// The ids of every citizen in the dataset, in a fixed order.
pub fn citizen_ids() -> impl Iterator<Item = &'static str> {
    PEOPLE.iter().map(|p| p.id)
}

fn person(id: &str) -> Option<&'static Person> {
    PEOPLE.iter().find(|p| p.id == id)
}

/// The birth record (acte de naissance) of a citizen.
pub fn birth_record(id: &str) -> Option<BirthRecord> {
    let p = person(id)?;
    Some(BirthRecord {
        citizen_id: p.id.to_owned(),
        first_name: p.first_name.to_owned(),
        last_name: p.last_name.to_owned(),
        birth_date: p.birth_date.to_owned(),
        birth_place: p.birth_place.to_owned(),
        sex: p.sex.to_owned(),
        father_name: p.father_name.to_owned(),
        mother_name: p.mother_name.to_owned(),
        registry_office: p.registry_office.to_owned(),
        act_number: p.act_number.to_owned(),
    })
}

fn in_role(household: &tables::Household, id: &str, relations: &[&str]) -> bool {
    household
        .members
        .iter()
        .any(|(member, relation)| *member == id && relations.contains(relation))
}

/// The family record (livret de famille) of a citizen: the household they head
/// or married into, else the one they were born into.
pub fn family_record(id: &str) -> Option<FamilyRecord> {
    let household = HOUSEHOLDS
        .iter()
        .find(|h| in_role(h, id, &["head", "spouse"]))
        .or_else(|| HOUSEHOLDS.iter().find(|h| in_role(h, id, &["child"])))?;
    let members = household
        .members
        .iter()
        .filter_map(|(member, relation)| {
            let p = person(member)?;
            Some(FamilyMember {
                citizen_id: p.id.to_owned(),
                full_name: format!("{} {}", p.first_name, p.last_name),
                relation: (*relation).to_owned(),
                birth_date: p.birth_date.to_owned(),
            })
        })
        .collect();
    Some(FamilyRecord {
        citizen_id: id.to_owned(),
        household_id: household.id.to_owned(),
        members,
    })
}

/// Every civil event registered for a citizen, oldest first; empty for an
/// unknown citizen (a known one always has at least a birth).
pub fn civil_events(id: &str) -> Vec<CivilEvent> {
    let Some(p) = person(id) else {
        return Vec::new();
    };
    let birth = CivilEvent {
        citizen_id: p.id.to_owned(),
        kind: "birth".to_owned(),
        date: p.birth_date.to_owned(),
        place: p.birth_place.to_owned(),
        act_number: p.act_number.to_owned(),
    };
    let others = EVENTS
        .iter()
        .filter(|e| e.citizen_id == id)
        .map(|e| CivilEvent {
            citizen_id: e.citizen_id.to_owned(),
            kind: e.kind.to_owned(),
            date: e.date.to_owned(),
            place: e.place.to_owned(),
            act_number: e.act_number.to_owned(),
        });
    let mut events: Vec<CivilEvent> = std::iter::once(birth).chain(others).collect();
    // ISO 8601 dates sort chronologically as text.
    events.sort_by(|a, b| a.date.cmp(&b.date));
    events
}

/// The tax standing of a citizen for a fiscal year (0: the last closed year).
///
/// `None` for an unknown citizen, a year outside
/// [`FIRST_FISCAL_YEAR`]..=[`LAST_CLOSED_FISCAL_YEAR`], or a year after the
/// citizen's death.
pub fn tax_status(id: &str, fiscal_year: u32) -> Option<TaxStatus> {
    let year = if fiscal_year == 0 {
        LAST_CLOSED_FISCAL_YEAR
    } else {
        fiscal_year
    };
    let profile = TAX.iter().find(|t| t.citizen_id == id)?;
    let last_year = profile.last_year.unwrap_or(LAST_CLOSED_FISCAL_YEAR);
    if !(FIRST_FISCAL_YEAR..=last_year).contains(&year) {
        return None;
    }
    let (tax_id, standing, last_filing_date) = match profile.filing {
        Filing::NotRegistered => ("", Standing::NotRegistered, String::new()),
        Filing::Registered {
            tax_id,
            filing_day,
            in_arrears_since,
        } => {
            // A year is filed in the following spring; in arrears, the last
            // filing is the one for the year before the arrears began.
            let (standing, filed_year) = match in_arrears_since {
                Some(since) if year >= since => (Standing::InArrears, since - 1),
                _ => (Standing::UpToDate, year),
            };
            (tax_id, standing, format!("{}-{filing_day}", filed_year + 1))
        }
    };
    Some(TaxStatus {
        citizen_id: profile.citizen_id.to_owned(),
        fiscal_year: year,
        tax_id: tax_id.to_owned(),
        standing: standing.into(),
        income_bracket: profile.income_bracket,
        last_filing_date,
    })
}

/// The vaccinations a citizen received, oldest first.
pub fn vaccination_record(id: &str) -> Option<VaccinationRecord> {
    let record = VACCINATIONS.iter().find(|v| v.citizen_id == id)?;
    Some(VaccinationRecord {
        citizen_id: record.citizen_id.to_owned(),
        vaccinations: record
            .shots
            .iter()
            .map(|&(vaccine, dose, date, centre)| Vaccination {
                vaccine: vaccine.to_owned(),
                dose,
                date: date.to_owned(),
                health_centre: centre.to_owned(),
            })
            .collect(),
        schedule_complete: record.schedule_complete,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIN: &str = "AB123456";

    #[test]
    fn main_subject_is_in_every_set() {
        let birth = birth_record(MAIN).unwrap();
        assert_eq!(birth.birth_place, "Fès");
        assert!(birth.birth_date.starts_with("2007-"));
        assert!(family_record(MAIN).is_some());
        assert_eq!(civil_events(MAIN)[0].kind, "birth");
        let tax = tax_status(MAIN, 0).unwrap();
        assert_eq!(tax.standing(), Standing::NotRegistered);
        assert_eq!(tax.fiscal_year, LAST_CLOSED_FISCAL_YEAR);
        assert!(!vaccination_record(MAIN).unwrap().vaccinations.is_empty());
        assert!(citizen_ids().any(|id| id == MAIN));
    }

    #[test]
    fn every_citizen_has_a_birth_record_and_a_tax_profile() {
        let ids: Vec<_> = citizen_ids().collect();
        assert!(ids.len() >= 8);
        for id in ids {
            assert_eq!(birth_record(id).unwrap().citizen_id, id);
            assert!(tax_status(id, FIRST_FISCAL_YEAR).is_some(), "{id}");
        }
        assert!(birth_record("ZZ000000").is_none());
        assert!(civil_events("ZZ000000").is_empty());
    }

    #[test]
    fn family_links_are_consistent() {
        let family = family_record(MAIN).unwrap();
        let relation = |id: &str| {
            let m = family.members.iter().find(|m| m.citizen_id == id);
            m.map(|m| m.relation.as_str())
        };
        assert_eq!(relation("CD234567"), Some("head"));
        assert_eq!(relation("EF345678"), Some("spouse"));
        assert_eq!(relation(MAIN), Some("child"));
        assert_eq!(relation("GH456789"), Some("child"));
        // Parents and children see the same household, and the children's
        // birth records name the household's parents.
        for member in &family.members {
            let theirs = family_record(&member.citizen_id).unwrap();
            assert_eq!(theirs.household_id, family.household_id);
        }
        let head = birth_record("CD234567").unwrap();
        let spouse = birth_record("EF345678").unwrap();
        for child in family.members.iter().filter(|m| m.relation == "child") {
            let birth = birth_record(&child.citizen_id).unwrap();
            assert_eq!(
                birth.father_name,
                format!("{} {}", head.first_name, head.last_name)
            );
            assert_eq!(
                birth.mother_name,
                format!("{} {}", spouse.first_name, spouse.last_name)
            );
            assert_eq!(child.birth_date, birth.birth_date);
        }
        // Every household member is a known citizen.
        for id in citizen_ids() {
            for m in family_record(id).map(|f| f.members).unwrap_or_default() {
                assert!(birth_record(&m.citizen_id).is_some());
            }
        }
    }

    #[test]
    fn events_are_ordered_and_spouses_share_a_marriage() {
        for id in citizen_ids() {
            let events = civil_events(id);
            assert!(events.windows(2).all(|w| w[0].date <= w[1].date), "{id}");
        }
        let marriage = |id| {
            civil_events(id)
                .into_iter()
                .find(|e| e.kind == "marriage")
                .map(|e| e.act_number)
        };
        assert_eq!(marriage("CD234567"), marriage("EF345678"));
        assert!(marriage("CD234567").is_some());
        let deaths: Vec<_> = citizen_ids()
            .filter(|id| civil_events(id).iter().any(|e| e.kind == "death"))
            .collect();
        assert_eq!(deaths, ["IJ567890"]);
    }

    #[test]
    fn tax_standings_cover_every_case() {
        let standing = |id| tax_status(id, 0).unwrap().standing();
        assert_eq!(standing("CD234567"), Standing::UpToDate);
        assert_eq!(standing("MN789012"), Standing::InArrears);
        assert_eq!(standing("OP890123"), Standing::NotRegistered);
        assert_eq!(standing("GH456789"), Standing::NotRegistered);
        let before = tax_status("MN789012", 2020).unwrap();
        assert_eq!(before.standing(), Standing::UpToDate);
        assert_eq!(before.last_filing_date, "2021-04-30");
        assert_eq!(
            tax_status("MN789012", 2023).unwrap().last_filing_date,
            "2022-04-30"
        );
        // No records after death, before the first year or in the future.
        assert!(tax_status("IJ567890", 2019).is_some());
        assert!(tax_status("IJ567890", 2020).is_none());
        assert!(tax_status("CD234567", 2014).is_none());
        assert!(tax_status("CD234567", LAST_CLOSED_FISCAL_YEAR + 1).is_none());
    }

    #[test]
    fn vaccinations_are_dated_after_birth() {
        assert!(vaccination_record("IJ567890").is_none());
        for id in citizen_ids() {
            let Some(record) = vaccination_record(id) else {
                continue;
            };
            let born = birth_record(id).unwrap().birth_date;
            for v in &record.vaccinations {
                assert!(v.date > born, "{id}: {v:?}");
                assert!(v.dose >= 1);
            }
        }
    }
}
