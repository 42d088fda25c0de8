//! Running one case: the input through its route's plugin, in the real
//! sandbox with the plugin's limits, `config` and `publish` allow-list; with
//! `follow`, each publish on through the routes it would reach.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use switchyard_abi::{Delivery, Message, Outcome, Publish};

use switchyard_abi::kv::{MemoryBucket, Write};

use super::capture;
use super::cases::{Case, Input, KvValue, OutcomeKind};
use crate::config::{Config, Kind, RouteSpec, subject};
use crate::plugin::{Instance, Plugin, PluginSpec, Runtime, printable};

/// Handlings one case may cause with `follow`, so a loop of routes ends.
const MAX_HANDLINGS: usize = 100;

/// What one call of a plugin gave.
#[derive(Debug)]
pub(super) struct Handling {
    pub route: String,
    /// `None` when the call failed (`error`).
    pub outcome: Option<Outcome>,
    pub error: Option<String>,
    pub publishes: Vec<Publish>,
    pub logs: Vec<String>,
}

impl Handling {
    pub(super) fn kind(&self) -> OutcomeKind {
        match &self.outcome {
            Some(Outcome::Ack) => OutcomeKind::Ack,
            Some(Outcome::Reply { .. }) => OutcomeKind::Reply,
            Some(Outcome::Retry { .. }) => OutcomeKind::Retry,
            Some(Outcome::Reject { .. }) => OutcomeKind::Reject,
            None => OutcomeKind::Error,
        }
    }

    /// The reason of a retry, a reject or a failed call.
    pub(super) fn reason(&self) -> Option<String> {
        match &self.outcome {
            Some(Outcome::Retry { reason, .. } | Outcome::Reject { reason }) => Some(printable(reason)),
            Some(_) => None,
            None => self.error.clone(),
        }
    }

    /// `reject ("missing field `currency`")`, for a mismatch.
    pub(super) fn describe(&self) -> String {
        let kind = super::expect::name(self.kind());
        match self.reason() {
            Some(reason) => format!("{kind} ({reason:?})"),
            None => kind.to_owned(),
        }
    }
}

/// The runtime.toml's routes and plugins, each plugin compiled once.
pub(super) struct Suite {
    config: Config,
    /// Each route's validated spec, made once.
    routes: Vec<RouteSpec>,
    runtime: Runtime,
    plugins: BTreeMap<String, Arc<Plugin>>,
}

impl Suite {
    /// Compiled plugins are cached in the runtime.toml's `[host] cache_dir`,
    /// as the host caches them: a second run starts at once.
    pub(super) fn new(config: Config) -> anyhow::Result<Suite> {
        let runtime = Runtime::new(Some(config.host.cache_dir.clone()))?;
        let routes = config.routes.iter().map(RouteSpec::from).collect();
        Ok(Suite { config, routes, runtime, plugins: BTreeMap::new() })
    }

    pub(super) fn has_route(&self, name: &str) -> bool {
        self.routes.iter().any(|r| r.name == name)
    }

    pub(super) fn has_plugin(&self, name: &str) -> bool {
        self.config.plugins.contains_key(name)
    }

    /// Every handling the case causes, in order: its input, then (with
    /// `follow`) what each publish reaches, breadth first; and the key-value
    /// buckets once they are done.
    pub(super) async fn run(&mut self, case: &Case, dir: &Path) -> anyhow::Result<(Vec<Handling>, BTreeMap<String, MemoryBucket>)> {
        let first = self.message(&case.input, dir)?;
        self.runtime.use_memory_buckets(self.seeded(&case.kv)?);
        let replies = case.responders.iter().map(|(subject, reply)| Ok((subject.clone(), reply.bytes()?)));
        self.runtime.use_responders(replies.collect::<anyhow::Result<_>>()?);
        let mut queue: VecDeque<(Option<String>, String, Message)> = VecDeque::new();
        match (&case.route, &case.plugin) {
            (Some(route), _) => {
                let spec = self.route(route.get_ref())?;
                queue.push_back((Some(spec.name.clone()), spec.plugin.clone(), with_delivery(first, &spec)));
            }
            (None, Some(plugin)) => queue.push_back((None, plugin.get_ref().clone(), first)),
            (None, None) => anyhow::bail!("the case names neither a route nor a plugin"),
        }
        let mut handlings = Vec::new();
        while let Some((route, plugin, msg)) = queue.pop_front() {
            anyhow::ensure!(
                handlings.len() < MAX_HANDLINGS,
                "more than {MAX_HANDLINGS} handlings: do the routes feed each other in a loop?"
            );
            let handling = self.handle(route.unwrap_or_else(|| format!("plugin {plugin}")), &plugin, &msg).await?;
            if case.follow && matches!(handling.outcome, Some(Outcome::Ack | Outcome::Reply { .. })) {
                for publish in &handling.publishes {
                    for spec in self.reached_by(&publish.subject) {
                        let msg = Message {
                            subject: publish.subject.clone(),
                            reply: None,
                            headers: publish.headers.clone(),
                            payload: publish.payload.clone(),
                            attempt: 1,
                            delivery: None,
                        };
                        queue.push_back((Some(spec.name.clone()), spec.plugin.clone(), with_delivery(msg, &spec)));
                    }
                }
            }
            handlings.push(handling);
        }
        Ok((handlings, self.runtime.memory_buckets()))
    }

    /// Every declared bucket, empty but for `seeds`.
    fn seeded(&self, seeds: &BTreeMap<String, BTreeMap<String, KvValue>>) -> anyhow::Result<BTreeMap<String, MemoryBucket>> {
        let mut buckets: BTreeMap<String, MemoryBucket> =
            self.config.buckets.iter().map(|b| (b.name.get_ref().clone(), MemoryBucket::default())).collect();
        for (name, entries) in seeds {
            let bucket =
                buckets.get_mut(name).with_context(|| format!("`kv` puts values in bucket `{name}`, which no `[[buckets]]` declares"))?;
            for (key, value) in entries {
                bucket
                    .write(key, &value.bytes()?, Write::Put)
                    .map_err(|code| anyhow::anyhow!("`kv`: cannot put `{key}` in `{name}`: {}", switchyard_abi::status::describe(code)))?;
            }
        }
        Ok(buckets)
    }

    async fn handle(&mut self, route: String, plugin: &str, msg: &Message) -> anyhow::Result<Handling> {
        let mut instance = self.instance(plugin).await?;
        capture::take();
        let result = instance.handle(msg).await;
        let logs = capture::take();
        Ok(match result {
            Ok(handled) => Handling { route, outcome: Some(handled.outcome), error: None, publishes: handled.publishes, logs },
            Err(err) => Handling { route, outcome: None, error: Some(err.to_string()), publishes: Vec::new(), logs },
        })
    }

    /// A fresh instance of `plugin` (no state carried from another case),
    /// compiled and checked the first time.
    async fn instance(&mut self, name: &str) -> anyhow::Result<Instance> {
        if let Some(plugin) = self.plugins.get(name) {
            return Instance::new(plugin.clone()).await.map_err(|err| anyhow::anyhow!("plugin `{name}`: {err:?}"));
        }
        let config = self.config.plugins.get(name).with_context(|| format!("no plugin `{name}` in the runtime.toml"))?;
        anyhow::ensure!(
            config.source.is_none(),
            "plugin `{name}` comes from the object store; `switchyard test` runs plugins from files (`path`)"
        );
        let spec = PluginSpec::from_config(name, config)?;
        let (plugin, instance) = Plugin::load(&self.runtime, spec).await?;
        self.plugins.insert(name.to_owned(), plugin);
        Ok(instance)
    }

    fn route(&self, name: &str) -> anyhow::Result<RouteSpec> {
        self.routes.iter().find(|r| r.name == name).cloned().with_context(|| format!("no route `{name}`"))
    }

    /// The routes a publish to `subject` reaches: a core route by its
    /// subjects, a JetStream route by its stream's subjects (and its filter).
    fn reached_by(&self, subject: &str) -> Vec<RouteSpec> {
        let hit = |patterns: &[String]| patterns.iter().any(|p| subject::matches(p, subject));
        self.routes
            .iter()
            .filter(|spec| match &spec.kind {
                Kind::Core(core) => hit(&core.subjects),
                // A tick is the host's own message: `switchyard.tick.<route>`.
                Kind::Timer(_) => subject == format!("{}.{}", crate::route::TICK_PREFIX, spec.name),
                Kind::JetStream(js) => {
                    let stream = self.config.streams.iter().find(|s| *s.name.get_ref() == js.stream);
                    stream.is_some_and(|s| hit(&s.subjects)) && (js.filter_subjects.is_empty() || hit(&js.filter_subjects))
                }
            })
            .cloned()
            .collect()
    }

    fn message(&self, input: &Input, dir: &Path) -> anyhow::Result<Message> {
        let payload = match (&input.payload, &input.json, &input.payload_file) {
            (Some(text), None, None) => text.clone().into_bytes(),
            (None, Some(json), None) => serde_json::to_vec(json)?,
            (None, None, Some(file)) => {
                let path = dir.join(file);
                std::fs::read(&path).with_context(|| format!("reading `{}`", path.display()))?
            }
            (None, None, None) => Vec::new(),
            _ => anyhow::bail!("the input has more than one of `payload`, `json` and `payload_file`"),
        };
        Ok(Message {
            subject: input.subject.clone(),
            reply: input.reply.clone(),
            headers: input.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            payload,
            attempt: input.attempt,
            delivery: input.stream_sequence.map(|sequence| Delivery { stream_sequence: sequence, ..Delivery::default() }),
        })
    }
}

/// A JetStream route's message carries delivery facts, as it would from the
/// route's consumer.
fn with_delivery(mut msg: Message, spec: &RouteSpec) -> Message {
    if let Kind::JetStream(js) = &spec.kind {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128);
        let sequence = msg.delivery.as_ref().map_or(1, |d| d.stream_sequence);
        msg.delivery = Some(Delivery {
            max_deliver: js.max_deliver,
            stream: js.stream.clone(),
            consumer: js.durable.clone(),
            stream_sequence: sequence,
            timestamp_unix_nanos: now,
        });
    }
    msg
}
