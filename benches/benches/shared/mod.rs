//! Measurement loops and peer loops shared by the socket benchmarks, so that
//! netproto and every baseline are timed by the same code.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use netproto_transport::{RecvHalf, SendHalf};
use netproto_wire::{Frame, FrameKind};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, LengthDelimitedCodec};

/// Frames per acknowledgement in the bulk workloads.
pub(crate) const ACK_EVERY: u64 = 64;

/// `iters` echo round trips over a netproto connection.
pub(crate) async fn netproto_echo(
    send: &SendHalf,
    recv: &mut RecvHalf,
    payload: &Bytes,
    iters: u64,
) -> Duration {
    let start = Instant::now();
    for i in 0..iters {
        send.send_frame(Frame::data(i, payload.clone()))
            .await
            .unwrap();
        recv.recv_frame().await.unwrap();
    }
    start.elapsed()
}

/// `iters` × [`ACK_EVERY`] one-way messages, one acknowledgement each batch.
pub(crate) async fn netproto_bulk(
    send: &SendHalf,
    recv: &mut RecvHalf,
    payload: &Bytes,
    iters: u64,
) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        for i in 0..ACK_EVERY {
            send.send_frame(Frame::data(i, payload.clone()))
                .await
                .unwrap();
        }
        recv.recv_frame().await.unwrap();
    }
    start.elapsed()
}

/// The same round trips over length-delimited framing.
pub(crate) async fn framed_echo<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<S, LengthDelimitedCodec>,
    payload: &Bytes,
    iters: u64,
) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        framed.send(payload.clone()).await.unwrap();
        framed.next().await.unwrap().unwrap();
    }
    start.elapsed()
}

/// The same bulk transfer over length-delimited framing.
pub(crate) async fn framed_bulk<S: AsyncRead + AsyncWrite + Unpin>(
    framed: &mut Framed<S, LengthDelimitedCodec>,
    payload: &Bytes,
    iters: u64,
) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        for _ in 0..ACK_EVERY {
            framed.feed(payload.clone()).await.unwrap();
        }
        SinkExt::<Bytes>::flush(framed).await.unwrap();
        framed.next().await.unwrap().unwrap();
    }
    start.elapsed()
}

/// The netproto peer: echoes every frame, or acknowledges every
/// `bulk_ack_every` frames; returns when the connection ends.
pub(crate) async fn netproto_peer(send: SendHalf, mut recv: RecvHalf, bulk_ack_every: Option<u64>) {
    let mut n = 0u64;
    while let Ok(f) = recv.recv_frame().await {
        let reply = match bulk_ack_every {
            None => Some(f),
            Some(k) => {
                n += 1;
                n.is_multiple_of(k)
                    .then(|| Frame::new(FrameKind::Ack, n, Bytes::new()))
            }
        };
        if let Some(r) = reply {
            if send.send_frame(r).await.is_err() {
                return;
            }
        }
    }
}

/// The length-delimited peer, same behaviour.
pub(crate) async fn framed_peer<S: AsyncRead + AsyncWrite + Unpin>(
    mut framed: Framed<S, LengthDelimitedCodec>,
    bulk_ack_every: Option<u64>,
) {
    let mut n = 0u64;
    while let Some(Ok(msg)) = framed.next().await {
        let reply = match bulk_ack_every {
            None => Some(msg.freeze()),
            Some(k) => {
                n += 1;
                n.is_multiple_of(k).then(|| Bytes::from_static(b"ack"))
            }
        };
        if let Some(r) = reply {
            if framed.send(r).await.is_err() {
                return;
            }
        }
    }
}
