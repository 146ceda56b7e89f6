//! Body encodings of typed requests and answers (the "easy" API): a typed
//! route and a typed call agree on one [`Codec`], and every body is parsed
//! exactly once, straight from the received bytes into the target type
//! (vstp parses each JSON message twice: once to a generic value, once to
//! the type).

use serde::de::DeserializeOwned;
use serde::Serialize;

/// How a typed body is encoded inside a `Custom` message's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Codec {
    /// postcard: compact binary, the default (a 16-byte struct of two
    /// `i64`s is 2–20 bytes; JSON spends ~25 on it).
    #[default]
    Postcard,
    /// JSON (serde_json): readable, and what peers in other languages
    /// produce most easily.
    Json,
}

impl Codec {
    /// The codec's name, as in errors and logs (`postcard`, `json`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::Postcard => "postcard",
            Self::Json => "json",
        }
    }

    /// Encodes `value`.
    ///
    /// # Errors
    /// [`CodecError`] naming the type, if serde refuses the value (a map
    /// with non-string keys in JSON, a sequence of unknown length in
    /// postcard, a failing `Serialize` impl).
    pub fn encode<T: Serialize + ?Sized>(self, value: &T) -> Result<Vec<u8>, CodecError> {
        let encoded = match self {
            Self::Postcard => postcard::to_allocvec(value).map_err(|e| e.to_string()),
            Self::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
        };
        encoded.map_err(self.failed::<T>(Direction::Encode))
    }

    /// Decodes `bytes` as a `T`, in one pass.
    ///
    /// # Errors
    /// [`CodecError`] naming the type, if the bytes are not a `T` in this
    /// codec (wrong type, truncated, bytes left after the value).
    pub fn decode<T: DeserializeOwned>(self, bytes: &[u8]) -> Result<T, CodecError> {
        let decoded = match self {
            // postcard's `from_bytes` ignores what follows the value: a
            // body of another type could then pass as this one.
            Self::Postcard => match postcard::take_from_bytes(bytes) {
                Ok((value, [])) => Ok(value),
                Ok((_, rest)) => Err(format!("{} trailing bytes", rest.len())),
                Err(e) => Err(e.to_string()),
            },
            Self::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        };
        decoded.map_err(self.failed::<T>(Direction::Decode))
    }
}

impl Codec {
    /// Makes serde's explanation a [`CodecError`] about `T`.
    fn failed<T: ?Sized>(self, direction: Direction) -> impl FnOnce(String) -> CodecError {
        move |reason| CodecError {
            codec: self,
            direction,
            type_name: std::any::type_name::<T>(),
            reason,
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which way a [`CodecError`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Direction {
    /// A value to bytes.
    Encode,
    /// Bytes to a value.
    Decode,
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Encode => "encode",
            Self::Decode => "decode",
        })
    }
}

/// A typed body that did not encode or decode: says which type, in which
/// codec, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {direction} {type_name} as {codec}: {reason}")]
#[non_exhaustive]
pub struct CodecError {
    /// The codec used.
    pub codec: Codec,
    /// Encoding or decoding.
    pub direction: Direction,
    /// The Rust type (`std::any::type_name`).
    pub type_name: &'static str,
    /// serde's explanation.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Point {
        x: i32,
        y: i32,
    }

    #[test]
    fn each_codec_round_trips_and_names_the_type_it_could_not_decode() {
        for codec in [Codec::Postcard, Codec::Json] {
            let p = Point { x: -3, y: 70_000 };
            let bytes = codec.encode(&p).unwrap();
            assert_eq!(codec.decode::<Point>(&bytes).unwrap(), p);
            let err = codec.decode::<Vec<String>>(&bytes[..1]).unwrap_err();
            assert_eq!(err.codec, codec);
            assert_eq!(err.direction, Direction::Decode);
            assert!(
                err.type_name.contains("Vec<alloc::string::String>"),
                "{err}"
            );
            assert!(
                err.to_string().starts_with(&format!(
                    "cannot decode alloc::vec::Vec<alloc::string::String> as {codec}: "
                )),
                "{err}"
            );
        }
        assert_eq!(
            Codec::Json.encode(&Point { x: 1, y: 2 }).unwrap(),
            br#"{"x":1,"y":2}"#
        );
    }

    #[test]
    fn json_refuses_trailing_bytes() {
        let err = Codec::Json
            .decode::<Point>(br#"{"x":1,"y":2} 7"#)
            .unwrap_err();
        assert!(err.reason.contains("trailing"), "{err}");
    }

    #[test]
    fn postcard_refuses_trailing_bytes() {
        let mut bytes = Codec::Postcard.encode(&Point { x: 1, y: 2 }).unwrap();
        bytes.push(0);
        let err = Codec::Postcard.decode::<Point>(&bytes).unwrap_err();
        assert_eq!(err.reason, "1 trailing bytes");
    }
}
