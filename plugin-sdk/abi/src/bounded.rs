//! What hostile MessagePack may cost to decode.
//!
//! serde reserves room for the items of an array or map from the length its
//! header claims (up to 1 MiB per container) before it reads any item. Five
//! bytes of array header claiming four billion items, nested a thousand deep,
//! would have a decoder reserve a gigabyte for five kilobytes of input.

use rmp_serde::decode::Error;

/// Refuse `bytes` when an array or map in its first value claims more items
/// than the bytes after its header could hold (every item takes at least one
/// byte), so that what serde reserves is bounded by the input's length.
/// Anything else wrong (truncation, a reserved marker, a type) is left to the
/// decoder, which names it better. One pass over the headers; no allocation.
pub(crate) fn check_claims(bytes: &[u8]) -> Result<(), Error> {
    // Values still to read: the first one, then the items of each container
    // met on the way (their order does not matter for counting).
    let mut pending: u64 = 1;
    let mut at = 0;
    while pending > 0 {
        let Some(&marker) = bytes.get(at) else { return Ok(()) };
        let Some(Header { head, data, items }) = header(marker, &bytes[at + 1..]) else { return Ok(()) };
        let Some(next) = (at as u64).checked_add(1 + head + data).filter(|&next| next <= bytes.len() as u64) else {
            return Ok(());
        };
        let start = at;
        at = next as usize;
        pending = pending - 1 + items;
        let left = (bytes.len() - at) as u64;
        if pending > left {
            let what = if matches!(marker, 0x80..=0x8f | 0xde | 0xdf) { "a map" } else { "an array" };
            return Err(Error::Syntax(format!("{what} at byte {start} claims {items} items; only {left} bytes follow")));
        }
    }
    Ok(())
}

/// One value's header: the bytes of its length field, of its data, and the
/// items that follow it (twice the entries of a map).
struct Header {
    head: u64,
    data: u64,
    items: u64,
}

/// The header that `marker` starts, `rest` being the bytes after it; `None`
/// when its length field is cut short or the marker is the reserved `0xc1`.
fn header(marker: u8, rest: &[u8]) -> Option<Header> {
    let length = |size: usize| -> Option<u64> { rest.get(..size).map(|field| field.iter().fold(0, |n, &byte| n << 8 | u64::from(byte))) };
    let (head, data, items) = match marker {
        0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => (0, 0, 0),
        0x80..=0x8f => (0, 0, 2 * u64::from(marker & 0x0f)),
        0x90..=0x9f => (0, 0, u64::from(marker & 0x0f)),
        0xa0..=0xbf => (0, u64::from(marker & 0x1f), 0),
        // bin and str, with an 8, 16 or 32-bit length
        0xc4 | 0xd9 => (1, length(1)?, 0),
        0xc5 | 0xda => (2, length(2)?, 0),
        0xc6 | 0xdb => (4, length(4)?, 0),
        // ext: a length, then a type byte
        0xc7 => (1, length(1)? + 1, 0),
        0xc8 => (2, length(2)? + 1, 0),
        0xc9 => (4, length(4)? + 1, 0),
        // numbers: float 32 and 64, uint and int 8 to 64
        0xca => (0, 4, 0),
        0xcb => (0, 8, 0),
        0xcc | 0xd0 => (0, 1, 0),
        0xcd | 0xd1 => (0, 2, 0),
        0xce | 0xd2 => (0, 4, 0),
        0xcf | 0xd3 => (0, 8, 0),
        // fixext 1, 2, 4, 8, 16: a type byte and the data
        0xd4 => (0, 2, 0),
        0xd5 => (0, 3, 0),
        0xd6 => (0, 5, 0),
        0xd7 => (0, 9, 0),
        0xd8 => (0, 17, 0),
        0xdc => (2, 0, length(2)?),
        0xdd => (4, 0, length(4)?),
        0xde => (2, 0, 2 * length(2)?),
        0xdf => (4, 0, 2 * length(4)?),
        0xc1 => return None,
    };
    Some(Header { head, data, items })
}

#[cfg(test)]
mod tests {
    use super::check_claims;

    #[test]
    fn claims_within_the_input_pass() {
        // {"kind":"reply","headers":[["k","v"]]}, then trailing bytes (the decoder ignores them).
        let ok = b"\x82\xa4kind\xa5reply\xa7headers\x91\x92\xa1k\xa1v\xff\xff";
        assert!(check_claims(ok).is_ok());
        // A 16-bit array of three nils, a map32 of one entry, a bin8 and an ext8.
        assert!(check_claims(b"\xdc\x00\x03\xc0\xc0\xc0").is_ok());
        assert!(check_claims(b"\xdf\x00\x00\x00\x01\xc4\x01x\xc7\x01\x05y").is_ok());
        // Truncated or reserved: left to the decoder.
        for cut in [&b""[..], b"\xdd\x00", b"\xc4\x05ab", b"\xc1", b"\x92\xc0\xc4"] {
            assert!(check_claims(cut).is_ok(), "{cut:02x?}");
        }
    }

    #[test]
    fn claims_beyond_the_input_are_refused() {
        let err = check_claims(b"\x81\xa1x\xdd\xff\xff\xff\xff\xc0").expect_err("four billion items in one byte");
        assert_eq!(err.to_string(), "an array at byte 3 claims 4294967295 items; only 1 bytes follow");
        let err = check_claims(b"\xdf\x00\x00\x00\x02\xc0\xc0\xc0").expect_err("two entries are four items");
        assert_eq!(err.to_string(), "a map at byte 0 claims 4 items; only 3 bytes follow");
        // Items still owed by outer containers count too.
        assert!(check_claims(b"\x92\x92\xc0\xc0").is_err());
        assert!(check_claims(b"\x92\xc0").is_err(), "two items, one byte");
    }
}
