//! [`TlsClientStream`]: the client's TLS stream, reporting TLS failures that
//! surface after the handshake (with TLS 1.3 a refused client certificate
//! arrives as an alert on the first read) as [`TransportError::Tls`].

use std::pin::Pin;
use std::task::{Context, Poll};

use netproto_transport::AnyStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::client::TlsStream;

use crate::error::handshake_error;

/// A client TLS stream (see the module docs).
#[derive(Debug)]
pub struct TlsClientStream {
    inner: TlsStream<AnyStream>,
}

/// TLS authenticates and encrypts: the connection runs the capability
/// hello, not Noise (unless `noise_inside_tls`).
impl netproto_transport::IoStream for TlsClientStream {
    fn security(&self) -> netproto_transport::StreamSecurity {
        netproto_transport::StreamSecurity::Tls
    }
}

impl TlsClientStream {
    pub(crate) fn new(inner: TlsStream<AnyStream>) -> Self {
        Self { inner }
    }

    /// The rustls connection: negotiated version, cipher suite, ALPN, the
    /// server's certificates.
    pub fn connection(&self) -> &rustls::ClientConnection {
        self.inner.get_ref().1
    }
}

/// Keeps I/O errors that are not about TLS as they are; wraps rustls errors
/// as `TransportError::Tls` inside the `io::Error`.
fn map(e: std::io::Error) -> std::io::Error {
    let is_tls = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<rustls::Error>())
        .is_some();
    if is_tls {
        let kind = e.kind();
        return std::io::Error::new(kind, handshake_error(e));
    }
    e
}

impl AsyncRead for TlsClientStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf).map_err(map)
    }
}

impl AsyncWrite for TlsClientStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf).map_err(map)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner)
            .poll_write_vectored(cx, bufs)
            .map_err(map)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx).map_err(map)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx).map_err(map)
    }
}
