//! The sample agencies' gRPC services, answering from [`super::dataset`].
//!
//! They behave like a real back-end would behind Jisr: they log the `jisr-*`
//! metadata the gateway forwards, echo `jisr-request-id`, and answer
//! `NOT_FOUND` for unknown citizens. For tests, `x-sample-delay-ms: N` makes a
//! handler wait N milliseconds first, to exercise deadlines.

use std::time::Duration;

use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::{Request, Response, Status};

use super::dataset;
use crate::proto::ma::civilstatus::v1::{
    civil_status_server::CivilStatus, BirthRecord, CivilEvent, FamilyRecord, GetBirthRecordRequest,
    GetFamilyRecordRequest, ListCivilEventsRequest,
};
use crate::proto::ma::health::v1::{
    health_records_server::HealthRecords, GetVaccinationRecordRequest, VaccinationRecord,
};
use crate::proto::ma::tax::v1::{tax_records_server::TaxRecords, GetTaxStatusRequest, TaxStatus};

/// Request metadata naming the gateway's request id, echoed in responses.
pub const REQUEST_ID_HEADER: &str = "jisr-request-id";
/// Test-only request metadata: milliseconds to wait before answering.
pub const DELAY_HEADER: &str = "x-sample-delay-ms";
/// The longest delay [`DELAY_HEADER`] may ask for, in milliseconds.
pub const MAX_DELAY_MS: u64 = 60_000;

/// Why a sample service refuses a call; turned into a [`Status`] in one place.
#[derive(Debug, thiserror::Error)]
enum SampleError {
    #[error("citizen_id is empty: give the citizen's national id, e.g. AB123456")]
    EmptyCitizenId,
    #[error("no {what} for citizen {id}")]
    NotFound { what: &'static str, id: String },
    #[error(
        "no tax status for citizen {id} in fiscal year {year} (records cover {first} to {last})"
    )]
    NoTaxYear {
        id: String,
        year: u32,
        first: u32,
        last: u32,
    },
    #[error("{DELAY_HEADER} must be a number of milliseconds up to {MAX_DELAY_MS}")]
    BadDelay,
}

impl From<SampleError> for Status {
    fn from(e: SampleError) -> Self {
        let message = e.to_string();
        match e {
            SampleError::EmptyCitizenId | SampleError::BadDelay => {
                Status::invalid_argument(message)
            }
            SampleError::NotFound { .. } | SampleError::NoTaxYear { .. } => {
                Status::not_found(message)
            }
        }
    }
}

/// What every handler does before answering: log the `jisr-*` metadata, honour
/// the test delay, check the citizen id. Returns the request id to echo.
async fn prologue(
    method: &'static str,
    metadata: &MetadataMap,
    citizen_id: &str,
) -> Result<Option<AsciiMetadataValue>, SampleError> {
    let text = |key| metadata.get(key).and_then(|v| v.to_str().ok());
    tracing::debug!(
        method,
        consumer = text("jisr-consumer"),
        purpose = text("jisr-purpose"),
        request_id = text(REQUEST_ID_HEADER),
        "sample agency call"
    );
    if let Some(delay) = metadata.get(DELAY_HEADER) {
        let ms: u64 = delay
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .filter(|ms| *ms <= MAX_DELAY_MS)
            .ok_or(SampleError::BadDelay)?;
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if citizen_id.is_empty() {
        return Err(SampleError::EmptyCitizenId);
    }
    Ok(metadata.get(REQUEST_ID_HEADER).cloned())
}

/// Wraps an answer, echoing the request id if the caller sent one.
fn respond<T>(message: T, request_id: Option<AsciiMetadataValue>) -> Response<T> {
    let mut response = Response::new(message);
    if let Some(id) = request_id {
        response.metadata_mut().insert(REQUEST_ID_HEADER, id);
    }
    response
}

fn not_found(what: &'static str, id: &str) -> SampleError {
    SampleError::NotFound {
        what,
        id: id.to_owned(),
    }
}

/// The civil status registry (`ma.civilstatus.v1.CivilStatus`).
#[derive(Debug, Clone, Copy, Default)]
pub struct CivilStatusSample;

/// The tax administration (`ma.tax.v1.TaxRecords`).
#[derive(Debug, Clone, Copy, Default)]
pub struct TaxSample;

/// The ministry of health (`ma.health.v1.HealthRecords`).
#[derive(Debug, Clone, Copy, Default)]
pub struct HealthSample;

/// The stream [`CivilStatusSample`] answers `ListCivilEvents` with.
pub type CivilEventStream = tokio_stream::Iter<std::vec::IntoIter<Result<CivilEvent, Status>>>;

#[tonic::async_trait]
impl CivilStatus for CivilStatusSample {
    async fn get_birth_record(
        &self,
        request: Request<GetBirthRecordRequest>,
    ) -> Result<Response<BirthRecord>, Status> {
        let id = &request.get_ref().citizen_id;
        let request_id = prologue("GetBirthRecord", request.metadata(), id).await?;
        let record = dataset::birth_record(id).ok_or_else(|| not_found("birth record", id))?;
        Ok(respond(record, request_id))
    }

    async fn get_family_record(
        &self,
        request: Request<GetFamilyRecordRequest>,
    ) -> Result<Response<FamilyRecord>, Status> {
        let id = &request.get_ref().citizen_id;
        let request_id = prologue("GetFamilyRecord", request.metadata(), id).await?;
        let record = dataset::family_record(id).ok_or_else(|| not_found("family record", id))?;
        Ok(respond(record, request_id))
    }

    type ListCivilEventsStream = CivilEventStream;

    async fn list_civil_events(
        &self,
        request: Request<ListCivilEventsRequest>,
    ) -> Result<Response<Self::ListCivilEventsStream>, Status> {
        let id = &request.get_ref().citizen_id;
        let request_id = prologue("ListCivilEvents", request.metadata(), id).await?;
        let events = dataset::civil_events(id);
        if events.is_empty() {
            return Err(not_found("civil events", id).into());
        }
        let items: Vec<_> = events.into_iter().map(Ok).collect();
        Ok(respond(tokio_stream::iter(items), request_id))
    }
}

#[tonic::async_trait]
impl TaxRecords for TaxSample {
    async fn get_tax_status(
        &self,
        request: Request<GetTaxStatusRequest>,
    ) -> Result<Response<TaxStatus>, Status> {
        let GetTaxStatusRequest {
            citizen_id: id,
            fiscal_year,
        } = request.get_ref();
        let request_id = prologue("GetTaxStatus", request.metadata(), id).await?;
        if let Some(status) = dataset::tax_status(id, *fiscal_year) {
            return Ok(respond(status, request_id));
        }
        // Tell an unknown citizen apart from a year without records.
        let error = if dataset::tax_status(id, 0).is_none() && dataset::birth_record(id).is_none() {
            not_found("tax status", id)
        } else {
            SampleError::NoTaxYear {
                id: id.clone(),
                year: *fiscal_year,
                first: dataset::FIRST_FISCAL_YEAR,
                last: dataset::LAST_CLOSED_FISCAL_YEAR,
            }
        };
        Err(error.into())
    }
}

#[tonic::async_trait]
impl HealthRecords for HealthSample {
    async fn get_vaccination_record(
        &self,
        request: Request<GetVaccinationRecordRequest>,
    ) -> Result<Response<VaccinationRecord>, Status> {
        let id = &request.get_ref().citizen_id;
        let request_id = prologue("GetVaccinationRecord", request.metadata(), id).await?;
        let record =
            dataset::vaccination_record(id).ok_or_else(|| not_found("vaccination record", id))?;
        Ok(respond(record, request_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    fn request<T>(message: T) -> Request<T> {
        let mut request = Request::new(message);
        let md = request.metadata_mut();
        md.insert("jisr-consumer", "education".parse().unwrap());
        md.insert("jisr-purpose", "bac-registration".parse().unwrap());
        md.insert(REQUEST_ID_HEADER, "req-42".parse().unwrap());
        request
    }

    fn birth(id: &str) -> Request<GetBirthRecordRequest> {
        request(GetBirthRecordRequest {
            citizen_id: id.to_owned(),
        })
    }

    #[tokio::test]
    async fn birth_record_answers_and_echoes_the_request_id() {
        let response = CivilStatusSample
            .get_birth_record(birth("AB123456"))
            .await
            .unwrap();
        assert_eq!(
            response.metadata().get(REQUEST_ID_HEADER).unwrap(),
            "req-42"
        );
        let record = response.into_inner();
        assert_eq!(record, dataset::birth_record("AB123456").unwrap());
        assert_eq!(record.birth_place, "Fès");
    }

    #[tokio::test]
    async fn unknown_and_empty_ids_are_refused() {
        let status = CivilStatusSample
            .get_birth_record(birth("ZZ999999"))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert!(status
            .message()
            .contains("no birth record for citizen ZZ999999"));
        let status = CivilStatusSample
            .get_birth_record(birth(""))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let status = HealthSample
            .get_vaccination_record(request(GetVaccinationRecordRequest {
                citizen_id: "IJ567890".to_owned(),
            }))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::NotFound);
    }

    #[tokio::test]
    async fn civil_events_are_streamed_in_order() {
        let list = ListCivilEventsRequest {
            citizen_id: "IJ567890".to_owned(),
        };
        let stream = CivilStatusSample
            .list_civil_events(request(list))
            .await
            .unwrap();
        let kinds: Vec<_> = stream
            .into_inner()
            .map(|e| e.unwrap().kind)
            .collect::<Vec<_>>()
            .await;
        assert_eq!(kinds, ["birth", "marriage", "death"]);
    }

    #[tokio::test]
    async fn tax_years_without_records_are_not_found() {
        let ask = |year| {
            TaxSample.get_tax_status(request(GetTaxStatusRequest {
                citizen_id: "IJ567890".to_owned(),
                fiscal_year: year,
            }))
        };
        assert!(ask(2018).await.is_ok());
        let status = ask(2023).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert!(status.message().contains("fiscal year 2023"), "{status:?}");
    }

    #[tokio::test]
    async fn delay_metadata_is_honoured_and_bounded() {
        let mut delayed = birth("AB123456");
        delayed
            .metadata_mut()
            .insert(DELAY_HEADER, "50".parse().unwrap());
        let start = tokio::time::Instant::now();
        CivilStatusSample.get_birth_record(delayed).await.unwrap();
        assert!(start.elapsed() >= Duration::from_millis(50));
        let mut too_long = birth("AB123456");
        too_long
            .metadata_mut()
            .insert(DELAY_HEADER, "60001".parse().unwrap());
        let status = CivilStatusSample
            .get_birth_record(too_long)
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }
}
