//! `switchyard invoke`: run a plugin on one message without NATS and print the
//! outcome and the publishes it would make — the plugin author's quickest loop.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::json;
use switchyard_abi::{Header, Message, Outcome, Publish};
use toml::Spanned;

use super::show;
use crate::cli::InvokeArgs;
use crate::config::{Isolation, PluginConfig, RolloutConfig};
use crate::plugin::{Plugin, PluginSpec, Runtime, printable};

/// Exit statuses, one per outcome, for scripts (see `InvokeArgs`).
const RETRY: u8 = 3;
const REJECT: u8 = 4;
const FAILED: u8 = 5;

pub(crate) async fn run(args: InvokeArgs) -> anyhow::Result<ExitCode> {
    // The flags stand in for a `[plugins.NAME]` table, so the spec is made the
    // one way the daemon makes it.
    let plugin_config = PluginConfig {
        path: Spanned::new(0..0, args.plugin.clone()),
        source: None,
        memory: args.memory,
        timeout: args.timeout,
        fuel: args.fuel,
        isolation: Isolation::default(),
        publish: args.allow.clone(),
        kv: Vec::new(),
        request: Vec::new(),
        env: BTreeMap::new(),
        config: config_table(&args)?,
        rollout: RolloutConfig::default(),
    };
    let name = args.plugin.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "plugin".into());
    let spec = PluginSpec::from_config(&name, &plugin_config)?;
    let payload = match (&args.data, &args.data_file) {
        (_, Some(file)) => std::fs::read(file).with_context(|| format!("reading `{}`", file.display()))?,
        (Some(data), None) => data.clone().into_bytes(),
        (None, None) => Vec::new(),
    };
    let msg = Message {
        subject: args.subject.clone(),
        reply: args.reply.clone(),
        headers: args.msg.headers.clone(),
        payload,
        attempt: args.attempt,
        delivery: None,
    };
    let runtime = Runtime::new(None)?;
    let (plugin, mut instance) = Plugin::load(&runtime, spec).await?;
    let handled = instance.handle(&msg).await;
    let code = match &handled {
        Ok(handled) => match handled.outcome {
            Outcome::Ack | Outcome::Reply { .. } => ExitCode::SUCCESS,
            Outcome::Retry { .. } => ExitCode::from(RETRY),
            Outcome::Reject { .. } => ExitCode::from(REJECT),
        },
        Err(_) => ExitCode::from(FAILED),
    };
    let version = format!("{} ({})", plugin.spec.name, plugin.hash);
    match (&handled, args.json) {
        (Ok(handled), true) => println!(
            "{}",
            json!({ "plugin": version, "outcome": outcome_json(&handled.outcome), "publishes": publishes_json(&handled.outcome, &handled.publishes) })
        ),
        (Err(err), true) => println!(
            "{}",
            json!({ "plugin": version, "outcome": { "kind": "failed", "reason": format!("plugin {err}") }, "publishes": [] })
        ),
        (Ok(handled), false) => {
            println!("plugin: {version}");
            print_outcome(&handled.outcome);
            print_publishes(&handled.outcome, &handled.publishes);
        }
        (Err(err), false) => {
            println!("plugin: {version}");
            println!("outcome: failed: plugin {err}");
            println!("(the host would discard the instance and retry the message)");
        }
    }
    Ok(code)
}

/// `--config-file`, then each `--config` over it: `key=value` (the value read
/// as TOML, or else as text) or a whole TOML table.
fn config_table(args: &InvokeArgs) -> anyhow::Result<toml::Table> {
    let mut table = match &args.config_file {
        Some(file) => {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading `{}`", file.display()))?;
            toml::from_str(&text).map_err(|err| anyhow::anyhow!("--config-file `{}`: {}", file.display(), err.message()))?
        }
        None => toml::Table::new(),
    };
    for entry in &args.config {
        if let Ok(parsed) = toml::from_str::<toml::Table>(entry) {
            table.extend(parsed);
            continue;
        }
        let Some((key, value)) = entry.split_once('=') else {
            anyhow::bail!("--config `{entry}`: expected `key=value` or a TOML table such as `key = \"value\"`");
        };
        let key = key.trim();
        anyhow::ensure!(!key.is_empty(), "--config `{entry}`: the key is empty");
        let value = value.trim();
        let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_owned()));
        table.insert(key.to_owned(), value);
    }
    Ok(table)
}

fn print_outcome(outcome: &Outcome) {
    match outcome {
        Outcome::Ack => println!("outcome: ack"),
        Outcome::Retry { delay_ms, reason } => match delay_ms {
            Some(ms) => println!("outcome: retry after {ms} ms: {}", printable(reason)),
            None => println!("outcome: retry: {}", printable(reason)),
        },
        Outcome::Reject { reason } => println!("outcome: reject: {}", printable(reason)),
        Outcome::Reply { payload, headers } => {
            println!("outcome: reply");
            if !headers.is_empty() {
                println!("  headers: {}", show::headers(headers));
            }
            println!("  payload: {}", show::payload(payload));
        }
    }
}

/// Publishes are sent only after an ack or a reply.
fn sent(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Ack | Outcome::Reply { .. })
}

fn print_publishes(outcome: &Outcome, publishes: &[Publish]) {
    for publish in publishes {
        let note = if sent(outcome) { "" } else { " (dropped: not sent unless the outcome is ack or reply)" };
        println!("publish: {}{note}", publish.subject);
        if !publish.headers.is_empty() {
            println!("  headers: {}", show::headers(&publish.headers));
        }
        println!("  payload: {}", show::payload(&publish.payload));
    }
}

fn headers_json(headers: &[Header]) -> serde_json::Value {
    headers.iter().map(|(k, v)| json!([k, v])).collect()
}

fn outcome_json(outcome: &Outcome) -> serde_json::Value {
    match outcome {
        Outcome::Ack => json!({ "kind": "ack" }),
        Outcome::Retry { delay_ms, reason } => json!({ "kind": "retry", "delay_ms": delay_ms, "reason": printable(reason) }),
        Outcome::Reject { reason } => json!({ "kind": "reject", "reason": printable(reason) }),
        Outcome::Reply { payload, headers } => {
            json!({ "kind": "reply", "headers": headers_json(headers), "payload": show::payload(payload) })
        }
    }
}

fn publishes_json(outcome: &Outcome, publishes: &[Publish]) -> serde_json::Value {
    let sent = sent(outcome);
    publishes
        .iter()
        .map(|p| json!({ "subject": p.subject, "headers": headers_json(&p.headers), "payload": show::payload(&p.payload), "sent": sent }))
        .collect()
}
