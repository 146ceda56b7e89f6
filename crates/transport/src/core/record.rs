//! How records look on a carrier: the one seam between the connection core
//! and the bytes a carrier moves.
//!
//! The core decides *what* goes into a record (frames, batching,
//! continuation) and when; a [`RecordFormat`] decides how a record is
//! delimited, which bytes are authenticated with it, and how handshake
//! messages travel. [`StreamRecords`] is WIRE.md's stream format (a 10-byte
//! `NPRO` header in front of every record, the header as associated data);
//! a datagram format (WIRE.md's envelope with an explicit counter) plugs in
//! here without touching the core.

use std::ops::Range;
use std::time::Duration;

use bytes::BytesMut;
use netproto_crypto::{Receiver, Sender, MAX_MESSAGE_LEN, MAX_PLAINTEXT, TAG_LEN};
use netproto_wire::{
    Compression, FrameKind, FrameLimits, FrameRef, Header, PacketDecoder, PacketFlags, WireError,
    HEADER_LEN,
};

use crate::error::{ProtocolViolation, Result, TransportError};

/// A handshake packet holds one frame: kind and flags (2 bytes), stream id
/// 0 or 1 (1 byte), the payload length (a varint of at most 3 bytes for
/// 65535) and a Noise message of at most 65535 bytes: 65541 (WIRE.md
/// "Limits").
#[allow(clippy::cast_possible_truncation)] // 65541 fits a u32
pub(crate) const HANDSHAKE_MAX_BODY: u32 = (MAX_MESSAGE_LEN + 6) as u32;

/// A record as it came off the carrier, opened: its codec and plaintext.
pub type OpenedRecord = (Compression, BytesMut);

/// The framing of records on one kind of carrier.
pub trait RecordFormat: Send + std::fmt::Debug {
    /// Bytes the format puts in front of a record's plaintext.
    fn header_len(&self) -> usize;

    /// Largest plaintext one record carries.
    fn max_plaintext(&self) -> usize;

    /// Appends a packet holding exactly one plain HANDSHAKE frame.
    ///
    /// # Errors
    /// [`TransportError::Wire`] if the payload is too long for a packet.
    fn handshake_packet(&self, stream_id: u64, payload: &[u8], out: &mut Vec<u8>) -> Result<()>;

    /// Splits the next handshake packet off `input`: its frame's stream id,
    /// the packet body and the range of the frame payload in it. `None`
    /// until a whole packet is buffered.
    ///
    /// # Errors
    /// Anything but one plain HANDSHAKE frame in a plain packet.
    fn next_handshake(&mut self, input: &mut BytesMut) -> Result<Option<HandshakePacket>>;

    /// Completes the record whose header space starts at `out[start]` and
    /// whose plaintext (possibly compressed with `codec`) follows to the end
    /// of `out`: writes the header and, with a `sealer`, encrypts in place
    /// and appends the tag.
    ///
    /// # Errors
    /// Crypto errors (nonce space exhausted) and oversize bodies.
    fn seal(
        &self,
        sealer: Option<(&mut Sender, Duration)>,
        codec: Compression,
        out: &mut Vec<u8>,
        start: usize,
    ) -> Result<()>;

    /// Splits the next complete record off `input` and opens it in place
    /// (with an `opener`; a carrier that protects records itself passes
    /// none). `None` until a whole record is buffered.
    ///
    /// # Errors
    /// Format, authentication and protocol errors; all are fatal.
    fn open_next(
        &mut self,
        opener: Option<(&mut Receiver, Duration)>,
        input: &mut BytesMut,
    ) -> Result<Option<OpenedRecord>>;

    /// Bytes worth reading next, given `buffered` bytes in hand.
    fn bytes_needed(&self, buffered: usize) -> usize;

    /// True between records (no header half read).
    fn is_idle(&self) -> bool;
}

/// One handshake packet: the frame's stream id, the packet body and where
/// the frame's payload sits in it.
pub type HandshakePacket = (u64, BytesMut, Range<usize>);

/// WIRE.md's stream format: `NPRO` header, then the body; the header is the
/// associated data of a sealed record.
#[derive(Debug)]
pub struct StreamRecords {
    decoder: PacketDecoder,
}

impl Default for StreamRecords {
    fn default() -> Self {
        Self {
            decoder: PacketDecoder::new(HANDSHAKE_MAX_BODY),
        }
    }
}

/// A TLS record starts with content type 0x15 (alert) or 0x16 (handshake)
/// and major version 3.
fn looks_like_tls(found: [u8; 4]) -> bool {
    matches!(found[0], 0x15 | 0x16) && found[1] == 0x03
}

impl StreamRecords {
    fn next_packet(&mut self, input: &mut BytesMut) -> Result<Option<(PacketFlags, BytesMut)>> {
        match self.decoder.decode_mut(input) {
            Err(WireError::BadMagic { found }) if looks_like_tls(found) => {
                Err(TransportError::Protocol(ProtocolViolation::PeerSpeaksTls))
            }
            other => Ok(other?),
        }
    }
}

/// The stream id and payload range of the one HANDSHAKE frame a handshake
/// packet must hold.
pub(crate) fn handshake_frame(flags: PacketFlags, body: &[u8]) -> Result<(u64, Range<usize>)> {
    let limits = FrameLimits::with_max_payload(MAX_MESSAGE_LEN);
    if flags != PacketFlags::default() {
        return Err(TransportError::Protocol(
            ProtocolViolation::HandshakePacketNotPlain,
        ));
    }
    let (frame, used) = FrameRef::decode(body, &limits)?;
    // Stream 0 or 2 (Noise with ChaChaPoly or AESGCM) or 1 (the hello
    // inside TLS), no MORE, no headers.
    if frame.kind != FrameKind::Handshake
        || used != body.len()
        || frame.stream_id > 2
        || frame.more
        || !frame.headers.is_empty()
    {
        return Err(TransportError::Protocol(
            ProtocolViolation::NotOneHandshakeFrame,
        ));
    }
    Ok((frame.stream_id, used - frame.payload.len()..used))
}

impl RecordFormat for StreamRecords {
    fn header_len(&self) -> usize {
        HEADER_LEN
    }

    fn max_plaintext(&self) -> usize {
        MAX_PLAINTEXT
    }

    fn handshake_packet(&self, stream_id: u64, payload: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let frame = FrameRef::new(FrameKind::Handshake, stream_id, payload);
        Header::for_body(PacketFlags::default(), frame.encoded_len())?.write(out);
        frame.encode(out);
        Ok(())
    }

    fn next_handshake(&mut self, input: &mut BytesMut) -> Result<Option<HandshakePacket>> {
        let Some((flags, body)) = self.next_packet(input)? else {
            return Ok(None);
        };
        let (stream_id, range) = handshake_frame(flags, &body)?;
        Ok(Some((stream_id, body, range)))
    }

    fn seal(
        &self,
        sealer: Option<(&mut Sender, Duration)>,
        codec: Compression,
        out: &mut Vec<u8>,
        start: usize,
    ) -> Result<()> {
        let body_start = start + HEADER_LEN;
        let Some((sender, now)) = sealer else {
            let flags = PacketFlags::new(codec, false);
            let header = Header::for_body(flags, out.len() - body_start)?.to_bytes();
            out[start..body_start].copy_from_slice(&header);
            return Ok(());
        };
        let reservation = sender.reserve(now)?;
        let flags = PacketFlags::new(codec, true).with_key_phase(reservation.key_phase());
        let header = Header::for_body(flags, out.len() - body_start + TAG_LEN)?.to_bytes();
        out[start..body_start].copy_from_slice(&header);
        let tag = sender.seal(reservation, &header, &mut out[body_start..])?;
        out.extend_from_slice(&tag);
        Ok(())
    }

    fn open_next(
        &mut self,
        opener: Option<(&mut Receiver, Duration)>,
        input: &mut BytesMut,
    ) -> Result<Option<OpenedRecord>> {
        // After the handshake a record may be as long as Noise allows.
        self.decoder
            .set_max_body(u32::try_from(MAX_MESSAGE_LEN).unwrap_or(u32::MAX));
        let Some((flags, mut body)) = self.next_packet(input)? else {
            return Ok(None);
        };
        match opener {
            Some((receiver, now)) => {
                if !flags.encrypted() {
                    return Err(TransportError::Protocol(
                        ProtocolViolation::PlaintextAfterHandshake,
                    ));
                }
                let header = Header::for_body(flags, body.len())?.to_bytes();
                let len = receiver.open(now, 0, flags.key_phase(), &header, &mut body)?;
                body.truncate(len);
            }
            None if flags.encrypted() => {
                return Err(TransportError::Protocol(
                    ProtocolViolation::SealedWithoutNoise,
                ));
            }
            None => {}
        }
        Ok(Some((flags.compression(), body)))
    }

    fn bytes_needed(&self, buffered: usize) -> usize {
        self.decoder.bytes_needed(buffered)
    }

    fn is_idle(&self) -> bool {
        self.decoder.is_idle()
    }
}
