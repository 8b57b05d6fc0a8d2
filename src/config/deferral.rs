//! A rule's `disclose_on`: deferred disclosure. The exchanges a rule allows
//! for a covert investigation (a tax audit, say) are kept from the
//! citizen's history until a date, then shown; auditors always see them.
//! Read here, with the warnings `check-config` prints about dates that are
//! probably mistakes.

use super::table::{Ctx, Section};
use super::Config;

/// How far ahead a disclosure date may be before `check-config` asks
/// whether it is meant: ten years, the longest period a Moroccan tax
/// administration may look back on (CGI art. 232), is already far.
const FAR_MICROS: i64 = 10 * 366 * 86_400 * 1_000_000;

const FORMS: &str = "write a date as `disclose_on = \"2027-06-30\"` (shown from 00:00 UTC that day) or a UTC time as `disclose_on = \"2027-06-30T08:00:00Z\"`";

/// `disclose_on` in a `[[rule]]`: `Ok(None)` when absent, `Ok(Some(t))`
/// (microseconds since the epoch) when valid, `Err(())` once the error is
/// recorded in `ctx`.
pub(super) fn disclose_on(ctx: &mut Ctx, s: &Section<'_, '_>) -> Result<Option<i64>, ()> {
    let Some(value) = s.opt_str(ctx, "disclose_on", "\"2027-06-30\"") else {
        return if s.table.get("disclose_on").is_none() {
            Ok(None)
        } else {
            Err(())
        };
    };
    match parse(value.get_ref()) {
        Ok(at) => Ok(Some(at)),
        Err(why) => {
            ctx.error(
                &value.span(),
                format!(
                    "`disclose_on` in [[rule]] is not a date: `{}` ({why})",
                    value.get_ref()
                ),
                FORMS,
            );
            Err(())
        }
    }
}

/// `YYYY-MM-DD` (00:00 UTC that day) or an RFC 3339 time with `Z` or an
/// offset, in microseconds since the epoch.
pub fn parse(text: &str) -> Result<i64, String> {
    use time::format_description::well_known::Rfc3339;
    let text = text.trim();
    let at = if text.len() == 10 {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(text, &format)
            .map_err(|e| e.to_string())?
            .midnight()
            .assume_utc()
    } else {
        time::OffsetDateTime::parse(text, &Rfc3339).map_err(|e| e.to_string())?
    };
    i64::try_from(at.unix_timestamp_nanos() / 1000).map_err(|_| "too far from today".to_owned())
}

/// A time in microseconds as `check-config` and the console write it.
pub fn format(unix_micros: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_micros) * 1000)
    else {
        return unix_micros.to_string();
    };
    let (h, m, s) = t.time().as_hms();
    if (h, m, s) == (0, 0, 0) {
        return t.date().to_string();
    }
    format!("{}T{h:02}:{m:02}:{s:02}Z", t.date())
}

impl Config {
    /// Warnings for `check-config` about disclosure dates at `now`
    /// (microseconds since the epoch): one already past (its exchanges are
    /// shown at once, so the deferral does nothing) or more than ten years
    /// ahead (a typo in the year, most likely).
    pub fn disclosure_warnings(&self, now: i64) -> Vec<String> {
        let mut warnings = Vec::new();
        for rule in &self.rules {
            let Some(at) = rule.disclose_from else {
                continue;
            };
            let date = format(at);
            if at <= now {
                warnings.push(format!("{}: `disclose_on = \"{date}\"` is already past: the rule's exchanges are shown to the citizen at once; set a future date, or remove `disclose_on` if the investigation is over", rule.at));
            } else if at - now > FAR_MICROS {
                warnings.push(format!("{}: `disclose_on = \"{date}\"` is more than ten years ahead: check the year; exchanges are kept from the citizen until then", rule.at));
            }
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_parse_to_utc_micros() {
        assert_eq!(parse("2027-06-30"), Ok(1_814_313_600_000_000));
        assert_eq!(parse("2027-06-30T00:00:01Z"), Ok(1_814_313_601_000_000));
        assert_eq!(
            parse("2027-06-30T02:00:00+02:00"),
            Ok(1_814_313_600_000_000)
        );
        assert_eq!(format(1_814_313_600_000_000), "2027-06-30");
        assert_eq!(format(1_814_313_601_000_000), "2027-06-30T00:00:01Z");
        for bad in [
            "2027-02-30",
            "30/06/2027",
            "2027-6-30",
            "2027-06-30 08:00",
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
