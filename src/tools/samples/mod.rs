//! The sample agency back-ends: the civil status registry, the tax
//! administration and the ministry of health, each serving its contract from
//! `proto/agencies` over mutual TLS, answering from a small fictional
//! [`dataset`]. The demo, the integration tests and the load generator put
//! them behind a Jisr node as the providers.

pub mod dataset;
mod server;
pub mod services;

use std::fmt;

use tonic::server::NamedService;

use crate::identity::AgencyId;
use crate::proto::ma::civilstatus::v1::civil_status_server::CivilStatusServer;
use crate::proto::ma::health::v1::health_records_server::HealthRecordsServer;
use crate::proto::ma::tax::v1::tax_records_server::TaxRecordsServer;
pub use server::{serve, serve_answering, Answers};
pub use services::{CivilStatusSample, HealthSample, TaxSample};

/// One of the three sample agencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SampleAgency {
    /// The civil status registry (`civil-status`).
    CivilStatus,
    /// The tax administration (`tax`).
    Tax,
    /// The ministry of health (`health`).
    Health,
}

impl SampleAgency {
    /// The sample agency with this agency id, if any.
    pub fn from_id(id: &AgencyId) -> Option<Self> {
        Self::all().into_iter().find(|a| a.id() == id.as_str())
    }

    /// The agency id, as in its certificate's SPIFFE URI.
    pub fn id(&self) -> &'static str {
        match self {
            Self::CivilStatus => "civil-status",
            Self::Tax => "tax",
            Self::Health => "health",
        }
    }

    /// Every sample agency.
    pub fn all() -> [Self; 3] {
        [Self::CivilStatus, Self::Tax, Self::Health]
    }

    /// The agency's contract, relative to the `proto/` directory.
    pub fn contract(&self) -> &'static str {
        match self {
            Self::CivilStatus => "agencies/civilstatus/v1/civilstatus.proto",
            Self::Tax => "agencies/tax/v1/tax.proto",
            Self::Health => "agencies/health/v1/health.proto",
        }
    }

    /// The fully qualified gRPC service name, e.g. `ma.tax.v1.TaxRecords`.
    pub fn service(&self) -> &'static str {
        match self {
            Self::CivilStatus => CivilStatusServer::<CivilStatusSample>::NAME,
            Self::Tax => TaxRecordsServer::<TaxSample>::NAME,
            Self::Health => HealthRecordsServer::<HealthSample>::NAME,
        }
    }
}

impl fmt::Display for SampleAgency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agencies_round_trip_through_their_ids() {
        for agency in SampleAgency::all() {
            let id = AgencyId::parse(agency.id()).unwrap();
            assert_eq!(SampleAgency::from_id(&id), Some(agency));
            let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("proto")
                .join(agency.contract());
            assert!(file.is_file(), "{}", file.display());
        }
        assert_eq!(
            SampleAgency::from_id(&AgencyId::parse("education").unwrap()),
            None
        );
        assert_eq!(SampleAgency::Tax.service(), "ma.tax.v1.TaxRecords");
    }
}
