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
//!     let frame = conn.recv_frame().await?;
//!     conn.send(&frame.payload).await?; // echo
//!     conn.close().await
//! });
//!
//! let client_key = Keypair::generate(&mut rng);
//! let cfg = ConnectionConfig::new(HandshakeConfig::new(Some(client_key), Arc::new(Pinned(server_pub))));
//! let mut conn = netproto_transport::connect(&endpoint, cfg).await?;
//! conn.send(b"hello".as_slice()).await?;
//! assert_eq!(&conn.recv_frame().await?.payload[..], b"hello");
//! server.await.expect("server task")?;
//! # Ok(())
//! # }
//! ```

mod budget;
mod carrier;
mod config;
mod connection;
pub mod core;
mod endpoint;
mod error;
mod extension;
mod payload;
pub mod session;
mod stream;
mod transport;

pub use crate::core::{ConnectionInfo, Priority, StreamSecurity};
pub use budget::{BudgetShare, MemoryBudget, Released, SEND_FLOOR};
pub use carrier::{dial_stream, Accept, AcceptAll, BoxFuture, Dial, Incoming};
pub use config::{ConnectionConfig, DEFAULT_KEEP_ALIVE, DEFAULT_PONG_GRACE};
pub use connection::{Connection, Flush, RecvHalf, SendHalf};
pub use endpoint::{Endpoint, PeerAddr};
pub use error::{CarrierFailure, ExtensionError, InvalidFrame, ProtocolViolation, TlsFailure};
pub use error::{Result, TimeoutKind, TransportError};
pub use extension::{features, ExtensionId, Extensions, FIRST_EXTENSION_KIND, MAX_EXTENSIONS};
pub use payload::Payload;
pub use session::Delivery;
pub use transport::{
    AnyListener, AnyStream, BoxedListener, DefaultTransport, IoStream, Listener, SocketOptions,
};

/// Connects to `endpoint` with the configured [`Dial`] (or the built-in
/// TCP / Unix-socket one when none is set) and runs the client handshake:
/// binds the handshake to the endpoint's transport and, unless set, uses
/// the endpoint as the host name for trust-on-first-use verifiers.
///
/// # Errors
/// [`TransportError::Timeout`] with [`TimeoutKind::Connect`] after
/// `connect_timeout`; otherwise as [`Connection::client`].
pub async fn connect(endpoint: &Endpoint, cfg: ConnectionConfig) -> Result<Connection> {
    let mut cfg = cfg.for_endpoint(endpoint);
    if cfg.handshake.host.is_none() {
        cfg.handshake.host = Some(endpoint.to_string());
    }
    carrier::dialer_of(&cfg).dial(endpoint, cfg).await
}
