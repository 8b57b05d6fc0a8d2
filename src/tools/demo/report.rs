//! What the demo prints around the story: how to reach a network left
//! running, the audit trail as its readers see it, and the offline check
//! of the stopped network's log.

use super::network::Network;
use super::script::{connect, CANDIDATE, PROCEDURE};

/// Prints how to reach a network left running by `demo --serve`.
pub(super) fn print_serving(network: &Network) {
    println!("Jisr demo network is up (Ctrl-C to stop).");
    println!(
        "  gateway      {}   (also in {})",
        network.gateway,
        network.dir.join("gateway.addr").display()
    );
    println!(
        "  admin        http://{}/metrics, /healthz, /readyz   (also in {})",
        network.admin,
        network.dir.join("admin.addr").display()
    );
    if let Some(console) = network.console {
        println!(
            "  console      https://{console}/   (also in {}); sign in with a link from:",
            network.dir.join("console.addr").display()
        );
        println!(
            "               jisr console login --config {} --as cndp --address {console}",
            network.config_path.display()
        );
    }
    for (agency, addr) in &network.providers {
        println!("  provider     {:<13} {addr}", agency.id());
    }
    println!("  config       {}", network.config_path.display());
    println!(
        "  certificates {}/<agency>.crt|.key, CA {}/ca.crt",
        network.pki.display(),
        network.pki.display()
    );
    println!("  agencies     {}", super::AGENCIES.join(", "));
}

/// The procedure's audit trail, as the data protection authority sees it,
/// and the candidate's own access history, as the portal shows it.
pub(super) async fn print_trail(network: &Network) -> anyhow::Result<()> {
    use crate::proto::jisr::audit::v1::{
        audit_client::AuditClient, CitizenHistoryRequest, QueryRequest,
    };
    println!(
        "\nAudit trail of procedure {PROCEDURE}, as the data protection authority (cndp) reads it:"
    );
    let mut cndp = AuditClient::new(connect(network, "cndp").await?);
    let page = cndp
        .query(QueryRequest {
            procedure: PROCEDURE.into(),
            page_size: 50,
            ..Default::default()
        })
        .await?
        .into_inner();
    for entry in page.entries.iter().rev() {
        if let Some(r) = &entry.record {
            println!(
                "  {}",
                crate::tools::cli::audit::render(entry.index, r, false)
            );
        }
    }
    println!("\n{CANDIDATE}'s access history, as the citizen portal shows it (who, when, why):");
    let mut portal = AuditClient::new(connect(network, "portal").await?);
    let history = portal
        .citizen_history(CitizenHistoryRequest {
            citizen_id: CANDIDATE.into(),
            page_size: 50,
            page_token: String::new(),
        })
        .await?
        .into_inner();
    for entry in history.entries.iter().rev() {
        if let Some(r) = &entry.record {
            // A refused call has no basis: the citizen sees why it was refused.
            let basis = if r.basis.is_empty() {
                format!("refused {}", r.reason)
            } else {
                format!("on {}", r.basis)
            };
            println!(
                "  {}  {} ({}) for {} {basis} — {}",
                crate::tools::cli::audit::format_time(r.time_unix_micros),
                r.consumer,
                if r.official.is_empty() {
                    "-"
                } else {
                    &r.official
                },
                r.purpose,
                r.method
            );
        }
    }
    Ok(())
}

/// Verifies the stopped network's audit log offline and prints the result.
/// `kept`: the directory outlives the demo (`--dir`), so the command to
/// verify it again can be suggested; a temporary one is deleted on return.
pub(super) fn print_verification(dir: &std::path::Path, kept: bool) -> bool {
    let log = dir.join("audit");
    let report = crate::audit::verify::verify(&log, None);
    let latest = report
        .latest
        .as_ref()
        .map_or_else(|| "none".to_owned(), |c| format!("size {}", c.size));
    if report.ok() {
        let again = if kept {
            format!("`jisr audit verify {}`", log.display())
        } else {
            "its temporary directory is deleted now; run `jisr demo --dir DIR` to keep the log, then `jisr audit verify DIR/audit`".to_owned()
        };
        println!(
            "\nAudit log verified offline: {} entries, {} signed checkpoints consistent, latest checkpoint {latest} ({again}).",
            report.entries, report.checkpoints,
        );
    } else {
        println!("\nAudit log verification FAILED:");
        for p in &report.problems {
            println!("  {p}");
        }
    }
    report.ok()
}
