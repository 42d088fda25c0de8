//! Control requests over NATS: `<control_subject>.status` and
//! `<control_subject>.reload`, answered by every host listening (so `switchyard
//! status` sees them all).

use anyhow::Context as _;
use futures::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Request;

/// Forward control requests to the serve loop until the task is aborted.
pub(crate) async fn spawn(client: &async_nats::Client, prefix: &str, requests: mpsc::Sender<Request>) -> anyhow::Result<JoinHandle<()>> {
    let status = client.subscribe(format!("{prefix}.status")).await.context("subscribing to control requests")?;
    let reload = client.subscribe(format!("{prefix}.reload")).await.context("subscribing to control requests")?;
    crate::broker::barrier(client).await?;
    let mut both = futures::stream::select(status.map(|m| (false, m)), reload.map(|m| (true, m)));
    Ok(tokio::spawn(async move {
        while let Some((is_reload, msg)) = both.next().await {
            let reply = msg.reply.map(|r| r.to_string());
            let request = match (is_reload, reply) {
                (true, reply) => Request::Reload { cause: "request over NATS".into(), reply },
                (false, Some(reply)) => Request::Status { reply },
                (false, None) => continue,
            };
            if requests.send(request).await.is_err() {
                return;
            }
        }
    }))
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
