//! Who watched the watchers: every console page that reads exchanges is
//! itself an audit entry (`CONSOLE_READ`) naming the signed-in agency,
//! written with the recorder the Consents API uses for its own entries,
//! before the page is sent. No entry, no page.

use super::html::{self, Reply};
use crate::audit::record::{Ending, Recorder, Trail};
use crate::identity::AgencyId;
use crate::proto::jisr::audit::v1::{Kind, Outcome};

/// What a console page read, for its audit entry.
#[derive(Debug, Default)]
pub(super) struct Read<'a> {
    /// The page, e.g. `console:/exchanges`.
    pub(super) page: &'a str,
    /// The provider of the entry read, if one entry was.
    pub(super) provider: &'a str,
    /// The pseudonym of the citizen the entry is about, if any.
    pub(super) subject: &'a [u8],
}

/// Records that `agency` read `read`; a refusal page when the log cannot
/// take the entry (then the page is not shown).
pub(super) async fn reading(
    recorder: &Recorder,
    agency: &AgencyId,
    read: Read<'_>,
) -> Result<(), Reply> {
    let mut trail = Trail::start(
        &format!("{:032x}", rand::random::<u128>()),
        agency.as_str(),
        read.page,
        &http::HeaderMap::new(),
    );
    trail.official = "console".into();
    read.provider.clone_into(&mut trail.provider);
    trail.subject = <[u8; 32]>::try_from(read.subject).ok();
    let ending = Ending {
        outcome: Outcome::Allowed,
        reason: "",
        grpc_status: 0,
        response_digest: None,
    };
    match recorder
        .record_kind(&trail, ending, Kind::ConsoleRead)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::error!(error = %e, page = read.page, "console read not recorded; page withheld");
            Err(html::refused(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "Not shown",
                "The audit log cannot record this reading right now, so the page is not shown.",
                "Retry in a moment; tell the platform operator if it lasts.",
            ))
        }
    }
}
