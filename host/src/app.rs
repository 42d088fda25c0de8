//! The application edge: dispatches the subcommands, and for `run` serves a
//! [`Host`] until a signal, handling reload and status requests one at a time.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

use crate::cli::{Cli, Command};
use crate::commands;
use crate::config::{self, LogFormat, ServerList};
use crate::daemon::{ConfigSource, Host, Overrides};
use crate::reload::registry::{self, Registry};
use crate::reload::{ObjectWatcher, Request, Watcher, control};
use crate::telemetry::logging;

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // `run` logs in the format its config asks for, once it has read it;
    // `test` keeps the plugins' log lines for its cases.
    if !matches!(cli.command, Command::Run { .. } | Command::Test { .. }) {
        logging::init(LogFormat::Text);
    }
    match cli.command {
        Command::Run { config, nats_url, admin_listen, log_format } => {
            let overrides = Overrides { nats_url: nats_url.as_deref().map(ServerList::parse), admin_listen, log_format };
            serve(&config, overrides).await.map(|()| ExitCode::SUCCESS)
        }
        Command::Check { config } => commands::check::run(&config).await,
        Command::Invoke(args) => commands::invoke::run(args).await,
        Command::New { name, template, sdk } => commands::new::run(&name, template, sdk.as_deref()),
        Command::Test { config, cases, format } => commands::test::run(&config, cases.as_deref(), format).await,
        Command::Pub { subject, data, msg, count, conn } => commands::client::publish(&conn, subject, data, &msg, count).await,
        Command::Req { subject, data, msg, timeout, conn } => commands::client::request(&conn, subject, data, &msg, timeout).await,
        Command::Sub { subject, count, conn } => commands::client::subscribe(&conn, subject, count).await,
        Command::Dlq { action, conn } => commands::dlq::run(&conn, action).await,
        Command::Status { wait, conn, seed } => commands::control::status(&conn, &seed, wait).await,
        Command::Top { once, interval, wait, conn, seed } => commands::top::run(&conn, &seed, once, interval, wait).await,
        Command::Deploy { name, file, args } => commands::deploy::deploy(&args, &name, &file).await,
        Command::Rollback { name, args } => commands::deploy::rollback(&args, &name).await,
        Command::Rollout { action, name, wait, json, conn, seed } => {
            commands::control::rollout(&conn, &seed, action, &name, wait, json).await
        }
        Command::Reload { wait, conn, seed } => commands::control::reload(&conn, &seed, wait).await,
        Command::ControlKey { action } => commands::control::control_key(action),
        Command::CompileModule { out, max_memory, fuel, fresh, functions } => {
            crate::plugin::compile_child_main(&out, max_memory, fuel, fresh, functions).map(|()| ExitCode::SUCCESS)
        }
    }
}

/// An error as the user reads it: `error: ` and its chain of causes, each
/// said once. Many errors of the crates below already end with their cause's
/// text ("no responders: no responders"), and a config's problems are lines
/// that say `error:` themselves.
pub fn describe(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain().map(ToString::to_string) {
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    // And within one cause's own text: "no responders: no responders".
    let mut parts: Vec<&str> = text.split(": ").collect();
    parts.dedup();
    let text = parts.join(": ");
    match text.contains(": error: ") {
        true => text,
        false => format!("error: {text}"),
    }
}

/// `switchyard run`: serve until SIGINT or SIGTERM, reloading on file changes,
/// SIGHUP and control requests.
pub async fn serve(path: &Path, overrides: Overrides) -> anyhow::Result<()> {
    let loaded = config::load(path);
    let log_format = overrides.log_format.or(loaded.as_ref().ok().map(|l| l.config.telemetry.log_format));
    logging::init(log_format.unwrap_or_default());
    let mut config = loaded.map_err(|problems| anyhow::anyhow!("{problems}"))?.config;
    overrides.apply(&mut config);
    let source = ConfigSource { path: path.to_owned(), overrides };
    let mut host = Host::start(config, Some(source)).await?;
    let (requests, mut incoming) = mpsc::channel(64);
    let mut watcher = match host.config.host.watch {
        true => Some(Watcher::new(requests.clone())?),
        false => None,
    };
    if let Some(watcher) = watcher.as_mut() {
        watcher.watch(&watched_files(path, &host));
    }
    let mut objects = ObjectWatcher::default();
    objects.watch(&host.out.js, &host.config, &requests);
    let control = control::spawn(&host.out.client, &host.config.host.control_subject, &host.config.host.control, requests.clone()).await?;
    let registry = join_registry(&host).await;
    let mut renew = tokio::time::interval_at(tokio::time::Instant::now() + registry::RENEW, registry::RENEW);
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    // Ready only now: a file changed from here on is seen by the watcher.
    println!("switchyard serving on {}", host.url);
    for line in host.summary() {
        println!("  {line}");
    }
    let admin = host.admin_addr().map(|addr| format!("; metrics and probes on http://{addr}")).unwrap_or_default();
    println!("ready: {} of {} route(s) running{admin}; Ctrl-C to stop", host.running_routes(), host.config.routes.len());
    loop {
        let request = tokio::select! {
            result = tokio::signal::ctrl_c() => { result.context("waiting for Ctrl-C")?; break }
            _ = terminate.recv() => break,
            _ = hangup.recv() => Request::Reload { cause: "SIGHUP".into(), reply: None },
            Some(request) = incoming.recv() => request,
            _ = renew.tick() => {
                register(registry.as_ref(), &host).await;
                continue;
            }
        };
        match request {
            Request::Reload { cause, reply } => {
                let report = host.reload(&cause).await;
                if let Some(watcher) = watcher.as_mut() {
                    watcher.watch(&watched_files(path, &host));
                }
                objects.watch(&host.out.js, &host.config, &requests);
                register(registry.as_ref(), &host).await;
                if let Some(reply) = reply {
                    control::respond(&host.out.client, reply, &report).await;
                }
            }
            Request::Status { reply } => control::respond(&host.out.client, reply, &host.status()).await,
            Request::Rollout { request, reply } => {
                let answer = host.rollout(&request);
                if let Some(reply) = reply {
                    control::respond(&host.out.client, reply, &answer).await;
                }
            }
        }
    }
    control.abort();
    if let Some(registry) = &registry {
        registry.leave(&host.name()).await;
    }
    host.stop().await;
    Ok(())
}

/// Enter this host in the fleet's registry (`reload::registry`). Without it
/// the host serves all the same; only `deploy` and `status` miss it when it
/// does not answer.
async fn join_registry(host: &Host) -> Option<Registry> {
    match Registry::join(&host.out.js, host.config.dead_letter.replicas, &host.registry_entry()).await {
        Ok(registry) => Some(registry),
        Err(err) => {
            tracing::warn!("{err:#}; `deploy` and `status` will not know this host when it does not answer");
            None
        }
    }
}

async fn register(registry: Option<&Registry>, host: &Host) {
    if let Some(registry) = registry {
        registry.put(&host.registry_entry()).await;
    }
}

/// runtime.toml and every plugin file it names (a plugin from an object store
/// is watched there, not in the host's copy).
fn watched_files(config: &Path, host: &Host) -> Vec<PathBuf> {
    let config = std::path::absolute(config).unwrap_or_else(|_| config.to_owned());
    let files = host.config.plugins.values().filter(|p| p.source.is_none()).map(|p| p.path.get_ref().clone());
    std::iter::once(config).chain(files).collect()
}
