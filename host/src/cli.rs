//! The command line: `switchyard run|check|invoke|pub|req|sub|dlq|status|top|reload|control-key`.

use std::path::PathBuf;
use std::time::Duration;

use crate::reload::RolloutAction;
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about = "Run sandboxed WebAssembly handlers on NATS messages")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the routes of a runtime.toml until SIGINT/SIGTERM.
    Run {
        /// The runtime.toml to serve.
        #[arg(default_value = "runtime.toml", env = "SWITCHYARD_CONFIG")]
        config: PathBuf,
        /// Connect here instead of the config's `nats.url` (or embedded server).
        #[arg(long, env = "SWITCHYARD_NATS_URL")]
        nats_url: Option<String>,
        /// Serve /metrics, /healthz and /readyz here ("host:port", port 0 for
        /// any, or "off") instead of the config's `[admin] listen`.
        #[arg(long, env = "SWITCHYARD_ADMIN_LISTEN")]
        admin_listen: Option<crate::config::Listen>,
        /// Log lines as text or as JSON objects, instead of `[telemetry] log_format`.
        #[arg(long, value_enum, env = "SWITCHYARD_LOG_FORMAT")]
        log_format: Option<crate::config::LogFormat>,
    },
    /// Check a runtime.toml and the plugins it names; list every problem.
    Check {
        /// The runtime.toml to check.
        #[arg(default_value = "runtime.toml", env = "SWITCHYARD_CONFIG")]
        config: PathBuf,
    },
    /// Run a plugin on one message, without NATS, and print what it decided.
    Invoke(InvokeArgs),
    /// Create a plugin crate: a handler with settings and native tests, a
    /// runtime.toml serving it, and cases for `switchyard test`.
    New {
        /// The plugin's name: the crate's, the route's, and its subjects' first token.
        name: String,
        /// The starting point: `event` (ack and publish), `request` (reply) or
        /// `envelope` (the SDK's command/event envelope, validated).
        #[arg(long, value_enum, default_value_t = Template::Event)]
        template: Template,
        /// The SDK: a path to its folder (`plugin-sdk`), or a version of the
        /// published crate. Default: the SDK of the Switchyard repository this
        /// runs in, or that this binary was built from.
        #[arg(long)]
        sdk: Option<String>,
    },
    /// Run the cases of the *.test.toml files next to a runtime.toml against
    /// its routes and plugins, without NATS.
    Test {
        /// The runtime.toml whose routes and plugins the cases run against.
        #[arg(default_value = "runtime.toml", env = "SWITCHYARD_CONFIG")]
        config: PathBuf,
        /// Where the *.test.toml files are (default: the runtime.toml's folder).
        #[arg(long)]
        cases: Option<PathBuf>,
        /// `text` (like cargo test) or `json` (one object, for CI tools).
        #[arg(long, value_enum, default_value_t = TestFormat::Text)]
        format: TestFormat,
    },
    /// Publish a message.
    Pub {
        /// The subject to publish to.
        subject: String,
        /// The payload, as text.
        data: String,
        #[command(flatten)]
        msg: MessageArgs,
        /// Publish this many copies.
        #[arg(long, default_value_t = 1)]
        count: u64,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Send a request and print the reply.
    Req {
        /// The subject to send the request to.
        subject: String,
        /// The payload, as text.
        data: String,
        #[command(flatten)]
        msg: MessageArgs,
        /// How long to wait for the reply.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        timeout: Duration,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// List, show and replay dead letters.
    Dlq {
        #[command(subcommand)]
        action: DlqAction,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Check a plugin module, store it as the object NAME (hosts with
    /// `source = "object:BUCKET/NAME"` swap it in) and wait for every host
    /// serving NAME to serve it, or to say why not.
    Deploy {
        /// The plugin's name: the object, and `[plugins.NAME]` in runtime.toml.
        name: String,
        /// The .wasm module.
        file: PathBuf,
        #[command(flatten)]
        args: DeployArgs,
    },
    /// Put the previous version of NAME back on every host.
    Rollback {
        name: String,
        #[command(flatten)]
        args: DeployArgs,
    },
    /// Ask running hosts what they serve, with which plugin versions.
    Status {
        /// How long to collect answers (every host answers).
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        wait: Duration,
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        seed: ControlSeed,
    },
    /// A live view of every host's routes: in flight, msg/s, errors, p50/p99,
    /// breaker, consumer pending; `q`, Esc or Ctrl-C quits.
    Top {
        /// Print one frame as plain text and exit (no terminal needed).
        #[arg(long)]
        once: bool,
        /// How often to refresh.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        interval: Duration,
        /// How long each refresh collects answers (every host answers); at most --interval.
        #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
        wait: Duration,
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        seed: ControlSeed,
    },
    /// A plugin's new version on trial (canary or shadow, see
    /// `[plugins.NAME.rollout]`), on every host: how it fares, promote it,
    /// abort it, or show a shadow's differences from the current version.
    Rollout {
        #[arg(value_enum)]
        action: RolloutAction,
        /// The plugin's name in runtime.toml.
        name: String,
        /// How long to collect answers (every host answers).
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        wait: Duration,
        /// Print the hosts' answers as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        seed: ControlSeed,
    },
    /// Ask running hosts to reload runtime.toml and their plugins now.
    Reload {
        /// The longest to wait for the hosts' answers (a reload compiles
        /// changed plugins); done sooner once every host answered.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        wait: Duration,
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        seed: ControlSeed,
    },
    /// Make the nkeys that sign control requests (`[host.control] allowed_keys`),
    /// and sign a request for another NATS client.
    ControlKey {
        #[command(subcommand)]
        action: ControlKeyAction,
    },
    /// Compile a plugin module read from stdin into an artifact file. The host
    /// runs it in a child process, under `[host]`'s compile limits.
    #[command(name = "compile-module", hide = true)]
    CompileModule {
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        max_memory: u64,
        #[arg(long)]
        fuel: bool,
        #[arg(long)]
        fresh: bool,
        #[arg(long)]
        functions: Option<PathBuf>,
    },
    /// Print the messages published on a subject.
    Sub {
        /// The subject to listen on; NATS wildcards (`*`, `>`) allowed.
        subject: String,
        /// Exit after this many messages.
        #[arg(long)]
        count: Option<u64>,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

/// `control-key`: a key pair, its public key, or the headers of a signed request.
#[derive(Debug, Subcommand)]
pub enum ControlKeyAction {
    /// Make a user key pair: print its public key (for `allowed_keys`) and its
    /// seed (the secret `status` and `reload` sign with).
    New {
        /// Write the seed to this file (created, mode 0600) instead of printing it.
        #[arg(long)]
        seed_file: Option<PathBuf>,
    },
    /// Print the public key of a seed.
    Public {
        #[command(flatten)]
        seed: ControlSeed,
    },
    /// Print the headers that sign a control request, to send it with another client.
    Sign {
        /// The request's subject, e.g. `switchyard.control.status`.
        subject: String,
        /// The reply subject the request will carry (it is signed too).
        #[arg(long)]
        reply: Option<String>,
        /// The payload (control requests have none).
        #[arg(long, default_value = "")]
        data: String,
        /// Sign as of this moment, unix milliseconds, instead of now.
        #[arg(long, hide = true)]
        time: Option<u64>,
        #[command(flatten)]
        seed: ControlSeed,
    },
}

/// Where `deploy` and `rollback` keep versions, and how long they wait.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The object store bucket (created on the first deploy, with
    /// `[dead_letter] replicas` of runtime.toml).
    #[arg(long, default_value = "SWITCHYARD_PLUGINS")]
    pub bucket: String,
    /// How long to wait for every host to serve the version.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Versions of the plugin kept in the bucket for `rollback`.
    #[arg(long, default_value_t = 5)]
    pub history: usize,
    #[command(flatten)]
    pub conn: ConnArgs,
    #[command(flatten)]
    pub seed: ControlSeed,
}

/// The nkey seed control requests are signed with, for hosts that have
/// `[host.control] allowed_keys`. Without one, requests go unsigned.
#[derive(Debug, Args)]
pub struct ControlSeed {
    /// An nkey seed (`SU…`) whose public key the hosts allow.
    #[arg(long, env = "SWITCHYARD_CONTROL_SEED", hide_env_values = true)]
    pub control_seed: Option<String>,
    /// A file holding that seed (or a `.creds` file); wins over --control-seed.
    #[arg(long, env = "SWITCHYARD_CONTROL_SEED_FILE")]
    pub control_seed_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// One line per dead letter: sequence, time, route, subject, deliveries, reason.
    List(DlqFilter),
    /// One dead letter, all headers and the payload.
    Show {
        /// Its sequence in the dead-letter stream, as `dlq list` prints it.
        sequence: u64,
    },
    /// Send each dead letter back the way it first came (JetStream publish,
    /// request, or publish to a listener), with a `Switchyard-Replay` header, and
    /// remove it once its delivery is confirmed; the others are kept.
    Replay(DlqReplay),
}

/// `dlq replay`: which dead letters, and how long to wait for each.
#[derive(Debug, Args)]
pub struct DlqReplay {
    #[command(flatten)]
    pub filter: DlqFilter,
    /// Print what would be sent where, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait, per dead letter, for the stream's ack or a reply.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// Which dead letters: every filter given must match.
#[derive(Debug, Args)]
pub struct DlqFilter {
    /// The route that dead-lettered it.
    #[arg(long)]
    pub route: Option<String>,
    /// Original subject, NATS wildcards allowed.
    #[arg(long)]
    pub subject: Option<String>,
    /// First dead-letter stream sequence.
    #[arg(long)]
    pub from: Option<u64>,
    /// Last dead-letter stream sequence.
    #[arg(long)]
    pub to: Option<u64>,
}

/// Exit status: 0 ack or reply, 3 retry, 4 reject, 5 the call failed (a
/// trap, the timeout, the memory limit, a broken outcome), 1 anything else
/// (the plugin refused to load, a file not found).
#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// The plugin's .wasm file.
    pub plugin: PathBuf,
    /// The message's subject.
    #[arg(long, default_value = "invoke.test")]
    pub subject: String,
    /// The payload (text). Use --data-file for binary.
    #[arg(long, conflicts_with = "data_file")]
    pub data: Option<String>,
    /// The payload, read from a file (any bytes).
    #[arg(long, visible_alias = "payload-file")]
    pub data_file: Option<PathBuf>,
    #[command(flatten)]
    pub msg: MessageArgs,
    /// Pretend the message has this reply subject (a request).
    #[arg(long)]
    pub reply: Option<String>,
    /// The attempt number the plugin sees.
    #[arg(long, default_value_t = 1)]
    pub attempt: u64,
    /// Plugin config for `init`: `key=value` (a TOML value, or else text),
    /// repeatable, or a TOML table: --config 'target = "out"'.
    #[arg(long)]
    pub config: Vec<String>,
    /// Plugin config for `init` from a TOML file (the `[plugins.NAME.config]`
    /// table's contents); --config entries are added over it.
    #[arg(long)]
    pub config_file: Option<PathBuf>,
    /// Print the outcome and the publishes as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Subjects the plugin may publish to (default: any).
    #[arg(long = "allow", default_value = ">")]
    pub allow: Vec<String>,
    /// The call's wall-clock limit (`[plugins.NAME] timeout`).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// The instance's memory cap (`[plugins.NAME] memory`).
    #[arg(long, default_value = "64MiB")]
    pub memory: bytesize::ByteSize,
    /// Fuel for the call, a limit on the work it may do (`[plugins.NAME] fuel`); default none.
    #[arg(long)]
    pub fuel: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Template {
    Event,
    Request,
    Envelope,
}

impl Template {
    pub fn name(self) -> &'static str {
        match self {
            Template::Event => "event",
            Template::Request => "request",
            Template::Envelope => "envelope",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TestFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct MessageArgs {
    /// A header, `name=value`; repeatable.
    #[arg(long = "header", short = 'H', value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
}

/// Where the client commands find NATS: `--url`, else the runtime.toml's
/// `nats.url`, else its embedded server's port on 127.0.0.1.
#[derive(Debug, Args)]
pub struct ConnArgs {
    /// The NATS server(s), e.g. `nats://host:4222` (comma separated for a
    /// cluster). Without it: the `[nats]` of --config; without that file,
    /// nats://127.0.0.1:4222.
    #[arg(long, env = "SWITCHYARD_NATS_URL", global = true)]
    pub url: Option<String>,
    /// runtime.toml: its `[nats]` gives the address, authentication and TLS
    /// (the flags below override them).
    #[arg(long = "config", default_value = "runtime.toml", env = "SWITCHYARD_CONFIG", global = true)]
    pub config: PathBuf,
    /// A NATS credentials file (JWT and nkey seed).
    #[arg(long, global = true)]
    pub creds: Option<PathBuf>,
    /// A user name, with --password.
    #[arg(long, global = true, requires = "password")]
    pub user: Option<String>,
    /// The user's password.
    #[arg(long, global = true, env = "SWITCHYARD_NATS_PASSWORD", hide_env_values = true, requires = "user")]
    pub password: Option<String>,
    /// A token the server accepts instead of a user.
    #[arg(long, global = true, env = "SWITCHYARD_NATS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// An nkey seed (`SU…`).
    #[arg(long, global = true)]
    pub nkey: Option<String>,
    /// CA certificate to trust (PEM).
    #[arg(long, global = true)]
    pub tlsca: Option<PathBuf>,
    /// Client certificate and key (PEM), for servers that verify clients.
    #[arg(long, global = true, requires = "tlskey")]
    pub tlscert: Option<PathBuf>,
    /// The client certificate's key (PEM), with --tlscert.
    #[arg(long, global = true, requires = "tlscert")]
    pub tlskey: Option<PathBuf>,
    /// Prefix of the subjects replies come back on (default `_INBOX`), for a
    /// server that gives this user its own, e.g. `_INBOX_ops`.
    #[arg(long, global = true, env = "SWITCHYARD_INBOX_PREFIX")]
    pub inbox_prefix: Option<String>,
}

fn parse_header(text: &str) -> Result<(String, String), String> {
    let (name, value) = text.split_once('=').ok_or_else(|| format!("expected name=value, got `{text}`"))?;
    Ok((name.trim().to_owned(), value.to_owned()))
}
