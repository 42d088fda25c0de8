//! Relative paths in `runtime.toml` are relative to the file's own directory,
//! not to the working directory of whoever started the host, so the same config
//! works from anywhere (`switchyard run /etc/switchyard/runtime.toml`).

use std::path::{Path, PathBuf};

use super::schema::Config;

/// The directory relative paths of the config file at `file` resolve against:
/// its parent, made absolute so the result survives a change of directory.
pub fn base_dir(file: &Path) -> PathBuf {
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        // `runtime.toml` alone: `absolute` refuses an empty path.
        _ => Path::new("."),
    };
    // `absolute` does not touch the file system, so a missing directory is fine;
    // it only fails when the working directory is unknown, and then relative is
    // the best we have.
    std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf())
}

/// Rewrites every relative path of `config` as `base.join(path)`.
///
/// Absolute paths are kept, and so are empty ones (validation reports those). A
/// `nats.embedded.binary` that is a bare command name (`nats-server`) is kept
/// too, because it is meant to be looked up on `PATH`.
pub fn resolve_paths(config: &mut Config, base: &Path) {
    resolve(base, &mut config.host.cache_dir);
    for plugin in config.plugins.values_mut() {
        resolve(base, plugin.path.get_mut());
        // An object's copy lives in the cache, where the host fetches it to.
        if let Some(source) = &plugin.source
            && plugin.path.get_ref().as_os_str().is_empty()
        {
            *plugin.path.get_mut() = source.get_ref().local_path(&config.host.cache_dir);
        }
    }
    let nats = &mut config.nats;
    if let Some(credentials) = &mut nats.credentials {
        resolve(base, credentials);
    }
    if let Some(tls) = &mut nats.tls {
        for path in [&mut tls.ca, &mut tls.cert, &mut tls.key].into_iter().flatten() {
            resolve(base, path);
        }
    }
    if let Some(binary) = &mut nats.embedded.binary
        && !is_bare_command(binary)
    {
        resolve(base, binary);
    }
    resolve(base, &mut nats.embedded.data_dir);
}

/// A single component with no directory part, as in `binary = "nats-server"`.
pub(super) fn is_bare_command(path: &Path) -> bool {
    path.components().count() == 1 && matches!(path.components().next(), Some(std::path::Component::Normal(_)))
}

fn resolve(base: &Path, path: &mut PathBuf) {
    if !path.as_os_str().is_empty() && path.is_relative() {
        *path = base.join(&*path);
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    #[test]
    fn relative_paths_join_the_config_directory() -> Result<(), Box<dyn std::error::Error>> {
        let text = r#"
            [nats]
            credentials = "secrets/app.creds"
            tls = { ca = "/etc/ssl/ca.pem", cert = "tls/cert.pem", key = "tls/key.pem" }
            embedded = { binary = "nats-server", data_dir = "data" }
            [host]
            cache_dir = "../cache"
            [plugins.a]
            path = "plugins/a.wasm"
            [plugins.b]
            path = "/opt/b.wasm"
            [plugins.c]
            path = ""
        "#;
        let mut config = parse(text, Path::new("conf/runtime.toml"))?;
        let base = Path::new("/srv/conf");
        resolve_paths(&mut config, base);
        let nats = &config.nats;
        assert_eq!(nats.credentials.as_deref(), Some(Path::new("/srv/conf/secrets/app.creds")));
        let tls = nats.tls.as_ref().ok_or("tls")?;
        assert_eq!(tls.ca.as_deref(), Some(Path::new("/etc/ssl/ca.pem")));
        assert_eq!(tls.cert.as_deref(), Some(Path::new("/srv/conf/tls/cert.pem")));
        assert_eq!(tls.key.as_deref(), Some(Path::new("/srv/conf/tls/key.pem")));
        assert_eq!(nats.embedded.binary.as_deref(), Some(Path::new("nats-server")));
        assert_eq!(nats.embedded.data_dir, Path::new("/srv/conf/data"));
        assert_eq!(config.host.cache_dir, Path::new("/srv/conf/../cache"));
        assert_eq!(config.plugins["a"].path.get_ref(), Path::new("/srv/conf/plugins/a.wasm"));
        assert_eq!(config.plugins["b"].path.get_ref(), Path::new("/opt/b.wasm"));
        assert_eq!(config.plugins["c"].path.get_ref(), Path::new(""));
        Ok(())
    }

    #[test]
    fn defaults_resolve_too_and_binary_paths_resolve() -> Result<(), Box<dyn std::error::Error>> {
        let mut config = parse("nats.embedded.binary = \"bin/nats-server\"", Path::new("x.toml"))?;
        resolve_paths(&mut config, Path::new("/base"));
        assert_eq!(config.nats.embedded.binary.as_deref(), Some(Path::new("/base/bin/nats-server")));
        assert_eq!(config.nats.embedded.data_dir, Path::new("/base/.switchyard/nats"));
        assert_eq!(config.host.cache_dir, Path::new("/base/.switchyard/cache"));
        Ok(())
    }

    #[test]
    fn base_dir_is_the_absolute_parent() {
        assert_eq!(base_dir(Path::new("/etc/sy/runtime.toml")), Path::new("/etc/sy"));
        let relative = base_dir(Path::new("runtime.toml"));
        assert!(relative.is_absolute(), "{}", relative.display());
        assert_eq!(Some(relative.as_path()), std::env::current_dir().ok().as_deref());
    }
}
