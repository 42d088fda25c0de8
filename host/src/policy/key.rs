//! Per-message keys for rate limits and ordering: a subject token or a header.

use switchyard_abi::Message;

use crate::config::KeySource;

impl KeySource {
    /// The key of `msg`, or `None` when the message has no such token or header
    /// (those messages share one unnamed key).
    pub fn extract<'a>(&self, msg: &'a Message) -> Option<&'a str> {
        match self {
            KeySource::SubjectToken(n) => msg.subject.split('.').nth(n.checked_sub(1)?),
            KeySource::Header(name) => msg.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_count_from_one_and_headers_ignore_case() {
        let msg = Message { subject: "orders.eu.created".into(), headers: vec![("X-Tenant".into(), "acme".into())], ..Message::default() };
        assert_eq!(KeySource::SubjectToken(2).extract(&msg), Some("eu"));
        assert_eq!(KeySource::SubjectToken(4).extract(&msg), None);
        assert_eq!(KeySource::SubjectToken(0).extract(&msg), None);
        assert_eq!(KeySource::Header("x-tenant".into()).extract(&msg), Some("acme"));
        assert_eq!(KeySource::Header("missing".into()).extract(&msg), None);
    }
}
