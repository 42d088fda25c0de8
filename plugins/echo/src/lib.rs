//! `echo`: the request/reply reference plugin.
//!
//! A request (a message with a reply subject) is answered with its own payload, prefixed by the
//! optional config string `prefix`, and header `echoed-by: echo`. Any other message is logged at
//! INFO as `echo: <subject> <n> bytes` and acknowledged.
//!
//! ```toml
//! [plugins.echo.config]
//! prefix = "echo: "   # optional; a non-string value is refused at load time
//! ```

use switchyard_sdk::prelude::*;

/// Refuse a `prefix` that is not a string, so a typo shows at load time, not per message.
#[init]
fn init(config: &PluginConfig) -> Result<(), ConfigError> {
    config.get::<String>("prefix").map(|_| ())
}

#[handler]
fn handle(msg: &Message, ctx: &mut Context) -> Outcome {
    if msg.reply.is_none() {
        ctx.info(format!("echo: {} {} bytes", msg.subject, msg.payload.len()));
        return Outcome::Ack;
    }
    // `init` has checked the type; an unreadable prefix can only mean no init ran: use none.
    let prefix = ctx.config().get::<String>("prefix").ok().flatten().unwrap_or_default();
    let mut payload = Vec::with_capacity(prefix.len() + msg.payload.len());
    payload.extend_from_slice(prefix.as_bytes());
    payload.extend_from_slice(&msg.payload);
    Outcome::reply(payload).with_header("echoed-by", "echo")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use switchyard_sdk::testing::MockHost;

    #[test]
    fn requests_are_echoed_with_a_header() {
        let msg = Message::builder("echo.hi").text("hello").reply("_INBOX.1").build();
        let handled = MockHost::new().call(handle, &msg);
        assert_eq!(handled.outcome, Outcome::Reply { payload: b"hello".to_vec(), headers: vec![("echoed-by".into(), "echo".into())] });
        assert!(handled.publishes.is_empty());
    }

    #[test]
    fn prefix_from_config() {
        let host = MockHost::new().config(json!({"prefix": ">> "})).init(init).expect("accepted");
        let handled = host.call(handle, &Message::builder("echo.hi").text("hello").reply("_INBOX.1").build());
        match handled.outcome {
            Outcome::Reply { payload, .. } => assert_eq!(payload, b">> hello"),
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn non_string_prefix_is_refused() {
        let refused = MockHost::new().config(json!({"prefix": 3})).init(init).expect_err("refused");
        assert!(refused.starts_with("config key `prefix` is invalid"), "{refused}");
    }

    #[test]
    fn messages_without_reply_are_logged_and_acked() {
        let handled = MockHost::new().call(handle, &Message::builder("echo.note").text("12345").build());
        assert_eq!(handled.outcome, Outcome::Ack);
        assert_eq!(handled.logs, [(Level::Info, "echo: echo.note 5 bytes".to_owned())]);
    }
}
