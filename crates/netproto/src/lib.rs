//! # netproto
//!
//! A secure, fast message protocol for Rust services. Connections are
//! authenticated and encrypted with the Noise protocol (XX by default; XK, IK
//! and NK when the client knows the server's key), framed by a documented wire
//! format (docs/WIRE.md), batched, optionally compressed, and served by a
//! daemon with limits, backpressure, heartbeat and graceful shutdown.
//!
//! This crate is the curated public API; the layers below are separate crates
//! for users who need only one of them: `netproto-wire` (no_std wire format),
//! `netproto-crypto` (no_std handshake and sessions), `netproto-transport`
//! (secure connections over TCP and Unix sockets), `netproto-service` (server,
//! client, dispatcher), `netproto-config` (configuration and logging).
//!
//! ## Getting started
//!
//! ```
//! use std::sync::Arc;
//! use netproto::{AnyPeer, Client, Dispatcher, Keypair, Message, NetworkConfig, Pinned, Server};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), netproto::Error> {
//! let mut cfg = NetworkConfig::default();
//! cfg.server.address = "127.0.0.1:0".into(); // any free port
//!
//! // Server: a static identity key, and handlers by opcode.
//! let server_key = Keypair::generate(&mut rand::rngs::OsRng);
//! let server_pub = *server_key.public();
//! let mut dispatcher = Dispatcher::new();
//! dispatcher.register("ECHO", Ok);
//! let server = Server::bind(netproto::server_config(&cfg, server_key, Arc::new(AnyPeer))?, dispatcher).await?;
//! let handle = server.handle();
//! tokio::spawn(server.run());
//!
//! // Client: pins the server's key, then calls.
//! let client_key = Keypair::generate(&mut rand::rngs::OsRng);
//! let client_cfg = netproto::client_config(&cfg, Some(client_key), Arc::new(Pinned(server_pub)))?;
//! let client = Client::connect(handle.endpoint(), client_cfg).await?;
//! let answer = client.call(Message::Echo("hello".into())).await?;
//! assert_eq!(answer, Message::Echo("hello".into()));
//!
//! client.close().await?;
//! handle.shutdown(None);
//! # Ok(())
//! # }
//! ```
//!
//! ## Crate features
//!
//! None yet. TLS, UDP and cluster transports will arrive behind the features
//! `tls`, `udp` and `cluster`; they are not part of this release.

use std::sync::Arc;

pub use netproto_config::{
    endpoint_string, example_config, logging, ClientSection, ConfigError, LoggingSection,
    NetworkConfig, ServerSection, TransportSection,
};
pub use netproto_crypto::{
    AllowList, AnyPeer, Capabilities, CryptoError, HandshakeConfig, Keypair, KnownHosts, Pattern,
    PeerVerifier, Pinned, PublicKey, Rejection,
};
pub use netproto_service::{
    decode_response, encode_request, Client, ClientConfig, ClientStats, Dispatcher, HandlerError,
    Server, ServerConfig, ServerHandle, ServiceError,
};
pub use netproto_transport::{
    connect, AnyListener, Connection, ConnectionConfig, ConnectionInfo, Endpoint, Listener,
    RecvHalf, SendHalf, TimeoutKind, TransportError,
};
pub use netproto_wire::{
    Compression, CompressionPolicy, ErrorCode, Frame, FrameKind, Headers, Message, WireError,
};

/// Any netproto error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Wire format.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Handshake or session cryptography.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// Connections and transports.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Server, client and calls.
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// Configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

fn connection_config(
    cfg: &NetworkConfig,
    key: Option<Keypair>,
    verifier: Arc<dyn PeerVerifier>,
) -> ConnectionConfig {
    let mut conn = ConnectionConfig::new(HandshakeConfig::new(key, verifier));
    conn.max_message_size = cfg.transport.max_payload_size;
    if cfg.transport.compression_enabled {
        let codec = if cfg.transport.compression_algorithm == "zstd" {
            Compression::Zstd
        } else {
            Compression::Lz4
        };
        let mut policy = CompressionPolicy::new(codec);
        policy.threshold = cfg.transport.compression_threshold;
        policy.zstd_level = cfg.transport.compression_level;
        conn.compression = policy;
    }
    conn
}

/// The server settings of `cfg`, with the server's identity and client verifier.
///
/// # Errors
/// [`Error::Transport`] if `server.address` is not a valid endpoint.
pub fn server_config(
    cfg: &NetworkConfig,
    key: Keypair,
    verifier: Arc<dyn PeerVerifier>,
) -> Result<ServerConfig, Error> {
    let address: Endpoint = endpoint_string(&cfg.server.address).parse()?;
    let mut conn = connection_config(cfg, Some(key), verifier);
    conn.handshake_timeout = cfg.server.connection_timeout;
    let mut server = ServerConfig::new(address, conn);
    server.max_connections = cfg.server.max_connections;
    server.backpressure_limit = cfg.server.backpressure_limit;
    server.heartbeat_interval = cfg.server.heartbeat_interval;
    server.connection_timeout = cfg.server.connection_timeout;
    server.shutdown_timeout = cfg.server.shutdown_timeout;
    Ok(server)
}

/// The client settings of `cfg`, with an optional client identity (required
/// unless the pattern is NK) and the server verifier.
///
/// # Errors
/// None today; a `Result` so that validation can be added without breaking callers.
pub fn client_config(
    cfg: &NetworkConfig,
    key: Option<Keypair>,
    verifier: Arc<dyn PeerVerifier>,
) -> Result<ClientConfig, Error> {
    let mut client = ClientConfig::new(connection_config(cfg, key, verifier));
    client.connection_timeout = cfg.client.connection_timeout;
    client.operation_timeout = cfg.client.operation_timeout;
    client.response_timeout = cfg.client.response_timeout;
    client.heartbeat_interval = cfg.client.heartbeat_interval;
    client.auto_reconnect = cfg.client.auto_reconnect;
    client.max_reconnect_attempts = cfg.client.max_reconnect_attempts;
    client.reconnect_delay = cfg.client.reconnect_delay;
    Ok(client)
}
