//! `onboarding`: handles `user.created`. The side effects the seed lists — send a welcome email,
//! create the profile — become two commands on the WORK stream (`work.email.welcome`,
//! `work.profile.create`) for the workers that own them.
//!
//! Idempotent on redelivery: each command's id is derived from the event id, and its timestamp is
//! the time the event was stored, so a redelivered event produces byte-identical commands; the host
//! publishes them with `Nats-Msg-Id = USERS:<seq>:<n>`, which the WORK stream dedupes.
//!
//! ```toml
//! [plugins.onboarding.config]
//! from = "welcome@example.com"   # sender of the welcome email
//! template = "welcome-v1"        # email template id
//! ```

use serde::{Deserialize, Serialize};
use serde_json::json;
use switchyard_sdk::prelude::*;

/// Events this handler reads: `user.created` at schema 1.x, with `evt_` ids.
const ACCEPTS: Expect = Expect::event().schema_major(1).prefixed_ids();
const COMMAND_SCHEMA: SchemaVersion = SchemaVersion::new(1, 0, 0);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    from: String,
    template: String,
}

#[derive(Debug, Deserialize)]
struct UserCreated {
    user_id: String,
    email: String,
    full_name: String,
}

impl Validate for UserCreated {
    fn validate(&self, v: &mut Validator) {
        v.uuid("user_id", &self.user_id).required("full_name", &self.full_name).max_chars("full_name", &self.full_name, 200);
        v.check("email", looks_like_email(&self.email), || format!("must be an email address, found `{}`", self.email));
    }
}

#[derive(Debug, Serialize)]
struct SendEmail<'a> {
    user_id: &'a str,
    to: &'a str,
    from: &'a str,
    template: &'a str,
    variables: EmailVariables<'a>,
}

#[derive(Debug, Serialize)]
struct EmailVariables<'a> {
    full_name: &'a str,
}

#[derive(Debug, Serialize)]
struct CreateProfile<'a> {
    user_id: &'a str,
    display_name: &'a str,
}

#[init]
fn init(settings: &Settings) -> Result<(), String> {
    if !looks_like_email(&settings.from) {
        return Err(format!("`from` must be an email address, found `{}`", settings.from));
    }
    Ok(())
}

#[handler]
fn handle(msg: &Message, ctx: &mut Context, settings: &Settings) -> Result<Outcome, Stop> {
    let event = ACCEPTS.message_valid::<UserCreated>(msg)?;
    if msg.is_redelivery() {
        ctx.info(format!("{} delivered again (attempt {}): same commands, deduped by the stream", event.id, msg.attempt));
    }
    let user = &event.data;
    let issued = Timestamp::of_delivery(msg).unwrap_or(event.timestamp);
    let source = source(msg);

    let email = SendEmail {
        user_id: &user.user_id,
        to: &user.email,
        from: &settings.from,
        template: &settings.template,
        variables: EmailVariables { full_name: &user.full_name },
    };
    let email = event
        .follow_up(EnvelopeKind::Command, "welcome-email", issued, email)
        .with_schema_version(COMMAND_SCHEMA)
        .with_meta("source", source.clone());
    ctx.publish_json("work.email.welcome", &email).or_reject_with("publishing the welcome email")?;

    let profile = CreateProfile { user_id: &user.user_id, display_name: &user.full_name };
    let profile = event
        .follow_up(EnvelopeKind::Command, "create-profile", issued, profile)
        .with_schema_version(COMMAND_SCHEMA)
        .with_meta("source", source);
    ctx.publish_json("work.profile.create", &profile).or_reject_with("publishing the profile command")?;

    ctx.info(format!("user {} created: welcome email {} and profile {} requested", user.user_id, email.id, profile.id));
    Ok(Outcome::Ack)
}

/// Where the event was read from, so a worker can trace a command back to its stream message.
fn source(msg: &Message) -> serde_json::Value {
    match &msg.delivery {
        Some(d) => json!({"subject": msg.subject, "stream": d.stream, "sequence": d.stream_sequence}),
        None => json!({"subject": msg.subject}),
    }
}

/// Deliberately loose: one `@` with text on both sides and a dot in the domain, no spaces. The
/// mail worker does the real check when it sends.
fn looks_like_email(text: &str) -> bool {
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains('@')
                && !text.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use switchyard_sdk::testing::MockHost;

    const USER: &str = "5f0c6d1e-8a43-4d4e-9b6a-3c1f2e7d9a10";

    fn host() -> MockHost {
        MockHost::new()
            .allow("work.email.welcome")
            .allow("work.profile.create")
            .config(json!({"from": "welcome@example.com", "template": "welcome-v1"}))
            .init(init)
            .expect("config accepted")
    }

    fn created(data: Value) -> Message {
        Message::builder("user.created")
            .json(&json!({"type": "event", "id": "evt_1", "timestamp": "2024-03-20T10:00:00Z", "data": data,
                          "metadata": {"schema_version": "1.0.0", "correlation_id": "corr_signup_1"}}))
            .jetstream("USERS", 7)
            .build()
    }

    fn body(publish: &Publish) -> Value {
        serde_json::from_slice(&publish.payload).expect("json")
    }

    #[test]
    fn a_new_user_gets_a_welcome_email_and_a_profile() {
        let msg = created(json!({"user_id": USER, "email": "ada@example.com", "full_name": "Ada Lovelace"}));
        let handled = host().call(handle, &msg);
        assert_eq!(handled.outcome, Outcome::Ack);
        let [email, profile] = handled.sent() else { panic!("two commands expected: {:?}", handled.publishes) };
        assert_eq!((email.subject.as_str(), profile.subject.as_str()), ("work.email.welcome", "work.profile.create"));
        let email = body(email);
        assert_eq!(email["type"], "command");
        assert_eq!(
            email["data"],
            json!({"user_id": USER, "to": "ada@example.com", "from": "welcome@example.com", "template": "welcome-v1",
                   "variables": {"full_name": "Ada Lovelace"}})
        );
        assert_eq!(email["metadata"]["correlation_id"], "corr_signup_1");
        assert_eq!(email["metadata"]["causation_id"], "evt_1");
        assert_eq!(email["metadata"]["source"], json!({"subject": "user.created", "stream": "USERS", "sequence": 7}));
        assert_eq!(body(profile)["data"], json!({"user_id": USER, "display_name": "Ada Lovelace"}));
    }

    #[test]
    fn a_redelivery_produces_identical_commands() {
        let msg = created(json!({"user_id": USER, "email": "ada@example.com", "full_name": "Ada"}));
        let first = host().call(handle, &msg);
        let again = host().call(handle, &Message { attempt: 2, ..msg });
        assert_eq!(first.sent(), again.sent(), "same ids, same bytes");
        assert!(again.logged(Level::Info, "evt_1 delivered again (attempt 2)"));
    }

    #[test]
    fn invalid_events_are_rejected_with_every_problem() {
        let msg = created(json!({"user_id": "42", "email": "not-an-email", "full_name": ""}));
        let handled = host().call(handle, &msg);
        assert_eq!(
            handled.outcome,
            Outcome::reject(
                "message validation failed: `data.user_id` must be a uuid, found `42`; `data.full_name` is required; \
                 `data.email` must be an email address, found `not-an-email`"
            )
        );
        assert!(handled.sent().is_empty());
        let wrong_kind = Message::builder("user.created")
            .json(&json!({"type": "command", "id": "cmd_1", "timestamp": "2024-03-20T10:00:00Z", "data": {}}))
            .build();
        assert_eq!(host().call(handle, &wrong_kind).outcome, Outcome::reject("expected an event envelope, found a command"));
    }

    #[test]
    fn init_checks_the_settings() {
        let refused = MockHost::new().config(json!({"from": "nobody", "template": "t"})).init(init).expect_err("bad from");
        assert_eq!(refused, "`from` must be an email address, found `nobody`");
        let refused = MockHost::new().config(json!({"from": "a@b.c"})).init(init).expect_err("missing template");
        assert_eq!(refused, "config does not fit: missing field `template`");
    }

    #[test]
    fn email_shapes() {
        for ok in ["a@b.co", "first.last+tag@mail.example.org"] {
            assert!(looks_like_email(ok), "{ok}");
        }
        for bad in ["", "a", "@b.co", "a@b", "a@.b", "a@b.", "a b@c.d", "a@b@c.d"] {
            assert!(!looks_like_email(bad), "{bad}");
        }
    }
}
