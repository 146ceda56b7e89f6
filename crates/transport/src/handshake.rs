//! Running the netproto handshake over a byte stream: each handshake message
//! travels as a `HANDSHAKE` frame in a plain packet. Inside TLS without Noise,
//! the two sides only exchange their capabilities ([`exchange_hello`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use netproto_crypto::{Capabilities, Established, Handshake, MAX_MESSAGE_LEN};
use netproto_wire::WireError;
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
/// The first allocation of a receive buffer (enough for any handshake
/// message and many small records).
pub(crate) const FIRST_BUFFER: usize = 1024;
/// Grow a busy receive buffer by at least this much at a time, so that many
/// small records share one allocation.
const GROW_BY: usize = 16 * 1024;
/// Do not read into less spare room than this.
const MIN_READ: usize = 512;

/// Makes room for the next read without reallocating while the buffer still
/// has room: `BytesMut::reserve` reallocates whenever earlier records that
/// share the allocation are still alive, so it is called only when needed.
/// A fresh buffer starts small (a handshake and a few records fit); once it
/// must grow, it grows by [`GROW_BY`] so that many records share one
/// allocation.
pub(crate) fn make_read_room(buf: &mut BytesMut, needed: usize) {
    let needed = needed.clamp(1, READ_CHUNK);
    if buf.capacity() - buf.len() < needed.max(MIN_READ) {
        let grow = if buf.capacity() == 0 {
            FIRST_BUFFER
        } else {
            GROW_BY
        };
        buf.reserve(needed.max(grow));
    }
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// HANDSHAKE frames of the Noise handshake use stream id 0; the capability
/// hello exchanged inside TLS without Noise uses 1, so a mismatch of
/// `noise_inside_tls` is reported as such instead of as a bad message.
const NOISE_STREAM: u64 = 0;
const HELLO_STREAM: u64 = 1;

/// A TLS record starts with content type 0x15 (alert) or 0x16 (handshake)
/// and major version 3.
fn looks_like_tls(found: [u8; 4]) -> bool {
    matches!(found[0], 0x15 | 0x16) && found[1] == 0x03
}

/// Reads until one packet is complete. No timeout: callers wrap it.
pub(crate) async fn read_packet<R: AsyncRead + Unpin + ?Sized>(
    rd: &mut R,
    buf: &mut BytesMut,
    decoder: &mut PacketDecoder,
) -> Result<(PacketFlags, BytesMut)> {
    loop {
        match decoder.decode_mut(buf) {
            Ok(Some(p)) => return Ok(p),
            Ok(None) => {}
            Err(WireError::BadMagic { found }) if looks_like_tls(found) => {
                return Err(TransportError::Protocol(
                    "the peer speaks TLS: use a tls:// endpoint",
                ))
            }
            Err(e) => return Err(e.into()),
        }
        let needed = decoder.bytes_needed(buf.len());
        make_read_room(buf, needed);
        if rd.read_buf(buf).await? == 0 {
            return Err(TransportError::ConnectionClosed { clean: false });
        }
    }
}

/// Appends a plain packet holding one HANDSHAKE frame.
fn handshake_packet(stream_id: u64, payload: &[u8], out: &mut Vec<u8>) -> Result<()> {
    let frame = FrameRef::new(FrameKind::Handshake, stream_id, payload);
    Header::for_body(PacketFlags::default(), frame.encoded_len())?.write(out);
    frame.encode(out);
    Ok(())
}

async fn write_handshake_frame<W: AsyncWrite + Unpin + ?Sized>(
    wr: &mut W,
    stream_id: u64,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    out.clear();
    handshake_packet(stream_id, payload, out)?;
    wr.write_all(out).await?;
    wr.flush().await?;
    Ok(())
}

/// The stream id and payload range of the one HANDSHAKE frame a handshake
/// packet must hold.
fn handshake_frame(flags: PacketFlags, body: &[u8]) -> Result<(u64, std::ops::Range<usize>)> {
    let limits = FrameLimits::with_max_payload(MAX_MESSAGE_LEN);
    if flags != PacketFlags::default() {
        return Err(TransportError::Protocol(
            "handshake packets must be plain and uncompressed",
        ));
    }
    let (frame, used) = FrameRef::decode(body, &limits)?;
    if frame.kind != FrameKind::Handshake || used != body.len() {
        return Err(TransportError::Protocol(
            "expected exactly one HANDSHAKE frame",
        ));
    }
    Ok((frame.stream_id, used - frame.payload.len()..used))
}

/// Reads one packet holding exactly one HANDSHAKE frame; returns its stream
/// id and the packet body with the frame's payload range.
async fn read_handshake_frame<R: AsyncRead + Unpin + ?Sized>(
    rd: &mut R,
    buf: &mut BytesMut,
    decoder: &mut PacketDecoder,
) -> Result<(u64, BytesMut, std::ops::Range<usize>)> {
    let (flags, body) = read_packet(rd, buf, decoder).await?;
    let (stream_id, range) = handshake_frame(flags, &body)?;
    Ok((stream_id, body, range))
}

/// Inside TLS without Noise each side sends its capabilities in a hello
/// (TLS protects them). Neither side writes it on its own: it is the first
/// thing in the writer's buffer and leaves with the first frames (or at once
/// if there are none), saving a record and a system call. The client does
/// not wait for the server's hello either: it reads it as its first packet
/// ([`parse_hello`]), so the hello costs no round trip.
pub(crate) fn hello_packet(ours: &Capabilities, out: &mut Vec<u8>) -> Result<()> {
    let mut payload = Vec::with_capacity(16);
    ours.encode(&mut payload);
    handshake_packet(HELLO_STREAM, &payload, out)
}

/// The peer's capabilities from its hello packet.
pub(crate) fn parse_hello(flags: PacketFlags, body: &[u8]) -> Result<Capabilities> {
    let (stream_id, range) = handshake_frame(flags, body)?;
    if stream_id != HELLO_STREAM {
        return Err(TransportError::Protocol(
            "the peer runs a Noise handshake inside TLS: noise_inside_tls differs between the two sides",
        ));
    }
    Ok(Capabilities::decode(&body[range])?)
}

/// The server's side of the hello: reads the client's (which arrives with
/// the client's last TLS handshake message). A client that starts Noise
/// instead is sent our hello before we fail, so it can report the mismatch
/// rather than an EOF.
pub(crate) async fn read_hello<R, W>(
    rd: &mut R,
    wr: &mut W,
    buf: &mut BytesMut,
    decoder: &mut PacketDecoder,
    ours: &Capabilities,
) -> Result<Capabilities>
where
    R: AsyncRead + Unpin + ?Sized,
    W: AsyncWrite + Unpin + ?Sized,
{
    let (flags, body) = read_packet(rd, buf, decoder).await?;
    let parsed = parse_hello(flags, &body);
    if parsed.is_err() {
        let mut out = Vec::with_capacity(32);
        if hello_packet(ours, &mut out).is_ok() {
            let _ = wr.write_all(&out).await;
            let _ = wr.flush().await;
        }
    }
    parsed
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
    let mut msg = Vec::new();
    let mut out = Vec::new();
    while !hs.is_finished() {
        if hs.is_my_turn() {
            msg.clear();
            hs.write_message(&mut rng, unix_now(), &mut msg)?;
            write_handshake_frame(wr, NOISE_STREAM, &msg, &mut out).await?;
        } else {
            let (stream_id, body, range) = read_handshake_frame(rd, buf, decoder).await?;
            if stream_id == HELLO_STREAM {
                // A responder would otherwise close without a word and the
                // peer would see only an EOF: tell it we expect Noise.
                let _ = write_handshake_frame(wr, NOISE_STREAM, &[], &mut out).await;
                return Err(TransportError::Protocol(
                    "the peer runs no Noise handshake inside TLS: noise_inside_tls differs between the two sides",
                ));
            }
            let payload = &body[range];
            match &cfg.timestamp_guard {
                Some(guard) => {
                    // A panic elsewhere while holding the lock leaves the guard
                    // consistent (every update is one insert), so recover it.
                    let mut g = guard
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    g.set_now(unix_now());
                    hs.read_message(payload, Some(&mut g))?;
                }
                None => hs.read_message(payload, None)?,
            }
        }
    }
    Ok(hs.finish()?)
}
