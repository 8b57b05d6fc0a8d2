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

const CANDIDATE: &str = "AB123456";
const PROCEDURE: &str = "bac-2027-free-candidate";
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

fn step(n: usize, consumer: &str, provider: &str, method: &str, purpose: &str, procedure: &str) {
    println!();
    println!("[{n}] {consumer} → {provider}   {method}");
    println!("    citizen {CANDIDATE} · purpose {purpose} · procedure {procedure}");
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

/// Prints how to reach a network left running by `demo --serve`.
pub(super) fn print_serving(network: &Network) {
    println!("Jisr demo network is up (Ctrl-C to stop).");
    println!(
        "  gateway      {}   (also in {})",
        network.gateway,
        network.dir.join("gateway.addr").display()
    );
    println!(
        "  admin        http://{}/metrics, /healthz, /readyz   (also in {})",
        network.admin,
        network.dir.join("admin.addr").display()
    );
    for (agency, addr) in &network.providers {
        println!("  provider     {:<13} {addr}", agency.id());
    }
    println!("  config       {}", network.config_path.display());
    println!(
        "  certificates {}/<agency>.crt|.key, CA {}/ca.crt",
        network.pki.display(),
        network.pki.display()
    );
    println!("  agencies     {}", super::AGENCIES.join(", "));
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

/// Plays the procedure and prints each step.
pub(super) async fn play(network: &Network) -> anyhow::Result<()> {
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
    println!("\n[0] portal → jisr   jisr.consent.v1.Consents/Grant");
    println!("    {CANDIDATE} consents to education fetching their birth, tax and vaccination records for bac-candidature");
    let consent = record_consent(network).await?;
    println!("    ✔ consent {consent} recorded and signed by the gateway");

    let education = connect(network, "education").await?;
    let purpose = "bac-candidature";
    let official = "education.agent-017";
    let ask = |m| with_consent(request(m, purpose, PROCEDURE, official), &consent);

    step(
        1,
        "education",
        "civil-status",
        "ma.civilstatus.v1.CivilStatus/GetBirthRecord",
        purpose,
        PROCEDURE,
    );
    let mut civil = CivilStatusClient::new(education.clone());
    let birth = civil
        .get_birth_record(ask(GetBirthRecordRequest {
            citizen_id: CANDIDATE.into(),
        }))
        .await?;
    let b = birth.get_ref();
    println!("    ✔ {}", granted(&birth));
    println!(
        "      birth record: {} {}, born {} in {} (act {}, {})",
        b.first_name, b.last_name, b.birth_date, b.birth_place, b.act_number, b.registry_office
    );

    step(
        2,
        "education",
        "tax",
        "ma.tax.v1.TaxRecords/GetTaxStatus",
        purpose,
        PROCEDURE,
    );
    let tax_status = TaxRecordsClient::new(education.clone())
        .get_tax_status(with_consent(
            request(
                GetTaxStatusRequest {
                    citizen_id: CANDIDATE.into(),
                    fiscal_year: 0,
                },
                purpose,
                PROCEDURE,
                official,
            ),
            &consent,
        ))
        .await?;
    let t = tax_status.get_ref();
    println!("    ✔ {}", granted(&tax_status));
    println!(
        "      tax status for {}: {:?}",
        t.fiscal_year,
        Standing::try_from(t.standing).unwrap_or(Standing::Unspecified)
    );

    step(
        3,
        "education",
        "health",
        "ma.health.v1.HealthRecords/GetVaccinationRecord",
        purpose,
        PROCEDURE,
    );
    let vaccination = HealthRecordsClient::new(education.clone())
        .get_vaccination_record(with_consent(
            request(
                GetVaccinationRecordRequest {
                    citizen_id: CANDIDATE.into(),
                },
                purpose,
                PROCEDURE,
                official,
            ),
            &consent,
        ))
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
    println!("\nThe candidate's file is complete: three records fetched in seconds, none carried by hand.");

    step(
        4,
        "education",
        "civil-status",
        "ma.civilstatus.v1.CivilStatus/GetBirthRecord",
        purpose,
        PROCEDURE,
    );
    println!("    (the same consent, used for another citizen, CD234567)");
    let other = civil
        .get_birth_record(ask(GetBirthRecordRequest {
            citizen_id: "CD234567".into(),
        }))
        .await;
    expect_refused(other, "SUBJECT_MISMATCH")?;

    let tax = connect(network, "tax").await?;
    step(
        5,
        "tax",
        "civil-status",
        "ma.civilstatus.v1.CivilStatus/GetFamilyRecord",
        "tax-household",
        HOUSEHOLD,
    );
    let family = CivilStatusClient::new(tax.clone())
        .get_family_record(request(
            GetFamilyRecordRequest {
                citizen_id: CANDIDATE.into(),
            },
            "tax-household",
            HOUSEHOLD,
            "tax.agent-204",
        ))
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

    step(
        6,
        "tax",
        "health",
        "ma.health.v1.HealthRecords/GetVaccinationRecord",
        "tax-household",
        HOUSEHOLD,
    );
    println!("    (no rule lets the tax administration read health records)");
    let denied = HealthRecordsClient::new(tax)
        .get_vaccination_record(request(
            GetVaccinationRecordRequest {
                citizen_id: CANDIDATE.into(),
            },
            "tax-household",
            HOUSEHOLD,
            "tax.agent-204",
        ))
        .await;
    expect_refused(denied, "ACCESS_DENIED")?;

    println!("\n[7] portal → jisr   jisr.consent.v1.Consents/Revoke");
    use crate::proto::jisr::consent::v1::{consents_client::ConsentsClient, RevokeRequest};
    ConsentsClient::new(connect(network, "portal").await?)
        .revoke(RevokeRequest {
            id: consent.clone(),
        })
        .await?;
    println!("    ✔ {CANDIDATE} revoked consent {consent}");
    step(
        8,
        "education",
        "civil-status",
        "ma.civilstatus.v1.CivilStatus/GetBirthRecord",
        purpose,
        PROCEDURE,
    );
    let after = civil
        .get_birth_record(ask(GetBirthRecordRequest {
            citizen_id: CANDIDATE.into(),
        }))
        .await;
    expect_refused(after, "CONSENT_REVOKED")?;
    println!("\nDone: 4 exchanges allowed (3 on consent, 1 on a legal basis), 3 refused.");
    print_trail(network).await
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

/// The procedure's audit trail, as the data protection authority sees it,
/// and the candidate's own access history, as the portal shows it.
async fn print_trail(network: &Network) -> anyhow::Result<()> {
    use crate::proto::jisr::audit::v1::{
        audit_client::AuditClient, CitizenHistoryRequest, QueryRequest,
    };
    println!(
        "\nAudit trail of procedure {PROCEDURE}, as the data protection authority (cndp) reads it:"
    );
    let mut cndp = AuditClient::new(connect(network, "cndp").await?);
    let page = cndp
        .query(QueryRequest {
            procedure: PROCEDURE.into(),
            page_size: 50,
            ..Default::default()
        })
        .await?
        .into_inner();
    for entry in page.entries.iter().rev() {
        if let Some(r) = &entry.record {
            println!(
                "  {}",
                crate::tools::cli::audit::render(entry.index, r, false)
            );
        }
    }
    println!("\n{CANDIDATE}'s access history, as the citizen portal shows it (who, when, why):");
    let mut portal = AuditClient::new(connect(network, "portal").await?);
    let history = portal
        .citizen_history(CitizenHistoryRequest {
            citizen_id: CANDIDATE.into(),
            page_size: 50,
            page_token: String::new(),
        })
        .await?
        .into_inner();
    for entry in history.entries.iter().rev() {
        if let Some(r) = &entry.record {
            println!(
                "  {}  {} ({}) for {} on {} — {}",
                crate::tools::cli::audit::format_time(r.time_unix_micros),
                r.consumer,
                if r.official.is_empty() {
                    "-"
                } else {
                    &r.official
                },
                r.purpose,
                r.basis,
                r.method
            );
        }
    }
    Ok(())
}

/// Verifies the stopped network's audit log offline and prints the result.
pub(super) fn print_verification(dir: &std::path::Path) -> bool {
    let log = dir.join("audit");
    let report = crate::audit::verify::verify(&log, None);
    let latest = report
        .latest
        .as_ref()
        .map_or_else(|| "none".to_owned(), |c| format!("size {}", c.size));
    if report.ok() {
        println!(
            "\nAudit log verified offline: {} entries, {} signed checkpoints consistent, latest checkpoint {latest} (`jisr audit verify {}`).",
            report.entries,
            report.checkpoints,
            log.display()
        );
    } else {
        println!("\nAudit log verification FAILED:");
        for p in &report.problems {
            println!("  {p}");
        }
    }
    report.ok()
}
