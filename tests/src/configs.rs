//! runtime.toml texts the end-to-end tests share.

use crate::host::preamble;
use crate::plugin;

/// A JOBS work-queue stream consumed by the `faulty` plugin (route `jobs`), which
/// may publish to `done.>` and `seen.>`. `plugin_extra` and `route_extra` are
/// appended to the plugin's and the route's tables.
pub fn faulty_jobs(url: &str, plugin_extra: &str, route_extra: &str) -> String {
    faulty_jobs_at(url, &plugin("faulty"), plugin_extra, route_extra)
}

/// [`faulty_jobs`] with the plugin at `wasm` (a copy a test replaces).
pub fn faulty_jobs_at(url: &str, wasm: &std::path::Path, plugin_extra: &str, route_extra: &str) -> String {
    format!(
        r#"{}
[[streams]]
name = "JOBS"
subjects = ["jobs.>"]
retention = "workqueue"

[plugins.faulty]
path = "{}"
publish = ["done.>", "seen.>"]
timeout = "10s"
{plugin_extra}

[[routes]]
name = "jobs"
plugin = "faulty"
stream = "JOBS"
{route_extra}
"#,
        preamble(url),
        wasm.display()
    )
}

/// The `transform` plugin, forwarding to `<target>.<subject>`, behind `rest`
/// (streams and routes, as TOML).
pub fn transform(url: &str, target: &str, rest: &str) -> String {
    format!(
        r#"{}
[plugins.transform]
path = "{}"
publish = ["{target}.>"]
[plugins.transform.config]
target = "{target}"

{rest}
"#,
        preamble(url),
        plugin("transform").display()
    )
}
