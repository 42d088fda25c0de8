//! Dispatch of one message: call the plugin and turn what happened into a verdict
//! the driver carries out. Plugin failures (trap, timeout, memory, fuel, garbage)
//! become retries, as the delivery contract says.

use std::sync::Arc;
use std::time::Duration;

use switchyard_abi::{Header, Message, Outcome, Publish};

use super::Route;
use crate::plugin::{Call, Handled, Plugin};
use crate::telemetry::Metrics;

/// What the driver must do with the message.
#[derive(Debug)]
pub enum Verdict {
    /// Success: send the buffered publishes, then the reply if any, then ack.
    Done { reply: Option<Reply>, publishes: Vec<Publish> },
    /// Try again; `delay` overrides the route's backoff schedule.
    Retry { delay: Option<Duration>, reason: String },
    /// Dead-letter now.
    Reject { reason: String },
}

#[derive(Debug)]
pub struct Reply {
    pub payload: Vec<u8>,
    pub headers: Vec<Header>,
}

/// Run the route's plugin on `msg`.
pub async fn run(route: &Route, msg: &Message, metrics: &Metrics) -> (Arc<Plugin>, Verdict) {
    let Call { plugin, result, on_probation } = route.pool.call(msg).await;
    Metrics::bump(&metrics.handled);
    let verdict = match result {
        Ok(Handled { outcome, publishes }) => match outcome {
            Outcome::Ack => Verdict::Done { reply: None, publishes },
            Outcome::Reply { payload, headers } => Verdict::Done { reply: Some(Reply { payload, headers }), publishes },
            Outcome::Retry { delay_ms, reason } => Verdict::Retry { delay: delay_ms.map(Duration::from_millis), reason },
            // A version on probation may be the one at fault: retry the message
            // (on whichever version then serves) rather than dead-letter it.
            Outcome::Reject { reason } if on_probation => {
                Verdict::Retry { delay: None, reason: format!("rejected by version {} on probation: {reason}", plugin.hash) }
            }
            Outcome::Reject { reason } => Verdict::Reject { reason },
        },
        Err(err) => {
            Metrics::bump(&metrics.plugin_failures);
            tracing::warn!(
                route = %route.name, plugin = %plugin.spec.name, version = %plugin.hash, subject = %msg.subject,
                attempt = msg.attempt, "plugin {err}; the instance was discarded"
            );
            Verdict::Retry { delay: None, reason: format!("plugin {err}") }
        }
    };
    (plugin, verdict)
}
