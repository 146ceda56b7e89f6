//! A [`tokio_util::codec`] adapter for the outer packet (feature `codec`).
//!
//! It wraps [`PacketDecoder`], so it shares its guarantees: the header is
//! validated before the body is buffered, and nothing is reserved on the
//! strength of a declared length.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::error::WireError;
use crate::packet::{Header, Packet, PacketDecoder, PacketRef, HEADER_LEN};

/// Frames a byte stream into [`Packet`]s.
#[derive(Debug, Clone, Default)]
pub struct PacketCodec {
    decoder: PacketDecoder,
}

impl PacketCodec {
    /// A codec refusing bodies longer than `max_body`.
    pub const fn new(max_body: u32) -> Self {
        Self {
            decoder: PacketDecoder::new(max_body),
        }
    }
}

impl Decoder for PacketCodec {
    type Item = Packet;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, WireError> {
        self.decoder.decode(src)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Packet>, WireError> {
        match self.decode(src)? {
            Some(p) => Ok(Some(p)),
            None if src.is_empty() && self.decoder.is_idle() => Ok(None),
            None => Err(WireError::Truncated {
                needed: self.decoder.bytes_needed(src.len()),
            }),
        }
    }
}

impl Encoder<Packet> for PacketCodec {
    type Error = WireError;

    fn encode(&mut self, item: Packet, dst: &mut BytesMut) -> Result<(), WireError> {
        dst.reserve(HEADER_LEN + item.body.len());
        item.encode(dst)
    }
}

impl Encoder<PacketRef<'_>> for PacketCodec {
    type Error = WireError;

    fn encode(&mut self, item: PacketRef<'_>, dst: &mut BytesMut) -> Result<(), WireError> {
        let header = Header::for_body(item.header.flags, item.body.len())?;
        dst.reserve(HEADER_LEN + item.body.len());
        header.write(dst);
        dst.extend_from_slice(item.body);
        Ok(())
    }
}

impl From<std::io::Error> for WireError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::PacketFlags;
    use bytes::Bytes;

    #[test]
    fn encode_decode_and_eof() {
        let mut codec = PacketCodec::default();
        let mut buf = BytesMut::new();
        let p = Packet {
            flags: PacketFlags::default(),
            body: Bytes::from_static(b"body"),
        };
        codec.encode(p.clone(), &mut buf).unwrap();
        buf.extend_from_slice(&b"NPRO"[..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(p));
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        assert_eq!(
            codec.decode_eof(&mut buf),
            Err(WireError::Truncated { needed: 6 })
        );
    }
}
