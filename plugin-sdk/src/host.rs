//! The host functions as the guest sees them. On `wasm32` they are the `switchyard` imports; on
//! native targets they go to the mock host installed on the current thread (see [`crate::testing`]),
//! so a handler behaves the same under `cargo test` as in the daemon.

#[cfg(target_arch = "wasm32")]
pub(crate) use wasm::{begin_message, log, publish};

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use crate::testing::mock::{log, publish};

#[cfg(target_arch = "wasm32")]
// Declaring and calling foreign functions is `unsafe`; these are the whole host surface.
#[allow(unsafe_code)]
mod wasm {
    use switchyard_abi::Publish;

    // `extern` declarations of `host_publish` and `host_log`, generated from the ABI's import
    // table: an attribute takes only a literal, which a constant cannot be, but a macro can write.
    switchyard_sdk_macros::__host_imports!();

    /// Buffer one publish with the host; returns a `switchyard_abi::status` code.
    pub(crate) fn publish(message: &Publish) -> i32 {
        let Ok(bytes) = switchyard_abi::encode(message) else {
            return switchyard_abi::status::BAD_ENCODING;
        };
        let (ptr, len) = region(&bytes);
        // SAFETY: `ptr`/`len` describe `bytes`, alive for the whole call; the host only reads them.
        unsafe { host_publish(ptr, len) }
    }

    /// Send one log line to the host; returns a `switchyard_abi::status` code.
    pub(crate) fn log(level: i32, line: &str) -> i32 {
        let (ptr, len) = region(line.as_bytes());
        // SAFETY: `ptr`/`len` describe `line`, alive for the whole call; the host only reads it.
        unsafe { host_log(level, ptr, len) }
    }

    /// Tell the host that message `index` of the batch being handled begins.
    pub(crate) fn begin_message(index: i32) -> i32 {
        // SAFETY: takes and returns plain integers.
        unsafe { host_begin_message(index) }
    }

    /// A slice as the (pointer, length) pair of wasm32's 32-bit address space.
    fn region(bytes: &[u8]) -> (i32, i32) {
        // wasm32 addresses and lengths are 32-bit; the ABI carries them as i32 bit patterns.
        (bytes.as_ptr() as usize as u32 as i32, bytes.len() as u32 as i32)
    }
}
