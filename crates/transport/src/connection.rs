//! [`Connection`] and its halves: the one handle every carrier gives the
//! service. Behind it runs either a [`Core`](crate::core::Core) over a byte
//! stream (TCP, Unix sockets, TLS, an in-memory pipe; see `stream`) or a
//! carrier's own session driver (UDP; see [`crate::session`]).

use std::sync::Arc;
use std::time::Duration;

use futures_core::Stream;
use futures_sink::Sink;
use futures_util::FutureExt;
use netproto_wire::Frame;

use crate::core::{ConnectionInfo, Priority};
use crate::error::{Result, TransportError};
use crate::payload::Payload;
use crate::session::{Delivery, Room, SessionLink, SessionRecv, SessionSend};
use crate::stream::{StreamRecv, StreamSend};

/// A secure connection. Use it whole, or [`Connection::split`] it into a
/// [`SendHalf`] (cloneable) and a [`RecvHalf`] for separate tasks.
pub struct Connection {
    pub(crate) send: SendHalf,
    pub(crate) recv: RecvHalf,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("info", self.info())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A connection whose protocol a carrier runs itself (UDP sessions):
    /// `info` from its handshake, its sending and receiving sides.
    pub fn from_session(
        info: ConnectionInfo,
        send: Arc<dyn SessionSend>,
        recv: Box<dyn SessionRecv>,
    ) -> Self {
        let info = Arc::new(info);
        let link = SessionLink::new(send);
        Self {
            send: SendHalf {
                inner: SendInner::Session(link.clone()),
                info: info.clone(),
            },
            recv: RecvHalf {
                inner: RecvInner::Session {
                    link: Arc::downgrade(&link),
                    recv,
                    failed: None,
                },
                info,
            },
        }
    }

    /// What the handshake established.
    pub fn info(&self) -> &ConnectionInfo {
        self.send.info()
    }

    /// Sends `payload` as a one-way DATA frame (stream id 0).
    ///
    /// # Errors
    /// See [`SendHalf::send`].
    pub async fn send<P: Payload + ?Sized>(&self, payload: &P) -> Result<()> {
        self.send.send(0, payload).await
    }

    /// Sends a frame.
    ///
    /// # Errors
    /// See [`SendHalf::send_frame`].
    pub async fn send_frame(&self, frame: Frame) -> Result<()> {
        self.send.send_frame(frame).await
    }

    /// Receives the next frame.
    ///
    /// # Errors
    /// See [`RecvHalf::recv_frame`].
    pub async fn recv_frame(&mut self) -> Result<Frame> {
        self.recv.recv_frame().await
    }

    /// Sends BYE, flushes and closes the write side.
    ///
    /// # Errors
    /// The connection's failure, if it had already failed.
    pub async fn close(self) -> Result<()> {
        self.send.close().await
    }

    /// Splits into a cloneable sending handle and the receiving half.
    pub fn split(self) -> (SendHalf, RecvHalf) {
        (self.send, self.recv)
    }
}

/// When a queued message leaves (byte streams; datagram sessions send from
/// their endpoint and ignore it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Flush {
    /// The connection's writer task takes it, together with whatever else
    /// is queued by then: fewer, larger records and system calls when many
    /// messages are sent at once (pipelining).
    #[default]
    Batch,
    /// The sending task writes it at once if the writer is idle, saving
    /// the writer's wake-up (a sequential request/response exchange: one
    /// task hop less each way; what the socket does not take at once is
    /// left to the writer). While the writer is busy it behaves as `Batch`.
    Now,
}

/// How long a GOAWAY that found a session's queue full waits for room.
pub(crate) const GOAWAY_PATIENCE: Duration = Duration::from_secs(5);

#[derive(Clone)]
enum SendInner {
    Stream(StreamSend),
    Session(Arc<SessionLink>),
}

/// The sending side: a cheap, cloneable handle. On a byte stream, frames
/// are encoded straight into the connection's record buffer and those
/// queued while the writer is busy leave together; on a datagram session
/// they are queued in the session. At most `send_buffer` bytes (on UDP:
/// the session's send queue) wait: beyond that `send` waits and
/// `try_send_frame` refuses ([`TransportError::Backpressure`]). Dropping
/// the last handle closes the connection.
#[derive(Clone)]
pub struct SendHalf {
    inner: SendInner,
    info: Arc<ConnectionInfo>,
}

impl std::fmt::Debug for SendHalf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendHalf")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl SendHalf {
    pub(crate) fn stream(send: StreamSend, info: Arc<ConnectionInfo>) -> Self {
        Self {
            inner: SendInner::Stream(send),
            info,
        }
    }

    /// Queues `payload` as a DATA frame with `stream_id`, encoding it once;
    /// waits while the send buffer is full (backpressure).
    ///
    /// # Errors
    /// [`TransportError::MessageTooLarge`] beyond the peer's limit,
    /// [`TransportError::BadMessage`] if it does not encode (nothing was
    /// sent; the connection goes on); the connection's error once it has
    /// failed or closed.
    pub async fn send<P: Payload + ?Sized>(&self, stream_id: u64, payload: &P) -> Result<()> {
        self.send_as(stream_id, payload, Delivery::Ordered).await
    }

    /// As [`SendHalf::send`], with a choice of [`Delivery`] where the
    /// carrier can lose datagrams (UDP); byte streams deliver everything
    /// reliably and in order.
    ///
    /// # Errors
    /// As [`SendHalf::send`].
    pub async fn send_as<P: Payload + ?Sized>(
        &self,
        stream_id: u64,
        payload: &P,
        delivery: Delivery,
    ) -> Result<()> {
        match &self.inner {
            SendInner::Stream(s) => s.send(stream_id, payload, Flush::Batch).await,
            SendInner::Session(l) => l
                .send_payload(stream_id, payload, delivery, Room::Wait, None)
                .await
                .map(drop),
        }
    }

    /// As [`SendHalf::send`], at `priority`: on a byte stream whose peer
    /// agreed to interleaving (every netproto peer does), a message larger
    /// than a piece (16 KiB) leaves in pieces, the most urgent waiting
    /// message's first, so an urgent message overtakes a bulk one
    /// mid-flight ([`Priority`]). Datagram sessions (UDP) send in the
    /// order of queueing and ignore it.
    ///
    /// # Errors
    /// As [`SendHalf::send`].
    pub async fn send_at<P: Payload + ?Sized>(
        &self,
        stream_id: u64,
        payload: &P,
        priority: Priority,
    ) -> Result<()> {
        match &self.inner {
            SendInner::Stream(s) => s.send_at(stream_id, payload, Flush::Batch, priority).await,
            SendInner::Session(_) => self.send(stream_id, payload).await,
        }
    }

    /// As [`SendHalf::send_frame`], at `priority` (see [`SendHalf::send_at`]).
    ///
    /// # Errors
    /// As [`SendHalf::send_frame`].
    pub async fn send_frame_at(&self, frame: Frame, priority: Priority) -> Result<()> {
        match &self.inner {
            SendInner::Stream(s) => s.send_frame(frame, priority).await,
            SendInner::Session(_) => self.send_frame(frame).await,
        }
    }

    /// As [`SendHalf::send`], choosing when the message leaves
    /// ([`Flush::Now`]: for an answer or a request nothing else will
    /// follow soon).
    ///
    /// # Errors
    /// As [`SendHalf::send`].
    pub async fn send_with<P: Payload + ?Sized>(
        &self,
        stream_id: u64,
        payload: &P,
        flush: Flush,
    ) -> Result<()> {
        match &self.inner {
            SendInner::Stream(s) => s.send(stream_id, payload, flush).await,
            SendInner::Session(_) => self.send(stream_id, payload).await,
        }
    }

    /// Writes what is queued now, from this task, if the connection's
    /// writer is idle (see [`Flush::Now`]); otherwise, and on datagram
    /// sessions, it leaves as usual. Never waits.
    pub fn write_now(&self) {
        if let SendInner::Stream(s) = &self.inner {
            s.write_now();
        }
    }

    /// As [`SendHalf::send`], waiting for room while the connection makes
    /// progress, but at most `limit` without any (the peer is not reading).
    ///
    /// # Errors
    /// [`TransportError::Backpressure`] if nothing moved for `limit`
    /// (nothing was queued); otherwise as [`SendHalf::send`].
    pub async fn send_within<P: Payload + ?Sized>(
        &self,
        stream_id: u64,
        payload: &P,
        limit: Duration,
    ) -> Result<()> {
        match &self.inner {
            SendInner::Stream(s) => s.send_within(stream_id, payload, limit).await,
            SendInner::Session(l) => l
                .send_payload(
                    stream_id,
                    payload,
                    Delivery::Ordered,
                    Room::WaitAtMost(limit),
                    None,
                )
                .await
                .map(drop),
        }
    }

    /// As [`SendHalf::send_within`], but the stream id is chosen by
    /// `assign` at the moment the frame is queued, under the connection's
    /// lock: frames leave (and, on UDP, are delivered) in the order of
    /// their ids, so a peer's GOAWAY (`last_stream_id`) splits them exactly
    /// into served and not served. `assign` runs once, and only if the
    /// payload is then queued or refused by a check (not if waiting for
    /// room times out).
    ///
    /// `flush` says when it leaves ([`Flush`]).
    ///
    /// # Errors
    /// As [`SendHalf::send_within`]; the id assigned, if any, is lost with
    /// the error (the caller's `assign` recorded it).
    pub async fn send_assigned<P: Payload + ?Sized>(
        &self,
        assign: &mut (dyn FnMut() -> u64 + Send),
        payload: &P,
        limit: Duration,
        flush: Flush,
    ) -> Result<u64> {
        self.send_assigned_at(assign, payload, limit, flush, Priority::default())
            .await
    }

    /// As [`SendHalf::send_assigned`], at `priority` (byte streams; see
    /// [`SendHalf::send_at`]).
    ///
    /// # Errors
    /// As [`SendHalf::send_assigned`].
    pub async fn send_assigned_at<P: Payload + ?Sized>(
        &self,
        assign: &mut (dyn FnMut() -> u64 + Send),
        payload: &P,
        limit: Duration,
        flush: Flush,
        priority: Priority,
    ) -> Result<u64> {
        match &self.inner {
            SendInner::Stream(s) => {
                s.send_assigned(assign, payload, limit, flush, priority)
                    .await
            }
            SendInner::Session(l) => {
                l.send_payload(
                    0,
                    payload,
                    Delivery::Ordered,
                    Room::WaitAtMost(limit),
                    Some(assign),
                )
                .await
            }
        }
    }

    /// Queues a frame; waits while the send buffer is full. Large payloads
    /// are split into continuation frames (on UDP: datagram pieces)
    /// automatically.
    ///
    /// # Errors
    /// [`TransportError::InvalidFrame`] for HANDSHAKE or BYE frames, frames
    /// with `more` set, or header blocks over the wire limits; otherwise as
    /// [`SendHalf::send`].
    pub async fn send_frame(&self, frame: Frame) -> Result<()> {
        self.send_frame_as(frame, Delivery::Ordered).await
    }

    /// As [`SendHalf::send_frame`], with a choice of [`Delivery`] (see
    /// [`SendHalf::send_as`]).
    ///
    /// # Errors
    /// As [`SendHalf::send_frame`].
    pub async fn send_frame_as(&self, frame: Frame, delivery: Delivery) -> Result<()> {
        match &self.inner {
            SendInner::Stream(s) => s.send_frame(frame, Priority::default()).await,
            SendInner::Session(l) => l
                .send_frame(frame, delivery, Room::Wait, None)
                .await
                .map(drop),
        }
    }

    /// Queues a frame without waiting.
    ///
    /// # Errors
    /// [`TransportError::Backpressure`] when the send buffer is full,
    /// otherwise as [`SendHalf::send_frame`].
    pub fn try_send_frame(&self, frame: Frame) -> Result<()> {
        match &self.inner {
            SendInner::Stream(s) => s.try_send_frame(frame),
            SendInner::Session(l) => l
                .send_frame(frame, Delivery::Ordered, Room::NoWait, None)
                .now_or_never()
                .unwrap_or(Err(TransportError::Backpressure))
                .map(drop),
        }
    }

    /// Queues GOAWAY: requests with ids above `last_stream_id` will not be
    /// served. Never waits for room (it is a control frame): on a session
    /// whose queue is full (UDP), it is queued from a task as soon as there
    /// is room (within 5 s).
    ///
    /// # Errors
    /// The connection's error once it has ended.
    pub fn goaway(&self, last_stream_id: u64, reason: &str) -> Result<()> {
        match &self.inner {
            SendInner::Stream(s) => s.goaway(last_stream_id, reason),
            SendInner::Session(link) => {
                let frame = Frame::goaway(last_stream_id, reason);
                match self.try_send_frame(frame.clone()) {
                    Err(TransportError::Backpressure) => {
                        let link = link.clone();
                        let wait = Room::WaitAtMost(GOAWAY_PATIENCE);
                        tokio::spawn(async move {
                            let queued = link.send_frame(frame, Delivery::Ordered, wait, None);
                            if let Err(e) = queued.await {
                                tracing::debug!(error = %e, "GOAWAY not sent");
                            }
                        });
                        Ok(())
                    }
                    other => other,
                }
            }
        }
    }

    /// Sends a PING and waits at most `within` for the answer; returns the
    /// round trip. On a byte stream the peer's core answers with a PONG,
    /// seen only while this connection is being read; on UDP the peer's
    /// acknowledgement of a reliable PING times it.
    ///
    /// # Errors
    /// [`TransportError::Timeout`] ([`crate::TimeoutKind::Ping`]) if no
    /// answer came in time; the connection's error once it has ended.
    pub async fn ping(&self, within: Duration) -> Result<Duration> {
        match &self.inner {
            SendInner::Stream(s) => s.ping(within).await,
            SendInner::Session(l) => l.send.ping(within).await,
        }
    }

    /// The latest round-trip time measured (by a PING on streams, by
    /// acknowledgements on UDP).
    pub fn rtt(&self) -> Option<Duration> {
        match &self.inner {
            SendInner::Stream(s) => s.rtt(),
            SendInner::Session(l) => l.send.rtt(),
        }
    }

    /// The last request id the peer will serve, once it sent GOAWAY.
    pub fn peer_goaway(&self) -> Option<u64> {
        match &self.inner {
            SendInner::Stream(s) => s.peer_goaway(),
            SendInner::Session(l) => l.peer_goaway(),
        }
    }

    /// The connection's error, once it has ended.
    pub fn error(&self) -> Option<TransportError> {
        match &self.inner {
            SendInner::Stream(s) => s.error(),
            SendInner::Session(l) => l.send.error(),
        }
    }

    /// Sends BYE after everything queued before it (on UDP: once it was
    /// acknowledged, within the session's delivery deadline), and closes
    /// the write side. Sends after the close request are refused with
    /// [`TransportError::ConnectionClosed`].
    ///
    /// # Errors
    /// The connection's error if it had failed (a connection the peer
    /// closed cleanly closes without error).
    pub async fn close(&self) -> Result<()> {
        match &self.inner {
            SendInner::Stream(s) => s.close().await,
            SendInner::Session(l) => l.send.close().await,
        }
    }

    /// What the handshake established.
    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// A [`Sink`] of frames over this handle.
    pub fn sink(&self) -> impl Sink<Frame, Error = TransportError> + Send + 'static {
        futures_util::sink::unfold(self.clone(), |half, frame: Frame| async move {
            half.send_frame(frame).await?;
            Ok::<_, TransportError>(half)
        })
    }
}

enum RecvInner {
    Stream(StreamRecv),
    Session {
        /// Weak: only the sending handles keep a session open (as on a
        /// stream, dropping the last one closes it).
        link: std::sync::Weak<SessionLink>,
        recv: Box<dyn SessionRecv>,
        /// A frame that broke the rules ends the connection for good.
        failed: Option<TransportError>,
    },
}

/// The receiving side: hands out the peer's frames. PINGs are answered,
/// continued messages reassembled and deadlines kept while it is read.
pub struct RecvHalf {
    inner: RecvInner,
    info: Arc<ConnectionInfo>,
}

impl std::fmt::Debug for RecvHalf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvHalf")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl RecvHalf {
    pub(crate) fn stream(recv: StreamRecv, info: Arc<ConnectionInfo>) -> Self {
        Self {
            inner: RecvInner::Stream(recv),
            info,
        }
    }

    /// What the handshake established.
    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// Receives the next frame: DATA (whole messages, continuation already
    /// reassembled), ERR, ACK, GOAWAY and PONG. PINGs are answered; unknown
    /// extension frames are skipped. Cancel-safe: dropping the future loses
    /// nothing.
    ///
    /// # Errors
    /// [`TransportError::ConnectionClosed`] (`clean` after the peer's BYE),
    /// timeouts, and authentication, format and limit errors. All of these
    /// end the connection; later calls return the same error.
    pub async fn recv_frame(&mut self) -> Result<Frame> {
        match &mut self.inner {
            RecvInner::Stream(r) => r.recv_frame().await,
            RecvInner::Session { link, recv, failed } => {
                if let Some(e) = failed {
                    return Err(e.clone());
                }
                let frame = match recv.recv().await {
                    Ok(frame) => frame,
                    Err(e) => {
                        // Later calls repeat the first reason.
                        *failed = Some(e.clone());
                        return Err(e);
                    }
                };
                let Some(link) = link.upgrade() else {
                    return Ok(frame);
                };
                if let Err(e) = link.observe(&frame) {
                    *failed = Some(e.clone());
                    // The peer broke the protocol: the session ends now
                    // (bounded: nothing waits on a peer that misbehaves).
                    let _ = tokio::time::timeout(Duration::from_secs(1), link.send.close()).await;
                    return Err(e);
                }
                Ok(frame)
            }
        }
    }

    /// Whether bytes already read into this half are not handed out yet
    /// (another frame may be ready without reading the socket). Bytes still
    /// in the kernel's buffer, or inside a TLS layer, are not seen. A server
    /// answering requests one by one writes its answer at once
    /// ([`Flush::Now`]) when this is false, and lets answers batch while
    /// more requests wait. Datagram sessions say false.
    pub fn has_buffered_input(&self) -> bool {
        match &self.inner {
            RecvInner::Stream(r) => r.has_buffered_input(),
            RecvInner::Session { .. } => false,
        }
    }

    /// A [`Stream`] of frames; it ends after the peer's BYE and yields any
    /// other error once before ending.
    pub fn into_stream(self) -> impl Stream<Item = Result<Frame>> + Send + 'static {
        futures_util::stream::unfold(Some(self), |state| async move {
            let mut half = state?;
            match half.recv_frame().await {
                Ok(f) => Some((Ok(f), Some(half))),
                Err(TransportError::ConnectionClosed { clean: true }) => None,
                Err(e) => Some((Err(e), None)),
            }
        })
    }
}
