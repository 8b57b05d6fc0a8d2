//! The raw rows of the sample dataset, kept apart from the lookups so the data
//! reads as a table. Every person, household and event here is fictional.

/// One person known to the civil status registry.
pub(super) struct Person {
    pub(super) id: &'static str,
    pub(super) first_name: &'static str,
    pub(super) last_name: &'static str,
    pub(super) sex: &'static str,
    pub(super) birth_date: &'static str,
    pub(super) birth_place: &'static str,
    pub(super) father_name: &'static str,
    pub(super) mother_name: &'static str,
    pub(super) registry_office: &'static str,
    pub(super) act_number: &'static str,
}

/// A household (livret de famille): members with their relation to the head.
pub(super) struct Household {
    pub(super) id: &'static str,
    pub(super) members: &'static [(&'static str, &'static str)],
}

/// A civil event other than a birth (births come from [`Person`]).
pub(super) struct Event {
    pub(super) citizen_id: &'static str,
    pub(super) kind: &'static str,
    pub(super) date: &'static str,
    pub(super) place: &'static str,
    pub(super) act_number: &'static str,
}

/// How a citizen stands with the tax administration.
pub(super) enum Filing {
    /// Never registered (minors, people without taxable income).
    NotRegistered,
    /// Files every year; `in_arrears_since` is the first fiscal year left unpaid.
    Registered {
        tax_id: &'static str,
        /// Month and day of the yearly filing, e.g. `02-26`.
        filing_day: &'static str,
        in_arrears_since: Option<u32>,
    },
}

/// The tax profile of a citizen.
pub(super) struct TaxProfile {
    pub(super) citizen_id: &'static str,
    pub(super) filing: Filing,
    pub(super) income_bracket: u32,
    /// Last fiscal year with a record (the year of death for the deceased).
    pub(super) last_year: Option<u32>,
}

/// `(vaccine, dose, date, health centre)`.
pub(super) type Shot = (&'static str, u32, &'static str, &'static str);

/// The vaccination record of a citizen.
pub(super) struct Vaccinations {
    pub(super) citizen_id: &'static str,
    pub(super) shots: &'static [Shot],
    pub(super) schedule_complete: bool,
}

const fn person(
    id: &'static str,
    (first_name, last_name, sex): (&'static str, &'static str, &'static str),
    (birth_date, birth_place): (&'static str, &'static str),
    (father_name, mother_name): (&'static str, &'static str),
    (registry_office, act_number): (&'static str, &'static str),
) -> Person {
    Person {
        id,
        first_name,
        last_name,
        sex,
        birth_date,
        birth_place,
        father_name,
        mother_name,
        registry_office,
        act_number,
    }
}

/// Everyone in the dataset, in a fixed order.
pub(super) const PEOPLE: &[Person] = &[
    // A baccalauréat free candidate (candidate libre): the demo's main subject.
    person(
        "AB123456",
        ("Salma", "Benjelloun", "F"),
        ("2007-03-14", "Fès"),
        ("Karim Benjelloun", "Nadia Alaoui"),
        ("Fès-Médina", "1432/2007"),
    ),
    person(
        "CD234567",
        ("Karim", "Benjelloun", "M"),
        ("1975-06-02", "Fès"),
        ("Hassan Benjelloun", "Khadija Berrada"),
        ("Fès-Médina", "0871/1975"),
    ),
    person(
        "EF345678",
        ("Nadia", "Alaoui", "F"),
        ("1979-11-21", "Meknès"),
        ("Driss Alaoui", "Zineb Squalli"),
        ("Meknès-Ismaïlia", "2210/1979"),
    ),
    person(
        "GH456789",
        ("Omar", "Benjelloun", "M"),
        ("2011-01-27", "Fès"),
        ("Karim Benjelloun", "Nadia Alaoui"),
        ("Fès-Agdal", "0158/2011"),
    ),
    person(
        "IJ567890",
        ("Hassan", "Benjelloun", "M"),
        ("1946-02-10", "Fès"),
        ("Abdelkader Benjelloun", "Rkia Tazi"),
        ("Fès-Médina", "0094/1946"),
    ),
    person(
        "KL678901",
        ("Fatima Zahra", "Tazi", "F"),
        ("1988-05-30", "Casablanca"),
        ("Mohammed Tazi", "Latifa Bennani"),
        ("Casablanca-Anfa", "4512/1988"),
    ),
    person(
        "MN789012",
        ("Youssef", "Amrani", "M"),
        ("1985-08-17", "Rabat"),
        ("Abdellah Amrani", "Houria Chraibi"),
        ("Rabat-Agdal", "3090/1985"),
    ),
    person(
        "OP890123",
        ("Imane", "Ouazzani", "F"),
        ("1999-12-05", "Tanger"),
        ("Mustapha Ouazzani", "Saida El Khatib"),
        ("Tanger-Médina", "5127/1999"),
    ),
];

/// Households; a citizen's record is the one where they are head or spouse,
/// else the one where they are a child. OP890123 has none (unmarried, her
/// parents' livret is not in the dataset).
pub(super) const HOUSEHOLDS: &[Household] = &[
    Household {
        id: "HH-FES-2005-0417",
        members: &[
            ("CD234567", "head"),
            ("EF345678", "spouse"),
            ("AB123456", "child"),
            ("GH456789", "child"),
        ],
    },
    Household {
        id: "HH-FES-1972-0093",
        members: &[("IJ567890", "head"), ("CD234567", "child")],
    },
    Household {
        id: "HH-CASA-2016-1288",
        members: &[("MN789012", "head"), ("KL678901", "spouse")],
    },
];

/// Marriages and deaths, oldest first per citizen.
pub(super) const EVENTS: &[Event] = &[
    Event {
        citizen_id: "IJ567890",
        kind: "marriage",
        date: "1972-04-15",
        place: "Fès",
        act_number: "0093/1972",
    },
    Event {
        citizen_id: "IJ567890",
        kind: "death",
        date: "2019-12-03",
        place: "Fès",
        act_number: "3317/2019",
    },
    Event {
        citizen_id: "CD234567",
        kind: "marriage",
        date: "2005-07-09",
        place: "Fès",
        act_number: "0417/2005",
    },
    Event {
        citizen_id: "EF345678",
        kind: "marriage",
        date: "2005-07-09",
        place: "Fès",
        act_number: "0417/2005",
    },
    Event {
        citizen_id: "MN789012",
        kind: "marriage",
        date: "2016-09-24",
        place: "Casablanca",
        act_number: "1288/2016",
    },
    Event {
        citizen_id: "KL678901",
        kind: "marriage",
        date: "2016-09-24",
        place: "Casablanca",
        act_number: "1288/2016",
    },
];

const fn registered(tax_id: &'static str, filing_day: &'static str) -> Filing {
    Filing::Registered {
        tax_id,
        filing_day,
        in_arrears_since: None,
    }
}

const fn tax(citizen_id: &'static str, filing: Filing, income_bracket: u32) -> TaxProfile {
    TaxProfile {
        citizen_id,
        filing,
        income_bracket,
        last_year: None,
    }
}

/// Tax profiles; minors carry their household's income bracket.
pub(super) const TAX: &[TaxProfile] = &[
    tax("AB123456", Filing::NotRegistered, 3),
    tax("CD234567", registered("40215873", "02-26"), 3),
    tax("EF345678", registered("40388120", "03-12"), 3),
    tax("GH456789", Filing::NotRegistered, 3),
    TaxProfile {
        last_year: Some(2019),
        ..tax("IJ567890", registered("10046271", "02-18"), 2)
    },
    tax("KL678901", registered("45601932", "02-27"), 4),
    tax(
        "MN789012",
        Filing::Registered {
            tax_id: "45177304",
            filing_day: "04-30",
            in_arrears_since: Some(2022),
        },
        4,
    ),
    tax("OP890123", Filing::NotRegistered, 1),
];

const BAB_FTOUH: &str = "Centre de santé Bab Ftouh, Fès";
const SAISS: &str = "Centre de santé Saïss, Fès";
const BAB_GUISSA: &str = "Dispensaire Bab Guissa, Fès";
const ISMAILIA: &str = "Centre de santé Ismaïlia, Meknès";
const HAY_HASSANI: &str = "Centre de santé Hay Hassani, Casablanca";
const YOUSSOUFIA: &str = "Centre de santé Youssoufia, Rabat";
const BENI_MAKADA: &str = "Centre de santé Beni Makada, Tanger";

/// Vaccination records; IJ567890 has none (his records were never digitised).
pub(super) const VACCINATIONS: &[Vaccinations] = &[
    Vaccinations {
        citizen_id: "AB123456",
        shots: &[
            ("BCG", 1, "2007-03-15", BAB_FTOUH),
            ("HepB", 1, "2007-03-15", BAB_FTOUH),
            ("DTC", 1, "2007-05-14", BAB_FTOUH),
            ("VPO", 1, "2007-05-14", BAB_FTOUH),
            ("DTC", 2, "2007-06-14", BAB_FTOUH),
            ("VPO", 2, "2007-06-14", BAB_FTOUH),
            ("DTC", 3, "2007-07-16", BAB_FTOUH),
            ("VPO", 3, "2007-07-16", BAB_FTOUH),
            ("ROR", 1, "2008-03-17", BAB_FTOUH),
            ("ROR", 2, "2008-09-15", BAB_FTOUH),
        ],
        schedule_complete: true,
    },
    Vaccinations {
        citizen_id: "CD234567",
        shots: &[
            ("BCG", 1, "1975-06-03", BAB_GUISSA),
            ("DTC", 1, "1975-08-04", BAB_GUISSA),
            ("VPO", 1, "1975-08-04", BAB_GUISSA),
            ("DTC", 2, "1975-09-08", BAB_GUISSA),
            ("DTC", 3, "1975-10-13", BAB_GUISSA),
        ],
        schedule_complete: true,
    },
    Vaccinations {
        citizen_id: "EF345678",
        shots: &[
            ("BCG", 1, "1979-11-22", ISMAILIA),
            ("DTC", 1, "1980-01-21", ISMAILIA),
            ("VPO", 1, "1980-01-21", ISMAILIA),
            ("DTC", 2, "1980-02-25", ISMAILIA),
            ("DTC", 3, "1980-03-24", ISMAILIA),
            ("VAT", 1, "2006-11-06", BAB_FTOUH),
            ("VAT", 2, "2010-10-11", BAB_FTOUH),
        ],
        schedule_complete: true,
    },
    Vaccinations {
        citizen_id: "GH456789",
        shots: &[
            ("BCG", 1, "2011-01-28", SAISS),
            ("HepB", 1, "2011-01-28", SAISS),
            ("Penta", 1, "2011-03-28", SAISS),
            ("VPO", 1, "2011-03-28", SAISS),
            ("Penta", 2, "2011-04-25", SAISS),
            ("Penta", 3, "2011-05-30", SAISS),
            ("ROR", 1, "2012-01-30", SAISS),
        ],
        // The second ROR dose was never recorded.
        schedule_complete: false,
    },
    Vaccinations {
        citizen_id: "KL678901",
        shots: &[
            ("BCG", 1, "1988-05-31", HAY_HASSANI),
            ("DTC", 1, "1988-07-25", HAY_HASSANI),
            ("VPO", 1, "1988-07-25", HAY_HASSANI),
            ("DTC", 2, "1988-08-29", HAY_HASSANI),
            ("DTC", 3, "1988-09-26", HAY_HASSANI),
            ("ROR", 1, "1989-06-05", HAY_HASSANI),
        ],
        schedule_complete: true,
    },
    Vaccinations {
        citizen_id: "MN789012",
        shots: &[
            ("BCG", 1, "1985-08-19", YOUSSOUFIA),
            ("DTC", 1, "1985-10-21", YOUSSOUFIA),
            ("VPO", 1, "1985-10-21", YOUSSOUFIA),
        ],
        schedule_complete: false,
    },
    Vaccinations {
        citizen_id: "OP890123",
        shots: &[
            ("BCG", 1, "1999-12-06", BENI_MAKADA),
            ("HepB", 1, "1999-12-06", BENI_MAKADA),
            ("DTC", 1, "2000-02-07", BENI_MAKADA),
            ("VPO", 1, "2000-02-07", BENI_MAKADA),
            ("HepB", 2, "2000-02-07", BENI_MAKADA),
            ("DTC", 2, "2000-03-06", BENI_MAKADA),
            ("DTC", 3, "2000-04-03", BENI_MAKADA),
            ("HepB", 3, "2000-06-05", BENI_MAKADA),
            ("ROR", 1, "2000-12-04", BENI_MAKADA),
        ],
        schedule_complete: true,
    },
];
