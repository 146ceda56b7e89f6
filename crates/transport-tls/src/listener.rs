//! [`TlsListener`]: accepts TCP connections and hands them out at once as
//! [`TlsServerStream`]s, whose TLS handshake runs on first use in the task
//! that serves the connection, bounded and under a timeout.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use netproto_transport::{
    AnyListener, AnyStream, Endpoint, Listener, PeerAddr, SocketOptions, TimeoutKind,
    TransportError,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tokio_rustls::server::TlsStream;

use crate::config::TlsServerConfig;
use crate::error::handshake_error;
use crate::pin::CertPin;

/// A TLS server socket (`tls://host:port`). Plug it into the service layer
/// with `Server::with_listener`.
///
/// `accept` returns as soon as a TCP connection is in; at most
/// `max_concurrent_handshakes` handshakes are in progress, and a connection
/// arriving beyond that is closed at once (`accept` never waits on slow
/// handshakes; under the service, whose own budget is lower, the service's
/// admission decides who gets the slots, dropping the oldest stalled
/// handshakes first).
/// The TLS handshake then runs in whichever task first reads or writes the
/// stream — the connection's own task, so a slow or silent client never
/// delays another and no extra task hop is paid — within
/// `handshake_timeout`. Failed handshakes surface as a
/// [`TransportError::Tls`] (or a handshake timeout) from that first read or
/// write and are counted in `netproto_tls_handshake_failures_total{reason}`.
pub struct TlsListener {
    tcp: AnyListener,
    endpoint: Endpoint,
    acceptor: tokio_rustls::TlsAcceptor,
    slots: Arc<Semaphore>,
    timeout: Duration,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("endpoint", &self.endpoint)
            .field("handshake_timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl TlsListener {
    /// Binds `endpoint` (`tls://host:port`) with the given settings.
    ///
    /// # Errors
    /// [`crate::TlsError`] for unreadable or invalid certificate and key
    /// files; [`crate::TlsError::Transport`] when the address cannot be bound
    /// or the endpoint is not `tls://`.
    pub async fn bind(endpoint: &Endpoint, cfg: &TlsServerConfig) -> Result<Self, crate::TlsError> {
        let rustls = cfg.build()?;
        Self::with_rustls(endpoint, rustls, cfg).await
    }

    /// As [`TlsListener::bind`] with a rustls configuration built elsewhere
    /// (`cfg` then only supplies the timeout and the handshake limit).
    ///
    /// # Errors
    /// As [`TlsListener::bind`].
    pub async fn with_rustls(
        endpoint: &Endpoint,
        rustls: Arc<rustls::ServerConfig>,
        cfg: &TlsServerConfig,
    ) -> Result<Self, crate::TlsError> {
        let tcp_endpoint = endpoint.tls_to_tcp().ok_or(TransportError::BadEndpoint {
            input: endpoint.to_string(),
            reason: "a TLS listener needs a tls://host:port endpoint",
        })?;
        let tcp = AnyListener::bind(&tcp_endpoint, SocketOptions::default()).await?;
        let endpoint = match tcp.local_endpoint() {
            Endpoint::Tcp { host, port } => Endpoint::Tls {
                host: host.clone(),
                port: *port,
            },
            other => other.clone(),
        };
        Ok(Self {
            tcp,
            endpoint,
            acceptor: tokio_rustls::TlsAcceptor::from(rustls),
            slots: Arc::new(Semaphore::new(cfg.max_concurrent_handshakes.max(1))),
            timeout: cfg.handshake_timeout,
        })
    }
}

impl Listener for TlsListener {
    type Stream = TlsServerStream;

    async fn accept(&mut self) -> Result<(Self::Stream, PeerAddr), TransportError> {
        // Accepting never waits on slow handshakes: a socket that arrives
        // while every handshake slot is taken is closed at once (and
        // counted), and the next one is accepted.
        let (stream, peer, slot) = loop {
            let (stream, peer) = self.tcp.accept().await?;
            if let Ok(slot) = self.slots.clone().try_acquire_owned() {
                break (stream, peer, slot);
            }
            metrics::counter!("netproto_tls_handshakes_refused_total").increment(1);
            tracing::debug!(%peer, "every TLS handshake slot is taken: closing");
        };
        let stream = TlsServerStream {
            state: State::Handshaking {
                accept: Box::new(self.acceptor.accept(stream)),
                deadline: Box::pin(tokio::time::sleep(self.timeout)),
                timeout: self.timeout,
                _slot: slot,
            },
            peer: peer.clone(),
        };
        Ok((stream, peer))
    }

    fn local_endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

enum State {
    Handshaking {
        accept: Box<tokio_rustls::Accept<AnyStream>>,
        deadline: Pin<Box<Sleep>>,
        timeout: Duration,
        /// Released when the handshake ends either way.
        _slot: OwnedSemaphorePermit,
    },
    Ready(Box<TlsStream<AnyStream>>),
    Failed(TransportError),
}

/// A server-side TLS stream whose handshake runs on first use (see
/// [`TlsListener`]).
pub struct TlsServerStream {
    state: State,
    peer: PeerAddr,
}

/// TLS authenticates and encrypts: the connection runs the capability
/// hello, not Noise (unless `noise_inside_tls`).
impl netproto_transport::IoStream for TlsServerStream {
    fn security(&self) -> netproto_transport::StreamSecurity {
        netproto_transport::StreamSecurity::Tls
    }
}

impl std::fmt::Debug for TlsServerStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &self.state {
            State::Handshaking { .. } => "handshaking",
            State::Ready(_) => "ready",
            State::Failed(_) => "failed",
        };
        f.debug_struct("TlsServerStream")
            .field("peer", &self.peer)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl TlsServerStream {
    /// Completes the TLS handshake now (reads and writes do it implicitly).
    ///
    /// # Errors
    /// [`TransportError::Tls`] with the reason, or a handshake timeout.
    pub async fn handshake(&mut self) -> Result<(), TransportError> {
        std::future::poll_fn(|cx| self.poll_handshake(cx)).await
    }

    /// The rustls connection once the handshake has completed: version,
    /// cipher suite, ALPN, the client's certificates.
    pub fn connection(&self) -> Option<&rustls::ServerConnection> {
        match &self.state {
            State::Ready(tls) => Some(tls.get_ref().1),
            _ => None,
        }
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        let State::Handshaking {
            accept,
            deadline,
            timeout,
            ..
        } = &mut self.state
        else {
            return Poll::Ready(match &self.state {
                State::Failed(e) => Err(e.clone()),
                _ => Ok(()),
            });
        };
        let outcome = match Pin::new(accept.as_mut()).poll(cx) {
            Poll::Ready(Ok(tls)) => Ok(tls),
            Poll::Ready(Err(e)) => Err(handshake_error(e)),
            Poll::Pending => match deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Err(TransportError::Timeout {
                    kind: TimeoutKind::Handshake,
                    after: *timeout,
                }),
                Poll::Pending => return Poll::Pending,
            },
        };
        match outcome {
            Ok(tls) => {
                log_accepted(&tls, &self.peer);
                self.state = State::Ready(Box::new(tls));
                Poll::Ready(Ok(()))
            }
            Err(e) => {
                // A bounded set of label values (an error's text would
                // make one time series per message).
                let reason = match &e {
                    TransportError::Tls { reason, .. } => reason.label(),
                    TransportError::Timeout { .. } => "timeout",
                    TransportError::Io { .. } | TransportError::ConnectionClosed { .. } => "io",
                    _ => "other",
                };
                tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed");
                metrics::counter!("netproto_tls_handshake_failures_total", "reason" => reason)
                    .increment(1);
                self.state = State::Failed(e.clone());
                Poll::Ready(Err(e))
            }
        }
    }

    /// The ready stream, driving the handshake first.
    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<&mut TlsStream<AnyStream>>> {
        match self.poll_handshake(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(std::io::Error::other(e))),
            Poll::Ready(Ok(())) => match &mut self.state {
                State::Ready(tls) => Poll::Ready(Ok(tls)),
                _ => Poll::Ready(Err(std::io::Error::other(TransportError::Protocol(
                    netproto_transport::ProtocolViolation::ImpossibleStreamState,
                )))),
            },
        }
    }
}

impl AsyncRead for TlsServerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut().poll_ready(cx) {
            Poll::Ready(Ok(tls)) => Pin::new(tls).poll_read(cx, buf),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for TlsServerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut().poll_ready(cx) {
            Poll::Ready(Ok(tls)) => Pin::new(tls).poll_write(cx, buf),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut().poll_ready(cx) {
            Poll::Ready(Ok(tls)) => Pin::new(tls).poll_flush(cx),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match &mut this.state {
            // Nothing to flush yet: just close the socket.
            State::Handshaking { .. } | State::Failed(_) => Poll::Ready(Ok(())),
            State::Ready(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

fn log_accepted(tls: &TlsStream<AnyStream>, peer: &PeerAddr) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let (_, conn) = tls.get_ref();
    let client_cert = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|leaf| CertPin::spki_of(leaf).ok())
        .map(|p| p.to_string());
    tracing::debug!(
        %peer,
        version = ?conn.protocol_version(),
        cipher = ?conn.negotiated_cipher_suite().map(|s| s.suite()),
        alpn = ?conn.alpn_protocol().map(String::from_utf8_lossy),
        client_cert = client_cert.as_deref().unwrap_or("none"),
        "TLS handshake completed"
    );
}
