//! In-memory carriers: a connected pair over `tokio::io::duplex`, and a
//! listener/dialer pair so a `Server` and a `Client` run with no socket.

use std::sync::Arc;

use netproto_transport::{
    dial_stream, Accept, BoxFuture, Connection, ConnectionConfig, Dial, Endpoint, Incoming,
    PeerAddr, Result, TransportError,
};
use tokio::io::DuplexStream;
use tokio::sync::{mpsc, Mutex};

/// Bytes each direction of an in-memory pipe buffers (like a socket buffer).
const PIPE_BUFFER: usize = 256 * 1024;

/// Two established connections joined by an in-memory pipe: the client's
/// and the server's.
///
/// # Errors
/// The handshake's errors.
pub async fn memory_pair(
    client: ConnectionConfig,
    server: ConnectionConfig,
) -> Result<(Connection, Connection)> {
    let (a, b) = tokio::io::duplex(PIPE_BUFFER);
    let server = tokio::spawn(Connection::server(b, server));
    let client = Connection::client(a, client).await?;
    let server = server
        .await
        .map_err(|_| TransportError::ConnectionClosed { clean: false })??;
    Ok((client, server))
}

/// An in-memory carrier: a listener, and a dialer that reaches it (clone it
/// for many clients). Its endpoint is a `tcp://memory:<n>` placeholder; no
/// socket is ever opened.
pub fn memory_carrier() -> (MemoryListener, MemoryDialer) {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(1);
    let port = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let endpoint = Endpoint::Tcp {
        host: "memory".into(),
        port,
    };
    let (tx, rx) = mpsc::channel(64);
    (
        MemoryListener {
            endpoint,
            incoming: rx,
        },
        MemoryDialer {
            to_listener: Arc::new(Mutex::new(tx)),
        },
    )
}

/// Accepts in-memory connections (see [`memory_carrier`]).
#[derive(Debug)]
pub struct MemoryListener {
    endpoint: Endpoint,
    incoming: mpsc::Receiver<DuplexStream>,
}

impl Accept for MemoryListener {
    fn accept(&mut self) -> BoxFuture<'_, Result<Incoming>> {
        Box::pin(async move {
            let stream = self
                .incoming
                .recv()
                .await
                .ok_or(TransportError::ConnectionClosed { clean: true })?;
            Ok(Incoming::from_stream(stream, PeerAddr::Unix(None)))
        })
    }

    fn local_endpoint(&self) -> &Endpoint {
        &self.endpoint
    }
}

/// Dials a [`MemoryListener`], whatever endpoint it is asked for.
#[derive(Debug, Clone)]
pub struct MemoryDialer {
    to_listener: Arc<Mutex<mpsc::Sender<DuplexStream>>>,
}

impl MemoryDialer {
    /// A raw byte stream to the listener (no handshake): for peers that
    /// speak the protocol themselves, or do not.
    ///
    /// # Errors
    /// [`TransportError::ConnectionClosed`] if the listener is gone.
    pub async fn connect_stream(&self) -> Result<DuplexStream> {
        let (a, b) = tokio::io::duplex(PIPE_BUFFER);
        self.to_listener
            .lock()
            .await
            .send(b)
            .await
            .map_err(|_| TransportError::ConnectionClosed { clean: false })?;
        Ok(a)
    }

    /// A new listener that this dialer (and its clones) reach from now on,
    /// in place of the previous one: a server taking over an address.
    pub async fn listen(&self, endpoint: Endpoint) -> MemoryListener {
        let (tx, rx) = mpsc::channel(64);
        *self.to_listener.lock().await = tx;
        MemoryListener {
            endpoint,
            incoming: rx,
        }
    }
}

impl Dial for MemoryDialer {
    fn dial<'a>(
        &'a self,
        _endpoint: &'a Endpoint,
        cfg: ConnectionConfig,
    ) -> BoxFuture<'a, Result<Connection>> {
        Box::pin(async move { dial_stream(self.connect_stream(), cfg).await })
    }
}
