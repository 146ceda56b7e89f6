//! The outer packet: a 10-byte header and a body, and the incremental stream
//! decoder that validates the header before any body byte is buffered.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::compression::Compression;
use crate::error::{Result, WireError};

/// The four bytes every packet starts with: ASCII `NPRO`.
pub const MAGIC: [u8; 4] = *b"NPRO";
/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// Size of the outer header in bytes.
pub const HEADER_LEN: usize = 10;
/// Default limit on a packet body: 16 MiB.
pub const DEFAULT_MAX_BODY: u32 = 16 * 1024 * 1024;

/// The flags byte of the outer header.
///
/// | bits | meaning |
/// |------|---------|
/// | 0–1  | body compression: 0 none, 1 LZ4, 2 Zstd, 3 reserved |
/// | 2    | `ENCRYPTED`: the body is a sealed session record |
/// | 3    | `KEY_PHASE`: which session key sealed the record (only with `ENCRYPTED`) |
/// | 4–7  | reserved, must be zero |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PacketFlags(u8);

impl PacketFlags {
    const COMPRESSION_MASK: u8 = 0b0000_0011;
    const ENCRYPTED: u8 = 0b0000_0100;
    const KEY_PHASE: u8 = 0b0000_1000;
    const KNOWN: u8 = Self::COMPRESSION_MASK | Self::ENCRYPTED | Self::KEY_PHASE;

    /// Flags for a body compressed with `compression`, sealed if `encrypted`.
    pub const fn new(compression: Compression, encrypted: bool) -> Self {
        let enc = if encrypted { Self::ENCRYPTED } else { 0 };
        Self(compression as u8 | enc)
    }

    /// Validates a flags byte received from the network.
    ///
    /// # Errors
    /// [`WireError::UnknownFlags`] for reserved bits,
    /// [`WireError::UnknownCompression`] for the reserved codec value.
    pub const fn from_bits(bits: u8) -> Result<Self> {
        if bits & !Self::KNOWN != 0 {
            return Err(WireError::UnknownFlags(bits & !Self::KNOWN));
        }
        if bits & Self::COMPRESSION_MASK == 3 {
            return Err(WireError::UnknownCompression(3));
        }
        if bits & Self::KEY_PHASE != 0 && bits & Self::ENCRYPTED == 0 {
            // A key phase means nothing on a plaintext body.
            return Err(WireError::UnknownFlags(Self::KEY_PHASE));
        }
        Ok(Self(bits))
    }

    /// These flags with the key phase bit set or cleared. The bit only exists
    /// on encrypted bodies; on others this returns the flags unchanged.
    #[must_use]
    pub const fn with_key_phase(self, phase: bool) -> Self {
        if !self.encrypted() {
            return self;
        }
        if phase {
            Self(self.0 | Self::KEY_PHASE)
        } else {
            Self(self.0 & !Self::KEY_PHASE)
        }
    }

    /// Which session key sealed the body (see netproto-crypto's rekeying).
    pub const fn key_phase(self) -> bool {
        self.0 & Self::KEY_PHASE != 0
    }

    /// The raw byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// The codec the body is compressed with.
    pub const fn compression(self) -> Compression {
        match self.0 & Self::COMPRESSION_MASK {
            1 => Compression::Lz4,
            2 => Compression::Zstd,
            // 3 is rejected by `from_bits`; `new` cannot produce it.
            _ => Compression::None,
        }
    }

    /// Whether the body is a sealed session record.
    pub const fn encrypted(self) -> bool {
        self.0 & Self::ENCRYPTED != 0
    }
}

/// A validated outer header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// The flags byte.
    pub flags: PacketFlags,
    /// Length of the body that follows the header.
    pub body_len: u32,
}

impl Header {
    /// Checks whatever prefix of a header has arrived so far, so that a stream
    /// that is not netproto is refused after its first wrong byte.
    ///
    /// # Errors
    /// [`WireError::BadMagic`], [`WireError::UnsupportedVersion`],
    /// [`WireError::UnknownFlags`], [`WireError::UnknownCompression`].
    pub fn check_prefix(src: &[u8]) -> Result<()> {
        let n = src.len().min(MAGIC.len());
        if src[..n] != MAGIC[..n] {
            let mut found = [0u8; 4];
            found[..n].copy_from_slice(&src[..n]);
            return Err(WireError::BadMagic { found });
        }
        if let Some(&version) = src.get(4) {
            if version != VERSION {
                return Err(WireError::UnsupportedVersion(version));
            }
        }
        if let Some(&flags) = src.get(5) {
            PacketFlags::from_bits(flags)?;
        }
        Ok(())
    }

    /// Parses and validates a header from the first [`HEADER_LEN`] bytes of
    /// `src`, refusing a body longer than `max_body`.
    ///
    /// # Errors
    /// The prefix errors of [`Header::check_prefix`], [`WireError::Oversize`],
    /// or [`WireError::Truncated`] if fewer than 10 bytes are given.
    pub fn parse(src: &[u8], max_body: u32) -> Result<Self> {
        Self::check_prefix(src)?;
        let Some(raw) = src.get(..HEADER_LEN) else {
            return Err(WireError::Truncated {
                needed: HEADER_LEN - src.len(),
            });
        };
        let flags = PacketFlags::from_bits(raw[5])?;
        let body_len = u32::from_be_bytes([raw[6], raw[7], raw[8], raw[9]]);
        if body_len > max_body {
            return Err(WireError::Oversize {
                len: u64::from(body_len),
                max: u64::from(max_body),
            });
        }
        Ok(Self { flags, body_len })
    }

    /// The header's ten bytes; also the associated data a session record is
    /// sealed with, so flags and length cannot be altered in transit.
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let len = self.body_len.to_be_bytes();
        [
            MAGIC[0],
            MAGIC[1],
            MAGIC[2],
            MAGIC[3],
            VERSION,
            self.flags.bits(),
            len[0],
            len[1],
            len[2],
            len[3],
        ]
    }

    /// Appends the header to `dst`.
    pub fn write<B: BufMut + ?Sized>(self, dst: &mut B) {
        dst.put_slice(&self.to_bytes());
    }

    /// A header for a body of `len` bytes.
    ///
    /// # Errors
    /// [`WireError::Unencodable`] if `len` does not fit the 32-bit length field.
    pub fn for_body(flags: PacketFlags, len: usize) -> Result<Self> {
        let body_len =
            u32::try_from(len).map_err(|_| WireError::Unencodable("packet body over 4 GiB"))?;
        Ok(Self { flags, body_len })
    }
}

/// A packet borrowed from a byte slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketRef<'a> {
    /// The validated header.
    pub header: Header,
    /// The body, exactly `header.body_len` bytes.
    pub body: &'a [u8],
}

impl<'a> PacketRef<'a> {
    /// Parses one packet from the front of `src`; returns it and the number of
    /// bytes it occupied.
    ///
    /// # Errors
    /// Any header error, or [`WireError::Truncated`] if the body is incomplete.
    pub fn parse(src: &'a [u8], max_body: u32) -> Result<(Self, usize)> {
        let header = Header::parse(src, max_body)?;
        let total =
            HEADER_LEN
                .checked_add(header.body_len as usize)
                .ok_or(WireError::Unencodable(
                    "packet longer than the address space",
                ))?;
        let Some(body) = src.get(HEADER_LEN..total) else {
            return Err(WireError::Truncated {
                needed: total - src.len(),
            });
        };
        Ok((Self { header, body }, total))
    }
}

/// An owned packet whose body shares the receive buffer (no copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// Flags from the header.
    pub flags: PacketFlags,
    /// The body.
    pub body: Bytes,
}

impl Packet {
    /// Appends header and body to `dst`.
    ///
    /// # Errors
    /// [`WireError::Unencodable`] if the body is longer than `u32::MAX`.
    pub fn encode<B: BufMut + ?Sized>(&self, dst: &mut B) -> Result<()> {
        encode_packet(self.flags, &self.body, dst)
    }
}

/// Appends a packet with the given flags and body to `dst`.
///
/// # Errors
/// [`WireError::Unencodable`] if the body is longer than `u32::MAX`.
pub fn encode_packet<B: BufMut + ?Sized>(
    flags: PacketFlags,
    body: &[u8],
    dst: &mut B,
) -> Result<()> {
    Header::for_body(flags, body.len())?.write(dst);
    dst.put_slice(body);
    Ok(())
}

/// Incremental decoder for a stream of packets.
///
/// Feed it the receive buffer after every read. It checks the magic from the
/// first byte, and version, flags and length as soon as the 10-byte header is
/// complete, so a hostile length is refused before any body byte is buffered.
/// It never reserves memory itself: the buffer grows only with bytes that have
/// actually arrived. After an error it stays failed ([`WireError::Desynchronized`]),
/// because the stream position can no longer be trusted.
#[derive(Debug, Clone)]
pub struct PacketDecoder {
    max_body: u32,
    pending: Option<Header>,
    failed: bool,
}

impl Default for PacketDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_BODY)
    }
}

impl PacketDecoder {
    /// A decoder that refuses bodies longer than `max_body`.
    pub const fn new(max_body: u32) -> Self {
        Self {
            max_body,
            pending: None,
            failed: false,
        }
    }

    /// The body limit.
    pub const fn max_body(&self) -> u32 {
        self.max_body
    }

    /// Takes one packet off the front of `buf` if a whole one is there.
    ///
    /// Returns `Ok(None)` when more bytes are needed; see
    /// [`PacketDecoder::bytes_needed`] for how many.
    ///
    /// # Errors
    /// Header errors ([`WireError::BadMagic`], [`WireError::UnsupportedVersion`],
    /// [`WireError::UnknownFlags`], [`WireError::UnknownCompression`],
    /// [`WireError::Oversize`]); afterwards [`WireError::Desynchronized`].
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>> {
        Ok(self.decode_mut(buf)?.map(|(flags, body)| Packet {
            flags,
            body: body.freeze(),
        }))
    }

    /// As [`PacketDecoder::decode`], but hands the body out as a mutable
    /// buffer (sharing the receive buffer's memory, no copy), so a sealed
    /// record can be decrypted in place.
    ///
    /// # Errors
    /// As [`PacketDecoder::decode`].
    pub fn decode_mut(&mut self, buf: &mut BytesMut) -> Result<Option<(PacketFlags, BytesMut)>> {
        if self.failed {
            return Err(WireError::Desynchronized);
        }
        let header = if let Some(h) = self.pending {
            h
        } else {
            if buf.len() < HEADER_LEN {
                Header::check_prefix(buf).inspect_err(|_| self.failed = true)?;
                return Ok(None);
            }
            let h = Header::parse(buf, self.max_body).inspect_err(|_| self.failed = true)?;
            buf.advance(HEADER_LEN);
            self.pending = Some(h);
            h
        };
        let len = header.body_len as usize;
        if buf.len() < len {
            return Ok(None);
        }
        self.pending = None;
        Ok(Some((header.flags, buf.split_to(len))))
    }

    /// Changes the body limit for the packets that follow (for example from
    /// the handshake's limit to the session record limit).
    pub fn set_max_body(&mut self, max_body: u32) {
        self.max_body = max_body;
    }

    /// The header of the packet being received, once it is complete.
    pub const fn pending_header(&self) -> Option<Header> {
        self.pending
    }

    /// How many more bytes must arrive (beyond `buffered`) before
    /// [`PacketDecoder::decode`] can return a packet.
    pub fn bytes_needed(&self, buffered: usize) -> usize {
        match self.pending {
            Some(h) => (h.body_len as usize).saturating_sub(buffered),
            None => HEADER_LEN.saturating_sub(buffered).max(1),
        }
    }

    /// Whether the decoder is between packets (nothing partially consumed).
    pub const fn is_idle(&self) -> bool {
        self.pending.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn packet(flags: u8, body: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&MAGIC);
        v.push(VERSION);
        v.push(flags);
        v.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn flags_roundtrip() {
        for c in [Compression::None, Compression::Lz4, Compression::Zstd] {
            for e in [false, true] {
                let f = PacketFlags::new(c, e);
                assert_eq!(PacketFlags::from_bits(f.bits()), Ok(f));
                assert_eq!(f.compression(), c);
                assert_eq!(f.encrypted(), e);
            }
        }
        assert_eq!(
            PacketFlags::from_bits(0x08),
            Err(WireError::UnknownFlags(0x08))
        );
        assert_eq!(
            PacketFlags::from_bits(0x03),
            Err(WireError::UnknownCompression(3))
        );
    }

    #[test]
    fn bad_magic_from_first_byte() {
        let mut d = PacketDecoder::default();
        let mut buf = BytesMut::from(&b"G"[..]);
        assert_eq!(
            d.decode(&mut buf),
            Err(WireError::BadMagic { found: *b"G\0\0\0" })
        );
        assert_eq!(d.decode(&mut buf), Err(WireError::Desynchronized));
    }

    #[test]
    fn oversize_refused_from_header_alone() {
        let mut d = PacketDecoder::new(1024);
        let mut head = packet(0, &[]);
        head[6..10].copy_from_slice(&4096u32.to_be_bytes());
        let mut buf = BytesMut::from(&head[..]);
        assert_eq!(
            d.decode(&mut buf),
            Err(WireError::Oversize {
                len: 4096,
                max: 1024
            })
        );
    }

    #[test]
    fn byte_by_byte() {
        let wire = [packet(0, b"hello"), packet(1, b"x")].concat();
        let mut d = PacketDecoder::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire {
            buf.extend_from_slice(&[b]);
            while let Some(p) = d.decode(&mut buf).unwrap() {
                got.push(p);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(&got[0].body[..], b"hello");
        assert_eq!(got[1].flags.compression(), Compression::Lz4);
        assert!(d.is_idle());
    }

    #[test]
    fn parse_and_encode_agree() {
        let wire = packet(0x04, b"abc");
        let (p, used) = PacketRef::parse(&wire, DEFAULT_MAX_BODY).unwrap();
        assert_eq!(used, wire.len());
        assert!(p.header.flags.encrypted());
        let mut out = Vec::new();
        encode_packet(p.header.flags, p.body, &mut out).unwrap();
        assert_eq!(out, wire);
        assert_eq!(
            PacketRef::parse(&wire[..8], DEFAULT_MAX_BODY),
            Err(WireError::Truncated { needed: 2 })
        );
        assert_eq!(
            PacketRef::parse(&wire[..11], DEFAULT_MAX_BODY),
            Err(WireError::Truncated { needed: 2 })
        );
    }

    #[test]
    fn unsupported_version() {
        let mut wire = packet(0, b"");
        wire[4] = 2;
        assert_eq!(
            Header::parse(&wire, DEFAULT_MAX_BODY),
            Err(WireError::UnsupportedVersion(2))
        );
    }
}
