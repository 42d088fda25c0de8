//! `switchyard deploy NAME FILE` and `switchyard rollback NAME`: a new plugin
//! version for every host of a fleet, through a JetStream object store.
//!
//! The module is checked here first, the way a host would load it (with the
//! `[plugins.NAME]` settings of the local runtime.toml, when it has them), then
//! stored as the object `NAME` (what hosts with `source = "object:BUCKET/NAME"`
//! serve) and as `NAME@<version>` (the history `rollback` goes back through).
//! The hosts see the object change and swap it in, with probation; this waits
//! until every host serving `NAME` serves the new version or says why not.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_nats::jetstream::object_store::{self, ObjectStore};
use futures::TryStreamExt as _;
use tokio::io::AsyncReadExt as _;
use toml::Spanned;

use super::client;
use super::control::Control;
use crate::cli::{ConnArgs, DeployArgs};
use crate::config::{self, PluginConfig};
use crate::plugin::{Plugin, PluginSpec, Runtime, file_hash};

/// How often the hosts are asked what they serve while waiting.
const POLL: Duration = Duration::from_millis(500);

pub(crate) async fn deploy(args: &DeployArgs, name: &str, file: &Path) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(file).with_context(|| format!("reading `{}`", file.display()))?;
    let version = check(&args.conn, name, file).await?;
    let fleet = Fleet::before(args, name).await?;
    let store = bucket(&args.conn, &args.bucket, true).await?;
    put(&store, name, &bytes).await?;
    put(&store, &format!("{name}@{version}"), &bytes).await?;
    trim_history(&store, name, args.history).await?;
    println!("deployed {name} {version} to object:{}/{name}; waiting for the hosts", args.bucket);
    fleet.wait_for(&version, args.timeout).await
}

pub(crate) async fn rollback(args: &DeployArgs, name: &str) -> anyhow::Result<ExitCode> {
    let fleet = Fleet::before(args, name).await?;
    let store = bucket(&args.conn, &args.bucket, false).await?;
    let current = store.info(name).await.with_context(|| format!("no object `{name}` in bucket `{}`", args.bucket))?;
    // The history in deploy order, newest first: the version deployed before
    // the one in place now (a rollback stores no new version, so it can be
    // repeated to go further back).
    let versions = history(&store, name).await?;
    let now = versions.iter().position(|info| info.digest == current.digest).unwrap_or(0);
    let previous = versions
        .into_iter()
        .skip(now)
        .find(|info| info.digest != current.digest)
        .with_context(|| format!("`{name}` has no earlier version in bucket `{}`", args.bucket))?;
    let bytes = read(&store, &previous.name).await?;
    put(&store, name, &bytes).await?;
    let version = previous.name.rsplit('@').next().unwrap_or_default().to_owned();
    println!("rolled {name} back to {version}; waiting for the hosts");
    fleet.wait_for(&version, args.timeout).await
}

/// Load `file` as a host would; its version (the hash hosts report).
async fn check(conn: &ConnArgs, name: &str, file: &Path) -> anyhow::Result<String> {
    let settings = config::load(&conn.config).ok().and_then(|loaded| loaded.config.plugins.get(name).cloned());
    let mut plugin = settings.unwrap_or_else(|| empty_settings(file));
    plugin.path = Spanned::new(0..0, file.to_owned());
    plugin.source = None;
    let spec = PluginSpec::from_config(name, &plugin)?;
    let runtime = Runtime::new(None)?;
    let (loaded, _) = Plugin::load(&runtime, spec).await.map_err(|err| anyhow::anyhow!("not deployed: {err}"))?;
    let hash = file_hash(file).await?;
    anyhow::ensure!(loaded.hash == hash, "`{}` changed while it was checked", file.display());
    Ok(hash)
}

/// `[plugins.NAME]` with every default, for a CLI without the fleet's runtime.toml.
fn empty_settings(file: &Path) -> PluginConfig {
    let table = format!("path = {:?}", file.display().to_string());
    toml::from_str(&table).expect("a table with `path` alone is a plugin config")
}

async fn bucket(conn: &ConnArgs, name: &str, create: bool) -> anyhow::Result<ObjectStore> {
    let js = async_nats::jetstream::new(client::connect(conn).await?);
    match js.get_object_store(name).await {
        Ok(store) => Ok(store),
        Err(_) if create => {
            let replicas = config::load(&conn.config).map(|l| l.config.dead_letter.replicas).unwrap_or(1);
            let config = object_store::Config { bucket: name.to_owned(), num_replicas: replicas, ..Default::default() };
            js.create_object_store(config).await.with_context(|| format!("creating the object store bucket `{name}`"))
        }
        Err(err) => Err(anyhow::anyhow!("object store bucket `{name}`: {err}")),
    }
}

async fn put(store: &ObjectStore, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let mut reader = bytes;
    store.put(name, &mut reader).await.with_context(|| format!("storing `{name}`"))?;
    Ok(())
}

async fn read(store: &ObjectStore, name: &str) -> anyhow::Result<Vec<u8>> {
    let mut object = store.get(name).await.with_context(|| format!("reading `{name}`"))?;
    let mut bytes = Vec::new();
    object.read_to_end(&mut bytes).await.with_context(|| format!("reading `{name}`"))?;
    Ok(bytes)
}

/// The stored versions of `name`, newest first.
async fn history(store: &ObjectStore, name: &str) -> anyhow::Result<Vec<object_store::ObjectInfo>> {
    let prefix = format!("{name}@");
    let mut versions: Vec<_> =
        store.list().await?.try_filter(|info| std::future::ready(info.name.starts_with(&prefix) && !info.deleted)).try_collect().await?;
    versions.sort_by_key(|info| std::cmp::Reverse(info.modified));
    Ok(versions)
}

/// Keep the newest `keep` versions of `name`.
async fn trim_history(store: &ObjectStore, name: &str, keep: usize) -> anyhow::Result<()> {
    for old in history(store, name).await?.into_iter().skip(keep.max(1)) {
        store.delete(&old.name).await.with_context(|| format!("deleting the old version `{}`", old.name))?;
    }
    Ok(())
}

/// A few polls in: long enough for a host serving the plugin to have answered.
fn waited_a_moment(deadline: Instant, timeout: Duration) -> bool {
    Instant::now() + timeout.saturating_sub(POLL * 4) >= deadline
}

/// What one host made of the deploy.
enum Answer {
    Serving,
    /// A canary or shadow of the version runs beside the current one.
    OnTrial(crate::config::Strategy),
    Refused(String),
}

/// The hosts serving one plugin, as a deploy waits for them.
struct Fleet<'a> {
    control: Control,
    name: &'a str,
    /// Each host serving the plugin, and its answer once it has one. Hosts
    /// seen before the change are waited for even while they are too busy
    /// reloading to answer, and so are hosts the fleet's registry lists
    /// though they do not answer (down, or cut off).
    hosts: BTreeMap<String, Option<Answer>>,
    /// How long ago each registered host last renewed its entry.
    registered: BTreeMap<String, Duration>,
}

impl<'a> Fleet<'a> {
    /// The hosts serving `name` now, before anything changes.
    async fn before(args: &DeployArgs, name: &'a str) -> anyhow::Result<Fleet<'a>> {
        let control = Control::connect(&args.conn, &args.seed).await?;
        let registered: BTreeMap<String, Duration> = control
            .registered()
            .await
            .into_iter()
            .filter(|entry| entry.plugins.contains_key(name))
            .map(|entry| (entry.host.clone(), entry.age()))
            .collect();
        let mut fleet = Fleet { control, name, hosts: registered.keys().map(|host| (host.clone(), None)).collect(), registered };
        for status in fleet.control.statuses(POLL * 2).await.unwrap_or_default().into_iter().flatten() {
            if status.routes.iter().any(|r| r.plugin == name) {
                fleet.hosts.insert(status.host, None);
            }
        }
        Ok(fleet)
    }

    /// Until every host serving the plugin serves `version` or refused it, or
    /// `timeout`: one line per host; success only when all serve it.
    async fn wait_for(mut self, version: &str, timeout: Duration) -> anyhow::Result<ExitCode> {
        let name = self.name;
        let deadline = Instant::now() + timeout;
        // Reload reports carry Unix seconds: one second of slack for the clock's grain.
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs().saturating_sub(1));
        loop {
            for status in self.control.statuses(POLL).await.unwrap_or_default().into_iter().flatten() {
                let routes: Vec<_> = status.routes.iter().filter(|r| r.plugin == name).collect();
                if routes.is_empty() {
                    continue;
                }
                // A canary or shadow of the version counts as taken: it is on trial.
                let on_trial = routes.iter().find_map(|r| r.trial.as_ref().filter(|t| t.candidate == version).map(|t| t.strategy));
                // A refusal counts from a reload this change caused, not an older one.
                let refused = status
                    .last_reload
                    .as_ref()
                    .filter(|report| report.at >= since && report.cause.contains(&format!("/{name} changed")))
                    .and_then(|report| report.refused.iter().find(|line| line.starts_with(&format!("plugin `{name}`"))));
                let answer = if routes.iter().all(|r| r.version == version) {
                    Some(Answer::Serving)
                } else if let Some(strategy) = on_trial.filter(|_| routes.iter().all(|r| r.version == version || r.trial.is_some())) {
                    Some(Answer::OnTrial(strategy))
                } else {
                    refused.map(|why| Answer::Refused(why.clone()))
                };
                self.hosts.insert(status.host.clone(), answer);
            }
            // No host serving `name` at all is an answer too, once the hosts had a
            // moment to see the object change and reload.
            let settled = if self.hosts.is_empty() { waited_a_moment(deadline, timeout) } else { self.hosts.values().all(Option::is_some) };
            if settled || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        let hosts = &self.hosts;
        let mut ok = true;
        for (host, answer) in hosts {
            match answer {
                Some(Answer::Serving) => println!("{host}: serving {name} {version}"),
                Some(Answer::OnTrial(strategy)) => {
                    println!("{host}: trying {name} {version} as a {strategy} (`switchyard rollout status {name}`)");
                }
                Some(Answer::Refused(why)) => {
                    ok = false;
                    println!("{host}: REFUSED: {why}");
                }
                None => {
                    ok = false;
                    match self.registered.get(host) {
                        Some(age) => println!(
                            "{host}: no answer within {timeout:?} (registered, last renewed {} ago: down or cut off?)",
                            humantime::format_duration(*age)
                        ),
                        None => println!("{host}: no answer within {timeout:?} (still serving another version)"),
                    }
                }
            }
        }
        if hosts.is_empty() {
            println!("no host serves `{name}` now: hosts that start with it will fetch this version");
        }
        Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }
}
