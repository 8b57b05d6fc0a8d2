//! `jisr console login`: prints a single-use sign-in link for the web
//! console, made with the key file `[console] signin_key` names (the same
//! file the gateway reads), so it needs no running gateway and no network.
//! `jisr console bench`: the console's and the citizen page's server time
//! over a large log (`tools::bench::console`).

use crate::config::Config;
use crate::console::link::LinkKey;
use crate::identity::AgencyId;
use anyhow::{bail, Context as _};
use std::path::PathBuf;

/// `jisr console …`.
#[derive(Debug, clap::Subcommand)]
pub enum ConsoleCommand {
    /// Print a sign-in link (single use, valid `[console] link_minutes`).
    Login {
        /// The node's configuration file.
        #[arg(long)]
        config: PathBuf,
        /// The agency to act as (its roles come from the config).
        #[arg(long = "as")]
        agency: String,
        /// The console's address as the browser reaches it (`host:port`);
        /// default `[console] listen`.
        #[arg(long)]
        address: Option<String>,
    },
    /// Measure the console's and the citizen page's server time over a
    /// large log, and the browser's check of one proof (docs/BENCHMARKS.md).
    Bench(crate::tools::bench::console::ConsoleBenchArgs),
}

/// Runs a `jisr console` command.
pub fn run(command: ConsoleCommand) -> anyhow::Result<()> {
    match command {
        ConsoleCommand::Login {
            config,
            agency,
            address,
        } => login(&config, &agency, address),
        ConsoleCommand::Bench(args) => super::commands::block_on(async {
            let run = crate::tools::bench::console::run(&args).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&run)?);
            } else {
                println!("\n{}", crate::tools::bench::console::render(&run));
            }
            Ok(())
        }),
    }
}

fn login(config: &std::path::Path, agency: &str, address: Option<String>) -> anyhow::Result<()> {
    let config =
        Config::load(config).map_err(|e| anyhow::anyhow!("{}", crate::config::report(&e)))?;
    let Some(console) = &config.console else {
        bail!("{} has no [console] section: the console is off; add `[console]` with `listen = \"127.0.0.1:8444\"`", config.path.display());
    };
    let agency = AgencyId::parse(agency).with_context(|| format!("`--as {agency}`"))?;
    if config.agency(&agency).is_none() {
        bail!(
            "`{agency}` is not an [[agency]] of {}; sign in as a declared agency",
            config.path.display()
        );
    }
    let address = match address {
        Some(address) => address,
        None if console.listen.port() == 0 => bail!(
            "`console.listen` picks its port at start ({}); pass the bound address with --address host:port (the gateway logs it)",
            console.listen
        ),
        None => console.listen.to_string(),
    };
    let key = LinkKey::load_or_create(&console.signin_key)?;
    let token = key.mint_for(&agency, console.link);
    println!("https://{address}/signin?t={token}");
    eprintln!(
        "Open the link within {} minutes to sign in as {agency}; it works once.",
        console.link.as_secs() / 60
    );
    Ok(())
}
