//! `switchyard status` and `switchyard reload`: control requests to running
//! hosts, signed when a seed is given; and `switchyard control-key`, the keys
//! that sign them.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use futures::StreamExt;

use super::{client, fleet, top};
use crate::cli::{ConnArgs, ControlKeyAction, ControlSeed};
use crate::config;
use crate::reload::signature::{Signer, now_millis};
use crate::reload::{ReloadReport, RolloutAction, RolloutAnswer, RolloutRequest, Status, registry};

/// The seed of `--control-seed-file`, else `--control-seed`, if any.
fn signer(seed: &ControlSeed) -> anyhow::Result<Option<Signer>> {
    if let Some(path) = &seed.control_seed_file {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading the control seed file `{}`", path.display()))?;
        return Signer::from_text(&text).map(Some).with_context(|| format!("the control seed file `{}`", path.display()));
    }
    seed.control_seed.as_deref().map(Signer::from_seed).transpose().context("--control-seed")
}

/// One host's answer: its body, or the reason it refused.
type Answer = Result<Vec<u8>, String>;

/// A connection that sends control requests (signed when a seed is given) to
/// every host on the bus; `switchyard top` keeps one for all its refreshes.
pub(crate) struct Control {
    client: async_nats::Client,
    /// `<control_subject>` of the runtime.toml, else `switchyard.control`.
    prefix: String,
    signer: Option<Signer>,
}

impl Control {
    pub(crate) async fn connect(conn: &ConnArgs, seed: &ControlSeed) -> anyhow::Result<Control> {
        let signer = signer(seed)?;
        let prefix = config::load(&conn.config).map(|l| l.config.host.control_subject).unwrap_or_else(|_| "switchyard.control".into());
        let client = client::connect(conn).await?;
        Ok(Control { client, prefix, signer })
    }

    /// The hosts in the fleet's registry (none when it cannot be read).
    pub(crate) async fn registered(&self) -> Vec<registry::Entry> {
        registry::entries(&async_nats::jetstream::new(self.client.clone())).await.unwrap_or_else(|err| {
            tracing::warn!("cannot read the fleet's registry: {err:#}");
            Vec::new()
        })
    }

    /// Send the `verb` request and collect every host's answer for `wait`.
    async fn ask(&self, verb: &str, wait: Duration) -> anyhow::Result<Vec<Answer>> {
        self.ask_until(verb, wait, usize::MAX).await
    }

    /// Like `ask`, but done as soon as `hosts` answers came.
    async fn ask_until(&self, verb: &str, wait: Duration, hosts: usize) -> anyhow::Result<Vec<Answer>> {
        self.ask_with(verb, b"", wait, hosts).await
    }

    /// Send the `verb` request with `body`; collect answers until `hosts` came or `wait` passed.
    async fn ask_with(&self, verb: &str, body: &[u8], wait: Duration, hosts: usize) -> anyhow::Result<Vec<Answer>> {
        let prefix = &self.prefix;
        let inbox = self.client.new_inbox();
        let mut answers = self.client.subscribe(inbox.clone()).await?;
        let subject = format!("{prefix}.{verb}");
        match &self.signer {
            Some(signer) => {
                let headers = signer.headers(&subject, Some(&inbox), body, now_millis())?;
                self.client.publish_with_reply_and_headers(subject, inbox, headers, body.to_vec().into()).await?;
            }
            None => self.client.publish_with_reply(subject, inbox, body.to_vec().into()).await?,
        }
        self.client.flush().await?;
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + wait;
        while out.len() < hosts
            && let Ok(Some(msg)) = tokio::time::timeout_at(deadline, answers.next()).await
        {
            // The server's own answer when nobody subscribes: no host listens.
            anyhow::ensure!(msg.status != Some(async_nats::StatusCode::NO_RESPONDERS), "no host listens on `{prefix}.{verb}`");
            let error = msg.headers.as_ref().and_then(|h| h.get("Nats-Service-Error")).map(|v| v.as_str().to_owned());
            out.push(match error {
                Some(reason) => Err(reason),
                None => Ok(msg.payload.to_vec()),
            });
        }
        anyhow::ensure!(!out.is_empty(), "no host answered on `{prefix}.{verb}` within {wait:?}");
        Ok(out)
    }

    /// Every host's status, gathered for `wait`.
    pub(crate) async fn statuses(&self, wait: Duration) -> anyhow::Result<Vec<Result<Status, NoStatus>>> {
        let answers = self.ask("status", wait).await?;
        Ok(answers
            .into_iter()
            .map(|answer| match answer.map(|body| serde_json::from_slice::<Status>(&body)) {
                Ok(Ok(status)) => Ok(status),
                Ok(Err(err)) => Err(NoStatus::Garbled(err.to_string())),
                Err(reason) => Err(NoStatus::Refused(reason)),
            })
            .collect())
    }
}

/// A host's answer to a status request that is not a status.
#[derive(Debug)]
pub(crate) enum NoStatus {
    /// The host refused the request (`[host.control] allowed_keys`).
    Refused(String),
    /// Something answered that this CLI cannot read.
    Garbled(String),
}

impl std::fmt::Display for NoStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoStatus::Refused(reason) => write!(f, "refused: {reason}"),
            NoStatus::Garbled(err) => write!(f, "an answer that is not a status: {err}"),
        }
    }
}

/// `switchyard status`: the fleet at a glance (a row per host and route, the
/// plugins served at more than one version, registered hosts that did not
/// answer), then each host in detail.
pub(crate) async fn status(conn: &ConnArgs, seed: &ControlSeed, wait: Duration) -> anyhow::Result<ExitCode> {
    let control = Control::connect(conn, seed).await?;
    let mut all_ok = true;
    let mut statuses = Vec::new();
    for answer in control.statuses(wait).await? {
        match answer {
            Ok(status) => statuses.push(status),
            Err(no) => {
                all_ok &= !matches!(no, NoStatus::Refused(_));
                eprintln!("{no}");
            }
        }
    }
    statuses.sort_by(|a, b| a.host.cmp(&b.host));
    print!("{}", top::plain(&top::rows(&statuses)));
    for line in fleet::mixed_versions(&statuses) {
        println!("{line}");
    }
    for line in fleet::silent(&control.registered().await, &statuses) {
        all_ok = false;
        println!("{line}");
    }
    for status in &statuses {
        print!("\n{}", status.render());
    }
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// How long the hosts that answer a status request are counted, before a reload.
const COUNT_HOSTS: Duration = Duration::from_millis(500);

/// `switchyard reload`: done once every host that answers a status request
/// has answered the reload, or after `wait` (a reload compiles changed plugins).
pub(crate) async fn reload(conn: &ConnArgs, seed: &ControlSeed, wait: Duration) -> anyhow::Result<ExitCode> {
    let mut all_ok = true;
    let control = Control::connect(conn, seed).await?;
    let hosts = control.ask("status", COUNT_HOSTS).await?.len();
    for answer in control.ask_until("reload", wait, hosts).await? {
        match answer.map(|body| serde_json::from_slice::<ReloadReport>(&body)) {
            Ok(Ok(report)) => {
                all_ok &= report.ok && report.refused.is_empty();
                println!("{}", report.summary());
            }
            Ok(Err(err)) => eprintln!("an answer that is not a reload report: {err}"),
            Err(reason) => {
                all_ok = false;
                eprintln!("refused: {reason}");
            }
        }
    }
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `switchyard rollout status|promote|abort|diff NAME`: every host answers for
/// its routes of the plugin; fails when a host refused, none serves the plugin,
/// or a promote or abort found nothing on trial anywhere.
pub(crate) async fn rollout(
    conn: &ConnArgs,
    seed: &ControlSeed,
    action: RolloutAction,
    plugin: &str,
    wait: Duration,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let control = Control::connect(conn, seed).await?;
    let body = serde_json::to_vec(&RolloutRequest { action, plugin: plugin.to_owned() })?;
    let mut all_ok = true;
    let mut answers = Vec::new();
    for answer in control.ask_with("rollout", &body, wait, usize::MAX).await? {
        match answer.map(|body| serde_json::from_slice::<RolloutAnswer>(&body)) {
            Ok(Ok(answer)) => answers.push(answer),
            Ok(Err(err)) => eprintln!("an answer that is not a rollout answer: {err}"),
            Err(reason) => {
                all_ok = false;
                eprintln!("refused: {reason}");
            }
        }
    }
    answers.sort_by(|a, b| a.host.cmp(&b.host));
    let routes = || answers.iter().flat_map(|answer| &answer.routes);
    if routes().next().is_none() {
        eprintln!("no host serves plugin `{plugin}`");
        all_ok = false;
    }
    if matches!(action, RolloutAction::Promote | RolloutAction::Abort) && !routes().any(|route| matches!(route.done, Some(Ok(_)))) {
        all_ok = false;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&answers)?);
    } else {
        for answer in &answers {
            print!("{}", answer.render());
        }
    }
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `switchyard control-key new|public|sign`.
pub(crate) fn control_key(action: ControlKeyAction) -> anyhow::Result<ExitCode> {
    match action {
        ControlKeyAction::New { seed_file } => {
            let pair = Signer::generate();
            match seed_file {
                Some(path) => {
                    write_secret(&path, &format!("{}\n", pair.seed()?))?;
                    println!("public key: {}", pair.public_key());
                    println!("seed written to {}", path.display());
                }
                None => {
                    println!("public key: {}", pair.public_key());
                    println!("seed:       {}", pair.seed()?);
                }
            }
        }
        ControlKeyAction::Public { seed } => {
            let pair = signer(&seed)?.context("no seed: give --control-seed, SWITCHYARD_CONTROL_SEED or --control-seed-file")?;
            println!("{}", pair.public_key());
        }
        ControlKeyAction::Sign { subject, reply, data, time, seed } => {
            let pair = signer(&seed)?.context("no seed: give --control-seed, SWITCHYARD_CONTROL_SEED or --control-seed-file")?;
            let headers = pair.headers(&subject, reply.as_deref(), data.as_bytes(), time.unwrap_or_else(now_millis))?;
            // One `Name: value` per line, in a fixed order.
            for name in [crate::reload::signature::KEY, crate::reload::signature::TIME, crate::reload::signature::SIGNATURE] {
                if let Some(value) = headers.get(name) {
                    println!("{name}: {}", value.as_str());
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Create `path` readable by its owner only; never overwrite.
fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating `{}`", path.display()))?;
    file.write_all(text.as_bytes()).with_context(|| format!("writing `{}`", path.display()))
}
