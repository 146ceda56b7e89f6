//! The writer task: takes whatever the core has queued (many frames packed
//! into few records), writes it in one go, and carries out the close.

use std::sync::Arc;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::{now, peer_gone, Shared, IDLE_RELEASE};
use crate::error::{Result, TimeoutKind, TransportError};

/// A burst does not pin a buffer larger than this (idle ones are freed
/// entirely).
const KEEP_BUFFER: usize = 256 * 1024;

pub(crate) async fn run(shared: Arc<Shared>, mut io: Box<dyn AsyncWrite + Send + Sync + Unpin>) {
    let result = serve(&shared, &mut io).await;
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
    shared.done.notify_waiters();
    shared.reader.wake();
    // Senders waiting for room must see the end.
    shared.progress.notify_waiters();
}

async fn serve(shared: &Shared, io: &mut Box<dyn AsyncWrite + Send + Sync + Unpin>) -> Result<()> {
    let mut buf: Vec<u8> = Vec::new();
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
        let (queued, closing, failed) = {
            let mut core = shared.lock();
            let queued = core.poll_transmit(now(), &mut buf)?;
            // The peer's BYE ends reading, not writing: our BYE (and the
            // shutdown) still go out when the application closes.
            let failed = core
                .error()
                .filter(|e| !matches!(e, TransportError::ConnectionClosed { clean: true }))
                .cloned();
            (queued, core.is_closing(), failed)
        };
        if queued {
            write(shared, io, &buf).await?;
            shared.progress.notify_waiters();
            if buf.capacity() > KEEP_BUFFER {
                buf = Vec::new();
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
        fresh_wake = true;
        // Wait for work; a connection idle for IDLE_RELEASE gives its
        // buffers back.
        if buf.capacity() > 0 {
            if tokio::time::timeout(IDLE_RELEASE, shared.wake_writer.notified())
                .await
                .is_ok()
            {
                continue;
            }
            buf = Vec::new();
            shared.lock().release_buffers();
        }
        shared.wake_writer.notified().await;
    }
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
async fn write(
    shared: &Shared,
    io: &mut Box<dyn AsyncWrite + Send + Sync + Unpin>,
    buf: &[u8],
) -> Result<()> {
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
    tokio::time::timeout(shared.write_timeout, io.flush())
        .await
        .map_err(|_| write_timeout(shared))??;
    Ok(())
}
