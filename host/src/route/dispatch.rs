//! Dispatch of one message: call the plugin and turn what happened into a verdict
//! the driver carries out. Plugin failures (trap, timeout, memory, fuel, garbage)
//! become retries, as the delivery contract says. Also the check both drivers make
//! before carrying out a Done verdict: would NATS take this message at all?

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_abi::{Header, Message, Outcome, Publish, header};

use super::Route;
use crate::plugin::{Call, Handled, Observed, Pick, Plugin, Role, printable};
use crate::telemetry::trace::MessageTrace;
use crate::telemetry::{self, Metrics};

/// What the driver must do with the message.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Success: send the buffered publishes, then the reply if any, then ack.
    Done { reply: Option<Reply>, publishes: Vec<Publish> },
    /// Try again; `delay` overrides the route's backoff schedule.
    Retry { delay: Option<Duration>, reason: String },
    /// Dead-letter now.
    Reject { reason: String },
}

#[derive(Debug)]
pub(crate) struct Reply {
    pub payload: Vec<u8>,
    pub headers: Vec<Header>,
}

impl Reply {
    /// What a request gets when the plugin acks it without a reply.
    pub(crate) fn empty() -> Self {
        Reply { payload: Vec::new(), headers: Vec::new() }
    }
}

/// What one call of the route's plugin came to.
pub(crate) struct Dispatched {
    pub plugin: Arc<Plugin>,
    pub verdict: Verdict,
    /// What the version that ran was: the pipeline decides what that means.
    pub role: Role,
    /// What it did, as a shadow compares it (only when `observe` was asked).
    pub observed: Option<Observed>,
}

/// Run the route's plugin on `msg`, on a version `pick` allows.
pub(crate) async fn run(
    route: &Route,
    msg: &Message,
    trace: &MessageTrace,
    metrics: &Metrics,
    pick: Pick<'_>,
    observe: bool,
) -> Dispatched {
    let calling = Instant::now();
    let call = route.pool.call_traced(msg, Some(trace.trace_id), pick).await;
    route.metrics.handler_took(calling.elapsed());
    judge(route, msg, trace, metrics, call, observe)
}

/// Run the route's plugin once on all of `msgs` (each in its span), when its
/// pool can (`Pool::call_batch`): what each call came to, in order.
pub(crate) async fn run_batch(route: &Route, msgs: &[&Message], traces: &[&MessageTrace], metrics: &Metrics) -> Option<Vec<Dispatched>> {
    let trace_ids: Vec<_> = traces.iter().map(|trace| Some(trace.trace_id)).collect();
    let result = route.pool.call_batch(msgs, &trace_ids).await?;
    route.metrics.batch_calls.inc();
    let (calls, took) = match result {
        Ok(done) => done,
        Err(err) => {
            let plugin = route.pool.plugin();
            tracing::debug!(route = %route.name, plugin = %plugin.spec.name, "a batch call failed ({err}); its messages are called one by one");
            return None;
        }
    };
    route.metrics.batched_messages.inc_by(msgs.len() as u64);
    let each = took / msgs.len() as u32;
    let judged = calls.into_iter().zip(msgs.iter().zip(traces)).map(|(call, (msg, trace))| {
        route.metrics.handler_took(each);
        judge(route, msg, trace, metrics, call, false)
    });
    Some(judged.collect())
}

/// What a call's result means for the message.
fn judge(route: &Route, msg: &Message, trace: &MessageTrace, metrics: &Metrics, call: Call, observe: bool) -> Dispatched {
    let Call { plugin, result, role } = call;
    let observed = observe.then(|| Observed::of(&result));
    let verdict = match result {
        Ok(Handled { outcome, publishes }) => match outcome {
            Outcome::Ack => Verdict::Done { reply: None, publishes },
            Outcome::Reply { payload, headers } => Verdict::Done { reply: Some(Reply { payload, headers }), publishes },
            // Reasons go into logs and headers: escaped and cut here, once.
            Outcome::Retry { delay_ms, reason } => {
                Verdict::Retry { delay: delay_ms.map(Duration::from_millis), reason: printable(&reason) }
            }
            Outcome::Reject { reason } => Verdict::Reject { reason: printable(&reason) },
        },
        Err(err) => {
            route.metrics.count(telemetry::Outcome::PluginError);
            metrics.trap(&plugin.spec.name, err.kind());
            let reason = printable(&format!("plugin {err}"));
            message_event!(warn, route, msg, trace, plugin = %plugin.spec.name, version = %plugin.hash, "{reason}; the instance was discarded");
            Verdict::Retry { delay: None, reason }
        }
    };
    Dispatched { plugin, verdict, role, observed }
}

/// Why NATS would refuse a message with these headers and a payload of
/// `payload_len` bytes on a server whose `max_payload` is `max_payload` (0:
/// unknown), or `None` when it would take it. The plugin's publishes were
/// checked when it made them; this catches its reply, and a limit that changed
/// since (a reconnect to another server).
pub(crate) fn unsendable(headers: &[Header], payload_len: usize, max_payload: usize) -> Option<String> {
    if let Some(problem) = header::problem(headers) {
        return Some(problem);
    }
    let size = header::wire_size(headers, payload_len);
    (max_payload > 0 && size > max_payload)
        .then(|| format!("{size} bytes (headers and payload) exceed the server's max_payload of {max_payload}"))
}

#[cfg(test)]
mod tests {
    use super::unsendable;

    fn headers(pairs: &[(&str, &str)]) -> Vec<switchyard_abi::Header> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn what_nats_would_refuse_is_named() {
        assert_eq!(unsendable(&headers(&[("k", "v")]), 82, 100), None);
        assert_eq!(
            unsendable(&headers(&[("k", "v")]), 83, 100).as_deref(),
            Some("101 bytes (headers and payload) exceed the server's max_payload of 100")
        );
        assert_eq!(unsendable(&[], 100, 100), None, "a plain PUB counts the payload alone");
        assert_eq!(unsendable(&[], 1 << 30, 0), None, "an unknown limit is not checked");
        let bad = unsendable(&headers(&[("k", "a\r\nPUB evil 0")]), 1, 100).expect("refused");
        assert!(bad.starts_with("invalid value for header `k`"), "{bad}");
        let bad = unsendable(&headers(&[("bad name", "v")]), 1, 100).expect("refused");
        assert!(bad.starts_with("invalid header name \"bad name\""), "{bad}");
    }
}
