//! The receiving side of a stream connection (behind [`crate::RecvHalf`]):
//! reads the stream in the caller's task and feeds the core.

use std::sync::Arc;

use bytes::BytesMut;
use netproto_wire::{Frame, FrameKind};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{bounded, make_read_room, now, peer_gone, Shared, IDLE_RELEASE};
use crate::core::Event;
use crate::error::{Result, TransportError};

/// The first read after an idle release goes to the stack, this big.
const WAKE_READ: usize = 256;

/// The receiving side of a stream connection: reads records and hands out
/// their frames. PINGs are answered, continued messages reassembled,
/// deadlines kept (all by the core) while this half is being read.
pub(crate) struct StreamRecv {
    shared: Arc<Shared>,
    io: Box<dyn AsyncRead + Send + Sync + Unpin>,
    buf: BytesMut,
    /// The connection's end has been logged.
    reported: bool,
}

/// What the core asked of the reader.
enum Next {
    Frame(Frame),
    Again,
    Read {
        deadline: Option<std::time::Instant>,
        needed: usize,
        between_packets: bool,
    },
}

impl StreamRecv {
    pub(crate) fn new(
        shared: Arc<Shared>,
        io: Box<dyn AsyncRead + Send + Sync + Unpin>,
        buf: BytesMut,
    ) -> Self {
        Self {
            shared,
            io,
            buf,
            reported: false,
        }
    }

    /// Bytes received and not handed out yet (see
    /// [`crate::RecvHalf::has_buffered_input`]).
    pub(crate) fn has_buffered_input(&self) -> bool {
        !self.buf.is_empty() || self.shared.lock().has_unread_frames()
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
    pub(crate) async fn recv_frame(&mut self) -> Result<Frame> {
        let Self {
            shared,
            io,
            buf,
            reported,
        } = self;
        let shared: &Shared = shared;
        // A read dropped half-way (a `select!` took another branch) stops
        // the idle clock, as a delivered frame does.
        let mut reading = Reading {
            shared,
            done: false,
        };
        loop {
            let (deadline, needed, between_packets) = match step(shared, buf) {
                Ok(Next::Frame(f)) => {
                    reading.done = true;
                    return Ok(f);
                }
                Ok(Next::Again) => continue,
                Ok(Next::Read {
                    deadline,
                    needed,
                    between_packets,
                }) => (deadline, needed, between_packets),
                Err(e) => {
                    reading.done = true;
                    return Err(report(shared, reported, e));
                }
            };
            let deadline = deadline.map(tokio::time::Instant::from_std);
            let read = bounded(deadline, read_more(io, buf, needed, between_packets));
            let outcome = tokio::select! {
                biased;
                r = read => match r {
                    Some(Ok(0)) => Err(TransportError::ConnectionClosed { clean: false }),
                    Some(Ok(_)) => Ok(()),
                    Some(Err(e)) => Err(e.into()),
                    None => shared.lock().handle_timeout(now()),
                },
                // The writer stopped (a write failed or timed out): the core
                // holds the reason, the next step reports it.
                () = WriterStopped(shared) => Ok(()),
            };
            if let Err(e) = outcome {
                reading.done = true;
                let e = shared.lock().fail(e);
                return Err(report(shared, reported, e));
            }
        }
    }
}

/// Reads more bytes into the receive buffer. Between packets, a buffer that
/// sat unused for [`IDLE_RELEASE`] is given back, and the next bytes are
/// read into a small stack buffer first, so an idle connection holds no
/// receive buffer at all.
async fn read_more(
    io: &mut Box<dyn AsyncRead + Send + Sync + Unpin>,
    buf: &mut BytesMut,
    needed: usize,
    between_packets: bool,
) -> std::io::Result<usize> {
    if between_packets && buf.is_empty() {
        if buf.capacity() > 0 {
            make_read_room(buf, needed);
            let read = io.read_buf(buf);
            if let Ok(read) = tokio::time::timeout(IDLE_RELEASE, read).await {
                return read;
            }
            *buf = BytesMut::new();
        }
        let mut first = [0u8; WAKE_READ];
        let n = io.read(&mut first).await?;
        buf.extend_from_slice(&first[..n]);
        return Ok(n);
    }
    make_read_room(buf, needed);
    io.read_buf(buf).await
}

/// Ready once the writer task has failed on a live socket (after a clean
/// close of ours, or when the peer is gone, the socket itself wakes the
/// reader). The waker is registered before
/// looking, so a writer that fails between the look and the wait still
/// wakes the read.
struct WriterStopped<'a>(&'a Shared);

impl std::future::Future for WriterStopped<'_> {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        self.0.reader.register(cx.waker());
        if matches!(self.0.writer_done.get(), Some(Err(e)) if !peer_gone(e)) {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    }
}

/// Pauses the core's idle clock if a read ends without delivering a frame
/// (dropped half-way).
struct Reading<'a> {
    shared: &'a Shared,
    done: bool,
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.shared.lock().pause(now());
        }
    }
}

/// Logs the connection's end once, and makes sure the writer and any
/// waiting sender see it.
fn report(shared: &Shared, reported: &mut bool, e: TransportError) -> TransportError {
    if !std::mem::replace(reported, true) {
        match &e {
            TransportError::ConnectionClosed { clean: true } => {
                tracing::debug!("peer closed the connection");
            }
            // Debug: the application (the service's server, with the
            // peer's address and a rate limit) writes the one warning.
            other => tracing::debug!(error = %other, "connection failed"),
        }
        shared.wake_writer.notify_one();
        shared.progress.notify_waiters();
    }
    e
}

/// One turn of the core under its lock: a frame, progress, or what to read.
fn step(shared: &Shared, buf: &mut BytesMut) -> Result<Next> {
    let mut core = shared.lock();
    let t = now();
    core.resume(t);
    let next = loop {
        match core.poll_event(t) {
            Ok(Some(Event::Frame(f))) => {
                core.pause(t);
                if f.kind == FrameKind::Pong {
                    // A `ping` may be waiting for this one.
                    shared.progress.notify_waiters();
                }
                break Ok(Next::Frame(f));
            }
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(e) => break Err(e),
        }
        match core.handle_input(t, buf) {
            Ok(true) => break Ok(Next::Again),
            Ok(false) => {}
            Err(e) => break Err(e),
        }
        let buffered = buf.len();
        break Ok(Next::Read {
            deadline: core.poll_timeout(),
            needed: core.bytes_needed(buffered),
            between_packets: !core.mid_packet(buffered),
        });
    };
    // A PONG or keep-alive PING may have been queued.
    shared.signal(&mut core);
    next
}
