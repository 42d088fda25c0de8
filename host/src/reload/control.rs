//! Control requests over NATS: `<control_subject>.status` and
//! `<control_subject>.reload`, answered by every host listening (so `switchyard
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
use super::signature::{Refusal, Verifier, now_millis};
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
    let status = client.subscribe(format!("{prefix}.status")).await.context("subscribing to control requests")?;
    let reload = client.subscribe(format!("{prefix}.reload")).await.context("subscribing to control requests")?;
    crate::broker::barrier(client).await?;
    if let Some(verifier) = &verifier {
        tracing::info!("control requests on `{prefix}.*` must be signed by one of {} allowed key(s)", verifier.key_count());
    }
    let client = client.clone();
    let mut both = futures::stream::select(status.map(|m| (false, m)), reload.map(|m| (true, m)));
    Ok(tokio::spawn(async move {
        while let Some((is_reload, msg)) = both.next().await {
            let reply = msg.reply.as_ref().map(|r| r.to_string());
            let signer = match verifier.as_mut() {
                None => None,
                Some(verifier) => match verifier.check(&msg.subject, reply.as_deref(), msg.headers.as_ref(), &msg.payload, now_millis()) {
                    Ok(key) => Some(key),
                    Err(refusal) => {
                        let key = refusal.key().unwrap_or("unsigned");
                        tracing::warn!(subject = %msg.subject, key = %key, "control request refused: {refusal}");
                        if let Some(reply) = reply {
                            refuse(&client, reply, &refusal).await;
                        }
                        continue;
                    }
                },
            };
            let request = match (is_reload, reply) {
                (true, reply) => {
                    let cause = match &signer {
                        Some(key) => {
                            tracing::info!(key = %key, "control: reload requested");
                            format!("request over NATS signed by {key}")
                        }
                        None => "request over NATS".into(),
                    };
                    Request::Reload { cause, reply }
                }
                (false, Some(reply)) => Request::Status { reply },
                (false, None) => continue,
            };
            if requests.send(request).await.is_err() {
                return;
            }
        }
    }))
}

/// Answer a refused request the NATS services way: an empty body with error headers.
async fn refuse(client: &async_nats::Client, reply: String, refusal: &Refusal) {
    let mut headers = HeaderMap::new();
    insert(&mut headers, "Nats-Service-Error", &refusal.to_string());
    insert(&mut headers, "Nats-Service-Error-Code", "403");
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
