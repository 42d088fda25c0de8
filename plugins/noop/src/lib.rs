//! `noop`: the benchmark plugin. It acknowledges every message and answers a request with its
//! own payload, so a benchmark measures the host around the handler, not the handler.

use switchyard_sdk::prelude::*;

#[handler]
fn handle(msg: &Message, _ctx: &mut Context) -> Outcome {
    match msg.reply {
        Some(_) => Outcome::reply(msg.payload.clone()),
        None => Outcome::Ack,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::testing::MockHost;

    #[test]
    fn messages_are_acked() {
        let handled = MockHost::new().call(handle, &Message::builder("bench.x").text("abc").build());
        assert_eq!(handled.outcome, Outcome::Ack);
        assert!(handled.publishes.is_empty() && handled.logs.is_empty());
    }

    #[test]
    fn requests_get_their_payload_back() {
        let msg = Message::builder("bench.x").text("abc").reply("_INBOX.1").build();
        assert_eq!(MockHost::new().call(handle, &msg).outcome, Outcome::reply("abc"));
    }
}
