//! `content-filter`, in Rust: the twin of `../content-filter-c/filter.c`, written with the SDK,
//! so `switchyard test` runs the same cases against both (examples/content-filter/README.md).
//!
//! Each message's payload is text. One that contains a banned word (ASCII, any case) is
//! rejected, naming the word; any other is published to `output` with the header
//! `filtered-by: content-filter`, and a request gets the same text back as its reply.

use serde::Deserialize;
use switchyard_sdk::prelude::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The subject text that passes goes to.
    pub output: String,
    /// Words that stop a message, matched in any case.
    #[serde(default)]
    pub banned: Vec<String>,
}

#[init]
fn init(settings: &Settings) -> Result<(), String> {
    if settings.output.is_empty() {
        return Err("`output` must be a subject (a non-empty string)".to_owned());
    }
    if settings.banned.iter().any(String::is_empty) {
        return Err("`banned` must hold non-empty strings".to_owned());
    }
    Ok(())
}

#[handler]
fn handle(msg: &Message, ctx: &mut Context, settings: &Settings) -> Result<Outcome, Stop> {
    if let Some(word) = banned_word(&msg.payload, &settings.banned) {
        return Err(Stop::reject(format!("contains the banned word `{}`", word.to_ascii_lowercase())));
    }
    let publish = Publish::bytes(settings.output.clone(), msg.payload.clone()).with_header("filtered-by", "content-filter");
    if ctx.send(publish).is_err() {
        ctx.warn("the host refused the publish");
        return Err(Stop::retry("the host refused the publish"));
    }
    ctx.info("passed the filter");
    Ok(match msg.reply {
        Some(_) => Outcome::reply(msg.payload.clone()),
        None => Outcome::Ack,
    })
}

/// The first banned word `text` contains, ASCII letters in any case.
fn banned_word<'a>(text: &[u8], banned: &'a [String]) -> Option<&'a str> {
    banned.iter().map(String::as_str).find(|word| text.windows(word.len()).any(|window| window.eq_ignore_ascii_case(word.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use switchyard_sdk::testing::MockHost;

    fn host() -> MockHost {
        MockHost::new().allow("content.>").config(json!({"output": "content.clean", "banned": ["spam"]})).init(init).expect("accepted")
    }

    #[test]
    fn clean_text_passes_and_a_banned_word_stops_it() {
        let handled = host().call(handle, &Message::builder("content.in").text("hello").reply("_INBOX.1").build());
        assert_eq!(handled.outcome, Outcome::reply("hello"));
        assert_eq!(handled.sent()[0].subject, "content.clean");
        let handled = host().call(handle, &Message::builder("content.in").text("Buy SPAM").build());
        assert_eq!(handled.outcome, Outcome::reject("contains the banned word `spam`"));
    }
}
