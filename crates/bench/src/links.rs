//! The message links behind [`Tx`]/[`Rx`], one kind per system: framed
//! byte streams (raw TCP and Unix sockets, tokio-rustls), netproto's
//! `SendHalf`/`RecvHalf`, and `snow` Noise_XX records over TCP.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use netproto_transport::{Connection, Flush, RecvHalf, SendHalf};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::systems::{BoxFuture, Link, Result, Rx, Tx};
use crate::BenchError;

fn snow_params() -> snow::params::NoiseParams {
    // A constant that parses; a failure here is a bug in this file.
    "Noise_XX_25519_ChaChaPoly_SHA256"
        .parse()
        .unwrap_or_else(|_| unreachable!("valid Noise parameters"))
}

pub(crate) fn snow_builder() -> snow::Builder<'static> {
    snow::Builder::new(snow_params())
}

pub(crate) struct FramedTx<W>(pub(crate) FramedWrite<W, LengthDelimitedCodec>);
pub(crate) struct FramedRx<R>(pub(crate) FramedRead<R, LengthDelimitedCodec>);

impl<W: AsyncWrite + Unpin + Send> Tx for FramedTx<W> {
    fn send<'a>(&'a mut self, msg: &'a [u8]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move { Ok(self.0.feed(Bytes::copy_from_slice(msg)).await?) })
    }
    fn flush(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { Ok(SinkExt::<Bytes>::flush(&mut self.0).await?) })
    }
}

impl<R: AsyncRead + Unpin + Send> Rx for FramedRx<R> {
    fn recv(&mut self) -> BoxFuture<'_, Result<usize>> {
        Box::pin(async move {
            match self.0.next().await {
                Some(frame) => Ok(frame?.len()),
                None => Err(BenchError::Closed),
            }
        })
    }
}

pub(crate) fn framed_link<S: AsyncRead + AsyncWrite + Send + 'static>(stream: S) -> Link {
    let (r, w) = tokio::io::split(stream);
    Link {
        tx: Box::new(FramedTx(FramedWrite::new(w, LengthDelimitedCodec::new()))),
        rx: Box::new(FramedRx(FramedRead::new(r, LengthDelimitedCodec::new()))),
    }
}

pub(crate) fn tcp_link(stream: TcpStream) -> Link {
    let (r, w) = stream.into_split();
    Link {
        tx: Box::new(FramedTx(FramedWrite::new(w, LengthDelimitedCodec::new()))),
        rx: Box::new(FramedRx(FramedRead::new(r, LengthDelimitedCodec::new()))),
    }
}

#[cfg(unix)]
pub(crate) fn uds_link(stream: tokio::net::UnixStream) -> Link {
    let (r, w) = stream.into_split();
    Link {
        tx: Box::new(FramedTx(FramedWrite::new(w, LengthDelimitedCodec::new()))),
        rx: Box::new(FramedRx(FramedRead::new(r, LengthDelimitedCodec::new()))),
    }
}

/// netproto's sending half behind [`Tx`]. A small message (≤ 16 KiB) last
/// handed to `send` is held until the next `send` or `flush`, so that the
/// last one of a burst leaves with [`Flush::Now`] (written from this task
/// while the writer is idle) and the others with [`Flush::Batch`]: the
/// pairing a user of `send_with` writes, within the `Tx` contract ("may
/// wait in a buffer until flush") that the framed baselines keep. Before,
/// every message was queued for the writer and `flush` wrote it directly,
/// so the writer woke for nothing once per message (three futex calls and
/// an epoll wait per round trip more than raw TCP; W1 p50 went from 55 to
/// 37 µs, docs/BENCHMARKS.md "Speed, round 2"). Larger messages are queued
/// at once, as before: holding a 64 KiB echo until the next message had
/// been read and opened cost W9's 64 KiB ×4 a fifth of its throughput
/// (615 → 480 MB/s, alternated).
struct NetprotoTx {
    send: SendHalf,
    /// The held message (reused: no allocation per message).
    held: Vec<u8>,
    holding: bool,
}

/// Messages up to this size are held for `flush` (see [`NetprotoTx`]).
const HOLD_MAX: usize = 16 * 1024;

impl NetprotoTx {
    async fn send_held(&mut self, flush: Flush) -> Result<()> {
        if std::mem::take(&mut self.holding) {
            self.send.send_with(0, &self.held[..], flush).await?;
        }
        Ok(())
    }
}

struct NetprotoRx(RecvHalf);

impl Tx for NetprotoTx {
    fn send<'a>(&'a mut self, msg: &'a [u8]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.send_held(Flush::Batch).await?;
            if msg.len() > HOLD_MAX {
                return Ok(self.send.send_with(0, msg, Flush::Batch).await?);
            }
            self.held.clear();
            self.held.extend_from_slice(msg);
            self.holding = true;
            Ok(())
        })
    }
    fn flush(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            if self.holding {
                self.send_held(Flush::Now).await
            } else {
                // Large messages were queued for the writer; what it has
                // not taken yet leaves from here if it is idle.
                self.send.write_now();
                Ok(())
            }
        })
    }
}

impl Rx for NetprotoRx {
    fn recv(&mut self) -> BoxFuture<'_, Result<usize>> {
        Box::pin(async move { Ok(self.0.recv_frame().await?.payload.len()) })
    }
}

pub(crate) fn netproto_link(conn: Connection) -> Link {
    let (send, recv) = conn.split();
    netproto_halves(send, recv)
}

pub(crate) fn netproto_halves(send: SendHalf, recv: RecvHalf) -> Link {
    Link {
        tx: Box::new(NetprotoTx {
            send,
            held: Vec::new(),
            holding: false,
        }),
        rx: Box::new(NetprotoRx(recv)),
    }
}

/// snow records: `len u16 BE | ciphertext`, one record per message (split
/// into several when a message exceeds one Noise message).
struct SnowTx {
    w: FramedWrite<tokio::net::tcp::OwnedWriteHalf, LengthDelimitedCodec>,
    state: Arc<snow::StatelessTransportState>,
    nonce: u64,
    buf: Vec<u8>,
}

struct SnowRx {
    r: FramedRead<tokio::net::tcp::OwnedReadHalf, LengthDelimitedCodec>,
    state: Arc<snow::StatelessTransportState>,
    nonce: u64,
    buf: Vec<u8>,
}

const SNOW_MAX_PLAIN: usize = 65535 - 16;

fn u16_codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(2)
        .max_frame_length(65535)
        .new_codec()
}

impl Tx for SnowTx {
    fn send<'a>(&'a mut self, msg: &'a [u8]) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            for chunk in msg
                .chunks(SNOW_MAX_PLAIN)
                .chain(msg.is_empty().then_some(&[][..]))
            {
                self.buf.resize(chunk.len() + 16, 0);
                let n = self
                    .state
                    .write_message(self.nonce, chunk, &mut self.buf)
                    .map_err(|e| BenchError::Snow(e.to_string()))?;
                self.nonce += 1;
                self.w.feed(Bytes::copy_from_slice(&self.buf[..n])).await?;
            }
            Ok(())
        })
    }
    fn flush(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { Ok(SinkExt::<Bytes>::flush(&mut self.w).await?) })
    }
}

impl Rx for SnowRx {
    fn recv(&mut self) -> BoxFuture<'_, Result<usize>> {
        Box::pin(async move {
            let Some(frame) = self.r.next().await else {
                return Err(BenchError::Closed);
            };
            let frame = frame?;
            self.buf.resize(frame.len(), 0);
            let n = self
                .state
                .read_message(self.nonce, &frame, &mut self.buf)
                .map_err(|e| BenchError::Snow(e.to_string()))?;
            self.nonce += 1;
            Ok(n)
        })
    }
}

async fn snow_write(stream: &mut TcpStream, msg: &[u8]) -> Result<()> {
    let len = u16::try_from(msg.len()).map_err(|_| BenchError::Snow("message too long".into()))?;
    stream.write_all(&len.to_be_bytes()).await?;
    stream.write_all(msg).await?;
    Ok(())
}

async fn snow_read(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<()> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    buf.resize(usize::from(u16::from_be_bytes(len)), 0);
    stream.read_exact(buf).await?;
    Ok(())
}

/// Runs snow's XX handshake over `stream` and returns the transport link.
pub(crate) async fn snow_handshake(
    mut stream: TcpStream,
    initiator: bool,
    static_key: &[u8],
) -> Result<Link> {
    let snow_err = |e: snow::Error| BenchError::Snow(e.to_string());
    let builder = snow_builder()
        .local_private_key(static_key)
        .map_err(snow_err)?;
    let mut hs = if initiator {
        builder.build_initiator()
    } else {
        builder.build_responder()
    }
    .map_err(snow_err)?;
    let (mut out, mut incoming, mut scratch) = (vec![0u8; 1024], Vec::new(), vec![0u8; 1024]);
    while !hs.is_handshake_finished() {
        if hs.is_my_turn() {
            let n = hs.write_message(&[], &mut out).map_err(snow_err)?;
            snow_write(&mut stream, &out[..n]).await?;
        } else {
            snow_read(&mut stream, &mut incoming).await?;
            hs.read_message(&incoming, &mut scratch).map_err(snow_err)?;
        }
    }
    let state = Arc::new(hs.into_stateless_transport_mode().map_err(snow_err)?);
    stream.set_nodelay(true)?;
    let (r, w) = stream.into_split();
    Ok(Link {
        tx: Box::new(SnowTx {
            w: FramedWrite::new(w, u16_codec()),
            state: state.clone(),
            nonce: 0,
            buf: Vec::new(),
        }),
        rx: Box::new(SnowRx {
            r: FramedRead::new(r, u16_codec()),
            state,
            nonce: 0,
            buf: Vec::new(),
        }),
    })
}
