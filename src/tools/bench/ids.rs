//! The consents' ids a bench run granted, saved for a later run against
//! the same gateway (`--consent-ids FILE`), so that it measures the calls
//! and not the grants.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context as _;

/// Saves granted consents' ids, one `citizen id` pair a line.
pub(super) fn save(file: &Path, consents: &HashMap<String, String>) -> anyhow::Result<()> {
    let text: String = consents
        .iter()
        .map(|(c, id)| format!("{c} {id}\n"))
        .collect();
    std::fs::write(file, text)
        .with_context(|| format!("cannot save the consent ids to {}", file.display()))
}

/// Reads the consents' ids [`save`] saved.
pub(super) fn load(file: &Path) -> anyhow::Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(file).with_context(|| {
        format!(
            "cannot read the consent ids from {}: save them first with --consents-as AGENCY --consent-ids FILE",
            file.display()
        )
    })?;
    text.lines()
        .map(|line| {
            let (citizen, id) = line.split_once(' ').with_context(|| {
                format!("{}: `{line}` is not a `citizen id` pair", file.display())
            })?;
            Ok((citizen.to_owned(), id.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consent_ids_read_back_as_saved_and_a_bad_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ids");
        let saved = HashMap::from([
            ("AB1".to_owned(), "c1".to_owned()),
            ("CD2".into(), "c2".into()),
        ]);
        save(&file, &saved).unwrap();
        assert_eq!(load(&file).unwrap(), saved);
        std::fs::write(&file, "AB1\n").unwrap();
        let err = format!("{:#}", load(&file).unwrap_err());
        assert!(err.contains("`AB1` is not a `citizen id` pair"), "{err}");
        let missing = format!("{:#}", load(&dir.path().join("none")).unwrap_err());
        assert!(
            missing.contains("--consents-as AGENCY --consent-ids FILE"),
            "{missing}"
        );
    }
}
