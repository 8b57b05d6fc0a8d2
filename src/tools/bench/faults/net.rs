//! `jisr bench --faults`' network: the three sample providers (tax and
//! health never answer), a redis-server holding the consents, and a gateway
//! configured for the faults, each a separate process started from this
//! executable; and the calls the benchmark makes through it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use super::super::consent::LocalRedis;
use super::super::procs::{jisr, Spawned};
use crate::proto::ma::civilstatus::v1::civil_status_client::CivilStatusClient;
use crate::proto::ma::civilstatus::v1::{GetBirthRecordRequest, GetFamilyRecordRequest};
use crate::proto::ma::health::v1::health_records_client::HealthRecordsClient;
use crate::proto::ma::health::v1::GetVaccinationRecordRequest;
use crate::proto::ma::tax::v1::tax_records_client::TaxRecordsClient;
use crate::proto::ma::tax::v1::GetTaxStatusRequest;
use crate::tls::{self, TlsFiles};

/// The hung providers' route timeout (`[[agency]] timeout_ms`).
pub(super) const ROUTE_TIMEOUT: Duration = Duration::from_millis(300);
/// `[consent] timeout_ms`: how long a Redis operation may take.
pub(super) const CONSENT_TIMEOUT: Duration = Duration::from_millis(250);
/// Timeouts in a row that open health's breaker.
pub(super) const BREAKER_FAILURES: u32 = 3;
/// The breaker stays open this long: longer than any run.
pub(super) const BREAKER_COOLDOWN: Duration = Duration::from_secs(3600);
/// The citizen every call is about.
const CITIZEN: &str = "AB123456";

/// The gateway's configuration: education reads a birth record on the
/// citizen's consent (kept in Redis), tax standing and vaccinations on a
/// law (their providers hang; health's breaker opens after a few timeouts,
/// tax's never does); tax reads family records on a law, the route that
/// touches neither the hung providers nor Redis.
fn config(civil_status: &str, tax: &str, health: &str, redis: &str) -> String {
    format!(
        include_str!("gateway.toml.in"),
        civil_status = civil_status,
        tax = tax,
        health = health,
        redis = redis,
        route = ROUTE_TIMEOUT.as_millis(),
        consent = CONSENT_TIMEOUT.as_millis(),
        failures = BREAKER_FAILURES,
        cooldown = BREAKER_COOLDOWN.as_millis(),
    )
}

/// The running network; every process is stopped when it is dropped.
pub(super) struct FaultNetwork {
    pub(super) redis: LocalRedis,
    gateway: Spawned,
    _providers: Vec<Spawned>,
    /// Calls as education (the faulted routes).
    education: Channel,
    /// Calls as tax (the route that must keep answering).
    tax: Channel,
    /// The citizen's consent, in Redis.
    consent: String,
}

impl FaultNetwork {
    /// Creates the PKI, contracts and configuration under `dir` and starts
    /// everything from `exe`.
    pub(super) async fn start(dir: &Path, exe: &Path) -> anyhow::Result<Self> {
        let redis = LocalRedis::start(dir).map_err(|why| {
            anyhow::anyhow!("jisr bench --faults needs redis-server on PATH (Debian: apt-get install redis-server): {why}")
        })?;
        let pki = crate::tools::demo::prepare(dir).context("creating the benchmark's PKI")?;
        let mut providers = Vec::new();
        let mut addrs = Vec::new();
        for (agency, hang) in [("civil-status", false), ("tax", true), ("health", true)] {
            let (proc, addr) = provider(dir, exe, &pki, agency, hang).await?;
            providers.push(proc);
            addrs.push(addr);
        }
        let config = dir.join("jisr.toml");
        std::fs::write(
            &config,
            self::config(&addrs[0], &addrs[1], &addrs[2], &redis.url()),
        )?;
        let addr_file = dir.join("gateway.addr");
        let _ = std::fs::remove_file(&addr_file);
        let (config_arg, addr_arg) = (config.to_string_lossy(), addr_file.to_string_lossy());
        let args = ["serve", "--config", &config_arg, "--addr-file", &addr_arg];
        let mut gateway = Spawned::start("gateway", dir, &mut jisr(exe, &args))?;
        let addr = gateway.address(&addr_file).await?;
        let consent = grant(connect(&addr, &pki, "portal").await?).await?;
        Ok(Self {
            redis,
            education: connect(&addr, &pki, "education").await?,
            tax: connect(&addr, &pki, "tax").await?,
            gateway,
            _providers: providers,
            consent,
        })
    }

    /// Fails with its log if the gateway has died.
    pub(super) fn check_gateway(&mut self) -> anyhow::Result<()> {
        self.gateway.check_running()
    }

    /// A birth record on the citizen's consent (asks Redis).
    pub(super) async fn birth(&self) -> Result<(), Status> {
        let mut request = purpose(GetBirthRecordRequest::default(), "bac-candidature");
        request.get_mut().citizen_id = CITIZEN.into();
        let consent = MetadataValue::try_from(self.consent.as_str())
            .map_err(|e| Status::internal(format!("the consent id is not a header value: {e}")))?;
        request.metadata_mut().insert("jisr-consent", consent);
        let mut client = CivilStatusClient::new(self.education.clone());
        client.get_birth_record(request).await.map(drop)
    }

    /// A tax standing, from the provider that never answers.
    pub(super) async fn tax_status(&self) -> Result<(), Status> {
        let mut request = purpose(GetTaxStatusRequest::default(), "bac-candidature");
        request.get_mut().citizen_id = CITIZEN.into();
        let mut client = TaxRecordsClient::new(self.education.clone());
        client.get_tax_status(request).await.map(drop)
    }

    /// A vaccination record, from the other provider that never answers.
    pub(super) async fn vaccinations(&self) -> Result<(), Status> {
        let mut request = purpose(GetVaccinationRecordRequest::default(), "bac-candidature");
        request.get_mut().citizen_id = CITIZEN.into();
        let mut client = HealthRecordsClient::new(self.education.clone());
        client.get_vaccination_record(request).await.map(drop)
    }

    /// A family record, as tax, on a law: the route no fault touches.
    pub(super) async fn family(&self) -> Result<(), Status> {
        let mut request = purpose(GetFamilyRecordRequest::default(), "tax-household");
        request.get_mut().citizen_id = CITIZEN.into();
        let mut client = CivilStatusClient::new(self.tax.clone());
        client.get_family_record(request).await.map(drop)
    }
}

/// Grants, as the portal, the citizen's consent to education's birth-record
/// reads for a day; its id.
async fn grant(portal: Channel) -> anyhow::Result<String> {
    use crate::proto::jisr::consent::v1::{consents_client::ConsentsClient, Consent, GrantRequest};
    let consent = Consent {
        subject: CITIZEN.into(),
        consumer: "education".into(),
        methods: vec!["ma.civilstatus.v1.CivilStatus/GetBirthRecord".into()],
        purpose: "bac-candidature".into(),
        not_after_unix_micros: crate::consent::artefact::now_micros() + 86_400_000_000,
        ..Default::default()
    };
    let request = GrantRequest {
        consent: Some(consent),
    };
    let granted = ConsentsClient::new(portal)
        .grant(request)
        .await
        .map_err(|s| anyhow::anyhow!("granting the benchmark's consent failed: {}", s.message()))?
        .into_inner();
    granted
        .decoded
        .map(|c| c.id)
        .ok_or_else(|| anyhow::anyhow!("the gateway granted a consent without saying its id"))
}

fn purpose<T>(message: T, purpose: &'static str) -> Request<T> {
    let mut request = Request::new(message);
    let md = request.metadata_mut();
    md.insert("jisr-purpose", MetadataValue::from_static(purpose));
    request
}

/// Starts one sample provider; the process and its address.
async fn provider(
    dir: &Path,
    exe: &Path,
    pki: &Path,
    agency: &str,
    hang: bool,
) -> anyhow::Result<(Spawned, String)> {
    let addr_file: PathBuf = dir.join(format!("{agency}.addr"));
    let _ = std::fs::remove_file(&addr_file);
    let (pki_arg, addr_arg) = (pki.to_string_lossy(), addr_file.to_string_lossy());
    let mut args = vec![
        "sample-provider",
        "--agency",
        agency,
        "--listen",
        "127.0.0.1:0",
    ];
    args.extend(["--pki", &pki_arg, "--addr-file", &addr_arg]);
    if hang {
        args.push("--never-answer");
    }
    let mut proc = Spawned::start(agency, dir, &mut jisr(exe, &args))?;
    let addr = proc.address(&addr_file).await?;
    Ok((proc, addr))
}

async fn connect(addr: &str, pki: &Path, agency: &str) -> anyhow::Result<Channel> {
    let tls = tls::tonic_client_tls(&TlsFiles::for_agency(pki, agency))?;
    Endpoint::from_shared(format!("https://{addr}"))?
        .tls_config(tls)?
        .connect()
        .await
        .with_context(|| format!("cannot connect to the gateway at {addr} as {agency}"))
}
