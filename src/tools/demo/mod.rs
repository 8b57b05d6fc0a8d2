//! `jisr demo`: the baccalauréat free-candidate procedure, played on a local
//! network of real processes' worth of parts — a development PKI, the sample
//! providers and a gateway node on loopback — over real mutual TLS.

mod bus;
mod network;
mod report;
mod script;

pub(crate) use network::config_text;
pub use network::{prepare, write_atomic, Network, AGENCIES, TRUST_DOMAIN};

use std::path::PathBuf;

/// Runs the demo. With `serve`, the network stays up until Ctrl-C/SIGTERM
/// and its files stay in `dir` (default: a temporary directory).
pub async fn run(serve: bool, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let temp;
    let kept = dir.is_some();
    let dir = match dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            dir
        }
        None => {
            temp = tempfile::Builder::new().prefix("jisr-demo-").tempdir()?;
            temp.path().to_owned()
        }
    };
    let network = Network::start_with(&dir, serve).await?;
    let outcome = if serve {
        report::print_serving(&network);
        let consent = script::record_consent(&network).await?;
        write_atomic(&dir.join("consent.id"), &consent)?;
        println!(
            "  consent      {consent} (AB123456 → education, bac-candidature; also in {})",
            dir.join("consent.id").display()
        );
        crate::tools::cli::shutdown_signal().await;
        Ok(())
    } else {
        match script::play(&network).await {
            Ok(()) => bus::play(&network).await,
            failed => failed,
        }
    };
    let dir = network.dir.clone();
    network.stop().await;
    if !serve && outcome.is_ok() && !report::print_verification(&dir, kept) {
        anyhow::bail!("the demo's audit log does not verify");
    }
    outcome
}
