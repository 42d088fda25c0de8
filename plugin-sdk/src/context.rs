//! [`Context`]: what a handler can do besides returning an outcome — publish, log, read config.

use std::rc::Rc;

use serde::Serialize;
use switchyard_abi::{Header, Publish, status};

use crate::{Level, PluginConfig};

/// Why the host refused a publish. The variants mirror the negative `switchyard_abi::status`
/// codes of the `publish` import.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    #[error("subject `{subject}` is not on the publish allow-list")]
    NotAllowed { subject: String },
    #[error("publish limit exceeded for this message (at subject `{subject}`)")]
    LimitExceeded { subject: String },
    #[error("invalid publish subject `{subject}`")]
    InvalidSubject { subject: String },
    #[error("publish is not available here (only while handling a message)")]
    Unavailable,
    /// Headers and payload together are larger than the NATS server's `max_payload`: no server
    /// would take the message, so the host refused it rather than fail after an `Ack`.
    #[error("publish to `{subject}` is larger than the server's max_payload")]
    TooLarge { subject: String },
    /// A header name or value NATS cannot carry (names: printable ASCII without `:`; values: no
    /// CR, LF or NUL). `problem` names the header when the SDK could tell which one.
    #[error("publish to `{subject}` has a header nats cannot carry: {problem}")]
    InvalidHeader { subject: String, problem: String },
    /// The host could not read the request (out of bounds, bad encoding): an SDK or host bug.
    #[error("host refused the publish to `{subject}`: {}", status::describe(*code))]
    Host { code: i32, subject: String },
    #[error("publish payload does not encode: {0}")]
    Encode(String),
}

impl PublishError {
    /// The error for a non-zero status code returned by the `publish` import.
    pub fn from_status(code: i32, subject: &str) -> Self {
        let subject = subject.to_owned();
        match code {
            status::NOT_ALLOWED => Self::NotAllowed { subject },
            status::LIMIT_EXCEEDED => Self::LimitExceeded { subject },
            status::INVALID_SUBJECT => Self::InvalidSubject { subject },
            status::UNAVAILABLE => Self::Unavailable,
            status::TOO_LARGE => Self::TooLarge { subject },
            status::INVALID_HEADER => Self::InvalidHeader { subject, problem: status::describe(code).to_owned() },
            code => Self::Host { code, subject },
        }
    }

    /// The error for a status code returned for `publish`, naming the offending header when the
    /// host refused one.
    fn refused(code: i32, publish: &Publish) -> Self {
        match (code, switchyard_abi::header::problem(&publish.headers)) {
            (status::INVALID_HEADER, Some(problem)) => Self::InvalidHeader { subject: publish.subject.clone(), problem },
            _ => Self::from_status(code, &publish.subject),
        }
    }

    /// The `switchyard_abi::status` code of this refusal (`BAD_ENCODING` for a payload that did
    /// not encode), for handlers that report or branch on it.
    pub fn status(&self) -> i32 {
        match self {
            Self::NotAllowed { .. } => status::NOT_ALLOWED,
            Self::LimitExceeded { .. } => status::LIMIT_EXCEEDED,
            Self::InvalidSubject { .. } => status::INVALID_SUBJECT,
            Self::Unavailable => status::UNAVAILABLE,
            Self::TooLarge { .. } => status::TOO_LARGE,
            Self::InvalidHeader { .. } => status::INVALID_HEADER,
            Self::Host { code, .. } => *code,
            Self::Encode(_) => status::BAD_ENCODING,
        }
    }
}

/// The handler's view of the host during one call.
///
/// Publishes are buffered by the host and sent only if the handler's outcome is `Ack` or
/// `Reply`; a `Retry`, a `Reject` or a trap drops them. So publishing first and deciding after is
/// safe: nothing escapes unless the message is done.
#[derive(Debug)]
pub struct Context {
    config: Rc<PluginConfig>,
    outcome_override: Option<Vec<u8>>,
}

impl Context {
    pub(crate) fn new(config: Rc<PluginConfig>) -> Self {
        Self { config, outcome_override: None }
    }

    /// The configuration the plugin's init accepted (empty when the route set none).
    pub fn config(&self) -> &PluginConfig {
        &self.config
    }

    /// The key-value bucket `name`, which the plugin's `kv` list in runtime.toml must name (see
    /// [`Bucket`](crate::kv::Bucket)). Fails only on a name that cannot be a bucket's.
    pub fn kv(&self, name: &str) -> Result<crate::kv::Bucket, crate::kv::KvError> {
        crate::kv::Bucket::new(name)
    }

    /// Publish `payload` to `subject` once the outcome is Ack or Reply. The subject must match the
    /// route's publish allow-list.
    pub fn publish(&mut self, subject: &str, payload: impl Into<Vec<u8>>) -> Result<(), PublishError> {
        self.send(Publish { subject: subject.to_owned(), headers: Vec::new(), payload: payload.into() })
    }

    /// Like [`Context::publish`], with headers.
    pub fn publish_with_headers<K, V>(
        &mut self,
        subject: &str,
        headers: impl IntoIterator<Item = (K, V)>,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), PublishError>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let headers: Vec<Header> = headers.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        self.send(Publish { subject: subject.to_owned(), headers, payload: payload.into() })
    }

    /// Publish `value` as JSON, with header `content-type: application/json`.
    pub fn publish_json<T: Serialize + ?Sized>(&mut self, subject: &str, value: &T) -> Result<(), PublishError> {
        let payload = serde_json::to_vec(value).map_err(|e| PublishError::Encode(e.to_string()))?;
        self.publish_with_headers(subject, [("content-type", "application/json")], payload)
    }

    /// Publish a fully built [`Publish`].
    pub fn send(&mut self, publish: Publish) -> Result<(), PublishError> {
        match crate::host::publish(&publish) {
            status::OK => Ok(()),
            code => Err(PublishError::refused(code, &publish)),
        }
    }

    /// Log one line through the host.
    pub fn log(&self, level: Level, line: impl AsRef<str>) {
        crate::log(level, line.as_ref());
    }

    pub fn error(&self, line: impl AsRef<str>) {
        self.log(Level::Error, line);
    }

    pub fn warn(&self, line: impl AsRef<str>) {
        self.log(Level::Warn, line);
    }

    pub fn info(&self, line: impl AsRef<str>) {
        self.log(Level::Info, line);
    }

    pub fn debug(&self, line: impl AsRef<str>) {
        self.log(Level::Debug, line);
    }

    pub fn trace(&self, line: impl AsRef<str>) {
        self.log(Level::Trace, line);
    }

    /// Make `switchyard_handle` return `bytes` verbatim instead of the encoded outcome.
    ///
    /// Exists only so the `faulty` test plugin can hand the host an undecodable outcome and the
    /// host's handling of that can be tested. A real plugin has no use for it.
    #[doc(hidden)]
    pub fn __override_outcome_bytes(&mut self, bytes: Vec<u8>) {
        self.outcome_override = Some(bytes);
    }

    pub(crate) fn take_outcome_override(&mut self) -> Option<Vec<u8>> {
        self.outcome_override.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_map_to_errors() {
        assert_eq!(PublishError::from_status(status::NOT_ALLOWED, "a"), PublishError::NotAllowed { subject: "a".into() });
        assert_eq!(PublishError::from_status(status::UNAVAILABLE, "a"), PublishError::Unavailable);
        let err = PublishError::from_status(status::OUT_OF_BOUNDS, "a");
        assert_eq!(err.to_string(), "host refused the publish to `a`: pointer or length out of bounds");
        assert_eq!(PublishError::from_status(status::INVALID_SUBJECT, "a.*").to_string(), "invalid publish subject `a.*`");
        assert_eq!(PublishError::from_status(status::TOO_LARGE, "a").to_string(), "publish to `a` is larger than the server's max_payload");
        assert_eq!(
            PublishError::from_status(status::INVALID_HEADER, "a").to_string(),
            "publish to `a` has a header nats cannot carry: invalid header name or value"
        );
    }

    #[test]
    fn every_error_gives_back_its_status_code() {
        for code in [
            status::NOT_ALLOWED,
            status::LIMIT_EXCEEDED,
            status::INVALID_SUBJECT,
            status::UNAVAILABLE,
            status::TOO_LARGE,
            status::INVALID_HEADER,
            status::OUT_OF_BOUNDS,
        ] {
            assert_eq!(PublishError::from_status(code, "a").status(), code);
        }
        assert_eq!(PublishError::Encode("x".into()).status(), status::BAD_ENCODING);
    }

    #[test]
    fn a_refused_header_is_named() {
        let publish = Publish { subject: "a".into(), headers: vec![("bad name".into(), "v".into())], payload: Vec::new() };
        let err = PublishError::refused(status::INVALID_HEADER, &publish);
        assert_eq!(err.status(), status::INVALID_HEADER);
        assert!(err.to_string().starts_with("publish to `a` has a header nats cannot carry: invalid header name \"bad name\""), "{err}");
    }
}
