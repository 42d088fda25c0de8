//! Printing messages for people: text when the bytes are UTF-8, hex otherwise.

use switchyard_abi::Header;

pub(super) fn payload(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => {
            let hex: String = bytes.iter().take(64).map(|b| format!("{b:02x}")).collect();
            let more = if bytes.len() > 64 { "…" } else { "" };
            format!("<{} bytes: {hex}{more}>", bytes.len())
        }
    }
}

pub(super) fn headers(headers: &[Header]) -> String {
    headers.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}
