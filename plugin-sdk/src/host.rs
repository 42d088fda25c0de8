//! The host functions as the guest sees them. On `wasm32` they are the `switchyard` imports; on
//! native targets they go to the mock host installed on the current thread (see [`crate::testing`]),
//! so a handler behaves the same under `cargo test` as in the daemon.

#[cfg(target_arch = "wasm32")]
pub(crate) use wasm::{begin_message, kv_delete, kv_get, kv_keys, kv_write, log, publish, request};

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use crate::testing::mock::{kv_delete, kv_get, kv_keys, kv_write, log, publish, request};

pub(crate) use switchyard_abi::kv::Write;

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

    /// `kv_get`: the entry, or a status code (`NOT_FOUND` among them).
    pub(crate) fn kv_get(bucket: &str, key: &str) -> Result<switchyard_abi::KvEntry, i32> {
        let ((bp, bl), (kp, kl)) = (region(bucket.as_bytes()), region(key.as_bytes()));
        // SAFETY: the regions describe live strings; the host only reads them.
        let len = unsafe { host_kv_get(bp, bl, kp, kl) };
        let bytes = take_result(len)?;
        switchyard_abi::decode(&bytes).map_err(|_| switchyard_abi::status::BAD_ENCODING)
    }

    /// `kv_put`, `kv_create` or `kv_update`: the new revision, or a status code.
    pub(crate) fn kv_write(bucket: &str, key: &str, value: &[u8], how: super::Write) -> Result<u64, i32> {
        let ((bp, bl), (kp, kl), (vp, vl)) = (region(bucket.as_bytes()), region(key.as_bytes()), region(value));
        // SAFETY: the regions describe live buffers; the host only reads them.
        let revision = unsafe {
            match how {
                super::Write::Put => host_kv_put(bp, bl, kp, kl, vp, vl),
                super::Write::Create => host_kv_create(bp, bl, kp, kl, vp, vl),
                super::Write::Update(revision) => host_kv_update(bp, bl, kp, kl, vp, vl, revision),
            }
        };
        u64::try_from(revision).map_err(|_| revision as i32)
    }

    /// `kv_delete`.
    pub(crate) fn kv_delete(bucket: &str, key: &str) -> Result<(), i32> {
        let ((bp, bl), (kp, kl)) = (region(bucket.as_bytes()), region(key.as_bytes()));
        // SAFETY: the regions describe live strings; the host only reads them.
        let code = unsafe { host_kv_delete(bp, bl, kp, kl) };
        if code < 0 { Err(code as i32) } else { Ok(()) }
    }

    /// `kv_keys`: the keys, or a status code.
    pub(crate) fn kv_keys(bucket: &str, prefix: &str) -> Result<Vec<String>, i32> {
        let ((bp, bl), (pp, pl)) = (region(bucket.as_bytes()), region(prefix.as_bytes()));
        // SAFETY: the regions describe live strings; the host only reads them.
        let len = unsafe { host_kv_keys(bp, bl, pp, pl) };
        let bytes = take_result(len)?;
        switchyard_abi::decode(&bytes).map_err(|_| switchyard_abi::status::BAD_ENCODING)
    }

    /// `request`: the reply, or a status code.
    pub(crate) fn request(request: &switchyard_abi::Request) -> Result<switchyard_abi::Reply, i32> {
        let bytes = switchyard_abi::encode(request).map_err(|_| switchyard_abi::status::BAD_ENCODING)?;
        let (ptr, len) = region(&bytes);
        // SAFETY: `ptr`/`len` describe `bytes`, alive for the whole call; the host only reads them.
        let len = unsafe { host_request(ptr, len) };
        let reply = take_result(len)?;
        switchyard_abi::decode(&reply).map_err(|_| switchyard_abi::status::BAD_ENCODING)
    }

    /// The result a call left (`len` bytes, as it returned), or its negative status.
    fn take_result(len: i64) -> Result<Vec<u8>, i32> {
        let len = usize::try_from(len).map_err(|_| len as i32)?;
        let mut bytes = vec![0u8; len];
        let (ptr, len) = region(&bytes);
        // SAFETY: `bytes` is a live, writable buffer of exactly `len` bytes for the whole call.
        let code = unsafe { host_take_result(ptr, len) };
        if code < 0 { Err(code) } else { Ok(std::mem::take(&mut bytes)) }
    }

    /// A slice as the (pointer, length) pair of wasm32's 32-bit address space.
    fn region(bytes: &[u8]) -> (i32, i32) {
        // wasm32 addresses and lengths are 32-bit; the ABI carries them as i32 bit patterns.
        (bytes.as_ptr() as usize as u32 as i32, bytes.len() as u32 as i32)
    }
}
