//! The writer task: takes whatever the core has queued (many frames packed
//! into few records), writes it in one go, and carries out the close. While
//! it waits for work it lends the socket's write half to senders that ask
//! for an immediate write ([`crate::Flush::Now`]), and finishes whatever
//! such a write left undone.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;

use super::{now, peer_gone, Out, Shared, Writer, IDLE_RELEASE};
use crate::error::{Result, TimeoutKind, TransportError};

/// A burst does not pin a buffer larger than this (idle ones are freed
/// entirely).
pub(crate) const KEEP_BUFFER: usize = 256 * 1024;

pub(crate) async fn run(shared: Arc<Shared>) {
    let result = serve(&shared).await;
    if let Err(e) = &result {
        tracing::debug!(error = %e, "connection writer stopped");
        // A reset or broken pipe says that the peer is gone, not why: the
        // reader, on the same socket, finds out why (a TLS alert, BYE, EOF)
        // and ends the connection with that. Any other failure (a write
        // timeout: the socket is alive) ends it here.
        if !peer_gone(e) {
            shared.lock().fail(e.clone());
        }
    }
    let _ = shared.writer_done.set(result);
    // Whatever was queued will not be written: its share goes back.
    shared.send_ended();
    shared.done.notify_waiters();
    shared.reader.wake();
    // Senders waiting for room must see the end.
    shared.progress.notify_waiters();
}

async fn serve(shared: &Shared) -> Result<()> {
    // The first pass writes at once: the last handshake message or the TLS
    // hello may be waiting.
    let mut fresh_wake = false;
    loop {
        if std::mem::take(&mut fresh_wake) {
            // Give a sender that is mid-burst one turn to add to this batch:
            // fewer, larger records and writes, fewer wake-ups (W2 +14 %
            // when measured; an idle connection pays one re-poll).
            tokio::task::yield_now().await;
        }
        // Take the write side for this turn: senders leave their bytes to
        // us until it is lent again.
        let mut out = std::mem::take(&mut *shared.out());
        let Some(io) = out.io.as_mut() else {
            // Only this task takes the socket; it is gone only after the end.
            return Err(TransportError::ConnectionClosed { clean: false });
        };
        // What a direct write left: the rest of its bytes, or a flush.
        if out.written < out.buf.len() {
            write(shared, io, &out.buf[out.written..]).await?;
            shared.progress.notify_waiters();
        } else if out.unflushed {
            flush(shared, io).await?;
        }
        out.buf.clear();
        out.written = 0;
        out.unflushed = false;
        shared.send_written(std::mem::take(&mut out.held));
        loop {
            let (queued, closing, failed) = {
                let mut core = shared.lock();
                let queued = core.poll_transmit(now(), &mut out.buf)?;
                if queued {
                    out.held += shared.send_taken(out.buf.len());
                }
                // The peer's BYE ends reading, not writing: our BYE (and the
                // shutdown) still go out when the application closes.
                let failed = core
                    .error()
                    .filter(|e| !matches!(e, TransportError::ConnectionClosed { clean: true }))
                    .cloned();
                (queued, core.is_closing(), failed)
            };
            if queued {
                write(shared, io, &out.buf).await?;
                out.buf.clear();
                shared.send_written(std::mem::take(&mut out.held));
                shared.progress.notify_waiters();
                if out.buf.capacity() > KEEP_BUFFER {
                    out.buf = Vec::new();
                }
                continue;
            }
            if let Some(e) = failed {
                // Nothing more can be sent; the reader reports the error.
                let _ = tokio::time::timeout(shared.write_timeout, io.shutdown()).await;
                return Err(e);
            }
            if closing {
                let done = tokio::time::timeout(shared.write_timeout, io.shutdown()).await;
                return match done {
                    Ok(r) => r.map_err(TransportError::from),
                    Err(_) => Err(write_timeout(shared)),
                };
            }
            break;
        }
        // Lend the write side while waiting for work.
        *shared.out() = out;
        fresh_wake = true;
        // A connection idle for IDLE_RELEASE gives its buffers back.
        if tokio::time::timeout(IDLE_RELEASE, shared.wake_writer.notified())
            .await
            .is_ok()
        {
            continue;
        }
        // Parked before releasing: a direct write from here on wakes us.
        shared.writer_parked.store(true, Ordering::Release);
        {
            let mut out = shared.out();
            if out.is_clear() {
                out.buf = Vec::new();
                out.written = 0;
            }
        }
        shared.lock().release_buffers();
        shared.wake_writer.notified().await;
        shared.writer_parked.store(false, Ordering::Release);
    }
}

/// Writes what the core has queued from the calling task, if the writer is
/// idle and nothing else is waiting to be written: saves the writer's
/// wake-up (issue #23: a sequential request/response exchange crosses one
/// task less on each side). Never blocks: what the socket does not take at
/// once is left to the writer, which is then woken. `core` is released
/// before the system call.
pub(crate) fn write_directly(
    shared: &Shared,
    mut core: std::sync::MutexGuard<'_, crate::core::Core>,
) {
    // Someone holds the write side (the writer, or another sender writing
    // now): the bytes leave with the writer, as usual.
    let mut out = match shared.out.try_lock() {
        Ok(out) => out,
        // A panic in an earlier write left `Out` as it was between
        // statements (see `WakeOnUnwind`): go on.
        Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => {
            shared.signal(&mut core);
            return;
        }
    };
    let closing = core.is_closing() || core.error().is_some();
    if out.io.is_none() || !out.is_clear() || closing {
        drop(out);
        shared.signal(&mut core);
        return;
    }
    let out: &mut Out = &mut out;
    out.buf.clear();
    out.written = 0;
    match core.poll_transmit(now(), &mut out.buf) {
        // These bytes are ours to write: the writer need not wake for them
        // (unless pieces of waiting messages are left for it).
        Ok(true) => {
            core.take_transmit_signal();
            out.held += shared.send_taken(out.buf.len());
        }
        Ok(false) => return,
        Err(_) => {
            shared.signal(&mut core);
            return;
        }
    }
    let more_waiting = core.queued_bytes() > 0;
    drop(core);
    // If the stream's `poll_write` panics, the bytes taken above are in the
    // slot and nobody was told: the guard wakes the writer on the way out.
    let unwinding = WakeOnUnwind(shared);
    let complete = write_without_waiting(out);
    std::mem::forget(unwinding);
    if complete {
        shared.send_written(std::mem::take(&mut out.held));
    }
    if !complete || out.unflushed || more_waiting || shared.writer_parked.load(Ordering::Acquire) {
        shared.wake_writer.notify_one();
    }
    if out.buf.capacity() > KEEP_BUFFER && out.is_clear() {
        out.buf = Vec::new();
    }
    shared.progress.notify_waiters();
}

/// Wakes the writer when dropped (only while a direct write unwinds).
struct WakeOnUnwind<'a>(&'a Shared);

impl Drop for WakeOnUnwind<'_> {
    fn drop(&mut self) {
        self.0.wake_writer.notify_one();
    }
}

/// One pass of non-blocking writes (and a flush) of `out.buf[out.written..]`;
/// whether everything was handed to the socket. A would-block or an error
/// leaves the rest to the writer, which waits with its timeout and reports
/// the error.
fn write_without_waiting(out: &mut Out) -> bool {
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};
    let Some(io) = out.io.as_mut() else {
        return false;
    };
    // No waker: this task does not wait; the writer registers its own
    // when it takes over.
    let mut cx = Context::from_waker(Waker::noop());
    while out.written < out.buf.len() {
        match Pin::new(&mut **io).poll_write(&mut cx, &out.buf[out.written..]) {
            Poll::Ready(Ok(n)) if n > 0 => out.written += n,
            _ => return false,
        }
    }
    out.unflushed = !matches!(Pin::new(&mut **io).poll_flush(&mut cx), Poll::Ready(Ok(())));
    true
}

fn write_timeout(shared: &Shared) -> TransportError {
    TransportError::Timeout {
        kind: TimeoutKind::Write,
        after: shared.write_timeout,
    }
}

/// Writes `buf`; the write timeout bounds each step without progress, not
/// the whole batch (a large batch to a slow but reading peer may take
/// long; a peer that reads nothing for `write_timeout` is given up on).
async fn write(shared: &Shared, io: &mut Writer, buf: &[u8]) -> Result<()> {
    let mut rest = buf;
    while !rest.is_empty() {
        let n = tokio::time::timeout(shared.write_timeout, io.write(rest))
            .await
            .map_err(|_| write_timeout(shared))??;
        if n == 0 {
            return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
        }
        rest = &rest[n..];
    }
    flush(shared, io).await
}

async fn flush(shared: &Shared, io: &mut Writer) -> Result<()> {
    tokio::time::timeout(shared.write_timeout, io.flush())
        .await
        .map_err(|_| write_timeout(shared))??;
    Ok(())
}
