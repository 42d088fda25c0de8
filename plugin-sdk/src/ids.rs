//! Identifiers derived from a message's content, so a redelivered message yields the same ids.
//!
//! A plugin instance keeps no state between messages and a JetStream message may be delivered more
//! than once, so an id made from a clock or a random number would differ between deliveries and
//! defeat every downstream dedupe. Deriving the id from what identifies the input (its id, its
//! stream and sequence) makes the output of a redelivery identical to the first one.
//!
//! The hash is 128-bit FNV-1a: stable across platforms and versions, not cryptographic. Do not use
//! these ids where an adversary must not be able to predict or collide them.

/// 128 bits derived from `parts`. Each part is length-prefixed, so `["ab", "c"]` and
/// `["a", "bc"]` differ.
pub fn hash128<S: AsRef<[u8]>>(parts: &[S]) -> u128 {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut hash = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for &byte in bytes {
            hash ^= u128::from(byte);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    for part in parts {
        let part = part.as_ref();
        feed(&(part.len() as u64).to_le_bytes());
        feed(part);
    }
    hash
}

/// `prefix` followed by 24 hex digits (96 bits) derived from `parts`: `derive("cmd_", &[event_id,
/// "welcome-email"])` is the same on every delivery of that event.
pub fn derive<S: AsRef<[u8]>>(prefix: &str, parts: &[S]) -> String {
    format!("{prefix}{:024x}", hash128(parts) >> 32)
}

/// A UUID (RFC 9562 version 8, "custom") derived from `parts`, in the usual
/// `xxxxxxxx-xxxx-8xxx-yxxx-xxxxxxxxxxxx` form, for schemas that require uuids.
pub fn derive_uuid<S: AsRef<[u8]>>(parts: &[S]) -> String {
    let mut bits = hash128(parts);
    // Version 8 in bits 48..52 and variant 0b10 in bits 64..66, counted from the left.
    bits = (bits & !(0xf << 76)) | (0x8 << 76);
    bits = (bits & !(0b11 << 62)) | (0b10 << 62);
    let hex = format!("{bits:032x}");
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// Whether `text` is a UUID in its canonical hyphenated form (any version, either case).
pub fn is_uuid(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation_is_stable_and_separates_parts() {
        // Pinned: a change here would change every id plugins have already published.
        assert_eq!(derive("cmd_", &["evt_1", "welcome"]), derive("cmd_", &["evt_1", "welcome"]));
        assert_eq!(derive("x_", &["a"]), "x_426d56754e03ad9adb79f299");
        assert_ne!(derive("", &["ab", "c"]), derive("", &["a", "bc"]));
        assert_ne!(derive("", &["a"]), derive("", &["b"]));
        assert_eq!(derive("evt_", &["a"]).len(), 4 + 24);
    }

    #[test]
    fn derived_uuids_are_version_8_and_valid() {
        let id = derive_uuid(&["match", "3f1c"]);
        assert!(is_uuid(&id), "{id}");
        assert_eq!(&id[14..15], "8", "version nibble: {id}");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "variant: {id}");
        assert_eq!(id, derive_uuid(&["match", "3f1c"]));
        assert_ne!(id, derive_uuid(&["match", "3f1d"]));
    }

    #[test]
    fn uuid_shape() {
        assert!(is_uuid("123e4567-e89b-12d3-a456-426614174000"));
        assert!(is_uuid("123E4567-E89B-12D3-A456-426614174000"));
        for bad in ["", "123e4567e89b12d3a456426614174000", "123e4567-e89b-12d3-a456-42661417400g", "123e4567-e89b-12d3-a456_426614174000"]
        {
            assert!(!is_uuid(bad), "{bad}");
        }
    }
}
