//! # netproto-transport
//!
//! Secure connections over byte streams. A [`Connection`] runs netproto's
//! Noise handshake (netproto-crypto) over any `AsyncRead + AsyncWrite`, then
//! carries frames (netproto-wire) in authenticated, encrypted records:
//! batched when small, split with continuation when large, compressed when
//! both peers support the configured codec.
//!
//! Transports: TCP (`tcp://host:port`, TCP_NODELAY on) and Unix domain sockets
//! (`unix:///path`, file mode 0600, stale socket files cleaned up) through
//! [`DefaultTransport`] and [`AnyListener`]; on platforms without Unix sockets
//! the `unix://` scheme falls back to TCP on 127.0.0.1.
//!
//! Every limit and timeout is a [`ConnectionConfig`] field with a typed error
//! when hit; a failing connection never affects another.
//!
//! ## Example
//!
//! ```
//! use std::sync::Arc;
//! use netproto_crypto::{AnyPeer, HandshakeConfig, Keypair, Pinned};
//! use netproto_transport::{AnyListener, Connection, ConnectionConfig, Listener, SocketOptions};
//! use netproto_wire::Message;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), netproto_transport::TransportError> {
//! let mut rng = rand::rngs::OsRng;
//! let server_key = Keypair::generate(&mut rng);
//! let server_pub = *server_key.public();
//!
//! let mut listener = AnyListener::bind(&"tcp://127.0.0.1:0".parse()?, SocketOptions::default()).await?;
//! let endpoint = listener.local_endpoint().clone();
//! let server = tokio::spawn(async move {
//!     let (stream, _peer) = listener.accept().await?;
//!     let cfg = ConnectionConfig::new(HandshakeConfig::new(Some(server_key), Arc::new(AnyPeer)))
//!         .for_endpoint(listener.local_endpoint());
//!     let mut conn = Connection::server(stream, cfg).await?;
//!     let msg = conn.recv().await?;
//!     conn.send(msg).await?; // echo
//!     conn.close().await
//! });
//!
//! let client_key = Keypair::generate(&mut rng);
//! let cfg = ConnectionConfig::new(HandshakeConfig::new(Some(client_key), Arc::new(Pinned(server_pub))));
//! let mut conn = netproto_transport::connect(&endpoint, cfg).await?;
//! conn.send(Message::Echo("hello".into())).await?;
//! assert_eq!(conn.recv().await?, Message::Echo("hello".into()));
//! server.await.expect("server task")?;
//! # Ok(())
//! # }
//! ```

mod config;
mod connection;
mod endpoint;
mod error;
mod handshake;
mod transport;
mod writer;

pub use config::ConnectionConfig;
pub use connection::{Connection, ConnectionInfo, RecvHalf, SendHalf};
pub use endpoint::{Endpoint, PeerAddr};
pub use error::TlsFailure;
pub use error::{Result, TimeoutKind, TransportError};
pub use transport::{
    AnyListener, AnyStream, BoxFuture, BoxedListener, Connector, DefaultTransport, IoStream,
    Listener, SocketOptions, Transport,
};

/// Connects to `endpoint` with the configured [`Connector`] (or
/// [`DefaultTransport`] when none is set) and runs the client handshake: binds the handshake to the endpoint's transport and, unless set,
/// uses the endpoint as the host name for trust-on-first-use verifiers.
///
/// # Errors
/// [`TransportError::Timeout`] with [`TimeoutKind::Connect`] after
/// `connect_timeout`; otherwise as [`Connection::client`].
pub async fn connect(endpoint: &Endpoint, cfg: ConnectionConfig) -> Result<Connection> {
    let mut cfg = cfg.for_endpoint(endpoint);
    if cfg.handshake.host.is_none() {
        cfg.handshake.host = Some(endpoint.to_string());
    }
    let timed_out = || TransportError::Timeout {
        kind: TimeoutKind::Connect,
        after: cfg.connect_timeout,
    };
    if let Some(connector) = cfg.connector.clone() {
        let stream = tokio::time::timeout(cfg.connect_timeout, connector.connect(endpoint))
            .await
            .map_err(|_| timed_out())??;
        return Connection::client(stream, cfg).await;
    }
    let stream = tokio::time::timeout(
        cfg.connect_timeout,
        DefaultTransport::default().connect(endpoint),
    )
    .await
    .map_err(|_| timed_out())??;
    Connection::client(stream, cfg).await
}
