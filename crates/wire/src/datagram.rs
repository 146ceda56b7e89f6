//! The datagram envelope used by the UDP transport.
//!
//! ```text
//! 0   1  type     0x01 HANDSHAKE | 0x02 RECORD (sealed) | 0x03 PLAIN (CRC-32 trailer) | 0x04 COOKIE
//! 1   1  flags    bit 0 FRAGMENT, bit 1 KEY_PHASE (RECORD only); bits 2-7 reserved (zero)
//! 2   4  session  receiver's session index, u32 BE
//! 6   8  counter  record counter, u64 BE (the AEAD nonce for RECORD)
//! 14  8  fragment present iff FRAGMENT: message id u32 BE, index u16 BE, count u16 BE
//! ..     body
//! ..  4  crc32    PLAIN only: CRC-32 (IEEE) of every byte before it, u32 BE
//! ```
//! For `RECORD` datagrams the envelope bytes are the AEAD associated data, so
//! every field is authenticated; `PLAIN` datagrams only get the CRC, which
//! catches corruption, not tampering.

use bytes::BufMut;

use crate::error::{Result, WireError};

/// Envelope length without fragment fields.
pub const ENVELOPE_LEN: usize = 14;
/// Length of the fragment fields.
pub const FRAGMENT_FIELDS_LEN: usize = 8;
/// Length of the CRC trailer of a `PLAIN` datagram.
pub const CRC_LEN: usize = 4;
/// Default largest datagram we send: fits the IPv6 minimum MTU with room to spare.
pub const DEFAULT_MAX_DATAGRAM: usize = 1200;

const FLAG_FRAGMENT: u8 = 0x01;
const FLAG_KEY_PHASE: u8 = 0x02;

/// What a datagram carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DatagramType {
    /// A handshake message.
    Handshake,
    /// A sealed session record.
    Record,
    /// An unencrypted body protected by a CRC-32 trailer.
    Plain,
    /// A cookie reply to a handshake initiation (the responder is under load).
    Cookie,
}

impl DatagramType {
    /// The type byte.
    pub const fn code(self) -> u8 {
        match self {
            Self::Handshake => 0x01,
            Self::Record => 0x02,
            Self::Plain => 0x03,
            Self::Cookie => 0x04,
        }
    }

    /// Parses the type byte.
    ///
    /// # Errors
    /// [`WireError::UnknownDatagramType`].
    pub const fn from_code(code: u8) -> Result<Self> {
        match code {
            0x01 => Ok(Self::Handshake),
            0x02 => Ok(Self::Record),
            0x03 => Ok(Self::Plain),
            0x04 => Ok(Self::Cookie),
            _ => Err(WireError::UnknownDatagramType(code)),
        }
    }
}

/// Which piece of a fragmented message a datagram holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentInfo {
    /// Identifies the message among the sender's messages in this session.
    pub message_id: u32,
    /// Zero-based index of this piece.
    pub index: u16,
    /// Number of pieces (at least 2; a message that fits one datagram is not
    /// fragmented).
    pub count: u16,
}

impl FragmentInfo {
    /// Checks `2 <= count` and `index < count`.
    ///
    /// # Errors
    /// [`WireError::BadFragment`].
    pub const fn validate(self) -> Result<Self> {
        if self.count < 2 || self.index >= self.count {
            return Err(WireError::BadFragment {
                index: self.index,
                count: self.count,
            });
        }
        Ok(self)
    }
}

/// The parsed envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DatagramHeader {
    /// What the body is.
    pub kind: DatagramType,
    /// The receiver's session index (0 before one is assigned).
    pub session: u32,
    /// Record counter.
    pub counter: u64,
    /// Fragment fields, if the message was split.
    pub fragment: Option<FragmentInfo>,
    /// Which session key sealed a `RECORD` (always `false` for other types).
    pub key_phase: bool,
}

impl DatagramHeader {
    /// Bytes the envelope takes before the body.
    pub const fn encoded_len(&self) -> usize {
        if self.fragment.is_some() {
            ENVELOPE_LEN + FRAGMENT_FIELDS_LEN
        } else {
            ENVELOPE_LEN
        }
    }

    /// Bytes the envelope adds in total (including a `PLAIN` trailer).
    pub const fn overhead(&self) -> usize {
        match self.kind {
            DatagramType::Plain => self.encoded_len() + CRC_LEN,
            _ => self.encoded_len(),
        }
    }

    /// Appends the envelope (not the body or trailer) to `dst`.
    pub fn write<B: BufMut + ?Sized>(&self, dst: &mut B) {
        dst.put_u8(self.kind.code());
        let mut flags = 0;
        if self.fragment.is_some() {
            flags |= FLAG_FRAGMENT;
        }
        if self.key_phase {
            flags |= FLAG_KEY_PHASE;
        }
        dst.put_u8(flags);
        dst.put_u32(self.session);
        dst.put_u64(self.counter);
        if let Some(f) = self.fragment {
            dst.put_u32(f.message_id);
            dst.put_u16(f.index);
            dst.put_u16(f.count);
        }
    }
}

/// A datagram borrowed from a receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatagramRef<'a> {
    /// The envelope.
    pub header: DatagramHeader,
    /// The envelope's bytes: the associated data for sealed records.
    pub envelope: &'a [u8],
    /// The body (without the CRC trailer).
    pub body: &'a [u8],
}

fn be<const N: usize>(src: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(s) = src.get(at..at + N) {
        out.copy_from_slice(s);
    }
    out
}

impl<'a> DatagramRef<'a> {
    /// Parses a whole datagram, verifying the CRC of `PLAIN` datagrams.
    ///
    /// # Errors
    /// [`WireError::Truncated`], [`WireError::UnknownDatagramType`],
    /// [`WireError::UnknownDatagramFlags`], [`WireError::BadFragment`],
    /// [`WireError::CrcMismatch`].
    pub fn parse(datagram: &'a [u8]) -> Result<Self> {
        if datagram.len() < ENVELOPE_LEN {
            return Err(WireError::Truncated {
                needed: ENVELOPE_LEN - datagram.len(),
            });
        }
        let kind = DatagramType::from_code(datagram[0])?;
        let flags = datagram[1];
        let known = if kind == DatagramType::Record {
            FLAG_FRAGMENT | FLAG_KEY_PHASE
        } else {
            FLAG_FRAGMENT
        };
        if flags & !known != 0 {
            return Err(WireError::UnknownDatagramFlags(flags & !known));
        }
        let session = u32::from_be_bytes(be(datagram, 2));
        let counter = u64::from_be_bytes(be(datagram, 6));
        let (fragment, env_len) = if flags & FLAG_FRAGMENT != 0 {
            let end = ENVELOPE_LEN + FRAGMENT_FIELDS_LEN;
            if datagram.len() < end {
                return Err(WireError::Truncated {
                    needed: end - datagram.len(),
                });
            }
            let info = FragmentInfo {
                message_id: u32::from_be_bytes(be(datagram, 14)),
                index: u16::from_be_bytes(be(datagram, 18)),
                count: u16::from_be_bytes(be(datagram, 20)),
            }
            .validate()?;
            (Some(info), end)
        } else {
            (None, ENVELOPE_LEN)
        };
        let (envelope, mut body) = datagram.split_at(env_len);
        if kind == DatagramType::Plain {
            let Some((content, crc)) = body.split_last_chunk::<CRC_LEN>() else {
                return Err(WireError::Truncated {
                    needed: CRC_LEN - body.len(),
                });
            };
            let expected = u32::from_be_bytes(*crc);
            let actual = crc32(&datagram[..datagram.len() - CRC_LEN]);
            if expected != actual {
                return Err(WireError::CrcMismatch { expected, actual });
            }
            body = content;
        }
        Ok(Self {
            header: DatagramHeader {
                kind,
                session,
                counter,
                fragment,
                key_phase: flags & FLAG_KEY_PHASE != 0,
            },
            envelope,
            body,
        })
    }
}

/// CRC-32 (IEEE 802.3, as zlib computes it).
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

/// Appends a complete datagram: envelope, body, and the CRC trailer for `PLAIN`.
///
/// For `RECORD` datagrams, `body` is the already sealed record.
///
/// # Errors
/// [`WireError::BadFragment`] for inconsistent fragment fields,
/// [`WireError::UnknownDatagramFlags`] for a key phase outside a `RECORD`.
pub fn encode_datagram(
    header: &DatagramHeader,
    body: &[u8],
    dst: &mut alloc::vec::Vec<u8>,
) -> Result<()> {
    if let Some(f) = header.fragment {
        f.validate()?;
    }
    if header.key_phase && header.kind != DatagramType::Record {
        return Err(WireError::UnknownDatagramFlags(FLAG_KEY_PHASE));
    }
    let start = dst.len();
    header.write(dst);
    dst.extend_from_slice(body);
    if header.kind == DatagramType::Plain {
        let crc = crc32(&dst[start..]);
        dst.extend_from_slice(&crc.to_be_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn plain_roundtrip_and_crc() {
        let h = DatagramHeader {
            kind: DatagramType::Plain,
            session: 7,
            counter: 42,
            fragment: Some(FragmentInfo {
                message_id: 3,
                index: 1,
                count: 4,
            }),
            key_phase: false,
        };
        let mut d = Vec::new();
        encode_datagram(&h, b"piece", &mut d).unwrap();
        assert_eq!(d.len(), h.overhead() + 5);
        let p = DatagramRef::parse(&d).unwrap();
        assert_eq!(p.header, h);
        assert_eq!(p.body, b"piece");
        d[ENVELOPE_LEN + FRAGMENT_FIELDS_LEN] ^= 1;
        assert!(matches!(
            DatagramRef::parse(&d),
            Err(WireError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn crc_matches_reference_value() {
        // The standard check value of CRC-32/ISO-HDLC.
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn rejects_bad_envelopes() {
        assert_eq!(
            DatagramRef::parse(&[0x02; 5]),
            Err(WireError::Truncated { needed: 9 })
        );
        let mut d = [0u8; 14];
        d[0] = 0x09;
        assert_eq!(
            DatagramRef::parse(&d),
            Err(WireError::UnknownDatagramType(9))
        );
        d[0] = 0x02;
        d[1] = 0x04;
        assert_eq!(
            DatagramRef::parse(&d),
            Err(WireError::UnknownDatagramFlags(4))
        );
        d[1] = 0x02;
        assert!(DatagramRef::parse(&d).unwrap().header.key_phase);
        d[0] = 0x03;
        assert_eq!(
            DatagramRef::parse(&d),
            Err(WireError::UnknownDatagramFlags(2))
        );
        let mut f = [0u8; 22];
        f[0] = 0x02;
        f[1] = 0x01;
        f[21] = 1; // count 1, index 0: a lone fragment is not canonical
        assert_eq!(
            DatagramRef::parse(&f),
            Err(WireError::BadFragment { index: 0, count: 1 })
        );
    }
}
