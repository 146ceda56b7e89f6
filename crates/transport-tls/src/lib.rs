//! # netproto-transport-tls
//!
//! netproto over TLS (rustls with the ring provider; TLS 1.3, 1.2 on
//! request) for services that must speak TLS: a [`TlsListener`] for servers
//! and a [`TlsConnector`] for clients, so `Server`, `Client` and the
//! connection pool work over `tls://host:port` unchanged.
//!
//! * **Inside TLS**, netproto's frames run as on any stream. The Noise
//!   handshake is skipped by default (TLS already authenticates and
//!   encrypts); `ConnectionConfig::noise_inside_tls` turns it back on (both
//!   sides must agree) for Noise identities on top of certificates.
//! * **Mutual TLS**: [`TlsServerConfig::with_client_ca`] on the server,
//!   [`TlsClientConfig::with_client_cert`] on the client.
//! * **Pinning**: [`CertPin`] (SHA-256 of the leaf's SubjectPublicKeyInfo
//!   or of the whole certificate), checked after chain validation, or
//!   instead of it with [`Roots::PinsOnly`].
//! * **Development certificates**: [`generate_self_signed`] and [`DevCa`].
//! * Handshake failures are [`netproto_transport::TransportError::Tls`] with
//!   a [`netproto_transport::TlsFailure`] reason: unknown CA, expired, name
//!   mismatch, pin mismatch, client certificate required, not TLS, …
//!
//! ## Example
//!
//! ```
//! use std::sync::Arc;
//! use netproto_crypto::{AnyPeer, HandshakeConfig};
//! use netproto_transport::{Connection, ConnectionConfig, Listener};
//! use netproto_transport_tls::{generate_self_signed, TlsClientConfig, TlsConnector, TlsListener, TlsServerConfig};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = std::env::temp_dir().join(format!("netproto-tls-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
//! generate_self_signed("localhost", &["localhost".into()], &cert, &key)?;
//!
//! let mut listener = TlsListener::bind(&"tls://localhost:0".parse()?, &TlsServerConfig::new(&cert, &key)).await?;
//! let port = match listener.local_endpoint() { netproto_transport::Endpoint::Tls { port, .. } => *port, _ => 0 };
//! let server_cfg = ConnectionConfig::new(HandshakeConfig::new(None, Arc::new(AnyPeer)))
//!     .for_endpoint(listener.local_endpoint());
//! let server = tokio::spawn(async move {
//!     let (stream, _peer) = listener.accept().await?;
//!     let mut conn = Connection::server(stream, server_cfg).await?;
//!     let frame = conn.recv_frame().await?;
//!     conn.send(&frame.payload).await?; // echo
//!     conn.close().await
//! });
//!
//! let mut cfg = ConnectionConfig::new(HandshakeConfig::new(None, Arc::new(AnyPeer)));
//! cfg.dialer = Some(Arc::new(TlsConnector::new(&TlsClientConfig::with_ca_file(&cert))?));
//! let mut conn = netproto_transport::connect(&format!("tls://localhost:{port}").parse()?, cfg).await?;
//! conn.send(b"over TLS".as_slice()).await?;
//! assert_eq!(&conn.recv_frame().await?.payload[..], b"over TLS");
//! server.await??;
//! std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

mod config;
mod connector;
mod error;
mod generate;
mod listener;
mod pem;
mod pin;
mod stream;
mod verify;

pub use config::{Roots, TlsClientConfig, TlsServerConfig, ALPN_NETPROTO};
pub use connector::TlsConnector;
pub use error::TlsError;
pub use generate::{generate_self_signed, self_signed, DevCa, GeneratedCert, Validity};
pub use listener::{TlsListener, TlsServerStream};
pub use pem::{load_certs, load_private_key, load_roots};
pub use pin::CertPin;
pub use stream::TlsClientStream;

/// Re-exported so callers can name rustls types without a version mismatch.
pub use rustls;
