//! The framing of `switchyard_handle_batch`: its input is one MessagePack array
//! of messages, its result one array of outcomes, each item encoded as it
//! would be alone. Items are read one after the other, so a reader can take a
//! shortcut for the common ones (an encoded `Ack`) and stop at the first bad one.

use rmp_serde::decode::Error;
use serde::de::DeserializeOwned;

use crate::{MAX_DEPTH, bounded};

/// Write the header of an array of `len` items.
pub fn write_len(buf: &mut Vec<u8>, len: usize) {
    match len {
        0..=15 => buf.push(0x90 | len as u8),
        16..=0xffff => {
            buf.push(0xdc);
            buf.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            buf.push(0xdd);
            buf.extend_from_slice(&(len.min(u32::MAX as usize) as u32).to_be_bytes());
        }
    }
}

/// Read the header of the array `bytes` starts with, moving past it: the
/// number of items, which the bytes that follow could hold.
pub fn read_len(bytes: &mut &[u8]) -> Result<usize, Error> {
    bounded::check_claims(bytes)?;
    let (len, head) = match *bytes {
        [marker @ 0x90..=0x9f, ..] => (usize::from(marker & 0x0f), 1),
        [0xdc, a, b, ..] => (usize::from(u16::from_be_bytes([*a, *b])), 3),
        [0xdd, a, b, c, d, ..] => (u32::from_be_bytes([*a, *b, *c, *d]) as usize, 5),
        _ => return Err(Error::Syntax("not an array".into())),
    };
    *bytes = &bytes[head..];
    Ok(len)
}

/// Decode the item `bytes` starts with, moving past it.
pub fn read_item<T: DeserializeOwned>(bytes: &mut &[u8]) -> Result<T, Error> {
    let mut deserializer = rmp_serde::Deserializer::new(bytes);
    deserializer.set_max_depth(MAX_DEPTH);
    T::deserialize(&mut deserializer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Message, Outcome};

    #[test]
    fn items_written_one_by_one_read_back_as_an_array() {
        for len in [0, 1, 15, 16, 300, 70_000] {
            let mut buf = Vec::new();
            write_len(&mut buf, len);
            buf.extend(std::iter::repeat_n(0xc0, len));
            let expected: Vec<()> = vec![(); len];
            assert_eq!(crate::decode::<Vec<()>>(&buf).expect("an array"), expected, "{len}");
            let mut rest = &buf[..];
            assert_eq!(read_len(&mut rest).expect("a header"), len);
            assert_eq!(rest.len(), len);
        }
    }

    #[test]
    fn messages_and_outcomes_are_read_in_order() {
        let msgs = [Message { subject: "a".into(), ..Message::default() }, Message { payload: vec![1, 2], ..Message::default() }];
        let mut buf = Vec::new();
        write_len(&mut buf, msgs.len());
        for msg in &msgs {
            crate::encode_message_into(&mut buf, msg, true).expect("encodes");
        }
        let mut rest = &buf[..];
        assert_eq!(read_len(&mut rest).expect("header"), 2);
        assert_eq!(read_item::<Message>(&mut rest).expect("first"), msgs[0]);
        assert_eq!(read_item::<Message>(&mut rest).expect("second"), msgs[1]);
        assert!(rest.is_empty());
        let outcomes = [Outcome::Ack, Outcome::Reject { reason: "no".into() }];
        let mut buf = Vec::new();
        write_len(&mut buf, 2);
        outcomes.iter().for_each(|o| buf.extend(crate::encode(o).expect("encodes")));
        let mut rest = &buf[..];
        assert_eq!(read_len(&mut rest).expect("header"), 2);
        assert_eq!(read_item::<Outcome>(&mut rest).expect("ack"), Outcome::Ack);
        assert_eq!(read_item::<Outcome>(&mut rest).expect("reject"), outcomes[1]);
    }

    #[test]
    fn a_header_claiming_more_than_follows_is_refused() {
        let mut rest: &[u8] = &[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0];
        assert!(read_len(&mut rest).is_err());
        let mut rest: &[u8] = &[0x81, 0xc0, 0xc0];
        assert!(read_len(&mut rest).is_err(), "a map is not a batch");
    }
}
