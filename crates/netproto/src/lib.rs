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
//! (secure connections over TCP and Unix sockets), `netproto-transport-tls`
//! (TLS), `netproto-service` (server, client, dispatcher), `netproto-config`
//! (configuration and logging).
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
//! ## TLS
//!
//! With the `tls` feature, addresses may be `tls://host:port`: [`bind`]
//! returns a TLS listener built from the `[tls]` section, and
//! [`client_config`] installs a [`TlsConnector`] when `client.address` is a
//! TLS address. Inside TLS the Noise handshake is skipped unless
//! `tls.noise_inside_tls` is set (see docs/SECURITY.md).
//!
//! ## Crate features
//!
//! | feature | default | what it adds |
//! |---------|---------|--------------|
//! | `tls`   | yes     | `tls://` endpoints: [`TlsListener`], [`TlsConnector`], mutual TLS, [`CertPin`], [`generate_self_signed`], [`DevCa`] (rustls, ring provider) |
//!
//! | `udp`   | yes     | [`udp`]: encrypted datagram sessions (Noise over UDP, cookies, fragmentation, reliable or unreliable messages) as a sans-IO [`udp::Endpoint`] and the tokio [`udp::UdpEndpoint`]; `udp://` endpoints for `Server` ([`bind`], [`udp::UdpListener`]), `Client` and the pool ([`client_config`], [`udp::UdpDialer`]), the `[udp]` section ([`udp_config`]) |
//!
//! | `cluster` | yes   | [`cluster`]: membership, failure detection and gossip (SWIM on foca) over authenticated UDP sessions: [`cluster::Cluster`] (tokio) and the sans-IO [`cluster::Node`] |
//!
//! Zstd compression is always built (the wire crate's `std` feature).

use std::sync::Arc;

// docs/MIGRATING.md: every Rust block of the migration guide is a doctest of
// this crate, so the guide cannot name an API that does not compile.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/MIGRATING.md")]
pub struct MigratingGuide;

/// Cluster membership (`netproto-cluster`).
#[cfg(feature = "cluster")]
pub use netproto_cluster as cluster;
pub use netproto_config::{
    endpoint_string, example_config, logging, ClientSection, CompressionAlgorithm, ConfigError,
    LogFormat, LoggingSection, MetricsSection, NetworkConfig, NoiseCipher, ServerSection,
    TlsSection, TransportSection,
};
pub use netproto_crypto::{
    AllowList, AnyPeer, Capabilities, CipherSet, CipherSuite, CryptoError, HandshakeConfig,
    Keypair, KnownHosts, Pattern, PeerVerifier, Pinned, PublicKey, Rejection,
};
pub use netproto_service::{
    decode_response, encode_request, tower, BoxError, CircuitState, Client, ClientConfig,
    ClientService, ClientStats, Codec, CodecError, ConnectionPool, Dispatcher, ExtensionHandler,
    HandlerError, PoolConfig, PoolStats, PooledClient, RouteService, Server, ServerConfig,
    ServerHandle, ServiceError,
};
/// The sans-IO connection core, for writing a driver of your own.
pub use netproto_transport::core;
/// Feature bits of the handshake capabilities that netproto defines.
pub use netproto_transport::features;
pub use netproto_transport::{
    connect, dial_stream, Accept, AcceptAll, AnyListener, AnyStream, BoxFuture, BoxedListener,
    CarrierFailure, Connection, ConnectionConfig, ConnectionInfo, DefaultTransport, Delivery, Dial,
    Endpoint, ExtensionError, ExtensionId, Extensions, Incoming, InvalidFrame, IoStream, Listener,
    Payload, PeerAddr, Priority, ProtocolViolation, RecvHalf, SendHalf, SocketOptions,
    StreamSecurity, TimeoutKind, TlsFailure, TransportError,
};
#[cfg(feature = "tls")]
pub use netproto_transport_tls::{
    generate_self_signed, self_signed, CertPin, DevCa, GeneratedCert, Roots, TlsClientConfig,
    TlsConnector, TlsError, TlsListener, TlsServerConfig, Validity,
};
/// UDP datagram sessions (`netproto-transport-udp`).
#[cfg(feature = "udp")]
pub use netproto_transport_udp as udp;
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
    /// TLS settings and certificate files.
    #[cfg(feature = "tls")]
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// UDP endpoints and datagram sessions.
    #[cfg(feature = "udp")]
    #[error(transparent)]
    Udp(#[from] netproto_transport_udp::UdpError),
    /// Cluster membership.
    #[cfg(feature = "cluster")]
    #[error(transparent)]
    Cluster(#[from] netproto_cluster::ClusterError),
}

/// A configured cipher (`None` for `auto`: the handshake's default, the
/// faster on this CPU).
fn cipher(c: NoiseCipher) -> Option<CipherSuite> {
    match c {
        NoiseCipher::ChaChaPoly => Some(CipherSuite::ChaChaPoly),
        NoiseCipher::AesGcm => Some(CipherSuite::AesGcm),
        _ => None,
    }
}

fn connection_config(
    cfg: &NetworkConfig,
    key: Option<Keypair>,
    verifier: Arc<dyn PeerVerifier>,
) -> ConnectionConfig {
    let mut handshake = HandshakeConfig::new(key, verifier).with_accepted_ciphers(
        cfg.transport
            .accepted_ciphers
            .iter()
            .filter_map(|c| cipher(*c))
            .collect(),
    );
    if let Some(chosen) = cipher(cfg.transport.cipher) {
        handshake = handshake.with_cipher(chosen);
    }
    let mut conn = ConnectionConfig::new(handshake);
    conn.max_message_size = cfg.transport.max_payload_size;
    conn.noise_inside_tls = cfg.tls.noise_inside_tls;
    if cfg.transport.compression_enabled {
        let codec = match cfg.transport.compression_algorithm {
            CompressionAlgorithm::Zstd => Compression::Zstd,
            _ => Compression::Lz4,
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
    server.backpressure_bytes = cfg.server.backpressure_bytes;
    server.max_handshakes = cfg.server.max_handshakes;
    server.max_handshakes_per_source = cfg.server.max_handshakes_per_source;
    server.handshake_rate_per_source = f64::from(cfg.server.handshake_rate_per_source);
    server.handshake_burst_per_source = cfg.server.handshake_burst_per_source;
    server.max_reassembly_bytes = cfg.server.max_reassembly_bytes;
    server.max_request_bytes = cfg.server.max_request_bytes;
    server.max_send_bytes = cfg.server.max_send_bytes;
    Ok(server)
}

/// The client settings of `cfg`, with an optional client identity (required
/// unless the pattern is NK) and the server verifier.
///
/// When `client.address` is `tls://` (feature `tls`), the client also gets
/// a [`TlsConnector`] from the `[tls]` section (it still opens `tcp://` and
/// `unix://` endpoints without TLS); when it is `udp://` (feature `udp`), a
/// [`udp::UdpDialer`] from the `[udp]` section, and `[udp] delivery` for
/// one-way sends.
///
/// # Errors
/// [`Error::Tls`] for unreadable TLS files or bad pins.
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
    #[cfg(feature = "tls")]
    if endpoint_string(&cfg.client.address).starts_with("tls://") {
        client.connection.dialer = Some(Arc::new(TlsConnector::new(&tls_client_config(cfg)?)?));
    }
    #[cfg(feature = "udp")]
    if endpoint_string(&cfg.client.address).starts_with("udp://") {
        client.connection.dialer = Some(Arc::new(udp::UdpDialer::new(udp_config(cfg))));
        client.send_delivery = udp_delivery(cfg);
    }
    Ok(client)
}

/// Binds `server.address`: TCP, a Unix socket, (feature `tls`) TLS with
/// the `[tls]` section's certificate, or (feature `udp`) UDP sessions with
/// the `[udp]` section's limits. Serve it with [`Server::with_listener`].
///
/// A UDP endpoint runs its handshakes itself, before the server sees a
/// session: pass the server's handshake settings (key, verifier, pattern;
/// `&server_config(..)?.connection.handshake`) as `handshake`. Streams run
/// theirs with the server's own and ignore it.
///
/// # Errors
/// [`Error::Transport`] for a bad address or a failed bind; [`Error::Tls`]
/// and [`Error::Config`] for missing or unusable TLS files; [`Error::Config`]
/// for a UDP address without `handshake`.
pub async fn bind(
    cfg: &NetworkConfig,
    handshake: Option<&HandshakeConfig>,
) -> Result<Box<dyn Accept>, Error> {
    let address: Endpoint = endpoint_string(&cfg.server.address).parse()?;
    bind_endpoint(cfg, &address, handshake).await
}

/// Binds several addresses and serves them as one listener (one daemon on
/// TCP and UDP at once, for example). The first is the server's
/// [`Accept::local_endpoint`]; [`AcceptAll::endpoints`] lists them all.
///
/// # Errors
/// As [`bind`], for the first address that fails; [`Error::Transport`] for
/// an empty list.
pub async fn bind_all(
    cfg: &NetworkConfig,
    addresses: &[String],
    handshake: Option<&HandshakeConfig>,
) -> Result<AcceptAll, Error> {
    let mut listeners = Vec::with_capacity(addresses.len());
    for a in addresses {
        let address: Endpoint = endpoint_string(a).parse()?;
        listeners.push(bind_endpoint(cfg, &address, handshake).await?);
    }
    Ok(AcceptAll::new(listeners)?)
}

#[cfg_attr(not(feature = "udp"), allow(clippy::unused_async, unused_variables))]
async fn bind_endpoint(
    cfg: &NetworkConfig,
    address: &Endpoint,
    handshake: Option<&HandshakeConfig>,
) -> Result<Box<dyn Accept>, Error> {
    #[cfg(feature = "tls")]
    if matches!(address, Endpoint::Tls { .. }) {
        let listener = TlsListener::bind(address, &tls_server_config(cfg)?).await?;
        return Ok(Box::new(listener));
    }
    #[cfg(feature = "udp")]
    if matches!(address, Endpoint::Udp { .. }) {
        let Some(handshake) = handshake else {
            return Err(ConfigError::Invalid {
                key: "server.address",
                reason: "a udp:// server runs its handshakes in the endpoint and needs the \
                         server's handshake settings (key and verifier)"
                    .into(),
            }
            .into());
        };
        let listener = udp::UdpListener::bind(address, udp_config(cfg), handshake.clone()).await?;
        return Ok(Box::new(listener));
    }
    Ok(Box::new(
        AnyListener::bind(address, SocketOptions::default()).await?,
    ))
}

/// The `[udp]` section as the UDP carrier's settings.
#[cfg(feature = "udp")]
pub fn udp_config(cfg: &NetworkConfig) -> udp::UdpConfig {
    let u = &cfg.udp;
    let mut c = udp::UdpConfig::default();
    c.max_datagram = u.max_datagram;
    c.max_message = u.max_message;
    c.max_unreliable_pieces = u.max_unreliable_pieces;
    c.max_send_queue = u.max_send_queue;
    c.max_sessions = u.max_sessions;
    c.socket_buffer = u.socket_buffer;
    c.retransmit.initial_rto = u.initial_rto;
    c.retransmit.min_rto = u.min_rto;
    c.retransmit.max_rto = u.max_rto;
    c.retransmit.max_ack_delay = u.max_ack_delay;
    c.retransmit.deadline = u.delivery_deadline;
    c.retransmit.max_attempts = u.max_attempts;
    c.handshake.timeout = u.handshake_timeout;
    c.handshake.max_pending = u.max_pending_handshakes;
    c.handshake.cookie_threshold = u.cookie_threshold;
    c.handshake.per_source_rate = u.per_source_rate;
    c.handshake.per_source_burst = u.per_source_burst;
    c.reassembly.max_pending = u.reassembly_max_pending;
    c.reassembly.max_buffered = u.reassembly_max_buffered;
    c.reassembly.timeout = u.reassembly_timeout;
    c.keep_alive = (!u.keep_alive.is_zero()).then_some(u.keep_alive);
    c.idle_timeout = u.idle_timeout;
    c
}

/// How `[udp] delivery` asks one-way messages to travel.
#[cfg(feature = "udp")]
pub fn udp_delivery(cfg: &NetworkConfig) -> Delivery {
    match cfg.udp.delivery.as_str() {
        "reliable" => Delivery::Reliable,
        "unreliable" => Delivery::Unreliable,
        _ => Delivery::Ordered,
    }
}

/// The `[tls]` section as server settings.
///
/// # Errors
/// [`Error::Config`] when `tls.cert_path` / `tls.key_path` are not set.
#[cfg(feature = "tls")]
pub fn tls_server_config(cfg: &NetworkConfig) -> Result<TlsServerConfig, Error> {
    let t = &cfg.tls;
    if t.cert_path.is_empty() {
        return Err(ConfigError::Invalid {
            key: "tls.cert_path",
            reason: "a tls:// server needs a certificate (and tls.key_path); \
                     `netproto cert` makes a development one"
                .into(),
        }
        .into());
    }
    let mut server = TlsServerConfig::new(&t.cert_path, &t.key_path);
    if !t.client_ca_path.is_empty() {
        server = server.with_client_ca(&t.client_ca_path);
    }
    server.verify_client = t.verify_client;
    server.allow_tls12 = t.allow_tls12;
    server.handshake_timeout = t.handshake_timeout;
    server.max_concurrent_handshakes = t.max_concurrent_handshakes;
    Ok(server)
}

/// The `[tls]` section as client settings.
///
/// # Errors
/// [`Error::Tls`] for a pin that does not parse.
#[cfg(feature = "tls")]
pub fn tls_client_config(cfg: &NetworkConfig) -> Result<TlsClientConfig, Error> {
    let t = &cfg.tls;
    let mut client = if t.ca_path.is_empty() {
        TlsClientConfig::default()
    } else {
        TlsClientConfig::with_ca_file(&t.ca_path)
    };
    if t.pins_only {
        client.roots = Roots::PinsOnly;
    }
    for pin in &t.pins {
        client = client.with_pin(pin.parse()?);
    }
    if !t.client_cert_path.is_empty() {
        client = client.with_client_cert(&t.client_cert_path, &t.client_key_path);
    }
    if !t.server_name.is_empty() {
        client.server_name = Some(t.server_name.clone());
    }
    client.allow_tls12 = t.allow_tls12;
    client.handshake_timeout = t.handshake_timeout;
    Ok(client)
}
