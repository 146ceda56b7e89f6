//! Binary key/value headers carried by a frame (VSTP-style).
//!
//! Block layout, repeated until the declared block length is used up:
//! `key_len u8 (1..=255) | key | value_len u8 (0..=255) | value`.
//! Keys and values are opaque bytes; duplicate keys are kept in order.

use alloc::vec::Vec;
use bytes::Bytes;

use crate::error::{Result, WireError};

/// Longest key or value: one length byte.
pub const MAX_HEADER_FIELD: usize = 255;

/// A validated header block borrowed from a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeadersRef<'a> {
    block: &'a [u8],
    count: usize,
}

impl<'a> HeadersRef<'a> {
    /// No headers.
    pub const EMPTY: Self = Self {
        block: &[],
        count: 0,
    };

    /// Validates a raw block (without its length prefix).
    pub(crate) fn parse(block: &'a [u8], max_headers: usize) -> Result<Self> {
        let mut rest = block;
        let mut count = 0usize;
        while !rest.is_empty() {
            if count == max_headers {
                return Err(WireError::TooManyHeaders { max: max_headers });
            }
            let (_, _, tail) = split_entry(rest)?;
            rest = tail;
            count += 1;
        }
        Ok(Self { block, count })
    }

    /// Number of entries.
    pub const fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no entries.
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The encoded block (without the length prefix).
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.block
    }

    /// The first value stored under `key`.
    pub fn get(&self, key: &[u8]) -> Option<&'a [u8]> {
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Entries in wire order.
    pub fn iter(&self) -> HeaderIter<'a> {
        HeaderIter { rest: self.block }
    }
}

impl<'a> IntoIterator for HeadersRef<'a> {
    type Item = (&'a [u8], &'a [u8]);
    type IntoIter = HeaderIter<'a>;
    fn into_iter(self) -> HeaderIter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &HeadersRef<'a> {
    type Item = (&'a [u8], &'a [u8]);
    type IntoIter = HeaderIter<'a>;
    fn into_iter(self) -> HeaderIter<'a> {
        self.iter()
    }
}

/// Iterator over `(key, value)` pairs of a validated block.
#[derive(Debug, Clone)]
pub struct HeaderIter<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        // The block was validated when the HeadersRef was made, so this only
        // stops at the end.
        let (k, v, tail) = split_entry(self.rest).ok()?;
        self.rest = tail;
        Some((k, v))
    }
}

fn split_entry(src: &[u8]) -> Result<(&[u8], &[u8], &[u8])> {
    let (&klen, rest) = src.split_first().ok_or(WireError::MalformedHeaderBlock)?;
    if klen == 0 {
        return Err(WireError::EmptyHeaderKey);
    }
    let (key, rest) = rest
        .split_at_checked(usize::from(klen))
        .ok_or(WireError::MalformedHeaderBlock)?;
    let (&vlen, rest) = rest.split_first().ok_or(WireError::MalformedHeaderBlock)?;
    let (value, rest) = rest
        .split_at_checked(usize::from(vlen))
        .ok_or(WireError::MalformedHeaderBlock)?;
    Ok((key, value, rest))
}

/// An owned, validated header block.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Headers {
    block: Bytes,
    count: usize,
}

impl Headers {
    /// No headers.
    pub const fn new() -> Self {
        Self {
            block: Bytes::new(),
            count: 0,
        }
    }

    /// Starts building a block.
    pub fn builder() -> HeadersBuilder {
        HeadersBuilder::default()
    }

    /// Borrowed view.
    pub fn as_ref(&self) -> HeadersRef<'_> {
        HeadersRef {
            block: &self.block,
            count: self.count,
        }
    }

    /// Number of entries.
    pub const fn len(&self) -> usize {
        self.count
    }

    /// Whether there are no entries.
    pub const fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The first value stored under `key`.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.as_ref().get(key)
    }

    /// Shares a validated block out of a received buffer.
    pub(crate) fn from_parts(block: Bytes, count: usize) -> Self {
        Self { block, count }
    }
}

/// Builds a [`Headers`] block, checking each field as it is added.
#[derive(Debug, Clone, Default)]
pub struct HeadersBuilder {
    block: Vec<u8>,
    count: usize,
}

impl HeadersBuilder {
    /// Appends one entry.
    ///
    /// # Errors
    /// [`WireError::EmptyHeaderKey`], or [`WireError::HeaderTooLong`] for a key
    /// or value over 255 bytes.
    pub fn insert(mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<Self> {
        let (key, value) = (key.as_ref(), value.as_ref());
        if key.is_empty() {
            return Err(WireError::EmptyHeaderKey);
        }
        let klen = u8::try_from(key.len()).map_err(|_| WireError::HeaderTooLong {
            what: "key",
            len: key.len(),
        })?;
        let vlen = u8::try_from(value.len()).map_err(|_| WireError::HeaderTooLong {
            what: "value",
            len: value.len(),
        })?;
        self.block.reserve(2 + key.len() + value.len());
        self.block.push(klen);
        self.block.extend_from_slice(key);
        self.block.push(vlen);
        self.block.extend_from_slice(value);
        self.count += 1;
        Ok(self)
    }

    /// Finishes the block.
    pub fn build(self) -> Headers {
        Headers {
            block: Bytes::from(self.block),
            count: self.count,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_and_read_back() {
        let h = Headers::builder()
            .insert("content-type", "application/json")
            .unwrap()
            .insert("k", "")
            .unwrap()
            .build();
        assert_eq!(h.len(), 2);
        assert_eq!(h.get(b"content-type"), Some(&b"application/json"[..]));
        assert_eq!(h.get(b"k"), Some(&b""[..]));
        assert_eq!(h.get(b"missing"), None);
        let parsed = HeadersRef::parse(h.as_ref().as_bytes(), 8).unwrap();
        assert_eq!(parsed, h.as_ref());
    }

    #[test]
    fn field_limits() {
        assert_eq!(
            Headers::builder().insert("", "v").unwrap_err(),
            WireError::EmptyHeaderKey
        );
        let long = [b'a'; 256];
        assert_eq!(
            Headers::builder().insert(long, "v").unwrap_err(),
            WireError::HeaderTooLong {
                what: "key",
                len: 256
            }
        );
        assert!(Headers::builder()
            .insert(&long[..255], &long[..255])
            .is_ok());
    }

    #[test]
    fn malformed_blocks() {
        assert_eq!(
            HeadersRef::parse(&[3, b'a'], 8),
            Err(WireError::MalformedHeaderBlock)
        );
        assert_eq!(
            HeadersRef::parse(&[1, b'a'], 8),
            Err(WireError::MalformedHeaderBlock)
        );
        assert_eq!(
            HeadersRef::parse(&[0, 0], 8),
            Err(WireError::EmptyHeaderKey)
        );
        assert_eq!(
            HeadersRef::parse(&[1, b'a', 0, 1, b'b', 0], 1),
            Err(WireError::TooManyHeaders { max: 1 })
        );
    }
}
