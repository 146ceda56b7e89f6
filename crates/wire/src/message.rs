//! The built-in application message vocabulary, kept from `network-protocol`
//! so that its users can move over without rewriting their handlers.
//!
//! A `Message` travels as the payload of a `DATA` frame, encoded with postcard
//! (variant index as a varint, then the fields).

use alloc::string::String;
use alloc::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::error::{Result, WireError};

/// An application message.
///
/// Variants are encoded by position; new variants are only ever appended, and
/// a receiver maps any variant index it does not know to [`Message::Unknown`]
/// instead of failing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Message {
    /// Liveness check; answered with `Pong`.
    Ping,
    /// Answer to `Ping`.
    Pong,
    /// Text to be echoed back.
    Echo(String),
    /// Opaque bytes.
    Data(Vec<u8>),
    /// An application command routed by name.
    Custom {
        /// The opcode the dispatcher routes on.
        command: String,
        /// Command-specific bytes (often a postcard-encoded request type).
        payload: Vec<u8>,
    },
    /// The peer is going away.
    Disconnect,
    /// A message of a kind this build does not know.
    Unknown,
}

/// Postcard variant index of `Unknown`; indices above it are unknown too.
const UNKNOWN_INDEX: u64 = 6;

impl Message {
    /// The dispatcher opcode: `"PING"`, `"PONG"`, `"ECHO"`, `"DATA"`, the
    /// command of a `Custom` message, `"DISCONNECT"` or `"UNKNOWN"`.
    pub fn opcode(&self) -> &str {
        match self {
            Self::Ping => "PING",
            Self::Pong => "PONG",
            Self::Echo(_) => "ECHO",
            Self::Data(_) => "DATA",
            Self::Custom { command, .. } => command,
            Self::Disconnect => "DISCONNECT",
            Self::Unknown => "UNKNOWN",
        }
    }

    /// Appends the encoded message to `dst`.
    ///
    /// # Errors
    /// Only if postcard fails to serialize, which it does not for these types;
    /// reported rather than unwrapped all the same.
    pub fn encode(&self, dst: &mut Vec<u8>) -> Result<()> {
        let taken = core::mem::take(dst);
        match postcard::to_extend(self, taken) {
            Ok(v) => {
                *dst = v;
                Ok(())
            }
            Err(e) => Err(WireError::MessageEncode(e)),
        }
    }

    /// Exact length of the encoding, computed without encoding.
    ///
    /// # Errors
    /// [`WireError::MessageEncode`] if postcard refuses the value.
    pub fn encoded_len(&self) -> Result<usize> {
        postcard::serialize_with_flavor::<Self, postcard::ser_flavors::Size, usize>(
            self,
            postcard::ser_flavors::Size::default(),
        )
        .map_err(WireError::MessageEncode)
    }

    /// Encodes into a new vector.
    ///
    /// # Errors
    /// As [`Message::encode`].
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.encode(&mut v)?;
        Ok(v)
    }

    /// Decodes a message that fills `src` exactly.
    ///
    /// # Errors
    /// [`WireError::MessageDecode`] for malformed input,
    /// [`WireError::TrailingBytes`] if bytes are left over.
    pub fn decode(src: &[u8]) -> Result<Self> {
        if let Ok((index, _)) = crate::varint::decode(src) {
            if index >= UNKNOWN_INDEX {
                return Ok(Self::Unknown);
            }
        }
        let (msg, rest) =
            postcard::take_from_bytes::<Self>(src).map_err(WireError::MessageDecode)?;
        if !rest.is_empty() {
            return Err(WireError::TrailingBytes { len: rest.len() });
        }
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    #[test]
    fn roundtrip_and_opcodes() {
        let all = [
            (Message::Ping, "PING"),
            (Message::Pong, "PONG"),
            (Message::Echo("hi".to_string()), "ECHO"),
            (Message::Data(vec![1, 2, 3]), "DATA"),
            (
                Message::Custom {
                    command: "ADD".to_string(),
                    payload: vec![2, 3],
                },
                "ADD",
            ),
            (Message::Disconnect, "DISCONNECT"),
            (Message::Unknown, "UNKNOWN"),
        ];
        for (m, op) in all {
            assert_eq!(m.opcode(), op);
            assert_eq!(m.encoded_len().unwrap(), m.to_vec().unwrap().len());
            assert_eq!(Message::decode(&m.to_vec().unwrap()), Ok(m));
        }
    }

    #[test]
    fn known_bytes() {
        assert_eq!(
            Message::Echo("hi".to_string()).to_vec().unwrap(),
            [2, 2, b'h', b'i']
        );
        assert_eq!(Message::Ping.to_vec().unwrap(), [0]);
    }

    #[test]
    fn unknown_variants_and_garbage() {
        assert_eq!(Message::decode(&[42, 1, 2, 3]), Ok(Message::Unknown));
        assert!(matches!(
            Message::decode(&[2, 5, b'a']),
            Err(WireError::MessageDecode(_))
        ));
        assert_eq!(
            Message::decode(&[0, 0]),
            Err(WireError::TrailingBytes { len: 1 })
        );
        // A length far beyond the input is refused, not allocated.
        assert!(Message::decode(&[3, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
    }
}
