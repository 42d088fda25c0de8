//! `avatar-pipeline`: handles `user.avatar.uploaded`. The side effects the seed lists — generate
//! thumbnails, update caches — become `work.thumbnail.generate` (one thumbnail per configured
//! size) and `work.cache.invalidate` (the user's avatar key) on the WORK stream.
//!
//! Failures, the two kinds:
//! - an `avatar_url` that is not `https://` on a configured storage host is a bad event: it is
//!   rejected (dead-lettered at once, with the validation error as the reason);
//! - storage that cannot be reached is a passing problem: the handler asks for a retry, the route
//!   naks with its backoff, and after `max_deliver` attempts the host dead-letters the event. No
//!   storage is reachable from the sandbox, so the example simulates that case: an event whose
//!   `metadata.simulate_failure` is `"storage_unavailable"` fails on every attempt.
//!
//! ```toml
//! [plugins.avatar-pipeline.config]
//! storage_hosts = ["cdn.example.com"]   # where avatars may be fetched from
//! thumbnail_sizes = [64, 256]           # square sizes, pixels
//! ```

use serde::{Deserialize, Serialize};
use serde_json::json;
use switchyard_sdk::prelude::*;

const ACCEPTS: Expect = Expect::event().schema_major(1).prefixed_ids();
const COMMAND_SCHEMA: SchemaVersion = SchemaVersion::new(1, 0, 0);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    storage_hosts: Vec<String>,
    thumbnail_sizes: Vec<u32>,
}

#[derive(Debug, Deserialize)]
struct AvatarUploaded {
    user_id: String,
    avatar_url: String,
    file_key: String,
    version: u32,
}

/// The event's checks need the configured hosts, so they run through this pairing.
struct Checked<'a>(&'a AvatarUploaded, &'a Settings);

impl Validate for Checked<'_> {
    fn validate(&self, v: &mut Validator) {
        let (avatar, settings) = (self.0, self.1);
        v.uuid("data.user_id", &avatar.user_id).required("data.file_key", &avatar.file_key).min("data.version", avatar.version, 1);
        if let Err(problem) = storage_host(&avatar.avatar_url, &settings.storage_hosts) {
            v.check("data.avatar_url", false, || problem);
        }
    }
}

#[derive(Debug, Serialize)]
struct GenerateThumbnails<'a> {
    user_id: &'a str,
    source_url: &'a str,
    file_key: &'a str,
    version: u32,
    thumbnails: Vec<Thumbnail>,
}

#[derive(Debug, Serialize)]
struct Thumbnail {
    size: u32,
    file_key: String,
}

#[derive(Debug, Serialize)]
struct InvalidateCache {
    user_id: String,
    keys: Vec<String>,
}

#[init]
fn init(settings: &Settings) -> Result<(), String> {
    if settings.storage_hosts.is_empty() {
        return Err("`storage_hosts` must list at least one host".to_owned());
    }
    match settings.thumbnail_sizes.iter().find(|&&size| size == 0 || size > 4096) {
        _ if settings.thumbnail_sizes.is_empty() => Err("`thumbnail_sizes` must not be empty".to_owned()),
        Some(size) => Err(format!("thumbnail size {size} is outside 1..=4096")),
        None => Ok(()),
    }
}

#[handler]
fn handle(msg: &Message, ctx: &mut Context, settings: &Settings) -> Result<Outcome, Stop> {
    let event = ACCEPTS.message::<AvatarUploaded>(msg)?;
    switchyard_sdk::validate(&Checked(&event.data, settings))?;
    match event.metadata.extra.get("simulate_failure").and_then(|v| v.as_str()) {
        None => {}
        Some("storage_unavailable") => {
            return Err(Stop::retry(format!("avatar storage unavailable (simulated) for {}", event.data.avatar_url)));
        }
        Some(other) => {
            return Err(Stop::reject(format!("unknown simulate_failure `{other}` (known: `storage_unavailable`)")));
        }
    }

    let avatar = &event.data;
    let issued = Timestamp::of_delivery(msg).unwrap_or(event.timestamp);
    let source = match &msg.delivery {
        Some(d) => json!({"subject": msg.subject, "stream": d.stream, "sequence": d.stream_sequence}),
        None => json!({"subject": msg.subject}),
    };
    let thumbnails =
        settings.thumbnail_sizes.iter().map(|&size| Thumbnail { size, file_key: format!("{}@{size}", avatar.file_key) }).collect();
    let generate = GenerateThumbnails {
        user_id: &avatar.user_id,
        source_url: &avatar.avatar_url,
        file_key: &avatar.file_key,
        version: avatar.version,
        thumbnails,
    };
    let generate = event
        .follow_up(EnvelopeKind::Command, "thumbnails", issued, generate)
        .with_schema_version(COMMAND_SCHEMA)
        .with_meta("source", source.clone());
    ctx.publish_json("work.thumbnail.generate", &generate).or_reject_with("publishing the thumbnail request")?;

    let keys = vec![format!("user:{}:avatar", avatar.user_id)];
    let invalidate = event
        .follow_up(EnvelopeKind::Command, "invalidate-avatar", issued, InvalidateCache { user_id: avatar.user_id.clone(), keys })
        .with_schema_version(COMMAND_SCHEMA)
        .with_meta("source", source);
    ctx.publish_json("work.cache.invalidate", &invalidate).or_reject_with("publishing the cache invalidation")?;
    Ok(Outcome::Ack)
}

/// `Ok(())` when `url` is `https://<host>/<path>` with `<host>` among `allowed`.
fn storage_host(url: &str, allowed: &[String]) -> Result<(), String> {
    let Some(rest) = url.strip_prefix("https://") else {
        return Err(format!("must be an https url, found `{url}`"));
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    if host.is_empty() || path.is_empty() || url.chars().any(char::is_whitespace) {
        return Err(format!("must be https://<host>/<path>, found `{url}`"));
    }
    if !allowed.iter().any(|h| h.eq_ignore_ascii_case(host)) {
        return Err(format!("host `{host}` is not a configured storage host (`{}`)", allowed.join("`, `")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use switchyard_sdk::testing::MockHost;

    const USER: &str = "5f0c6d1e-8a43-4d4e-9b6a-3c1f2e7d9a10";

    fn host() -> MockHost {
        MockHost::new()
            .allow("work.>")
            .config(json!({"storage_hosts": ["cdn.example.com"], "thumbnail_sizes": [64, 256]}))
            .init(init)
            .expect("config accepted")
    }

    fn uploaded(url: &str, metadata: Value) -> Message {
        Message::builder("user.avatar.uploaded")
            .json(&json!({"type": "event", "id": "evt_9", "timestamp": "2024-03-20T12:00:00Z",
                          "data": {"user_id": USER, "avatar_url": url, "file_key": "avatars/ada.png", "version": 3},
                          "metadata": metadata}))
            .jetstream("USERS", 12)
            .build()
    }

    #[test]
    fn an_upload_requests_thumbnails_and_a_cache_refresh() {
        let handled = host().call(handle, &uploaded("https://cdn.example.com/avatars/ada.png", json!({"schema_version": "1.0.0"})));
        assert_eq!(handled.outcome, Outcome::Ack);
        let [thumbs, cache] = handled.sent() else { panic!("two commands expected: {:?}", handled.publishes) };
        assert_eq!((thumbs.subject.as_str(), cache.subject.as_str()), ("work.thumbnail.generate", "work.cache.invalidate"));
        let thumbs: Value = serde_json::from_slice(&thumbs.payload).expect("json");
        assert_eq!(
            thumbs["data"],
            json!({"user_id": USER, "source_url": "https://cdn.example.com/avatars/ada.png", "file_key": "avatars/ada.png",
                   "version": 3, "thumbnails": [{"size": 64, "file_key": "avatars/ada.png@64"},
                                                {"size": 256, "file_key": "avatars/ada.png@256"}]})
        );
        assert_eq!(thumbs["timestamp"], "1970-01-01T00:00:00Z", "the stream's time (the mock's delivery says 0)");
        let cache: Value = serde_json::from_slice(&cache.payload).expect("json");
        assert_eq!(cache["data"]["keys"], json!([format!("user:{USER}:avatar")]));
    }

    #[test]
    fn a_bad_url_is_rejected_and_unavailable_storage_retried() {
        let meta = json!({"schema_version": "1.0.0"});
        for (url, reason) in [
            ("http://cdn.example.com/a.png", "must be an https url, found `http://cdn.example.com/a.png`"),
            ("https://cdn.example.com", "must be https://<host>/<path>, found `https://cdn.example.com`"),
            ("https://evil.example.net/a.png", "host `evil.example.net` is not a configured storage host (`cdn.example.com`)"),
        ] {
            let handled = host().call(handle, &uploaded(url, meta.clone()));
            assert_eq!(handled.outcome, Outcome::reject(format!("message validation failed: `data.avatar_url` {reason}")));
        }
        let failing =
            uploaded("https://cdn.example.com/a.png", json!({"schema_version": "1.0.0", "simulate_failure": "storage_unavailable"}));
        let handled = host().call(handle, &failing);
        assert_eq!(handled.outcome, Outcome::retry("avatar storage unavailable (simulated) for https://cdn.example.com/a.png"));
        assert!(handled.sent().is_empty());
    }

    #[test]
    fn init_checks_sizes_and_hosts() {
        let init_with = |v: Value| MockHost::new().config(v).init(init).map(|_| ());
        assert_eq!(
            init_with(json!({"storage_hosts": ["a"], "thumbnail_sizes": [64, 0]})),
            Err("thumbnail size 0 is outside 1..=4096".to_owned())
        );
        assert_eq!(
            init_with(json!({"storage_hosts": ["a"], "thumbnail_sizes": []})),
            Err("`thumbnail_sizes` must not be empty".to_owned())
        );
        assert_eq!(
            init_with(json!({"storage_hosts": [], "thumbnail_sizes": [1]})),
            Err("`storage_hosts` must list at least one host".to_owned())
        );
    }
}
