//! Running the netproto handshake over a byte stream: each handshake message
//! travels as a `HANDSHAKE` frame in a plain packet.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use netproto_crypto::{Established, Handshake, MAX_MESSAGE_LEN};
use netproto_wire::{FrameKind, FrameLimits, FrameRef, Header, PacketDecoder, PacketFlags};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::ConnectionConfig;
use crate::error::{Result, TransportError};

/// A handshake packet holds one frame: 2 fixed bytes, a 1-byte stream id,
/// up to 3 length bytes and the Noise message.
#[allow(clippy::cast_possible_truncation)] // 65543 fits a u32
pub(crate) const HANDSHAKE_MAX_BODY: u32 = (MAX_MESSAGE_LEN + 8) as u32;
/// Most bytes reserved for one read.
const READ_CHUNK: usize = 64 * 1024 + 16;
/// Grow the receive buffer by at least this much at a time, so that many
/// small records share one allocation.
const GROW_BY: usize = 16 * 1024;
/// Do not read into less spare room than this.
const MIN_READ: usize = 512;

/// Makes room for the next read without reallocating while the buffer still
/// has room: `BytesMut::reserve` reallocates whenever earlier records that
/// share the allocation are still alive, so it is called only when needed.
pub(crate) fn make_read_room(buf: &mut BytesMut, needed: usize) {
    let needed = needed.clamp(1, READ_CHUNK);
    if buf.capacity() - buf.len() < needed.max(MIN_READ) {
        buf.reserve(needed.max(GROW_BY));
    }
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Reads until one packet is complete. No timeout: callers wrap it.
pub(crate) async fn read_packet<R: AsyncRead + Unpin + ?Sized>(
    rd: &mut R,
    buf: &mut BytesMut,
    decoder: &mut PacketDecoder,
) -> Result<(PacketFlags, BytesMut)> {
    loop {
        if let Some(p) = decoder.decode_mut(buf)? {
            return Ok(p);
        }
        let needed = decoder.bytes_needed(buf.len());
        make_read_room(buf, needed);
        if rd.read_buf(buf).await? == 0 {
            return Err(TransportError::ConnectionClosed { clean: false });
        }
    }
}

/// Runs the whole handshake (the caller applies the handshake timeout).
pub(crate) async fn run<R, W>(
    rd: &mut R,
    wr: &mut W,
    buf: &mut BytesMut,
    decoder: &mut PacketDecoder,
    cfg: &ConnectionConfig,
    initiator: bool,
) -> Result<Established>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let mut hs = if initiator {
        Handshake::initiator(cfg.handshake.clone())?
    } else {
        Handshake::responder(cfg.handshake.clone())?
    };
    let mut rng = rand::rngs::OsRng;
    let limits = FrameLimits::with_max_payload(MAX_MESSAGE_LEN);
    let mut msg = Vec::new();
    let mut out = Vec::new();
    while !hs.is_finished() {
        if hs.is_my_turn() {
            msg.clear();
            hs.write_message(&mut rng, unix_now(), &mut msg)?;
            let frame = FrameRef::new(FrameKind::Handshake, 0, &msg);
            out.clear();
            Header::for_body(PacketFlags::default(), frame.encoded_len())?.write(&mut out);
            frame.encode(&mut out);
            wr.write_all(&out).await?;
            wr.flush().await?;
        } else {
            let (flags, body) = read_packet(rd, buf, decoder).await?;
            if flags != PacketFlags::default() {
                return Err(TransportError::Protocol(
                    "handshake packets must be plain and uncompressed",
                ));
            }
            let (frame, used) = FrameRef::decode(&body, &limits)?;
            if frame.kind != FrameKind::Handshake || used != body.len() {
                return Err(TransportError::Protocol(
                    "expected exactly one HANDSHAKE frame",
                ));
            }
            match &cfg.timestamp_guard {
                Some(guard) => {
                    // A panic elsewhere while holding the lock leaves the guard
                    // consistent (every update is one insert), so recover it.
                    let mut g = guard
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    g.set_now(unix_now());
                    hs.read_message(frame.payload, Some(&mut g))?;
                }
                None => hs.read_message(frame.payload, None)?,
            }
        }
    }
    Ok(hs.finish()?)
}
