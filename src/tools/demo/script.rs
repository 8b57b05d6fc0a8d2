//! What the demo plays and prints.

use super::network::Network;
use crate::proto::ma::civilstatus::v1::{
    civil_status_client::CivilStatusClient, GetBirthRecordRequest, GetFamilyRecordRequest,
};
use crate::proto::ma::health::v1::{
    health_records_client::HealthRecordsClient, GetVaccinationRecordRequest,
};
use crate::proto::ma::tax::v1::{
    tax_records_client::TaxRecordsClient, GetTaxStatusRequest, Standing,
};
use crate::tls::{self, TlsFiles};
use tonic::transport::{Channel, Endpoint};
use tonic::Request;
use tonic_types::StatusExt as _;

pub(super) const CANDIDATE: &str = "AB123456";
pub(super) const PROCEDURE: &str = "bac-2027-free-candidate";
const HOUSEHOLD: &str = "tax-household-2026";

/// Opens a mutual-TLS channel to the gateway as `agency`.
pub(super) async fn connect(network: &Network, agency: &str) -> anyhow::Result<Channel> {
    let files = TlsFiles::for_agency(&network.pki, agency);
    let endpoint = Endpoint::from_shared(format!("https://{}", network.gateway))?
        .tls_config(tls::tonic_client_tls(&files)?)?;
    Ok(endpoint.connect().await?)
}

fn request<T>(message: T, purpose: &str, procedure: &str, official: &str) -> Request<T> {
    let mut request = Request::new(message);
    let md = request.metadata_mut();
    md.insert(
        "jisr-purpose",
        purpose.parse().expect("purpose codes are valid metadata"),
    );
    md.insert(
        "jisr-procedure",
        procedure.parse().expect("a valid metadata value"),
    );
    md.insert(
        "jisr-official",
        official.parse().expect("a valid metadata value"),
    );
    request
}

fn granted<T>(response: &tonic::Response<T>) -> String {
    let md = response.metadata();
    let basis = md
        .get("jisr-basis")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?");
    let id = md
        .get("jisr-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("?");
    format!("basis {basis} · request {id}")
}

fn refused(status: &tonic::Status) -> String {
    let reason = status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_else(|| "?".into());
    format!(
        "✘ refused: {:?} / {reason}\n      “{}”",
        status.code(),
        status.message()
    )
}

/// Records the candidate's consent through the portal; returns its id.
pub(super) async fn record_consent(network: &Network) -> anyhow::Result<String> {
    use crate::proto::jisr::consent::v1::{consents_client::ConsentsClient, Consent, GrantRequest};
    let mut portal = ConsentsClient::new(connect(network, "portal").await?);
    let month = 30 * 24 * 3600 * 1_000_000i64;
    let consent = Consent {
        subject: CANDIDATE.into(),
        consumer: "education".into(),
        methods: vec![
            "ma.civilstatus.v1.CivilStatus/GetBirthRecord".into(),
            "ma.tax.v1.TaxRecords/GetTaxStatus".into(),
            "ma.health.v1.HealthRecords/GetVaccinationRecord".into(),
        ],
        purpose: "bac-candidature".into(),
        procedure: PROCEDURE.into(),
        not_after_unix_micros: crate::consent::artefact::now_micros() + month,
        ..Default::default()
    };
    let granted = portal
        .grant(GrantRequest {
            consent: Some(consent),
        })
        .await?
        .into_inner();
    Ok(granted.decoded.map(|c| c.id).unwrap_or_default())
}

fn with_consent<T>(mut request: Request<T>, id: &str) -> Request<T> {
    request
        .metadata_mut()
        .insert("jisr-consent", id.parse().expect("consent ids are hex"));
    request
}

/// An agency's official calling through the gateway for one purpose and
/// procedure, on a consent or, without one, on a legal basis.
struct Caller {
    agency: &'static str,
    channel: Channel,
    purpose: &'static str,
    procedure: &'static str,
    official: &'static str,
    consent: Option<String>,
}

impl Caller {
    /// The Ministry of Education's official, on the candidate's consent.
    async fn education(network: &Network, consent: &str) -> anyhow::Result<Self> {
        Ok(Self {
            agency: "education",
            channel: connect(network, "education").await?,
            purpose: "bac-candidature",
            procedure: PROCEDURE,
            official: "education.agent-017",
            consent: Some(consent.to_owned()),
        })
    }

    /// The tax administration's official, on its legal basis.
    async fn tax(network: &Network) -> anyhow::Result<Self> {
        Ok(Self {
            agency: "tax",
            channel: connect(network, "tax").await?,
            purpose: "tax-household",
            procedure: HOUSEHOLD,
            official: "tax.agent-204",
            consent: None,
        })
    }

    fn ask<T>(&self, message: T) -> Request<T> {
        let request = request(message, self.purpose, self.procedure, self.official);
        match &self.consent {
            Some(id) => with_consent(request, id),
            None => request,
        }
    }

    fn step(&self, n: usize, provider: &str, method: &str) {
        println!();
        println!("[{n}] {} → {provider}   {method}", self.agency);
        println!(
            "    citizen {CANDIDATE} · purpose {} · procedure {}",
            self.purpose, self.procedure
        );
    }
}

/// Plays the procedure and prints each step.
pub(super) async fn play(network: &Network) -> anyhow::Result<()> {
    introduce(network);
    println!("\n[0] portal → jisr   jisr.consent.v1.Consents/Grant");
    println!("    {CANDIDATE} consents to education fetching their birth, tax and vaccination records for bac-candidature");
    let consent = record_consent(network).await?;
    println!("    ✔ consent {consent} recorded and signed by the gateway");

    let education = Caller::education(network, &consent).await?;
    fetch_birth_record(&education).await?;
    fetch_tax_status(&education).await?;
    fetch_vaccination_record(&education).await?;
    println!("\nThe candidate's file is complete: three records fetched in seconds, none carried by hand.");
    consent_for_another_citizen(&education).await?;

    let tax = Caller::tax(network).await?;
    fetch_family_on_legal_basis(&tax).await?;
    health_without_a_rule(&tax).await?;

    revoke(network, &consent).await?;
    birth_record_after_revocation(&education).await?;
    println!("\nDone: 4 exchanges allowed (3 on consent, 1 on a legal basis), 3 refused.");
    super::report::print_trail(network).await
}

fn introduce(network: &Network) {
    println!("Jisr demo — the baccalauréat free-candidate procedure");
    println!(
        "A free candidate used to bring 18 documents from six offices. Here the Ministry of Education\n\
         fetches them itself through the gateway, with the candidate's consent, and every call is checked."
    );
    println!(
        "\nnetwork: gateway gw-1 at {} (trust domain {}), providers {}, mutual TLS on both legs",
        network.gateway,
        super::TRUST_DOMAIN,
        network
            .providers
            .iter()
            .map(|(a, addr)| format!("{}@{addr}", a.id()))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

const BIRTH_RECORD: &str = "ma.civilstatus.v1.CivilStatus/GetBirthRecord";
const VACCINATION_RECORD: &str = "ma.health.v1.HealthRecords/GetVaccinationRecord";

/// [1] The birth record, on the candidate's consent.
async fn fetch_birth_record(education: &Caller) -> anyhow::Result<()> {
    education.step(1, "civil-status", BIRTH_RECORD);
    let birth = CivilStatusClient::new(education.channel.clone())
        .get_birth_record(education.ask(GetBirthRecordRequest {
            citizen_id: CANDIDATE.into(),
        }))
        .await?;
    let b = birth.get_ref();
    println!("    ✔ {}", granted(&birth));
    println!(
        "      birth record: {} {}, born {} in {} (act {}, {})",
        b.first_name, b.last_name, b.birth_date, b.birth_place, b.act_number, b.registry_office
    );
    Ok(())
}

/// [2] The tax status, on the same consent.
async fn fetch_tax_status(education: &Caller) -> anyhow::Result<()> {
    education.step(2, "tax", "ma.tax.v1.TaxRecords/GetTaxStatus");
    let tax_status = TaxRecordsClient::new(education.channel.clone())
        .get_tax_status(education.ask(GetTaxStatusRequest {
            citizen_id: CANDIDATE.into(),
            fiscal_year: 0,
        }))
        .await?;
    let t = tax_status.get_ref();
    println!("    ✔ {}", granted(&tax_status));
    println!(
        "      tax status for {}: {:?}",
        t.fiscal_year,
        Standing::try_from(t.standing).unwrap_or(Standing::Unspecified)
    );
    Ok(())
}

/// [3] The vaccination record, on the same consent.
async fn fetch_vaccination_record(education: &Caller) -> anyhow::Result<()> {
    education.step(3, "health", VACCINATION_RECORD);
    let vaccination = HealthRecordsClient::new(education.channel.clone())
        .get_vaccination_record(education.ask(GetVaccinationRecordRequest {
            citizen_id: CANDIDATE.into(),
        }))
        .await?;
    let v = vaccination.get_ref();
    println!("    ✔ {}", granted(&vaccination));
    println!(
        "      vaccination record: {} vaccinations, national schedule {}",
        v.vaccinations.len(),
        if v.schedule_complete {
            "complete"
        } else {
            "incomplete"
        }
    );
    Ok(())
}

/// [4] A consent covers the citizen who gave it, nobody else.
async fn consent_for_another_citizen(education: &Caller) -> anyhow::Result<()> {
    education.step(4, "civil-status", BIRTH_RECORD);
    println!("    (the same consent, used for another citizen, CD234567)");
    let other = CivilStatusClient::new(education.channel.clone())
        .get_birth_record(education.ask(GetBirthRecordRequest {
            citizen_id: "CD234567".into(),
        }))
        .await;
    expect_refused(other, "SUBJECT_MISMATCH")
}

/// [5] A legal basis stands in for consent.
async fn fetch_family_on_legal_basis(tax: &Caller) -> anyhow::Result<()> {
    tax.step(
        5,
        "civil-status",
        "ma.civilstatus.v1.CivilStatus/GetFamilyRecord",
    );
    let family = CivilStatusClient::new(tax.channel.clone())
        .get_family_record(tax.ask(GetFamilyRecordRequest {
            citizen_id: CANDIDATE.into(),
        }))
        .await?;
    println!(
        "    ✔ {} (a legal basis: no consent needed)",
        granted(&family)
    );
    println!(
        "      family record: household {} with {} members",
        family.get_ref().household_id,
        family.get_ref().members.len()
    );
    Ok(())
}

/// [6] Without an access rule, a legal basis elsewhere opens nothing.
async fn health_without_a_rule(tax: &Caller) -> anyhow::Result<()> {
    tax.step(6, "health", VACCINATION_RECORD);
    println!("    (no rule lets the tax administration read health records)");
    let denied = HealthRecordsClient::new(tax.channel.clone())
        .get_vaccination_record(tax.ask(GetVaccinationRecordRequest {
            citizen_id: CANDIDATE.into(),
        }))
        .await;
    expect_refused(denied, "ACCESS_DENIED")
}

/// [7] The candidate withdraws consent through the portal.
async fn revoke(network: &Network, consent: &str) -> anyhow::Result<()> {
    use crate::proto::jisr::consent::v1::{consents_client::ConsentsClient, RevokeRequest};
    println!("\n[7] portal → jisr   jisr.consent.v1.Consents/Revoke");
    ConsentsClient::new(connect(network, "portal").await?)
        .revoke(RevokeRequest {
            id: consent.to_owned(),
        })
        .await?;
    println!("    ✔ {CANDIDATE} revoked consent {consent}");
    Ok(())
}

/// [8] A revoked consent opens nothing from the moment it is revoked.
async fn birth_record_after_revocation(education: &Caller) -> anyhow::Result<()> {
    education.step(8, "civil-status", BIRTH_RECORD);
    let after = CivilStatusClient::new(education.channel.clone())
        .get_birth_record(education.ask(GetBirthRecordRequest {
            citizen_id: CANDIDATE.into(),
        }))
        .await;
    expect_refused(after, "CONSENT_REVOKED")
}

fn expect_refused<T>(
    result: Result<tonic::Response<T>, tonic::Status>,
    reason: &str,
) -> anyhow::Result<()> {
    match result {
        Ok(_) => anyhow::bail!(
            "the gateway let through a call it must refuse with {reason}: the rules are broken"
        ),
        Err(status) => {
            println!("    {}", refused(&status));
            let got = status
                .get_details_error_info()
                .map(|i| i.reason)
                .unwrap_or_default();
            anyhow::ensure!(got == reason, "expected {reason}, got {got}");
            Ok(())
        }
    }
}
