//! Unsigned LEB128 varints, as used for stream ids and lengths.
//!
//! Only the shortest encoding of a value is accepted, so every value has exactly
//! one byte form and decode-then-encode is byte-identical.

use bytes::BufMut;

use crate::error::{Result, WireError};

/// The longest encoding of a `u64`: ten groups of seven bits.
pub const MAX_VARINT_LEN: usize = 10;

/// Number of bytes `value` takes when encoded.
#[inline]
pub const fn encoded_len(value: u64) -> usize {
    // One byte per started group of 7 significant bits, at least one byte.
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Appends `value` to `dst`.
#[inline]
pub fn encode<B: BufMut + ?Sized>(mut value: u64, dst: &mut B) {
    while value >= 0x80 {
        // Truncation to the low seven bits is the point of the cast.
        #[allow(clippy::cast_possible_truncation)]
        dst.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    #[allow(clippy::cast_possible_truncation)]
    dst.put_u8(value as u8);
}

/// Decodes a varint from the front of `src`, returning the value and the number
/// of bytes it took.
///
/// # Errors
/// [`WireError::Truncated`] if `src` ends inside the varint,
/// [`WireError::VarintOverflow`] above `u64::MAX`, [`WireError::VarintOverlong`]
/// for a non-minimal encoding.
#[inline]
pub fn decode(src: &[u8]) -> Result<(u64, usize)> {
    // Fast path: the common one-byte case (ids and lengths below 128).
    if let Some(&b) = src.first() {
        if b < 0x80 {
            return Ok((u64::from(b), 1));
        }
    }
    let mut value: u64 = 0;
    for (i, &byte) in src.iter().enumerate().take(MAX_VARINT_LEN) {
        let group = u64::from(byte & 0x7f);
        if i == MAX_VARINT_LEN - 1 && byte > 0x01 {
            return Err(WireError::VarintOverflow);
        }
        value |= group << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return Err(WireError::VarintOverlong);
            }
            return Ok((value, i + 1));
        }
    }
    if src.len() >= MAX_VARINT_LEN {
        Err(WireError::VarintOverflow)
    } else {
        Err(WireError::Truncated { needed: 1 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn enc(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        encode(v, &mut out);
        out
    }

    #[test]
    fn known_encodings() {
        assert_eq!(enc(0), [0x00]);
        assert_eq!(enc(1), [0x01]);
        assert_eq!(enc(127), [0x7f]);
        assert_eq!(enc(128), [0x80, 0x01]);
        assert_eq!(enc(300), [0xac, 0x02]);
        assert_eq!(enc(16_384), [0x80, 0x80, 0x01]);
        assert_eq!(
            enc(u64::MAX),
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
    }

    #[test]
    fn lengths_match_encoding() {
        for shift in 0..64 {
            for v in [1u64 << shift, (1u64 << shift) - 1, (1u64 << shift) + 1] {
                assert_eq!(encoded_len(v), enc(v).len(), "value {v}");
                assert_eq!(decode(&enc(v)), Ok((v, enc(v).len())));
            }
        }
    }

    #[test]
    fn rejects_overlong() {
        assert_eq!(decode(&[0x80, 0x00]), Err(WireError::VarintOverlong));
        assert_eq!(decode(&[0xff, 0x80, 0x00]), Err(WireError::VarintOverlong));
    }

    #[test]
    fn rejects_overflow() {
        let mut eleven = [0xffu8; 11];
        eleven[10] = 0x01;
        assert_eq!(decode(&eleven), Err(WireError::VarintOverflow));
        let tenth_too_big = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(decode(&tenth_too_big), Err(WireError::VarintOverflow));
    }

    #[test]
    fn truncated() {
        assert_eq!(decode(&[]), Err(WireError::Truncated { needed: 1 }));
        assert_eq!(decode(&[0x80]), Err(WireError::Truncated { needed: 1 }));
    }
}
