//! `switchyard status` and `switchyard reload`: control requests to running hosts.

use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt;

use super::client;
use crate::cli::ConnArgs;
use crate::config;
use crate::reload::{ReloadReport, Status};

/// Send a control request and collect every host's answer for `wait`.
async fn ask(conn: &ConnArgs, verb: &str, wait: Duration) -> anyhow::Result<Vec<Vec<u8>>> {
    let prefix = config::load(&conn.config).map(|l| l.config.host.control_subject).unwrap_or_else(|_| "switchyard.control".into());
    let client = client::connect(conn).await?;
    let inbox = client.new_inbox();
    let mut answers = client.subscribe(inbox.clone()).await?;
    client.publish_with_reply(format!("{prefix}.{verb}"), inbox, Default::default()).await?;
    client.flush().await?;
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, answers.next()).await {
        out.push(msg.payload.to_vec());
    }
    anyhow::ensure!(!out.is_empty(), "no host answered on `{prefix}.{verb}` within {wait:?}");
    Ok(out)
}

pub(crate) async fn status(conn: &ConnArgs, wait: Duration) -> anyhow::Result<ExitCode> {
    for answer in ask(conn, "status", wait).await? {
        match serde_json::from_slice::<Status>(&answer) {
            Ok(status) => print!("{}", status.render()),
            Err(err) => eprintln!("an answer that is not a status: {err}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn reload(conn: &ConnArgs) -> anyhow::Result<ExitCode> {
    let mut all_ok = true;
    // A reload compiles changed plugins: give the hosts time to answer.
    for answer in ask(conn, "reload", Duration::from_secs(10)).await? {
        match serde_json::from_slice::<ReloadReport>(&answer) {
            Ok(report) => {
                all_ok &= report.ok && report.refused.is_empty();
                println!("{}", report.summary());
            }
            Err(err) => eprintln!("an answer that is not a reload report: {err}"),
        }
    }
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
