//! `jisr witness …`: run a C2SP tlog-witness for Jisr's logs (see
//! `crate::witness` and docs/witness.md).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Subcommand;

use crate::witness::{self, Witness, WitnessConfig};

/// `jisr witness …`.
#[derive(Debug, Subcommand)]
pub enum WitnessCommand {
    /// Run the witness: cosign the configured logs' checkpoints over HTTPS.
    Serve {
        /// The witness's configuration file.
        #[arg(long)]
        config: PathBuf,
        /// Write the bound address (host:port) to this file once listening.
        #[arg(long)]
        addr_file: Option<PathBuf>,
    },
    /// Print the witness's verifier key (the line each log's operator puts
    /// in `[[audit.witness]]`), making the key first if there is none.
    Verifier {
        /// The witness's configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Measure: checkpoints per second a witness cosigns (loopback HTTPS),
    /// and the lag to a checkpoint's k-th cosignature under exchange load
    /// (docs/BENCHMARKS.md).
    Bench(crate::tools::bench::witness::WitnessBenchArgs),
}

/// Runs a `jisr witness` subcommand.
pub fn run(command: WitnessCommand) -> anyhow::Result<()> {
    match command {
        WitnessCommand::Serve { config, addr_file } => {
            let config = WitnessConfig::load(&config)?;
            super::commands::block_on(serve(config, addr_file))
        }
        WitnessCommand::Verifier { config } => {
            let config = WitnessConfig::load(&config)?;
            let cosigner = witness::load_or_create_cosigner(&config.key, &config.name)?;
            println!("{}", cosigner.verifier().to_text());
            Ok(())
        }
        WitnessCommand::Bench(args) => {
            super::commands::block_on(crate::tools::bench::witness::run(args))
        }
    }
}

async fn serve(config: WitnessConfig, addr_file: Option<PathBuf>) -> anyhow::Result<()> {
    let cosigner = witness::load_or_create_cosigner(&config.key, &config.name)?;
    let verifier = cosigner.verifier().to_text();
    let tls = crate::tls::web_server_config(&config.tls_cert, &config.tls_key)
        .map_err(witness::WitnessError::from)?;
    let witness = Arc::new(Witness::open(cosigner, &config.logs, &config.state_dir)?);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {}: {e}; check `listen` or free the port",
                config.listen
            )
        })?;
    let addr = listener.local_addr()?;
    let shutdown = super::shutdown_signal();
    if let Some(file) = addr_file.as_deref() {
        write_addr(file, &addr.to_string())?;
    }
    tracing::info!(%addr, %verifier, logs = config.logs.len(), "witness listening");
    witness::serve(witness, listener, tls, shutdown).await;
    Ok(())
}

fn write_addr(file: &Path, addr: &str) -> anyhow::Result<()> {
    crate::tools::demo::write_atomic(file, addr)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", file.display()))
}
