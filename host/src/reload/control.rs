//! Control requests over NATS: `<control_subject>.status`, `.reload` and
//! `.rollout`, answered by every host listening (so `switchyard
//! status` sees them all). With `[host.control] allowed_keys`, a request must be
//! signed by one of those keys ([`super::signature`]); any other is refused with
//! a 403 error reply and logged.

use anyhow::Context as _;
use async_nats::HeaderMap;
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Request;
use super::RolloutRequest;
use super::signature::{Verifier, now_millis};
use crate::config::ControlConfig;
use crate::policy::dead_letter::insert;

/// Forward control requests to the serve loop until the task is aborted.
pub(crate) async fn spawn(
    client: &async_nats::Client,
    prefix: &str,
    control: &ControlConfig,
    requests: mpsc::Sender<Request>,
) -> anyhow::Result<JoinHandle<()>> {
    let mut verifier = Verifier::new(&control.allowed_keys)?;
    let mut subscriptions = Vec::new();
    for verb in [Verb::Status, Verb::Reload, Verb::Rollout] {
        let subscriber = client.subscribe(format!("{prefix}.{}", verb.name())).await.context("subscribing to control requests")?;
        subscriptions.push(subscriber.map(move |msg| (verb, msg)).boxed());
    }
    crate::broker::barrier(client).await?;
    if let Some(verifier) = &verifier {
        tracing::info!("control requests on `{prefix}.*` must be signed by one of {} allowed key(s)", verifier.key_count());
    }
    let client = client.clone();
    let mut all = futures::stream::select_all(subscriptions);
    Ok(tokio::spawn(async move {
        while let Some((verb, msg)) = all.next().await {
            let reply = msg.reply.as_ref().map(|r| r.to_string());
            let signer = match verifier.as_mut() {
                None => None,
                Some(verifier) => match verifier.check(&msg.subject, reply.as_deref(), msg.headers.as_ref(), &msg.payload, now_millis()) {
                    Ok(key) => Some(key),
                    Err(refusal) => {
                        let key = refusal.key().unwrap_or("unsigned");
                        tracing::warn!(subject = %msg.subject, key = %key, "control request refused: {refusal}");
                        if let Some(reply) = reply {
                            refuse(&client, reply, &refusal.to_string(), "403").await;
                        }
                        continue;
                    }
                },
            };
            let by = match &signer {
                Some(key) => format!("request over NATS signed by {key}"),
                None => "request over NATS".into(),
            };
            let request = match (verb, reply) {
                (Verb::Reload, reply) => {
                    if let Some(key) = &signer {
                        tracing::info!(key = %key, "control: reload requested");
                    }
                    Request::Reload { cause: by, reply }
                }
                (Verb::Status, Some(reply)) => Request::Status { reply },
                (Verb::Status, None) => continue,
                (Verb::Rollout, reply) => match serde_json::from_slice::<RolloutRequest>(&msg.payload) {
                    Ok(request) => {
                        tracing::info!(plugin = %request.plugin, action = ?request.action, "control: rollout {by}");
                        Request::Rollout { request, reply }
                    }
                    Err(err) => {
                        if let Some(reply) = reply {
                            refuse(&client, reply, &format!("not a rollout request: {err}"), "400").await;
                        }
                        continue;
                    }
                },
            };
            if requests.send(request).await.is_err() {
                return;
            }
        }
    }))
}

/// The control subjects, each `<control_subject>.<name>`.
#[derive(Debug, Clone, Copy)]
enum Verb {
    Status,
    Reload,
    Rollout,
}

impl Verb {
    fn name(self) -> &'static str {
        match self {
            Verb::Status => "status",
            Verb::Reload => "reload",
            Verb::Rollout => "rollout",
        }
    }
}

/// Answer a refused request the NATS services way: an empty body with error headers.
async fn refuse(client: &async_nats::Client, reply: String, why: &str, code: &str) {
    let mut headers = HeaderMap::new();
    insert(&mut headers, "Nats-Service-Error", why);
    insert(&mut headers, "Nats-Service-Error-Code", code);
    if let Err(err) = client.publish_with_headers(reply, headers, Default::default()).await {
        tracing::warn!("answering a refused control request: {err}");
    }
}

/// Answer a control request with JSON.
pub(crate) async fn respond(client: &async_nats::Client, reply: String, value: &impl Serialize) {
    match serde_json::to_vec(value) {
        Ok(body) => {
            if let Err(err) = client.publish(reply, body.into()).await {
                tracing::warn!("answering a control request: {err}");
            }
        }
        Err(err) => tracing::warn!("encoding a control answer: {err}"),
    }
}
