//! The raw half of the wasm exports: guest memory the host reads and writes, the buffer that
//! holds the last result, the stored configuration and the panic hook.
//!
//! Ownership (also in `docs/ABI.md`): the host gets buffers from `switchyard_alloc`, writes into
//! them, and passes them to `switchyard_handle`/`switchyard_init`, which take ownership and free
//! them. The result buffer stays the guest's; it is valid until the next call into the module and
//! is released on the next `handle`/`init`, so the host never frees it.

// This module is where the guest touches memory by address: that is what an allocator export
// and a pointer/length calling convention are. Each `unsafe` block states what makes it sound.
#![allow(unsafe_code)]

use std::alloc::Layout;
use std::cell::RefCell;
use std::sync::Once;

use switchyard_abi::{ABI_VERSION, Message, Outcome, level};

use super::{Configured, Settings, configure, dispatch, run};
use crate::{Context, PluginConfig};

thread_local! {
    /// The bytes returned by the last `handle` or `init`; replaced (and so freed) by the next.
    static RESULT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// What the last successful `init` accepted: the table and the settings parsed from it.
    static CONFIGURED: RefCell<Configured> = RefCell::new(Configured::default());
}

static PANIC_HOOK: Once = Once::new();

/// `switchyard_abi_version`.
pub fn abi_version() -> i32 {
    // ABI_VERSION is a small constant; the export's type is i32.
    ABI_VERSION as i32
}

/// `switchyard_abi_features`: the SDK decodes messages with serde, which reads
/// positional messages as well as named ones, and handles batches.
pub fn abi_features() -> i32 {
    use switchyard_abi::features::{BATCH, POSITIONAL_MESSAGE};
    // A small constant bit set; the export's type is i32.
    (POSITIONAL_MESSAGE | BATCH) as i32
}

/// `switchyard_alloc`: `len` bytes, or 0 when `len` is negative or memory is exhausted. Zero
/// bytes give a non-null dangling pointer that `free` ignores.
pub fn alloc(len: i32) -> i32 {
    let Some(layout) = layout(len) else {
        return if len == 0 { DANGLING } else { 0 };
    };
    // SAFETY: `layout` has a non-zero size (checked by `layout`).
    let ptr = unsafe { std::alloc::alloc(layout) };
    address(ptr)
}

/// `switchyard_free`.
///
/// # Safety
/// `ptr` must come from `alloc(len)` with the same `len` and not have been freed or handed to
/// `handle`/`init`. Freeing the current result buffer by mistake is tolerated (ignored).
pub unsafe fn free(ptr: i32, len: i32) {
    let Some(layout) = layout(len) else { return };
    if ptr == 0 || ptr == DANGLING || is_result_buffer(ptr) {
        return;
    }
    // SAFETY: the caller guarantees `ptr` came from `alloc` with this layout.
    unsafe { std::alloc::dealloc(pointer(ptr), layout) }
}

/// `switchyard_handle`: decode, run `handler`, encode; returns the packed result location.
///
/// # Safety
/// `ptr`/`len` must be a buffer from `alloc(len)` holding the encoded message; ownership passes
/// to this function.
pub unsafe fn handle<S: Settings>(ptr: i32, len: i32, handler: impl FnOnce(&Message, &mut Context, &S) -> Outcome) -> i64 {
    install_panic_hook();
    // SAFETY: forwarded from this function's contract.
    let input = unsafe { Input::take(ptr, len) };
    let configured = CONFIGURED.with(|c| c.borrow().clone());
    let dispatched = dispatch(input.bytes(), &configured, handler);
    drop(input);
    set_result(dispatched.bytes)
}

/// `switchyard_handle_batch`: [`handle`] for each message of the array, in order, each announced
/// to the host first (`begin_message`) so its publishes and log lines are counted as its own.
/// Returns the array of their outcomes; `0` (no result) when the input is not an array of
/// messages, which makes the host hand them over one by one instead.
///
/// # Safety
/// As for [`handle`]: `ptr`/`len` is an `alloc` buffer holding the encoded array; ownership
/// passes to this function.
pub unsafe fn handle_batch<S: Settings>(ptr: i32, len: i32, mut handler: impl FnMut(&Message, &mut Context, &S) -> Outcome) -> i64 {
    use switchyard_abi::batch;
    install_panic_hook();
    // SAFETY: forwarded from this function's contract.
    let input = unsafe { Input::take(ptr, len) };
    let mut rest = input.bytes();
    let Ok(count) = batch::read_len(&mut rest) else { return 0 };
    let configured = CONFIGURED.with(|c| c.borrow().clone());
    let mut outcomes = Vec::with_capacity(16 * count.min(1024));
    batch::write_len(&mut outcomes, count);
    for index in 0..count {
        // An item that does not decode leaves the rest unreadable: no result.
        let Ok(msg) = batch::read_item::<Message>(&mut rest) else { return 0 };
        if crate::host::begin_message(index as i32) != switchyard_abi::status::OK {
            return 0;
        }
        outcomes.extend(run(&msg, &configured, &mut handler).bytes);
    }
    drop(input);
    set_result(outcomes)
}

/// `switchyard_init`: 0 when `hook` accepts the configuration (returning the settings parsed from
/// it), else the packed location of the UTF-8 refusal.
///
/// # Safety
/// As for [`handle`]: `ptr`/`len` is an `alloc` buffer holding the MessagePack config map (or
/// `len` 0 for none); ownership passes to this function.
pub unsafe fn init<S: Settings>(ptr: i32, len: i32, hook: fn(&PluginConfig) -> Result<S, String>) -> i64 {
    install_panic_hook();
    // SAFETY: forwarded from this function's contract.
    let input = unsafe { Input::take(ptr, len) };
    let result = configure(input.bytes(), hook);
    drop(input);
    match result {
        Ok(configured) => {
            CONFIGURED.with(|c| *c.borrow_mut() = configured);
            0
        }
        Err(refusal) => set_result(refusal.into_bytes()),
    }
}

/// Keep `bytes` as the current result (freeing the previous one) and return its packed location.
fn set_result(bytes: Vec<u8>) -> i64 {
    RESULT.with(|r| {
        let mut result = r.borrow_mut();
        *result = bytes;
        let packed = switchyard_abi::pack(address(result.as_ptr()) as u32, result.len() as u32);
        packed as i64
    })
}

fn is_result_buffer(ptr: i32) -> bool {
    RESULT.with(|r| r.try_borrow().is_ok_and(|result| !result.is_empty() && address(result.as_ptr()) == ptr))
}

/// A buffer the host filled, owned from here on and freed on drop.
struct Input {
    ptr: i32,
    len: i32,
}

impl Input {
    /// # Safety
    /// `ptr`/`len` must be a live buffer from `alloc(len)` that nobody else will free.
    unsafe fn take(ptr: i32, len: i32) -> Self {
        Self { ptr, len }
    }

    fn bytes(&self) -> &[u8] {
        if self.ptr == 0 || self.len <= 0 {
            return &[];
        }
        // SAFETY: `take`'s contract: `len` initialised bytes at `ptr`, alive until `self` drops.
        unsafe { std::slice::from_raw_parts(pointer(self.ptr), self.len as u32 as usize) }
    }
}

impl Drop for Input {
    fn drop(&mut self) {
        // SAFETY: `take`'s contract: the buffer came from `alloc(len)` and is ours to free.
        unsafe { free(self.ptr, self.len) }
    }
}

/// The address `alloc(0)` returns: non-null, never dereferenced, never freed.
const DANGLING: i32 = 1;

fn layout(len: i32) -> Option<Layout> {
    let len = usize::try_from(len).ok().filter(|&len| len > 0)?;
    Layout::from_size_align(len, 1).ok()
}

/// wasm32 addresses are 32-bit; the ABI carries them as i32 bit patterns.
fn address(ptr: *const u8) -> i32 {
    ptr as usize as u32 as i32
}

fn pointer(address: i32) -> *mut u8 {
    address as u32 as usize as *mut u8
}

/// Before the trap that follows a panic, tell the host why: the default hook's stderr output
/// may be captured, but the `log` import reaches the host's logs with the plugin's name on it.
fn install_panic_hook() {
    PANIC_HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(no message)");
            let line = match info.location() {
                Some(at) => format!("plugin panicked at {}:{}:{}: {message}", at.file(), at.line(), at.column()),
                None => format!("plugin panicked: {message}"),
            };
            let _status = crate::host::log(level::ERROR, &line);
        }));
    });
}
