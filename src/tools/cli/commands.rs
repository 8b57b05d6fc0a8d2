//! The subcommands' bodies.

use super::{Command, PkiCommand, EXIT_INVALID_CONFIG};
use crate::catalogue::Catalogue;
use crate::config::{self, Config, ConfigErrors};
use crate::gateway::{self, StartError};
use crate::identity::{AgencyId, TrustDomain};
use crate::policy::Policy;
use crate::tools::samples::{self, SampleAgency};
use crate::{tls, tools::demo, tools::pki};
use std::future::Future;
use std::path::Path;
use std::process::ExitCode;

pub(super) fn run(command: Command) -> ExitCode {
    let result = match command {
        Command::Serve {
            config,
            addr_file,
            admin_addr_file,
        } => serve(&config, addr_file.as_deref(), admin_addr_file.as_deref()),
        Command::CheckConfig { file } => return check_config(&file),
        Command::Catalog { config } => catalog(&config),
        Command::Agency { command } => return super::agency::run(command),
        Command::Probe(args) => return super::probe::run(&args),
        Command::Pki { command } => pki_command(command),
        Command::Keys { command } => super::keys::run(command),
        Command::Audit { command } => return verdict(super::audit::run(command)),
        Command::Consent { command } => return verdict(super::consent::run(command)),
        Command::Console { command } => super::console::run(command),
        Command::Bus { command } => block_on(super::bus::run(command)),
        Command::Witness { command } => super::witness::run(command),
        Command::Bench(args) => block_on(crate::tools::bench::run(args)),
        Command::Demo { serve, dir } => block_on(demo::run(serve, dir)),
        Command::SampleProvider {
            agency,
            listen,
            pki,
            trust_domain,
            addr_file,
            never_answer,
        } => block_on(sample_provider(
            &agency,
            &listen,
            &pki,
            &trust_domain,
            addr_file.as_deref(),
            never_answer,
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jisr: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub(super) fn block_on<T>(future: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    runtime().and_then(|rt| rt.block_on(future))
}

/// For commands that print their own verdict (a log that does not verify,
/// a receipt that does not check): `false` fails without an error line.
fn verdict(future: impl Future<Output = anyhow::Result<bool>>) -> ExitCode {
    match block_on(future) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("jisr: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Resolves on Ctrl-C or SIGTERM.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, Signal, SignalKind};
    // Registered now, not on the future's first poll: a SIGTERM that
    // arrives once the address file says the node is up, before `serve`
    // first polls this, is a drain, never the signal's default action.
    let term = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        async fn received(signal: std::io::Result<Signal>) {
            match signal {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            () = received(term) => {},
            () = received(interrupt) => {},
        }
        tracing::info!("shutdown requested");
    }
}

fn serve(
    path: &Path,
    addr_file: Option<&Path>,
    admin_addr_file: Option<&Path>,
) -> anyhow::Result<()> {
    let config = Config::load(path).map_err(|e| anyhow::anyhow!("{}", config::report(&e)))?;
    let rt = runtime()?;
    rt.block_on(async move {
        // Everything that can be wrong with the config is found before the
        // port is taken, so a busy port never hides a config error.
        let (gateway, _) = gateway::Gateway::build(&config)
            .await
            .map_err(start_error)?;
        let listener = tokio::net::TcpListener::bind(config.node.listen)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on {}: {e}; check `node.listen` or free the port",
                    config.node.listen
                )
            })?;
        let admin = bind_admin(&config).await?;
        let (addr, admin_addr) = (listener.local_addr()?, admin.local_addr()?);
        // The address files say the node is up: written once it takes
        // SIGHUP as a reload (see `gateway::Listening`).
        let listening = gateway::listen(gateway, listener, Some(admin)).await;
        let shutdown = shutdown_signal();
        if let Some(file) = admin_addr_file {
            demo::write_atomic(file, &admin_addr.to_string())?;
        }
        if let Some(file) = addr_file {
            demo::write_atomic(file, &addr.to_string())?;
        }
        listening.serve(shutdown).await;
        Ok(())
    })
}

/// Binds `telemetry.admin_listen`.
pub(crate) async fn bind_admin(config: &Config) -> anyhow::Result<tokio::net::TcpListener> {
    let addr = config.telemetry.admin_listen;
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {addr} for the admin listener: {e}; check `telemetry.admin_listen` or free the port"
        )
    })
}

fn start_error(e: StartError) -> anyhow::Error {
    match e {
        StartError::Config(errors) => anyhow::anyhow!("{}", config::report(&errors)),
        other => anyhow::anyhow!("{other}"),
    }
}

/// Loads everything a gateway would at start, without listening.
fn load_all(path: &Path) -> Result<(Config, Catalogue), ConfigErrors> {
    check_loaded(Config::load(path)?)
}

/// The contracts, rules, routes and topics of a parsed config, as a
/// gateway would load them at start.
pub(super) fn check_loaded(config: Config) -> Result<(Config, Catalogue), ConfigErrors> {
    let catalogue = Catalogue::load(&config)?;
    Policy::compile(&config, &catalogue)?;
    crate::gateway::check_routes(&config, &catalogue)?;
    crate::bus::Topics::compile(&config, &catalogue)?;
    Ok((config, catalogue))
}

/// The node's own certificate and the `[tls]` files, as `serve` loads them.
pub(super) fn check_tls(config: &Config) -> Result<(), ConfigErrors> {
    let domain = &config.node.trust_domain;
    let node = crate::identity::PeerIdentity::Gateway(config.node.id.clone());
    tls::check_own_identity(&config.tls, domain, &node)
        .and_then(|()| tls::server_config(&config.tls, domain, tls::Accept::Agencies))
        .map(drop)
        .map_err(|e| {
            ConfigErrors(vec![config::ConfigError {
                at: None,
                message: format!("[tls]: {e}"),
                fix: "fix the [tls] paths or the certificate files; `jisr pki init` makes a development set".into(),
            }])
        })
}

pub(super) fn check_config(path: &Path) -> ExitCode {
    match load_all(path) {
        Ok((config, catalogue)) => {
            let domain = &config.node.trust_domain;
            if let Err(errors) = check_tls(&config) {
                println!("{}", config::report(&errors));
                return ExitCode::from(EXIT_INVALID_CONFIG);
            }
            let plural = |n: usize, one: &str, many: &str| {
                format!("{n} {}", if n == 1 { one } else { many })
            };
            println!(
                "{}: ok — {}, {}, {}",
                path.display(),
                plural(config.agencies.len(), "agency", "agencies"),
                plural(catalogue.methods().len(), "method", "methods"),
                plural(config.rules.len(), "rule", "rules")
            );
            println!(
                "node {} ({}), audit log origin {domain}/jisr/{}",
                config.node.id, config.node.id_source, config.node.id
            );
            // Missing labels do not stop a node: the page shows the code.
            for missing in config.missing_labels() {
                println!("warning: {missing}");
            }
            for warning in consent_without_personal_data(&config, &catalogue) {
                println!("warning: {warning}");
            }
            let now = crate::clock::Clock::system().unix_micros();
            for warning in config.disclosure_warnings(now) {
                println!("warning: {warning}");
            }
            ExitCode::SUCCESS
        }
        Err(errors) => {
            println!("{}", config::report(&errors));
            ExitCode::from(EXIT_INVALID_CONFIG)
        }
    }
}

/// Rules on consent for methods that release no personal data: a citizen
/// has nothing to consent to there, so the rule is a mistake (the method
/// needs a law basis) or the contract's category is.
fn consent_without_personal_data(config: &Config, catalogue: &Catalogue) -> Vec<String> {
    let mut warnings = Vec::new();
    for rule in config
        .rules
        .iter()
        .filter(|r| r.basis == config::Basis::Consent)
    {
        for m in catalogue.methods() {
            let matched = rule
                .methods
                .iter()
                .any(|p| p.matches(&m.service, &m.method));
            if matched && m.category == crate::catalogue::Category::NotPersonal {
                warnings.push(format!(
                    "{}: the rule asks for the citizen's consent to call `{}`, which its contract marks NOT_PERSONAL (it releases no personal data, so there is nothing to consent to); give the rule a law basis (`basis = \"law:<reference>\"`), or fix the method's category in the contract",
                    rule.at,
                    m.qualified()
                ));
            }
        }
    }
    warnings
}

fn catalog(path: &Path) -> anyhow::Result<()> {
    let (_, catalogue) = load_all(path).map_err(|e| anyhow::anyhow!("{}", config::report(&e)))?;
    print!("{}", catalogue.render());
    Ok(())
}

fn pki_command(command: PkiCommand) -> anyhow::Result<()> {
    match command {
        PkiCommand::Init {
            dir,
            trust_domain,
            agencies,
            gateway_node,
            hosts,
            force,
        } => {
            let opts = pki::PkiOptions {
                dir,
                domain: TrustDomain::parse(&trust_domain)?,
                agencies: agencies
                    .iter()
                    .map(|a| AgencyId::parse(a))
                    .collect::<Result<_, _>>()?,
                gateway_node: AgencyId::parse(&gateway_node)?,
                hosts,
                force,
            };
            for path in pki::init(&opts)? {
                println!("wrote {}", path.display());
            }
        }
        PkiCommand::Issue {
            dir,
            trust_domain,
            agency,
            gateway_node,
            hosts,
        } => {
            let domain = trust_domain
                .as_deref()
                .map(TrustDomain::parse)
                .transpose()?;
            let written = match (agency, gateway_node) {
                (Some(agency), _) => {
                    pki::issue_agency(&dir, domain.as_ref(), &AgencyId::parse(&agency)?)?
                }
                (None, Some(node)) => {
                    pki::issue_gateway(&dir, domain.as_ref(), &AgencyId::parse(&node)?, &hosts)?
                }
                // clap requires one of the two.
                (None, None) => anyhow::bail!("pass --agency or --gateway-node"),
            };
            for path in written {
                println!("wrote {}", path.display());
            }
        }
    }
    Ok(())
}

async fn sample_provider(
    agency: &str,
    listen: &str,
    pki_dir: &Path,
    trust_domain: &str,
    addr_file: Option<&Path>,
    never_answer: bool,
) -> anyhow::Result<()> {
    tls::install_crypto_provider();
    let id = AgencyId::parse(agency)?;
    let sample = SampleAgency::from_id(&id).ok_or_else(|| {
        anyhow::anyhow!("`{agency}` is not a sample agency; use civil-status, tax or health")
    })?;
    let domain = TrustDomain::parse(trust_domain)?;
    let files = tls::TlsFiles::for_agency(pki_dir, agency);
    let server_tls = tls::server_config(&files, &domain, tls::Accept::Gateways)?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let local = listener.local_addr()?;
    let shutdown = shutdown_signal();
    if let Some(file) = addr_file {
        demo::write_atomic(file, &local.to_string())?;
    }
    tracing::info!(agency, %local, "sample provider listening");
    let answers = if never_answer {
        tracing::warn!(
            agency,
            "this sample provider never answers (--never-answer)"
        );
        samples::Answers::Never
    } else {
        samples::Answers::Always
    };
    samples::serve_answering(sample, listener, server_tls, shutdown, answers).await
}
