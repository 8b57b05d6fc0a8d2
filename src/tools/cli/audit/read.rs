//! Reading a running gateway's log: `query` page by page, `tail` by
//! polling for entries newer than the last one shown. An answer some
//! replica did not contribute to is reported on standard error
//! (`partial: node gw-2 did not answer (…)`) and makes the command fail.

use super::render::{parse_time, render};
use super::{connect, status_error, Connection, Filter, OutcomeArg, SideArg};
use crate::proto::jisr::audit::v1 as pb;
use pb::audit_client::AuditClient;
use std::collections::{BTreeSet, HashSet};
use tonic::transport::Channel;

async fn run_query(
    client: &mut AuditClient<Channel>,
    filter: &Filter,
    token: String,
) -> anyhow::Result<pb::QueryResponse> {
    let page_size = filter.limit.clamp(1, 1000);
    if let Some(citizen) = &filter.citizen {
        let request = pb::CitizenHistoryRequest {
            citizen_id: citizen.clone(),
            page_size,
            page_token: token,
        };
        return Ok(client
            .citizen_history(request)
            .await
            .map_err(status_error)?
            .into_inner());
    }
    let request = pb::QueryRequest {
        agency: filter.agency.clone().unwrap_or_default(),
        side: match filter.side {
            None => pb::Side::Unspecified,
            Some(SideArg::Consumer) => pb::Side::Consumer,
            Some(SideArg::Provider) => pb::Side::Provider,
        } as i32,
        from_unix_micros: filter
            .from
            .as_deref()
            .map(parse_time)
            .transpose()?
            .unwrap_or(0),
        to_unix_micros: filter
            .to
            .as_deref()
            .map(parse_time)
            .transpose()?
            .unwrap_or(0),
        procedure: filter.procedure.clone().unwrap_or_default(),
        outcome: match filter.outcome {
            None => pb::Outcome::Unspecified,
            Some(OutcomeArg::Allowed) => pb::Outcome::Allowed,
            Some(OutcomeArg::Refused) => pb::Outcome::Refused,
            Some(OutcomeArg::Failed) => pb::Outcome::Failed,
        } as i32,
        reason: filter.reason.clone().unwrap_or_default(),
        break_glass: filter.break_glass,
        page_size,
        page_token: token,
        // The CLI has no purpose filter yet; the console does.
        purpose: String::new(),
    };
    Ok(client
        .query(request)
        .await
        .map_err(status_error)?
        .into_inner())
}

/// Prints each node missing from an answer, once per command.
fn report_missing(page: &pb::QueryResponse, reported: &mut BTreeSet<String>) {
    for m in &page.missing {
        if reported.insert(m.node.clone()) {
            eprintln!("partial: node {} did not answer ({})", m.node, m.reason);
        }
    }
}

/// Prints the matching entries of every node; `false` (after printing what
/// the others returned) when some node did not answer.
pub(super) async fn query(conn: &Connection, filter: &Filter, json: bool) -> anyhow::Result<bool> {
    let mut client = connect(conn).await?;
    let mut shown = 0u32;
    let mut token = String::new();
    let mut missing = BTreeSet::new();
    loop {
        let page = run_query(&mut client, filter, token).await?;
        report_missing(&page, &mut missing);
        for entry in &page.entries {
            if shown == filter.limit {
                return Ok(missing.is_empty());
            }
            if let Some(record) = &entry.record {
                println!("{}", render(entry.index, record, json));
                shown += 1;
            }
        }
        if page.next_page_token.is_empty() || shown == filter.limit {
            return Ok(missing.is_empty());
        }
        token = page.next_page_token;
    }
}

pub(super) async fn tail(
    conn: &Connection,
    lines: u32,
    follow: bool,
    json: bool,
) -> anyhow::Result<()> {
    let mut client = connect(conn).await?;
    let filter = Filter {
        agency: None,
        side: None,
        citizen: None,
        from: None,
        to: None,
        procedure: None,
        outcome: None,
        reason: None,
        break_glass: false,
        limit: lines,
    };
    let first = run_query(&mut client, &filter, String::new()).await?;
    let mut missing = BTreeSet::new();
    report_missing(&first, &mut missing);
    // Entries are told apart by node and index: indexes repeat across nodes.
    let key = |e: &pb::Entry| (e.node.clone(), e.index);
    let mut previous: HashSet<(String, u64)> = first.entries.iter().map(key).collect();
    for entry in first.entries.iter().rev() {
        if let Some(record) = &entry.record {
            println!("{}", render(entry.index, record, json));
        }
    }
    if !follow {
        return Ok(());
    }
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let page = run_query(
            &mut client,
            &Filter {
                limit: 1000,
                ..filter_clone(&filter)
            },
            String::new(),
        )
        .await?;
        report_missing(&page, &mut missing);
        // The newest 1000 of every node: what the last poll did not list is new.
        let fresh: Vec<_> = page
            .entries
            .iter()
            .filter(|e| !previous.contains(&key(e)))
            .collect();
        for entry in fresh.iter().rev() {
            if let Some(record) = &entry.record {
                println!("{}", render(entry.index, record, json));
            }
        }
        previous = page.entries.iter().map(key).collect();
    }
}

fn filter_clone(f: &Filter) -> Filter {
    Filter {
        agency: f.agency.clone(),
        side: f.side,
        citizen: f.citizen.clone(),
        from: f.from.clone(),
        to: f.to.clone(),
        procedure: f.procedure.clone(),
        outcome: f.outcome,
        reason: f.reason.clone(),
        break_glass: f.break_glass,
        limit: f.limit,
    }
}
