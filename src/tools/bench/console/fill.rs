//! The console benchmark's log, written before the gateway starts: the
//! demo's exchanges (education and tax asking civil status and tax, one in
//! forty refused) over many citizens, and one citizen with a long history
//! spread evenly through the log. Written through the log writer itself,
//! then indexed, as `jisr audit bench-replicas` fills its logs; the node's
//! keys and consent store are made first, as on a node that has run.

use crate::audit::index::AuditIndex;
use crate::audit::keys::Pseudonymizer;
use crate::audit::note::NoteSigner;
use crate::proto::jisr::audit::v1::{AuditRecord, Kind, Outcome};
use crate::tools::bench::audit::{citizen_id, fill_with, open_signed, Maker, PSEUDONYM_KEY};
use crate::tools::demo::TRUST_DOMAIN;
use prost::Message as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// The first entry's time: 2026-09-21 (before any run of the benchmark).
const FIRST_MICROS: i64 = 1_790_000_000_000_000;
/// Time between two entries: a million entries span about five weeks.
const STEP_MICROS: i64 = 3_000_000;
/// One entry in this many is refused.
const REFUSED_EVERY: u64 = 40;

/// What the log holds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Data {
    /// Entries written.
    pub(super) entries: u64,
    /// Citizens the other entries are spread over.
    pub(super) citizens: u64,
    /// Exchanges about the frequent citizen.
    pub(super) frequent: u64,
}

/// The kinds of exchange in the log: consumer, provider, method, purpose,
/// procedure, basis (all from the demo's configuration, so every label
/// the citizen page shows exists).
const EXCHANGES: [[&str; 6]; 3] = [
    [
        "education",
        "civil-status",
        "/ma.civilstatus.v1.CivilStatus/GetBirthRecord",
        "bac-candidature",
        "bac-2027-free-candidate",
        "consent",
    ],
    [
        "tax",
        "civil-status",
        "/ma.civilstatus.v1.CivilStatus/GetFamilyRecord",
        "tax-household",
        "tax-household-2026",
        "law:cgi-art-22",
    ],
    [
        "education",
        "tax",
        "/ma.tax.v1.TaxRecords/GetTaxStatus",
        "bac-candidature",
        "bac-2027-free-candidate",
        "consent",
    ],
];

impl Data {
    /// Every `stride`-th entry (from the middle of the first stride) is
    /// about the frequent citizen.
    fn stride(&self) -> u64 {
        (self.entries / self.frequent.max(1)).max(1)
    }

    fn is_frequent(&self, i: u64) -> bool {
        let stride = self.stride();
        i % stride == stride / 2 && i / stride < self.frequent
    }

    /// The citizen with the long history: numbered past the others.
    pub(super) fn frequent_citizen(&self) -> String {
        citizen_id(self.citizens)
    }

    /// Entry `i`'s time.
    pub(super) fn time(i: u64) -> i64 {
        FIRST_MICROS + i as i64 * STEP_MICROS
    }

    pub(super) fn refused(i: u64) -> bool {
        i % REFUSED_EVERY == 7
    }

    /// Entry `i`, encoded.
    fn record(&self, pseudonyms: &Pseudonymizer, i: u64) -> Vec<u8> {
        let citizen = if self.is_frequent(i) {
            self.citizens
        } else {
            (i * 7919) % self.citizens
        };
        let [consumer, provider, method, purpose, procedure, basis] =
            EXCHANGES[(i % EXCHANGES.len() as u64) as usize];
        let refused = Self::refused(i);
        let consented = basis == "consent" && !refused;
        AuditRecord {
            time_unix_micros: Self::time(i),
            node: "gw-1".into(),
            kind: Kind::Exchange as i32,
            request_id: format!("{:032x}", u128::from(i) * 0x9e37_79b9_7f4a_7c15),
            consumer: consumer.into(),
            official: format!("{consumer}.agent-{:03}", i % 300),
            provider: provider.into(),
            method: method.into(),
            purpose: purpose.into(),
            procedure: procedure.into(),
            basis: basis.into(),
            consent_id: if consented {
                format!("c-{:016x}", citizen.wrapping_mul(0x2545_f491_4f6c_dd1d))
            } else {
                String::new()
            },
            subject: pseudonyms.pseudonym(&citizen_id(citizen)).to_vec(),
            outcome: if refused {
                Outcome::Refused
            } else {
                Outcome::Allowed
            } as i32,
            reason: if refused {
                "CONSENT_REQUIRED".into()
            } else {
                String::new()
            },
            grpc_status: if refused { 7 } else { 0 },
            request_digest: vec![0xab; 32],
            response_digest: if refused { Vec::new() } else { vec![0xcd; 32] },
            ..AuditRecord::default()
        }
        .encode_to_vec()
    }
}

/// How long the fill took.
#[derive(Debug, Clone, Copy)]
pub(super) struct Took {
    pub(super) fill_s: f64,
    pub(super) index_s: f64,
}

/// Writes gw-1's keys, consent store and filled, indexed log under `dir`,
/// where the demo's configuration (`jisr.toml` there) finds them.
pub(super) async fn write(dir: &Path, data: Data) -> anyhow::Result<Took> {
    let signer = NoteSigner::generate(&format!("{TRUST_DOMAIN}/jisr/gw-1"))?;
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("audit-signing.key"),
        format!("{}\n", signer.to_secret_text()),
    )?;
    std::fs::write(
        dir.join("pseudonym.key"),
        format!("{}\n", crate::audit::keys::hex(&PSEUDONYM_KEY)),
    )?;
    // A node whose log exists refuses to start without these.
    let consents = NoteSigner::generate(&format!("{TRUST_DOMAIN}/jisr/consents"))?;
    std::fs::write(
        dir.join("consent-signing.key"),
        format!("{}\n", consents.to_secret_text()),
    )?;
    drop(crate::consent::store::embedded::EmbeddedConsentStore::open(
        &dir.join("consents.redb"),
    )?);
    let audit = dir.join("audit");
    let log = open_signed(&audit, signer)?;
    let pseudonyms = Pseudonymizer::new(&PSEUDONYM_KEY);
    let make: Maker = Arc::new(move |i| data.record(&pseudonyms, i));
    let started = Instant::now();
    // Appenders in flight: the writer syncs each batch once.
    let concurrency = usize::try_from(data.entries.clamp(1, 1024)).unwrap_or(1024);
    fill_with(&log, data.entries, concurrency, make).await?;
    let fill_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let index = AuditIndex::open(&audit.join("index.redb"))?;
    crate::audit::service::catch_up(&index, &log)?;
    drop(index);
    let index_s = started.elapsed().as_secs_f64();
    // Signs the checkpoint every receipt is proved against.
    log.close().await;
    Ok(Took { fill_s, index_s })
}

#[cfg(test)]
mod tests {
    use super::Data;

    #[test]
    fn the_frequent_citizen_has_exactly_its_exchanges() {
        for (entries, frequent) in [(2_000, 20), (1_000_000, 1_000), (1_234, 1_234), (999, 7)] {
            let data = Data {
                entries,
                citizens: 100,
                frequent,
            };
            let n = (0..entries).filter(|&i| data.is_frequent(i)).count() as u64;
            assert_eq!(n, frequent, "{entries} entries, {frequent} frequent");
        }
    }
}
