//! Requests and constants the black-box tests share, each defined once:
//! the method most tests call (civil status's birth record) and the citizen
//! they ask about.

use bytes::Bytes;
use jisr::proto::ma::civilstatus::v1::GetBirthRecordRequest;
use prost::Message as _;

/// The path of civil status's birth-record method.
pub const BIRTH: &str = "/ma.civilstatus.v1.CivilStatus/GetBirthRecord";

/// The citizen the tests ask about (a valid national id shape).
pub const CITIZEN: &str = "AB123456";

/// A `GetBirthRecord` request body for `citizen`.
pub fn birth(citizen: &str) -> Bytes {
    GetBirthRecordRequest {
        citizen_id: citizen.into(),
    }
    .encode_to_vec()
    .into()
}
