//! `pod-health`: the seed's per-pod health check, `chat.pod.{pod_id}.health`, over request/reply.
//!
//! The pod id is the plugin config's `pod_id`, else the environment variable `POD_ID` (a
//! Kubernetes deployment sets it from the pod name; the plugin sees it when runtime.toml passes it
//! with `env`). Init refuses to start without one. A request is answered with
//!
//! ```json
//! {"pod_id": "pod-1", "status": "healthy", "timestamp": "…"}
//! ```
//!
//! and a request for another pod (a route subscribed to the wrong subject) is refused, which the
//! host turns into an error reply (`Nats-Service-Error`).
//!
//! With `dependencies` (request subjects, on the plugin's `request` list in runtime.toml) the pod
//! asks each, at most `dependency_timeout_ms` (default 300), and reports what each answered: `ok`,
//! `no_responders`, `timed_out` or `error`; the status is `degraded` unless all are `ok`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use switchyard_sdk::prelude::*;

#[derive(Debug, Serialize)]
struct HealthResponse<'a> {
    pod_id: &'a str,
    status: &'static str,
    timestamp: Timestamp,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    dependencies: BTreeMap<String, &'static str>,
}

/// Ask each dependency; what each answered.
fn dependencies(ctx: &mut Context) -> Result<BTreeMap<String, &'static str>, Stop> {
    let subjects: Vec<String> = ctx.config().get("dependencies").or_reject()?.unwrap_or_default();
    let timeout = Duration::from_millis(ctx.config().get::<u64>("dependency_timeout_ms").or_reject()?.unwrap_or(300));
    let mut answers = BTreeMap::new();
    for subject in subjects {
        let answer = match ctx.request_with(&subject, Vec::new(), Vec::new(), Some(timeout)) {
            Ok(_) => "ok",
            Err(RequestError::NoResponders(_)) => "no_responders",
            Err(RequestError::TimedOut(_)) => "timed_out",
            Err(_) => "error",
        };
        answers.insert(subject, answer);
    }
    Ok(answers)
}

/// This pod's id: config `pod_id`, else env `POD_ID`; it must be usable as a subject token.
fn pod_id(config: &PluginConfig) -> Result<String, String> {
    let id = match config.get::<String>("pod_id").map_err(|e| e.to_string())? {
        Some(id) => id,
        None => std::env::var("POD_ID").map_err(|_| "no pod id: set `pod_id` in the plugin config or `POD_ID` in its env")?,
    };
    let mut v = Validator::new();
    v.subject_token("pod id", &id);
    v.finish().map_err(|e| e.to_string())?;
    Ok(id)
}

#[init]
fn init(config: &PluginConfig) -> Result<(), String> {
    pod_id(config).map(|_| ())
}

#[handler]
fn handle(msg: &Message, ctx: &mut Context) -> Result<Outcome, Stop> {
    let pod = pod_id(ctx.config()).or_reject()?;
    let asked = msg.subject.split('.').nth(2).unwrap_or_default();
    if asked != pod {
        return Err(Stop::reject(format!("this is pod `{pod}`; `{}` asks pod `{asked}`", msg.subject)));
    }
    let dependencies = dependencies(ctx)?;
    let status = if dependencies.values().all(|answer| *answer == "ok") { "healthy" } else { "degraded" };
    let health = HealthResponse { pod_id: &pod, status, timestamp: Timestamp::now(), dependencies };
    Ok(Outcome::reply_json(&health)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use switchyard_sdk::testing::MockHost;

    use serde_json::json;

    #[test]
    fn answers_for_its_own_pod_only() {
        let host = MockHost::new().config(json!({"pod_id": "pod-1"})).init(init).expect("pod id set");
        let handled = host.call(handle, &Message::builder("chat.pod.pod-1.health").reply("_INBOX.1").build());
        let Outcome::Reply { payload, headers } = &handled.outcome else { panic!("{:?}", handled.outcome) };
        let health: Value = serde_json::from_slice(payload).expect("json");
        assert_eq!((health["pod_id"].as_str(), health["status"].as_str()), (Some("pod-1"), Some("healthy")));
        assert!(Timestamp::parse(health["timestamp"].as_str().unwrap_or_default()).is_ok());
        assert_eq!(headers, &[("content-type".to_owned(), "application/json".to_owned())]);

        let other = host.call(handle, &Message::builder("chat.pod.pod-2.health").reply("_INBOX.2").build());
        assert_eq!(other.outcome, Outcome::reject("this is pod `pod-1`; `chat.pod.pod-2.health` asks pod `pod-2`"));
    }

    #[test]
    fn dependencies_are_asked_and_reported() {
        let config = json!({"pod_id": "pod-1", "dependencies": ["chat.workflow.health", "chat.store.health"]});
        let host = MockHost::new().config(config).responder("chat.workflow.health", b"{}".to_vec()).init(init).expect("pod id set");
        let handled = host.call(handle, &Message::builder("chat.pod.pod-1.health").reply("_INBOX.1").build());
        let Outcome::Reply { payload, .. } = &handled.outcome else { panic!("{:?}", handled.outcome) };
        let health: Value = serde_json::from_slice(payload).expect("json");
        assert_eq!(health["status"], "degraded");
        assert_eq!(health["dependencies"], json!({"chat.workflow.health": "ok", "chat.store.health": "no_responders"}));
    }

    #[test]
    fn init_needs_a_usable_pod_id() {
        let refused = MockHost::new().config(json!({"pod_id": "pod.1"})).init(init).err();
        assert_eq!(
            refused.as_deref(),
            Some("message validation failed: `pod id` must be usable as a subject token (no `.`, `*`, `>` or spaces), found `pod.1`")
        );
        if std::env::var_os("POD_ID").is_none() {
            let refused = MockHost::new().init(init).err();
            assert_eq!(refused.as_deref(), Some("no pod id: set `pod_id` in the plugin config or `POD_ID` in its env"));
        }
    }
}
