//! The core NATS driver: a subscription (optionally in a queue group) per
//! subject, feeding the pipeline; `settle` says how a core message is settled.
//!
//! Unordered routes run `concurrency` workers, each with its own subscription in
//! one queue group; routes with `order_by` read one subscription in one task and
//! hand messages to ordering lanes.

mod settle;

use std::sync::Arc;

use async_nats::Subscriber;
use futures::{FutureExt, StreamExt};
use switchyard_abi::Message;
use tokio_util::sync::CancellationToken;

use super::lanes::Lanes;
use super::{Outputs, Route, convert, pipeline};
use crate::config::CoreSpec;
use crate::workers::Workers;

/// A subscription that stops cleanly: on cancel it is drained (the server stops
/// sending, what is buffered is still handed out), then it ends.
struct Feed {
    subscriber: Subscriber,
    draining: bool,
}

impl Feed {
    async fn subscribe(out: &Outputs, subject: &str, queue: Option<&str>) -> anyhow::Result<Self> {
        let subscriber = match queue {
            Some(queue) => out.client.queue_subscribe(subject.to_owned(), queue.to_owned()).await?,
            None => out.client.subscribe(subject.to_owned()).await?,
        };
        Ok(Self { subscriber, draining: false })
    }

    async fn next(&mut self, cancel: &CancellationToken) -> Option<async_nats::Message> {
        loop {
            if cancel.is_cancelled() && !self.draining {
                self.draining = true;
                let _ = self.subscriber.drain().await;
            }
            if self.draining {
                return self.subscriber.next().await;
            }
            tokio::select! {
                () = cancel.cancelled() => continue,
                msg = self.subscriber.next() => return msg,
            }
        }
    }

    /// The next message and those that arrived with it, up to `max`: what the
    /// subscription already holds, never waiting for more.
    async fn next_together(&mut self, cancel: &CancellationToken, max: usize) -> Vec<Message> {
        let Some(first) = self.next(cancel).await else { return Vec::new() };
        let mut msgs = Vec::with_capacity(max);
        msgs.push(convert::from_core(&first));
        while msgs.len() < max
            && let Some(Some(msg)) = self.subscriber.next().now_or_never()
        {
            msgs.push(convert::from_core(&msg));
        }
        msgs
    }
}

/// A core route: the route and its subscriptions' settings.
pub(super) struct Subscriptions {
    route: Arc<Route>,
    spec: CoreSpec,
}

pub(super) async fn start(
    route: Arc<Route>,
    spec: CoreSpec,
    out: Outputs,
    cancel: CancellationToken,
    workers: &mut Workers,
) -> anyhow::Result<()> {
    let concurrency = route.spec.concurrency;
    let order_by = route.spec.order_by.clone();
    // Unordered workers each own a subscription in one queue group, so the server
    // hands each message to one of them: no lock, no hand-off between workers.
    // Without a configured group the group is this route's own on this host, so
    // every other subscriber (another host included) still gets its copy.
    let queue = match &spec.queue {
        Some(queue) => Some(queue.clone()),
        None if order_by.is_none() && concurrency > 1 => Some(private_queue(&route.name, &out.client)),
        None => None,
    };
    let s = Arc::new(Subscriptions { route, spec });
    for subject in &s.spec.subjects {
        let name = format!("route `{}` ({subject})", s.route.name);
        match order_by.clone() {
            Some(order_by) => {
                let mut feed = Feed::subscribe(&out, subject, queue.as_deref()).await?;
                let (s2, o, c) = (s.clone(), out.clone(), cancel.clone());
                let lanes = Lanes::start(concurrency, &name, workers, move |msg: Message| {
                    let (s, out, cancel) = (s2.clone(), o.clone(), c.clone());
                    async move { settle::handle(&s, &out, &cancel, msg).await }
                });
                let cancel = cancel.clone();
                workers.spawn(format!("{name} reader"), async move {
                    while let Some(msg) = feed.next(&cancel).await {
                        let msg = convert::from_core(&msg);
                        let key = order_by.extract(&msg).map(str::to_owned);
                        lanes.send(key.as_deref(), msg).await;
                    }
                });
            }
            None => {
                for _ in 0..concurrency {
                    let mut feed = Feed::subscribe(&out, subject, queue.as_deref()).await?;
                    let (s, out, cancel) = (s.clone(), out.clone(), cancel.clone());
                    workers.spawn(name.clone(), async move {
                        loop {
                            let max = if pipeline::takes_together(&s.route) { pipeline::MAX_TOGETHER } else { 1 };
                            let msgs = feed.next_together(&cancel, max).await;
                            if msgs.is_empty() {
                                break;
                            }
                            settle::handle_together(&s, &out, &cancel, msgs).await;
                        }
                    });
                }
            }
        }
    }
    Ok(())
}

/// Settling messages that come from elsewhere than a subscription (a timer's
/// ticks) as a core route settles its own.
pub(super) struct Settler(Subscriptions);

impl Settler {
    pub(super) fn new(route: Arc<Route>, spec: CoreSpec) -> Self {
        Self(Subscriptions { route, spec })
    }

    pub(super) async fn handle(&self, out: &Outputs, cancel: &CancellationToken, msg: Message) {
        settle::handle(&self.0, out, cancel, msg).await;
    }
}

/// A queue group no other subscriber shares: the route's name and a unique token.
fn private_queue(route: &str, client: &async_nats::Client) -> String {
    let inbox = client.new_inbox();
    let token = inbox.rsplit('.').next().unwrap_or(&inbox);
    format!("_switchyard_{route}_{token}")
}
