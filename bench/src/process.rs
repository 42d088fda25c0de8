//! Child processes the bench measures from outside: the real `switchyard run`
//! (memory, reload) and the bench itself as a bare client (the memory baseline).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long a child may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// `$SWITCHYARD_BIN`, else the `switchyard` built next to this binary.
pub(crate) fn switchyard_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("SWITCHYARD_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let path = exe.parent().map(|dir| dir.join("switchyard")).unwrap_or_default();
    anyhow::ensure!(path.is_file(), "{} is missing: build it with `cargo build --release -p switchyard`", path.display());
    Ok(path)
}

/// `switchyard run <config>`, ready to spawn.
pub(crate) fn switchyard_run(config: &Path) -> anyhow::Result<Command> {
    let mut command = Command::new(switchyard_binary()?);
    command.arg("run").arg(config);
    Ok(command)
}

/// Spawn `command` and wait for a stdout line starting with `ready`. The child
/// is killed when the returned handle drops.
pub(crate) async fn spawn_ready(mut command: Command, ready: &str) -> anyhow::Result<Child> {
    let mut child =
        command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).kill_on_drop(true).spawn().context("spawning")?;
    let stdout = child.stdout.take().context("child stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let wait = async {
        while let Some(line) = lines.next_line().await? {
            if line.starts_with(ready) {
                return Ok(());
            }
        }
        anyhow::bail!("exited before printing `{ready}`")
    };
    tokio::time::timeout(READY_TIMEOUT, wait).await.with_context(|| format!("not ready within {READY_TIMEOUT:?}"))??;
    // Keep reading (and dropping) its output so a chatty child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(child)
}

/// The resident set of process `pid`, in MiB (VmRSS of /proc/<pid>/status).
pub(crate) fn rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = Path::new("/proc").join(pid.to_string()).join("status");
    let text = std::fs::read_to_string(&status).with_context(|| format!("reading {}", status.display()))?;
    let kib: f64 = text
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .context("no VmRSS line")?;
    Ok(kib / 1024.0)
}
