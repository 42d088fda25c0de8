//! The native stand-in for the host imports: a per-thread record of what the handler published
//! and logged, with the daemon's rules (subject validity, allow-list, headers, size, limits, no publish in
//! init).

use std::cell::RefCell;

use switchyard_abi::kv::MemoryBucket;
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
    /// The mock host's buckets, shared across its calls.
    pub(crate) buckets: Buckets,
    /// Replies by request subject: the subjects that have a responder.
    pub(crate) responders: std::rc::Rc<std::collections::BTreeMap<String, Vec<u8>>>,
}

/// The native `request` import: the reply of the subject's responder, `NO_RESPONDERS` without one.
pub(crate) fn request(request: &switchyard_abi::Request) -> Result<switchyard_abi::Reply, i32> {
    MOCK.with(|m| {
        let mock = m.borrow();
        let state = mock.as_ref().ok_or(status::UNAVAILABLE)?;
        if !subject::is_valid_subject(&request.subject, false) {
            return Err(status::INVALID_SUBJECT);
        }
        let payload = state.responders.get(&request.subject).ok_or(status::NO_RESPONDERS)?;
        Ok(switchyard_abi::Reply { headers: Vec::new(), payload: payload.clone() })
    })
}

/// In-memory key-value buckets, by name. Only buckets the test declared (`MockHost::bucket`)
/// exist, standing in for the plugin's `kv` list.
pub(crate) type Buckets = std::rc::Rc<RefCell<std::collections::BTreeMap<String, MemoryBucket>>>;

/// Run `op` on `bucket` of the installed mock.
fn with_bucket<T>(bucket: &str, op: impl FnOnce(&mut MemoryBucket) -> Result<T, i32>) -> Result<T, i32> {
    MOCK.with(|m| {
        let mock = m.borrow();
        let Some(state) = mock.as_ref() else { return Err(status::UNAVAILABLE) };
        let mut buckets = state.buckets.borrow_mut();
        op(buckets.get_mut(bucket).ok_or(status::NOT_ALLOWED)?)
    })
}

/// The native `kv_get` import.
pub(crate) fn kv_get(bucket: &str, key: &str) -> Result<switchyard_abi::KvEntry, i32> {
    with_bucket(bucket, |b| b.get(key))
}

/// The native `kv_put`, `kv_create` and `kv_update` imports.
pub(crate) fn kv_write(bucket: &str, key: &str, value: &[u8], how: crate::host::Write) -> Result<u64, i32> {
    with_bucket(bucket, |b| b.write(key, value, how))
}

/// The native `kv_delete` import.
pub(crate) fn kv_delete(bucket: &str, key: &str) -> Result<(), i32> {
    with_bucket(bucket, |b| b.delete(key))
}

/// The native `kv_keys` import.
pub(crate) fn kv_keys(bucket: &str, prefix: &str) -> Result<Vec<String>, i32> {
    with_bucket(bucket, |b| Ok(b.keys(prefix)))
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
