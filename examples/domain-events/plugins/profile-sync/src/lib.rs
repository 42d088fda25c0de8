//! `profile-sync`: handles `user.updated`. The side effects the seed lists — invalidate the cache,
//! update the search index — become two commands on the WORK stream: `work.cache.invalidate`
//! (the cache keys of the user) and `work.search.index` (the document to re-index).
//!
//! Idempotent on redelivery like every handler of this example: ids derived from the event id,
//! timestamps from the stream, `Nats-Msg-Id` dedupe by the WORK stream.
//!
//! ```toml
//! [plugins.profile-sync.config]
//! cache_keys = ["user:{user_id}", "user:{user_id}:profile"]   # each must contain {user_id}
//! search_index = "users"
//! ```

use serde::{Deserialize, Serialize};
use serde_json::json;
use switchyard_sdk::prelude::*;

const ACCEPTS: Expect = Expect::event().schema_major(1).prefixed_ids();
const COMMAND_SCHEMA: SchemaVersion = SchemaVersion::new(1, 0, 0);
const USER_ID: &str = "{user_id}";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    cache_keys: Vec<String>,
    search_index: String,
}

#[derive(Debug, Deserialize)]
struct UserUpdated {
    user_id: String,
    email: String,
    full_name: String,
    /// Which fields changed; informational.
    #[serde(default)]
    changed: Vec<String>,
}

impl Validate for UserUpdated {
    fn validate(&self, v: &mut Validator) {
        v.uuid("user_id", &self.user_id).required("email", &self.email).required("full_name", &self.full_name);
        for (i, field) in self.changed.iter().enumerate() {
            v.one_of(&format!("changed[{i}]"), field, &["email", "full_name"]);
        }
    }
}

#[derive(Debug, Serialize)]
struct InvalidateCache {
    user_id: String,
    keys: Vec<String>,
}

#[derive(Debug, Serialize)]
struct IndexDocument<'a> {
    index: &'a str,
    document_id: &'a str,
    document: Document<'a>,
}

#[derive(Debug, Serialize)]
struct Document<'a> {
    email: &'a str,
    full_name: &'a str,
}

#[init]
fn init(settings: &Settings) -> Result<(), String> {
    if settings.cache_keys.is_empty() {
        return Err("`cache_keys` must not be empty".to_owned());
    }
    if let Some(key) = settings.cache_keys.iter().find(|k| !k.contains(USER_ID)) {
        return Err(format!("cache key template `{key}` does not contain {USER_ID}"));
    }
    if settings.search_index.trim().is_empty() {
        return Err("`search_index` must not be blank".to_owned());
    }
    Ok(())
}

#[handler]
fn handle(msg: &Message, ctx: &mut Context, settings: &Settings) -> Result<Outcome, Stop> {
    let event = ACCEPTS.message_valid::<UserUpdated>(msg)?;
    let user = &event.data;
    let issued = Timestamp::of_delivery(msg).unwrap_or(event.timestamp);
    let source = match &msg.delivery {
        Some(d) => json!({"subject": msg.subject, "stream": d.stream, "sequence": d.stream_sequence}),
        None => json!({"subject": msg.subject}),
    };

    let keys = settings.cache_keys.iter().map(|k| k.replace(USER_ID, &user.user_id)).collect();
    let invalidate = event
        .follow_up(EnvelopeKind::Command, "invalidate-cache", issued, InvalidateCache { user_id: user.user_id.clone(), keys })
        .with_schema_version(COMMAND_SCHEMA)
        .with_meta("source", source.clone());
    ctx.publish_json("work.cache.invalidate", &invalidate).or_reject_with("publishing the cache invalidation")?;

    let document = Document { email: &user.email, full_name: &user.full_name };
    let index = IndexDocument { index: &settings.search_index, document_id: &user.user_id, document };
    let index =
        event.follow_up(EnvelopeKind::Command, "index-user", issued, index).with_schema_version(COMMAND_SCHEMA).with_meta("source", source);
    ctx.publish_json("work.search.index", &index).or_reject_with("publishing the search update")?;

    ctx.info(format!("user {} updated ({}): cache invalidated, re-index requested", user.user_id, user.changed.join(", ")));
    Ok(Outcome::Ack)
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
            .config(json!({"cache_keys": ["user:{user_id}", "user:{user_id}:profile"], "search_index": "users"}))
            .init(init)
            .expect("config accepted")
    }

    fn updated(data: Value) -> Message {
        Message::builder("user.updated")
            .json(&json!({"type": "event", "id": "evt_2", "timestamp": "2024-03-20T11:00:00Z", "data": data,
                          "metadata": {"schema_version": "1.1.0"}}))
            .build()
    }

    #[test]
    fn an_update_invalidates_the_cache_and_reindexes() {
        let msg = updated(json!({"user_id": USER, "email": "ada@example.org", "full_name": "Ada King", "changed": ["email"]}));
        let handled = host().call(handle, &msg);
        assert_eq!(handled.outcome, Outcome::Ack);
        let [cache, index] = handled.sent() else { panic!("two commands expected: {:?}", handled.publishes) };
        assert_eq!((cache.subject.as_str(), index.subject.as_str()), ("work.cache.invalidate", "work.search.index"));
        let cache: Value = serde_json::from_slice(&cache.payload).expect("json");
        assert_eq!(cache["data"], json!({"user_id": USER, "keys": [format!("user:{USER}"), format!("user:{USER}:profile")]}));
        assert_eq!(cache["timestamp"], "2024-03-20T11:00:00Z", "core delivery: the event's own time");
        assert_eq!(cache["metadata"]["correlation_id"], "evt_2", "an event without a correlation id starts one");
        let index: Value = serde_json::from_slice(&index.payload).expect("json");
        assert_eq!(
            index["data"],
            json!({"index": "users", "document_id": USER, "document": {"email": "ada@example.org", "full_name": "Ada King"}})
        );
    }

    #[test]
    fn bad_updates_are_rejected() {
        let msg = updated(json!({"user_id": USER, "email": "a@b.c", "full_name": "A", "changed": ["password"]}));
        assert_eq!(
            host().call(handle, &msg).outcome,
            Outcome::reject("message validation failed: `data.changed[0]` must be one of `email`, `full_name`, found `password`")
        );
        let v2 = Message::builder("user.updated")
            .json(&json!({"type": "event", "id": "evt_3", "timestamp": "2024-03-20T11:00:00Z", "data": {},
                          "metadata": {"schema_version": "2.0.0"}}))
            .build();
        assert_eq!(host().call(handle, &v2).outcome, Outcome::reject("schema version 2.0.0 is not supported (this handler reads 1.x)"));
    }

    #[test]
    fn init_refuses_templates_without_the_user() {
        let refused = MockHost::new().config(json!({"cache_keys": ["users"], "search_index": "users"})).init(init);
        assert_eq!(refused.expect_err("refused"), "cache key template `users` does not contain {user_id}");
    }
}
