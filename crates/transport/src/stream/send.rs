//! The sending side of a stream connection (behind [`crate::SendHalf`]).

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use netproto_wire::Frame;

use super::writer::write_directly;
use super::{bounded, now, Shared};
use crate::connection::Flush;
use crate::core::{Core, Priority};
use crate::error::{Result, TransportError};
use crate::payload::Payload;

/// A place in the line of senders waiting for room (counted while held).
struct InLine<'a>(&'a AtomicUsize);

impl<'a> InLine<'a> {
    fn join(waiting: &'a AtomicUsize) -> Self {
        waiting.fetch_add(1, Ordering::AcqRel);
        Self(waiting)
    }
}

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// About what a frame takes in the send buffer (its payload and headers).
fn frame_len(frame: &Frame) -> usize {
    frame.payload.len() + frame.headers.as_ref().as_bytes().len()
}

/// Closes the connection (BYE after everything queued) when the last
/// sending handle is dropped.
struct LastHandle(Arc<Shared>);

impl Drop for LastHandle {
    fn drop(&mut self) {
        let mut core = self.0.lock();
        let _ = core.close(now());
        drop(core);
        self.0.wake_writer.notify_one();
    }
}

/// The sending side of a stream connection. Frames are encoded straight
/// into the connection's record buffer; those queued while the writer is
/// busy leave together, packed into as few records and system calls as
/// possible. At most `send_buffer` bytes wait: beyond that `send` waits and
/// `try_send_frame` refuses ([`TransportError::Backpressure`]).
#[derive(Clone)]
pub(crate) struct StreamSend {
    shared: Arc<Shared>,
    _last: Arc<LastHandle>,
}

/// How a send treats a full buffer.
enum WhenFull {
    Wait,
    WaitAtMost(Duration),
}

impl StreamSend {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self {
            _last: Arc::new(LastHandle(shared.clone())),
            shared,
        }
    }

    /// Runs `op` on the core once there is room in the send buffer (or the
    /// connection has ended, which `op` then reports).
    ///
    /// Senders that find the buffer full wait in line, first come first
    /// served (a FIFO semaphore of one): only the head of the line watches
    /// for room, and newcomers do not overtake it while anyone waits. (An
    /// earlier version woke every waiter on every write; with 200 callers
    /// of up to 200 KB over TLS, some waited past their 3 s operation
    /// timeout.)
    ///
    /// A message above the default priority's band does not wait in line
    /// behind senders of less urgent ones, and finds room whenever what
    /// waits at its band or above leaves room (a buffer full of bulk does
    /// not hold it back).
    async fn with_room<T>(
        &self,
        hint: usize,
        when_full: WhenFull,
        flush: Flush,
        priority: Priority,
        mut op: impl FnMut(&mut Core) -> Result<T>,
    ) -> Result<T> {
        let shared = &*self.shared;
        // Fast path: room, and nobody in line (or an urgent message).
        {
            let mut core = shared.lock();
            if shared.waiting.load(Ordering::Acquire) == 0
                || core.error().is_some()
                || priority.band() > Priority::NORMAL.band()
            {
                if let Some(result) = self.try_op(&mut core, hint, &mut op, flush, priority) {
                    return self.leave(core, flush, result);
                }
            }
        }
        // `WaitAtMost(limit)` fails only after `limit` without progress: a
        // long line that moves (the writer keeps writing) is waited out, a
        // stuck one (the peer reads nothing) is not.
        let limit = match when_full {
            WhenFull::WaitAtMost(limit) => Some(limit),
            WhenFull::Wait => None,
        };
        let mut deadline = limit.map(|l| tokio::time::Instant::now() + l);
        let _in_line = InLine::join(&shared.waiting);
        // The place in line is kept across wake-ups (a dropped `acquire`
        // would go to the back).
        let acquire = shared.line.acquire();
        let mut acquire = pin!(acquire);
        let _turn = loop {
            let progress = shared.progress.notified();
            let wait = bounded(deadline, async {
                tokio::select! {
                    biased;
                    turn = &mut acquire => Some(turn),
                    () = progress => None,
                }
            });
            match wait.await {
                Some(Some(Ok(turn))) => break turn,
                Some(Some(Err(_))) | None => return Err(TransportError::Backpressure),
                Some(None) => deadline = limit.map(|l| tokio::time::Instant::now() + l),
            }
        };
        loop {
            let progress = shared.progress.notified();
            let mut progress = pin!(progress);
            // Room in the send budget comes from other connections' writers.
            let mut released = shared.send_budget.as_ref().map(|b| b.released());
            {
                let mut core = shared.lock();
                if let Some(result) = self.try_op(&mut core, hint, &mut op, flush, priority) {
                    return self.leave(core, flush, result);
                }
                // Registered before the lock is released: the writer's
                // next notification cannot be missed.
                progress.as_mut().enable();
                if let Some(r) = released.as_mut() {
                    r.enable();
                }
            }
            // The writer may be waiting for a wake-up that a full buffer
            // already deserves.
            shared.wake_writer.notify_one();
            let woken = async {
                match released {
                    Some(r) => tokio::select! {
                        () = progress => {}
                        () = r => {}
                    },
                    None => progress.await,
                }
            };
            if bounded(deadline, woken).await.is_none() {
                return Err(TransportError::Backpressure);
            }
            deadline = limit.map(|l| tokio::time::Instant::now() + l);
        }
    }

    /// After a queued send: with [`Flush::Now`], writes from this task if
    /// the writer is idle (the core was not signalled yet).
    fn leave<T>(
        &self,
        core: std::sync::MutexGuard<'_, Core>,
        flush: Flush,
        result: Result<T>,
    ) -> Result<T> {
        if flush == Flush::Now {
            write_directly(&self.shared, core);
        }
        result
    }

    /// Writes what is queued from this task if the writer is idle (see
    /// [`Flush::Now`]); otherwise the writer sends it as usual.
    pub(crate) fn write_now(&self) {
        write_directly(&self.shared, self.shared.lock());
    }

    /// Runs `op` if there is room for about `hint` bytes (or the
    /// connection has ended, which `op` then reports); `None` if the buffer
    /// is full or the send budget has no room. The writer is signalled
    /// unless `flush` asks the caller to write.
    fn try_op<T>(
        &self,
        core: &mut Core,
        hint: usize,
        op: &mut impl FnMut(&mut Core) -> Result<T>,
        flush: Flush,
        priority: Priority,
    ) -> Option<Result<T>> {
        // The writer stopped because the peer is gone (the core learns why
        // from the reader): nothing more can be sent.
        if let Some(Err(e)) = self.shared.writer_done.get() {
            return Some(Err(core.error().cloned().unwrap_or_else(|| e.clone())));
        }
        let ended = core.error().is_some() || core.is_closing();
        let full = core.queued_bytes_at(priority) >= self.shared.send_buffer;
        // A full buffer, or a spent send budget (slow readers elsewhere
        // hold it): wait, unless the connection has ended (`op` says so).
        if full && !ended {
            return None;
        }
        let reserved = if ended {
            0
        } else {
            self.shared.send_reserve(hint)?
        };
        let before = core.queued_bytes();
        let result = op(core);
        let grew = core.queued_bytes().saturating_sub(before);
        self.shared.send_queued(reserved, grew);
        if flush == Flush::Batch {
            self.shared.signal(core);
        }
        Some(result)
    }

    /// Queues `payload` as a DATA frame with `stream_id`, encoding it once,
    /// straight into the record buffer; waits while the send buffer is full
    /// (backpressure).
    ///
    /// # Errors
    /// [`TransportError::MessageTooLarge`] beyond the peer's limit,
    /// [`TransportError::BadMessage`] if it does not encode (nothing was
    /// sent; the connection goes on); the connection's error once it has
    /// failed or closed.
    pub(crate) async fn send<P: Payload + ?Sized>(
        &self,
        stream_id: u64,
        payload: &P,
        flush: Flush,
    ) -> Result<()> {
        self.send_at(stream_id, payload, flush, Priority::default())
            .await
    }

    /// As [`StreamSend::send`], at `priority`.
    pub(crate) async fn send_at<P: Payload + ?Sized>(
        &self,
        stream_id: u64,
        payload: &P,
        flush: Flush,
        priority: Priority,
    ) -> Result<()> {
        self.with_room(
            payload.len_hint(),
            WhenFull::Wait,
            flush,
            priority,
            |core| core.send_payload_at(now(), stream_id, payload, priority),
        )
        .await
    }

    /// As [`SendHalf::send`], waiting for room while the connection makes
    /// progress, but at most `limit` without any (the writer took nothing:
    /// the peer is not reading). Only a full buffer arms a timer.
    ///
    /// # Errors
    /// [`TransportError::Backpressure`] if nothing moved for `limit`
    /// (nothing was queued); otherwise as [`SendHalf::send`].
    pub(crate) async fn send_within<P: Payload + ?Sized>(
        &self,
        stream_id: u64,
        payload: &P,
        limit: Duration,
    ) -> Result<()> {
        self.with_room(
            payload.len_hint(),
            WhenFull::WaitAtMost(limit),
            Flush::Batch,
            Priority::default(),
            |core| core.send_payload(now(), stream_id, payload),
        )
        .await
    }

    /// As [`SendHalf::send_within`], but the stream id is chosen by
    /// `assign` at the moment the frame is queued, under the connection's
    /// lock: frames leave in the order of their ids, so a peer's GOAWAY
    /// (`last_stream_id`) splits them exactly into served and not served.
    /// `assign` runs once, and only if the payload is then queued or
    /// refused by a check (not if waiting for room times out).
    ///
    /// # Errors
    /// As [`SendHalf::send_within`]; the id assigned, if any, is lost with
    /// the error (the caller's `assign` recorded it).
    pub(crate) async fn send_assigned<P: Payload + ?Sized>(
        &self,
        assign: &mut (dyn FnMut() -> u64 + Send),
        payload: &P,
        limit: Duration,
        flush: Flush,
        priority: Priority,
    ) -> Result<u64> {
        self.with_room(
            payload.len_hint(),
            WhenFull::WaitAtMost(limit),
            flush,
            priority,
            |core| {
                let id = assign();
                core.send_payload_at(now(), id, payload, priority)
                    .map(|()| id)
            },
        )
        .await
    }

    /// Queues a frame; waits while the send buffer is full. Large payloads
    /// are split into continuation frames automatically.
    ///
    /// # Errors
    /// [`TransportError::InvalidFrame`] for HANDSHAKE or BYE frames, frames
    /// with `more` set, or header blocks over the wire limits; otherwise as
    /// [`SendHalf::send`].
    pub(crate) async fn send_frame(&self, frame: Frame, priority: Priority) -> Result<()> {
        self.with_room(
            frame_len(&frame),
            WhenFull::Wait,
            Flush::Batch,
            priority,
            |core| core.send_frame_at(now(), &frame, priority),
        )
        .await
    }

    /// Queues a frame without waiting.
    ///
    /// # Errors
    /// [`TransportError::Backpressure`] when the send buffer is full,
    /// otherwise as [`SendHalf::send_frame`].
    // By value, like `send_frame`: the frame is the caller's to give away.
    #[allow(clippy::needless_pass_by_value)]
    pub(crate) fn try_send_frame(&self, frame: Frame) -> Result<()> {
        let mut core = self.shared.lock();
        self.try_op(
            &mut core,
            frame_len(&frame),
            &mut |core: &mut Core| core.send_frame(now(), &frame),
            Flush::Batch,
            Priority::default(),
        )
        .unwrap_or(Err(TransportError::Backpressure))
    }

    /// Queues GOAWAY: requests with ids above `last_stream_id` will not be
    /// served. Never waits for room (it is a control frame).
    ///
    /// # Errors
    /// The connection's error once it has ended.
    pub(crate) fn goaway(&self, last_stream_id: u64, reason: &str) -> Result<()> {
        let mut core = self.shared.lock();
        let result = core.goaway(now(), last_stream_id, reason);
        self.shared.signal(&mut core);
        result
    }

    /// Sends a PING and waits at most `within` for its PONG; returns the
    /// round trip. The peer's core answers whatever its application does,
    /// but the PONG is seen only while this connection is being read.
    ///
    /// # Errors
    /// [`TransportError::Timeout`] ([`crate::TimeoutKind::Ping`]) if no PONG
    /// came in time; the connection's error once it has ended.
    pub(crate) async fn ping(&self, within: Duration) -> Result<Duration> {
        let seq = {
            let mut core = self.shared.lock();
            let seq = core.ping(now());
            self.shared.signal(&mut core);
            seq?
        };
        let wait = async {
            loop {
                let progress = self.shared.progress.notified();
                let mut progress = pin!(progress);
                {
                    let core = self.shared.lock();
                    if let Some(e) = core.error() {
                        return Err(e.clone());
                    }
                    if core.ping_settled(seq) {
                        return core
                            .rtt()
                            .ok_or(TransportError::ConnectionClosed { clean: false });
                    }
                    progress.as_mut().enable();
                }
                progress.await;
            }
        };
        tokio::time::timeout(within, wait)
            .await
            .map_err(|_| TransportError::Timeout {
                kind: crate::TimeoutKind::Ping,
                after: within,
            })?
    }

    /// The latest round-trip time measured by a PING (keep-alive or
    /// [`SendHalf::ping`]).
    pub(crate) fn rtt(&self) -> Option<Duration> {
        self.shared.lock().rtt()
    }

    /// The last request id the peer will serve, once it sent GOAWAY.
    pub(crate) fn peer_goaway(&self) -> Option<u64> {
        self.shared.lock().peer_goaway()
    }

    /// The connection's error, once it has ended.
    pub(crate) fn error(&self) -> Option<TransportError> {
        self.shared.lock().error().cloned()
    }

    /// Sends BYE after everything queued before it, flushes, and shuts the
    /// write side down. Sends after the close request are refused with
    /// [`TransportError::ConnectionClosed`].
    ///
    /// # Errors
    /// The connection's error if it had failed (a connection the peer
    /// closed cleanly closes without error).
    pub(crate) async fn close(&self) -> Result<()> {
        {
            let mut core = self.shared.lock();
            match core.close(now()) {
                Ok(()) | Err(TransportError::ConnectionClosed { clean: true }) => {}
                Err(e) => return Err(e),
            }
            self.shared.signal(&mut core);
            self.shared.wake_writer.notify_one();
        }
        loop {
            let done = self.shared.done.notified();
            let mut done = pin!(done);
            done.as_mut().enable();
            if let Some(result) = self.shared.writer_done.get() {
                // After the peer's own BYE, an I/O error writing ours (the
                // peer already closed its socket) is no failure.
                let peer_said_bye = matches!(
                    self.shared.lock().error(),
                    Some(TransportError::ConnectionClosed { clean: true })
                );
                return match result {
                    Err(TransportError::Io { .. }) if peer_said_bye => Ok(()),
                    other => other.clone(),
                };
            }
            done.await;
        }
    }
}
