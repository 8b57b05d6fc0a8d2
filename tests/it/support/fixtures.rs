//! Requests and constants the black-box tests share, each defined once:
//! the methods the tests call (civil status's birth and family records,
//! health's vaccination record, tax's status), their request bodies, the
//! citizen they ask about, and the first audit segment's path.

use bytes::Bytes;
use jisr::proto::ma::civilstatus::v1::{GetBirthRecordRequest, GetFamilyRecordRequest};
use jisr::proto::ma::health::v1::GetVaccinationRecordRequest;
use jisr::proto::ma::tax::v1::GetTaxStatusRequest;
use prost::Message as _;

/// The path of civil status's birth-record method.
pub const BIRTH: &str = "/ma.civilstatus.v1.CivilStatus/GetBirthRecord";

/// The path of civil status's family-record method.
pub const FAMILY: &str = "/ma.civilstatus.v1.CivilStatus/GetFamilyRecord";

/// The path of health's vaccination-record method.
pub const VACCINATION: &str = "/ma.health.v1.HealthRecords/GetVaccinationRecord";

/// The path of tax's status method.
pub const TAX: &str = "/ma.tax.v1.TaxRecords/GetTaxStatus";

/// The citizen the tests ask about (a valid national id shape).
pub const CITIZEN: &str = "AB123456";

/// A gateway's first audit segment, relative to the PKI's root (the
/// default `gateway-audit` directory).
pub const SEGMENT: &str = "gateway-audit/00000000000000000000.log";

/// A `GetBirthRecord` request body for `citizen`.
pub fn birth(citizen: &str) -> Bytes {
    GetBirthRecordRequest {
        citizen_id: citizen.into(),
    }
    .encode_to_vec()
    .into()
}

/// A `GetFamilyRecord` request body for `citizen`.
pub fn family(citizen: &str) -> Bytes {
    GetFamilyRecordRequest {
        citizen_id: citizen.into(),
    }
    .encode_to_vec()
    .into()
}

/// A `GetVaccinationRecord` request body for `citizen`.
pub fn vaccination(citizen: &str) -> Bytes {
    GetVaccinationRecordRequest {
        citizen_id: citizen.into(),
    }
    .encode_to_vec()
    .into()
}

/// A `GetTaxStatus` request body for `citizen` and `fiscal_year`.
pub fn tax(citizen: &str, fiscal_year: u32) -> Bytes {
    GetTaxStatusRequest {
        citizen_id: citizen.into(),
        fiscal_year,
    }
    .encode_to_vec()
    .into()
}
