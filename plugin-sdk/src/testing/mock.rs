//! The native stand-in for the host imports: a per-thread record of what the handler published
//! and logged, with the daemon's rules (subject validity, allow-list, headers, size, limits, no publish in
//! init).

use std::cell::RefCell;

use switchyard_abi::{Publish, status};

use crate::Level;
use switchyard_abi::{header, subject};

thread_local! {
    static MOCK: RefCell<Option<State>> = const { RefCell::new(None) };
}

/// What one mock call allows and what it recorded.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) allow: Vec<String>,
    pub(crate) publish_limit: Option<usize>,
    /// The NATS server's `max_payload` the daemon would check publishes against.
    pub(crate) max_payload: Option<usize>,
    /// False during init: the daemon has no message to attach publishes to then.
    pub(crate) can_publish: bool,
    pub(crate) publishes: Vec<Publish>,
    pub(crate) logs: Vec<(Level, String)>,
}

/// Installs a [`State`] on this thread for the duration of one call; restores whatever was there
/// before when finished or dropped, also when the handler panics.
pub(crate) struct Installed {
    /// `Some(previous)` until the previous state has been put back.
    restore: Option<Option<State>>,
}

impl Installed {
    pub(crate) fn new(state: State) -> Self {
        let previous = MOCK.with(|m| m.borrow_mut().replace(state));
        Self { restore: Some(previous) }
    }

    /// Uninstall and return what the call recorded.
    pub(crate) fn finish(mut self) -> State {
        let previous = self.restore.take().flatten();
        MOCK.with(|m| std::mem::replace(&mut *m.borrow_mut(), previous)).unwrap_or_default()
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        if let Some(previous) = self.restore.take() {
            MOCK.with(|m| *m.borrow_mut() = previous);
        }
    }
}

/// The native `publish` import.
pub(crate) fn publish(message: &Publish) -> i32 {
    MOCK.with(|m| {
        let mut mock = m.borrow_mut();
        let Some(state) = mock.as_mut() else {
            return status::UNAVAILABLE;
        };
        if !state.can_publish {
            return status::UNAVAILABLE;
        }
        if !subject::is_valid_subject(&message.subject, false) {
            return status::INVALID_SUBJECT;
        }
        if !state.allow.iter().any(|pattern| subject::matches(pattern, &message.subject)) {
            return status::NOT_ALLOWED;
        }
        if header::problem(&message.headers).is_some() {
            return status::INVALID_HEADER;
        }
        if state.max_payload.is_some_and(|max| header::wire_size(&message.headers, message.payload.len()) > max) {
            return status::TOO_LARGE;
        }
        if state.publish_limit.is_some_and(|limit| state.publishes.len() >= limit) {
            return status::LIMIT_EXCEEDED;
        }
        state.publishes.push(message.clone());
        status::OK
    })
}

/// The native `log` import. Outside a mock call the line goes to stderr, so a handler called
/// directly from a test still shows its logs.
pub(crate) fn log(level: i32, line: &str) -> i32 {
    let Some(level) = Level::from_abi(level) else {
        return status::BAD_ARGUMENT;
    };
    MOCK.with(|m| match m.borrow_mut().as_mut() {
        Some(state) => state.logs.push((level, line.to_owned())),
        None => eprintln!("[plugin {level}] {line}"),
    });
    status::OK
}
