//! [`TlsListener`]: accepts TCP connections and runs their TLS handshakes
//! concurrently (bounded, under a timeout), handing out only the ones that
//! completed.

use std::sync::Arc;
use std::time::Duration;

use netproto_transport::{
    AnyListener, AnyStream, Endpoint, Listener, PeerAddr, SocketOptions, TransportError,
};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;

use crate::config::TlsServerConfig;
use crate::error::{handshake_error, TlsError};
use crate::pin::CertPin;

/// Completed handshakes waiting for `accept`; beyond this, handshake tasks
/// wait (holding their slot), which stops new handshakes from starting.
const READY_QUEUE: usize = 64;

/// A TLS server socket (`tls://host:port`). Plug it into the service layer
/// with `Server::with_listener`.
///
/// Each accepted TCP connection gets its own task for the TLS handshake, so
/// a slow or silent client never delays the others; at most
/// `max_concurrent_handshakes` run at once, each within `handshake_timeout`.
/// Failed handshakes are logged (with a [`TransportError::Tls`] reason) and
/// counted in `netproto_tls_handshake_failures_total`; `accept` returns only
/// completed ones.
#[derive(Debug)]
pub struct TlsListener {
    endpoint: Endpoint,
    ready: mpsc::Receiver<(TlsStream<AnyStream>, PeerAddr)>,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Binds `endpoint` (`tls://host:port`) with the given settings.
    ///
    /// # Errors
    /// [`TlsError`] for unreadable or invalid certificate and key files;
    /// [`TlsError::Transport`] when the address cannot be bound or the
    /// endpoint is not `tls://`.
    pub async fn bind(endpoint: &Endpoint, cfg: &TlsServerConfig) -> Result<Self, TlsError> {
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
    ) -> Result<Self, TlsError> {
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
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        let acceptor = tokio::spawn(accept_loop(
            tcp,
            tokio_rustls::TlsAcceptor::from(rustls),
            tx,
            cfg.handshake_timeout,
            cfg.max_concurrent_handshakes.max(1),
        ));
        Ok(Self {
            endpoint,
            ready,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        // Dropping the loop's JoinSet aborts the handshakes in progress.
        self.acceptor.abort();
    }
}

impl Listener for TlsListener {
    type Stream = TlsStream<AnyStream>;

    async fn accept(&mut self) -> Result<(Self::Stream, PeerAddr), TransportError> {
        self.ready.recv().await.ok_or(TransportError::Io {
            kind: std::io::ErrorKind::BrokenPipe,
            message: "the TLS accept loop has stopped".into(),
        })
    }

    fn local_endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

async fn accept_loop(
    mut tcp: AnyListener,
    acceptor: tokio_rustls::TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<AnyStream>, PeerAddr)>,
    timeout: Duration,
    max_handshakes: usize,
) {
    let slots = Arc::new(Semaphore::new(max_handshakes));
    let mut handshakes = JoinSet::new();
    loop {
        while handshakes.try_join_next().is_some() {}
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead
                    // of spinning.
                    tracing::warn!(error = %e, "TLS listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = ready.closed() => return,
        };
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        handshakes.spawn(async move {
            let _slot = slot;
            let result = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => Ok(tls),
                Ok(Err(e)) => Err(handshake_error(e)),
                Err(_) => Err(TransportError::Timeout {
                    kind: netproto_transport::TimeoutKind::Handshake,
                    after: timeout,
                }),
            };
            match result {
                Ok(tls) => {
                    log_accepted(&tls, &peer);
                    let _ = ready.send((tls, peer)).await;
                }
                Err(e) => {
                    let reason = match &e {
                        TransportError::Tls { reason, .. } => reason.to_string(),
                        other => other.to_string(),
                    };
                    tracing::warn!(%peer, error = %e, "TLS handshake failed");
                    metrics::counter!("netproto_tls_handshake_failures_total", "reason" => reason)
                        .increment(1);
                }
            }
        });
    }
}

fn log_accepted(tls: &TlsStream<AnyStream>, peer: &PeerAddr) {
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
