//! [`Throttled`]: a stream whose writes leave at a fixed rate, for slow
//! peers in tests (run them with paused tokio time and they cost no wall
//! time).

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use netproto_transport::{IoStream, StreamSecurity};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Wraps a stream so that it writes at most `bytes_per_sec`, in pieces of
/// at most `piece` bytes; reads are untouched.
pub struct Throttled<S> {
    inner: S,
    bytes_per_sec: f64,
    piece: usize,
    pause: Option<Pin<Box<Sleep>>>,
}

impl<S> Throttled<S> {
    /// Throttles `inner`'s writes to `bytes_per_sec`, `piece` bytes at a
    /// time.
    pub fn new(inner: S, bytes_per_sec: u32, piece: usize) -> Self {
        Self {
            inner,
            bytes_per_sec: f64::from(bytes_per_sec.max(1)),
            piece: piece.max(1),
            pause: None,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Throttled<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Throttled<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if let Some(pause) = self.pause.as_mut() {
            ready!(pause.as_mut().poll(cx));
            self.pause = None;
        }
        let take = buf.len().min(self.piece);
        let this = &mut *self;
        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..take]))?;
        #[allow(clippy::cast_precision_loss)] // a test's byte counts
        let wait = Duration::from_secs_f64(n as f64 / this.bytes_per_sec);
        this.pause = Some(Box::pin(tokio::time::sleep(wait)));
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: IoStream> IoStream for Throttled<S> {
    fn security(&self) -> StreamSecurity {
        self.inner.security()
    }
}
