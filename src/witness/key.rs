//! The witness's cosigning key: read from its file, or made at first start
//! (mode 0600) with its verifier key logged for the logs to configure.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use super::WitnessError;
use crate::audit::note::Cosigner;

/// Loads the cosigner named `name` from `path`, or creates it.
pub fn load_or_create_cosigner(path: &Path, name: &str) -> Result<Cosigner, WitnessError> {
    let bad = |what: String| WitnessError::Key {
        path: path.to_owned(),
        what,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let cosigner = Cosigner::from_secret_text(text.trim()).map_err(|e| {
                bad(format!(
                    "not a cosigner key ({e}); restore the witness's key from its backup"
                ))
            })?;
            if cosigner.name() != name {
                return Err(bad(format!(
                    "the key is named `{}` but the config's `name` is `{name}`; a witness keeps its name and key together",
                    cosigner.name()
                )));
            }
            Ok(cosigner)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let cosigner = Cosigner::generate(name).map_err(|e| bad(e.to_string()))?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|source| WitnessError::Io {
                    action: "create",
                    path: dir.to_owned(),
                    source,
                })?;
            }
            let io = |action| {
                move |source| WitnessError::Io {
                    action,
                    path: path.to_owned(),
                    source,
                }
            };
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(io("create"))?;
            file.write_all(format!("{}\n", cosigner.to_secret_text()).as_bytes())
                .map_err(io("write"))?;
            file.sync_all().map_err(io("sync"))?;
            tracing::warn!(
                key = %path.display(),
                verifier = %cosigner.verifier().to_text(),
                "created a new witness key; back it up, and give the verifier key to the logs' operators"
            );
            Ok(cosigner)
        }
        Err(source) => Err(WitnessError::Io {
            action: "read",
            path: path.to_owned(),
            source,
        }),
    }
}
