//! `switchyard invoke`: run a plugin on one message without NATS and print the
//! outcome and the publishes it would make — the plugin author's quickest loop.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Context as _;
use switchyard_abi::{Message, Outcome};
use toml::Spanned;

use super::show;
use crate::cli::InvokeArgs;
use crate::config::{Isolation, PluginConfig, RolloutConfig};
use crate::plugin::{Plugin, PluginSpec, Runtime, printable};

pub(crate) async fn run(args: InvokeArgs) -> anyhow::Result<ExitCode> {
    let config: toml::Table = toml::from_str(&args.config).context("--config is not a TOML table")?;
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
        env: BTreeMap::new(),
        config,
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
    println!("plugin: {} ({})", plugin.spec.name, plugin.hash);
    let handled = match instance.handle(&msg).await {
        Ok(handled) => handled,
        Err(err) => {
            println!("outcome: failed: plugin {err}");
            println!("(the host would discard the instance and retry the message)");
            return Ok(ExitCode::FAILURE);
        }
    };
    match &handled.outcome {
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
    let sent = matches!(handled.outcome, Outcome::Ack | Outcome::Reply { .. });
    for publish in &handled.publishes {
        let note = if sent { "" } else { " (dropped: not sent unless the outcome is ack or reply)" };
        println!("publish: {}{note}", publish.subject);
        if !publish.headers.is_empty() {
            println!("  headers: {}", show::headers(&publish.headers));
        }
        println!("  payload: {}", show::payload(&publish.payload));
    }
    Ok(ExitCode::SUCCESS)
}
