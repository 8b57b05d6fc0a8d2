//! `jisr agency add`: onboards an agency on a node in one command. It checks
//! the agency's contracts as the gateway will load them (annotations
//! included), issues its certificate from the node's CA in the CA's trust
//! domain, appends its `[[agency]]` block and a commented rule template to
//! the configuration (or prints them with `--dry-run`), checks the result as
//! `check-config` does, and prints what the agency and the operator do next.
//! Nothing is written unless every check passes.

use super::commands::{check_config, check_loaded, check_tls};
use super::EXIT_INVALID_CONFIG;
use crate::config::{self, Config, ConfigErrors};
use crate::identity::AgencyId;
use crate::tools::pki;
use anyhow::{anyhow, bail, Context as _};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// `jisr agency …`.
#[derive(Debug, clap::Subcommand)]
pub enum AgencyCommand {
    /// Onboard an agency: check its contracts, issue its certificate, add
    /// it to the configuration, and print the next steps.
    Add(AddArgs),
}

/// What `jisr agency add` is given.
#[derive(Debug, clap::Args)]
pub struct AddArgs {
    /// The agency id, e.g. social-security (its certificate names it).
    pub id: String,
    /// The node's configuration file.
    #[arg(long)]
    pub config: PathBuf,
    /// A contract the agency provides: a path relative to a `[catalogue]
    /// include` directory, or a file inside one (repeat or comma-separate).
    #[arg(long = "contract", value_delimiter = ',')]
    pub contracts: Vec<String>,
    /// The host:port of its gRPC back-end (repeat for several instances).
    /// Without it (and without contracts) the agency only consumes.
    #[arg(long = "upstream", value_delimiter = ',')]
    pub upstreams: Vec<String>,
    /// The CA's directory, holding ca.crt and ca.key (default: the
    /// directory of `[tls] ca`).
    #[arg(long)]
    pub pki: Option<PathBuf>,
    /// The trust domain, for a CA whose certificate does not say it (not
    /// made by `jisr pki init`, and without a SPIFFE URI SAN or a URI name
    /// constraint); it must be the node's.
    #[arg(long)]
    pub trust_domain: Option<String>,
    /// Replace the agency's existing certificate (a renewal).
    #[arg(long)]
    pub force: bool,
    /// Check and print what would be added; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs `jisr agency …`.
pub fn run(command: AgencyCommand) -> ExitCode {
    let AgencyCommand::Add(args) = command;
    match add(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("jisr: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What was found invalid: reported like `check-config`, exit 64.
fn invalid(errors: &ConfigErrors) -> ExitCode {
    println!("{}", config::report(errors));
    println!("nothing was written");
    ExitCode::from(EXIT_INVALID_CONFIG)
}

fn add(args: &AddArgs) -> anyhow::Result<ExitCode> {
    let path = &args.config;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {}; check the --config path", path.display()))?;
    let current = match Config::from_toml(&text, path) {
        Ok(config) => config,
        Err(errors) => {
            println!("{} is not valid yet; fix it first:", path.display());
            return Ok(invalid(&errors));
        }
    };
    let (id, block) = new_block(args, &current)?;
    let candidate = format!("{}\n{block}", text.trim_end());
    let loaded = Config::from_toml(&candidate, path)
        .and_then(check_loaded)
        .and_then(|(config, catalogue)| check_tls(&config).map(|()| (config, catalogue)));
    let (config, catalogue) = match loaded {
        Ok(loaded) => loaded,
        Err(errors) => {
            println!("with this block added:\n{block}");
            return Ok(invalid(&errors));
        }
    };
    let methods: Vec<String> = catalogue
        .methods()
        .iter()
        .filter(|m| m.provider == id)
        .map(|m| m.qualified())
        .collect();
    let addition = format!("{block}{}", rule_template(&id, &methods, &config));
    let ca_dir = relative(&ca_dir(args, &config)?);
    let (crt, key) = (
        ca_dir.join(format!("{id}.crt")),
        ca_dir.join(format!("{id}.key")),
    );
    if crt.exists() && !args.force {
        bail!(
            "{} already exists; pass --force to replace it (a renewal), or remove it",
            crt.display()
        );
    }
    if args.dry_run {
        dry_run(
            path,
            &addition,
            (&crt, &key),
            &config.node.trust_domain.agency_uri(&id),
        );
        return Ok(ExitCode::SUCCESS);
    }
    // The certificate first: a configuration naming an agency without one
    // would be worse than a certificate without a configuration.
    pki::issue_agency(&ca_dir, Some(&config.node.trust_domain), &id)?;
    println!("issued {} and {}", crt.display(), key.display());
    write_config(path, &format!("{}\n{addition}", text.trim_end()))?;
    println!("added agency `{id}` to {}", path.display());
    let checked = check_config(path);
    let steps = next_steps(&id, (&config, path), (&crt, &key, &ca_dir), &methods);
    print!("{steps}");
    Ok(checked)
}

fn dry_run(path: &Path, addition: &str, (crt, key): (&Path, &Path), uri: &str) {
    println!("would append to {}:\n{addition}", path.display());
    println!(
        "would issue {} and {} for {uri}",
        crt.display(),
        key.display()
    );
    println!("checked: the configuration with this block loads (contracts, rules, TLS); nothing was written");
}

/// The agency's id and `[[agency]]` block, from what the command was given.
fn new_block(args: &AddArgs, current: &Config) -> anyhow::Result<(AgencyId, String)> {
    let id = AgencyId::parse(&args.id)?;
    if let Some(existing) = current.agencies.iter().find(|a| a.id == id) {
        bail!(
            "agency `{id}` is already declared at {}; edit that block instead, or choose another id",
            existing.at
        );
    }
    let contracts = args
        .contracts
        .iter()
        .map(|c| contract_name(c, &current.catalogue.include))
        .collect::<anyhow::Result<Vec<_>>>()?;
    match (contracts.is_empty(), args.upstreams.is_empty()) {
        (false, true) => bail!("a provider needs its back-end's address: pass --upstream HOST:PORT"),
        (true, false) => bail!("a provider needs its contract: pass --contract FILE (relative to a [catalogue] include directory)"),
        _ => {}
    }
    let block = agency_block(&id, &args.upstreams, &contracts);
    Ok((id, block))
}

/// A contract as the config names it: relative to an include directory,
/// with `/` separators. A path to an existing file is made relative to the
/// include directory that holds it.
fn contract_name(given: &str, include: &[PathBuf]) -> anyhow::Result<String> {
    let on_disk = Path::new(given);
    if !on_disk.is_file() {
        return Ok(given.to_owned());
    }
    let file = on_disk.canonicalize()?;
    for dir in include {
        let Ok(dir) = dir.canonicalize() else {
            continue;
        };
        if let Ok(rest) = file.strip_prefix(&dir) {
            let parts: Vec<String> = rest
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            return Ok(parts.join("/"));
        }
    }
    Err(anyhow!(
        "{given} is not inside a [catalogue] include directory ({}); move it under one, or add its directory to `include`",
        include
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// A TOML string (quoted and escaped).
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| quoted(s)).collect();
    format!("[{}]", items.join(", "))
}

fn agency_block(id: &AgencyId, upstreams: &[String], contracts: &[String]) -> String {
    let mut block = format!(
        "\n# Added by `jisr agency add`.\n[[agency]]\nid = {}\n",
        quoted(id.as_str())
    );
    match upstreams {
        [] => {}
        [one] => {
            let _ = writeln!(block, "upstream = {}", quoted(one));
        }
        many => {
            let _ = writeln!(block, "upstream = {}", list(many));
        }
    }
    if !contracts.is_empty() {
        let _ = writeln!(block, "contracts = {}", list(contracts));
    }
    block
}

/// A commented `[[rule]]` to fill in: nothing is allowed until a rule is.
fn rule_template(id: &AgencyId, methods: &[String], config: &Config) -> String {
    let purposes: Vec<&str> = config.purposes.iter().map(|p| p.code.as_str()).collect();
    let purpose_hint = if purposes.is_empty() {
        "declare one under [[purpose]] first".to_owned()
    } else {
        format!("declared: {}", purposes.join(", "))
    };
    let (consumer, methods) = if methods.is_empty() {
        (quoted(id.as_str()), "[\"<pkg.Service/Method>\"]".to_owned())
    } else {
        ("\"<consumer agency>\"".to_owned(), list(methods))
    };
    format!(
        "# Who may call what: uncomment, fill in, and check with `jisr check-config`.\n\
         # Nothing is allowed without a rule.\n\
         # [[rule]]\n\
         # consumer = {consumer}\n\
         # methods = {methods}\n\
         # purposes = [\"<purpose>\"]      # {purpose_hint}\n\
         # basis = \"law:<reference>\"     # or \"consent\" (each call names the citizen's consent)\n"
    )
}

/// The CA's directory: `--pki`, else the directory of `[tls] ca`. Its CA
/// must be one the node trusts and of the node's trust domain, or the
/// certificate it issues would be refused.
fn ca_dir(args: &AddArgs, config: &Config) -> anyhow::Result<PathBuf> {
    let dir = match args.pki.as_deref() {
        Some(dir) => dir.to_owned(),
        None => config
            .tls
            .ca
            .parent()
            .map(Path::to_owned)
            .unwrap_or_default(),
    };
    match pki::ca_trust_domain(&dir) {
        Ok(domain) if domain != config.node.trust_domain => bail!(
            "the CA in {} issues certificates for trust domain `{domain}`, but this node's is `{}`; pass --pki with the directory of this node's CA",
            dir.display(),
            config.node.trust_domain
        ),
        Ok(_) => {}
        // A CA whose certificate does not say its domain: the operator says
        // it, so a CA of another domain is not used by mistake.
        Err(e @ pki::PkiError::UnknownTrustDomain(_)) => match args.trust_domain.as_deref() {
            None => bail!("{e} (this node's is `{}`: if the CA issues for it, pass --trust-domain {0})", config.node.trust_domain),
            Some(given) if given != config.node.trust_domain.as_str() => bail!(
                "--trust-domain `{given}` is not this node's trust domain `{}`: its gateways would refuse the certificate; pass --trust-domain {0}",
                config.node.trust_domain
            ),
            Some(_) => {}
        },
        Err(e) => return Err(e.into()),
    }
    let ca = std::fs::read_to_string(dir.join("ca.crt"))?;
    let trusted = std::fs::read_to_string(&config.tls.ca)
        .with_context(|| format!("cannot read [tls] ca {}", config.tls.ca.display()))?;
    if !trusted.contains(ca.trim()) {
        bail!(
            "the CA in {} is not among the CAs the node trusts ([tls] ca = {}): certificates it issues would be refused; pass --pki with the directory of that CA",
            dir.display(),
            config.tls.ca.display()
        );
    }
    Ok(dir)
}

/// `path` relative to the working directory when it is inside it: the
/// configuration resolves paths to absolute ones, but the operator reads
/// them, and copies them into commands, from where they stand.
fn relative(path: &Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_owned))
        .filter(|rest| !rest.as_os_str().is_empty())
        .unwrap_or_else(|| path.to_owned())
}

/// Replaces the file at once (a gateway polling it never reads half).
fn write_config(path: &Path, text: &str) -> anyhow::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or_else(|| Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, text.as_bytes())?;
    if let Ok(meta) = std::fs::metadata(path) {
        std::fs::set_permissions(tmp.path(), meta.permissions())?;
    }
    tmp.persist(path)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

fn next_steps(
    id: &AgencyId,
    (config, path): (&Config, &Path),
    (crt, key, ca_dir): (&Path, &Path, &Path),
    methods: &[String],
) -> String {
    let domain = &config.node.trust_domain;
    let ca = ca_dir.join("ca.crt");
    let gateway = domain.gateway_uri(config.node.id.as_str());
    let mut out = format!(
        "\nnext steps for `{id}`:\n\
         1. give the agency {crt}, {key} (its private key: send it over a secure channel, never by e-mail) and the CA {ca};\n",
        crt = crt.display(),
        key = key.display(),
        ca = ca.display(),
    );
    if methods.is_empty() {
        let _ = writeln!(out, "   its systems present them as their client certificate when they call the gateway at {}.", config.node.listen);
    } else {
        let _ = writeln!(
            out,
            "   its back-end at {} serves gRPC over TLS 1.3 (ALPN h2) with them, requires a client certificate from that CA, and accepts only gateway identities, spiffe://{domain}/gateway/<node-id> (this node: {gateway}; see docs/onboarding.md for Python, Java, Go and .NET).",
            config.agencies.iter().find(|a| &a.id == id).map(|a| a.upstreams.join(", ")).unwrap_or_default()
        );
    }
    let _ = writeln!(
        out,
        "2. write its access rules: fill in the commented [[rule]] at the end of the configuration, then `jisr check-config {}`.",
        path.display()
    );
    let reload = match config.node.reload_poll {
        Some(poll) => format!("the node reloads the file by itself within {} ms (or on SIGHUP: `systemctl reload jisr`)", poll.as_millis()),
        None => "send the node SIGHUP (`systemctl reload jisr`); file polling is off".to_owned(),
    };
    let _ = writeln!(out, "3. reload: {reload}; no restart is needed.");
    // `jisr probe` runs where the agency's files are: the consumer's own
    // machine, or (for a provider) any consumer a rule lets call it.
    let (who, why) = if methods.is_empty() {
        (id.as_str(), "each step ok or the fix")
    } else {
        ("<consumer>", "as a consumer a rule lets call it; its `provider` step says whether the gateway reaches the back-end")
    };
    let test = format!(
        "jisr probe --gateway {} --pki {} --as {who} ({why})",
        config.node.listen,
        ca_dir.display()
    );
    let _ = writeln!(out, "4. test: {test}");
    out
}
