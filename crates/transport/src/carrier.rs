//! What the service layer consumes: things that accept *connections*
//! ([`Accept`]) and things that dial them ([`Dial`]). A carrier (TCP, Unix
//! sockets, TLS, UDP, an in-memory pipe) plugs in by implementing these; the
//! server, the client and the pool never learn which carrier they run on.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::config::ConnectionConfig;
use crate::connection::Connection;
use crate::endpoint::{Endpoint, PeerAddr};
use crate::error::{Result, TimeoutKind, TransportError};
use crate::transport::{DefaultTransport, IoStream, Listener};

/// A boxed future, as the object-safe traits here return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

type Establish = Box<dyn FnOnce(ConnectionConfig) -> BoxFuture<'static, Result<Connection>> + Send>;

/// A connection that has arrived and not yet run its handshake. The server
/// runs [`Incoming::establish`] in the connection's own task, so a slow or
/// silent peer never holds up the accept loop.
pub struct Incoming {
    peer: PeerAddr,
    establish: Establish,
}

impl std::fmt::Debug for Incoming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Incoming")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl Incoming {
    /// An incoming connection whose handshake `establish` runs.
    pub fn new(
        peer: PeerAddr,
        establish: impl FnOnce(ConnectionConfig) -> BoxFuture<'static, Result<Connection>>
            + Send
            + 'static,
    ) -> Self {
        Self {
            peer,
            establish: Box::new(establish),
        }
    }

    /// An incoming byte stream: [`Connection::server`] runs over it.
    pub fn from_stream<S: IoStream>(stream: S, peer: PeerAddr) -> Self {
        Self::new(peer, move |cfg| Box::pin(Connection::server(stream, cfg)))
    }

    /// Who connected.
    pub fn peer(&self) -> &PeerAddr {
        &self.peer
    }

    /// Runs the server side of the handshake.
    ///
    /// The handshake's state, `cfg` included, lives in the returned box, so
    /// a connection's task that awaits it keeps no room for it once the
    /// connection is established (an `async fn` here kept `cfg` and the
    /// call's state in every serving task: W5 went from 7.4 to 6.4 KB per
    /// idle connection; docs/BENCHMARKS.md "Speed, round 2").
    ///
    /// # Errors
    /// As [`Connection::server`].
    pub fn establish(self, cfg: ConnectionConfig) -> BoxFuture<'static, Result<Connection>> {
        (self.establish)(cfg)
    }
}

/// Accepts connections. Every [`Listener`] of byte streams is one (its
/// streams run [`Connection::server`]); a datagram carrier implements it
/// directly.
pub trait Accept: Send {
    /// Waits for the next connection.
    fn accept(&mut self) -> BoxFuture<'_, Result<Incoming>>;
    /// Where it listens (with the real port if 0 was asked for).
    fn local_endpoint(&self) -> &Endpoint;
}

impl<L: Listener + Send> Accept for L {
    fn accept(&mut self) -> BoxFuture<'_, Result<Incoming>> {
        Box::pin(async move {
            let (stream, peer) = Listener::accept(self).await?;
            Ok(Incoming::from_stream(stream, peer))
        })
    }

    fn local_endpoint(&self) -> &Endpoint {
        Listener::local_endpoint(self)
    }
}

/// Dials connections: opens the carrier and runs the client handshake.
/// Object-safe, so a [`ConnectionConfig`] carries one and every client path
/// ([`crate::connect`], the service's client, reconnects, the pool) dials
/// any carrier without becoming generic.
pub trait Dial: Send + Sync + std::fmt::Debug {
    /// Opens a connection to `endpoint`. Implementations bound opening the
    /// carrier by `cfg.connect_timeout`; the handshake has its own deadline.
    fn dial<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        cfg: ConnectionConfig,
    ) -> BoxFuture<'a, Result<Connection>>;
}

/// Opens a stream within `cfg.connect_timeout`, then runs the client
/// handshake over it: the body of every stream [`Dial`].
///
/// # Errors
/// [`TransportError::Timeout`] with [`TimeoutKind::Connect`]; otherwise as
/// the stream's opening and [`Connection::client`].
pub async fn dial_stream<S, F>(open: F, cfg: ConnectionConfig) -> Result<Connection>
where
    S: IoStream,
    F: Future<Output = Result<S>> + Send,
{
    let stream = tokio::time::timeout(cfg.connect_timeout, open)
        .await
        .map_err(|_| TransportError::Timeout {
            kind: TimeoutKind::Connect,
            after: cfg.connect_timeout,
        })??;
    Connection::client(stream, cfg).await
}

/// Dials `tcp://` and `unix://` endpoints.
impl Dial for DefaultTransport {
    fn dial<'a>(
        &'a self,
        endpoint: &'a Endpoint,
        cfg: ConnectionConfig,
    ) -> BoxFuture<'a, Result<Connection>> {
        Box::pin(dial_stream(self.connect(endpoint), cfg))
    }
}

/// The dialer a configuration names, or the built-in TCP / Unix-socket one.
pub(crate) fn dialer_of(cfg: &ConnectionConfig) -> Arc<dyn Dial> {
    cfg.dialer
        .clone()
        .unwrap_or_else(|| Arc::new(DefaultTransport::default()))
}

impl std::fmt::Debug for dyn Accept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accept")
            .field("endpoint", self.local_endpoint())
            .finish_non_exhaustive()
    }
}

impl Accept for Box<dyn Accept> {
    fn accept(&mut self) -> BoxFuture<'_, Result<Incoming>> {
        (**self).accept()
    }

    fn local_endpoint(&self) -> &Endpoint {
        (**self).local_endpoint()
    }
}

/// Several listeners served as one: a server on TCP and UDP at once (one
/// daemon, the carrier chosen per client). Each listener accepts in its
/// own task and hands over one connection at a time, so a listener whose
/// connections are not being taken stops accepting (no queue grows).
#[derive(Debug)]
pub struct AcceptAll {
    rx: tokio::sync::mpsc::Receiver<Result<Incoming>>,
    first: Endpoint,
    endpoints: Vec<Endpoint>,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl AcceptAll {
    /// Serves `listeners` together (the first one's endpoint is
    /// [`Accept::local_endpoint`]). Must be called within a tokio runtime.
    ///
    /// # Errors
    /// [`TransportError::BadEndpoint`] for an empty list.
    pub fn new(listeners: Vec<Box<dyn Accept>>) -> Result<Self> {
        let endpoints: Vec<Endpoint> = listeners
            .iter()
            .map(|l| l.local_endpoint().clone())
            .collect();
        let first = endpoints
            .first()
            .cloned()
            .ok_or_else(|| TransportError::BadEndpoint {
                input: String::new(),
                reason: "no address to listen on",
            })?;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let tasks = listeners
            .into_iter()
            .map(|mut listener| {
                let tx = tx.clone();
                tokio::spawn(async move {
                    loop {
                        let accepted = listener.accept().await;
                        let failed = accepted.is_err();
                        if tx.send(accepted).await.is_err() {
                            return;
                        }
                        // A listener that keeps failing must not crowd out
                        // the others.
                        if failed {
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        }
                    }
                })
                .abort_handle()
            })
            .collect();
        Ok(Self {
            rx,
            first,
            endpoints,
            tasks,
        })
    }

    /// Where each listener listens, in the order given.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }
}

impl Drop for AcceptAll {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Accept for AcceptAll {
    fn accept(&mut self) -> BoxFuture<'_, Result<Incoming>> {
        Box::pin(async move {
            self.rx
                .recv()
                .await
                .ok_or(TransportError::ConnectionClosed { clean: false })?
        })
    }

    fn local_endpoint(&self) -> &Endpoint {
        &self.first
    }
}
