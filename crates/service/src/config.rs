//! Server and client settings (the service-layer fields of network-protocol's
//! `ServerConfig` / `ClientConfig`, with its defaults).

use std::time::Duration;

use std::sync::Arc;

use netproto_transport::ExtensionId;
use netproto_wire::Frame;

use crate::codec::Codec;
use crate::extension::ExtensionHandlers;
use netproto_transport::{
    ConnectionConfig, Delivery, Endpoint, DEFAULT_KEEP_ALIVE, DEFAULT_PONG_GRACE,
};

/// Server settings. Defaults in parentheses.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Where to listen (`tcp://127.0.0.1:9000`).
    pub address: Endpoint,
    /// Authenticated connections served at once; more get an ERR "server
    /// busy" (1000). Handshakes in progress do not count: they have their
    /// own budget below.
    pub max_connections: usize,
    /// Handshakes in progress at once, over all sources (512); a
    /// connection arriving beyond it takes the place of the oldest
    /// handshake in progress (stalled handshakes are the old ones).
    pub max_handshakes: usize,
    /// Handshakes in progress at once from one source (an IPv4 address or
    /// an IPv6 /64; all Unix-socket peers are one source with the whole
    /// budget) (64): one source cannot take the whole handshake budget, and
    /// its next handshake takes the place of its oldest.
    pub max_handshakes_per_source: u32,
    /// Handshakes one source may start per second, on average (200.0: a
    /// replayed initiation costs the server at most this many key
    /// agreements per second and source, about 5 % of a core here) ...
    pub handshake_rate_per_source: f64,
    /// ... and in a burst (500).
    pub handshake_burst_per_source: u32,
    /// Requests in flight per connection before the server stops reading
    /// from it (32).
    pub backpressure_limit: usize,
    /// Bytes of requests in flight per connection before the server stops
    /// reading from it (4 MiB; one request of any size is always taken
    /// when the connection has less in flight).
    pub backpressure_bytes: usize,
    /// Bytes of requests being handled, all connections together, beyond
    /// each connection's first 64 KiB (32 MiB). A request that does not fit
    /// is not handled: it is answered ERR BUSY at once and dropped.
    pub max_request_bytes: usize,
    /// Bytes of answers queued for peers that read slowly, all connections
    /// together, beyond each connection's first 64 KiB (32 MiB; raised to
    /// twice the largest message if smaller: an answer over 256 KiB
    /// reserves twice its size while it is encoded). An answer that does not fit waits,
    /// and its connection's reading with it; a peer that reads nothing for
    /// `connection.write_timeout` is closed.
    pub max_send_bytes: usize,
    /// A connection silent this long is pinged by its connection core
    /// (15 s; becomes the connection's `keep_alive`).
    pub heartbeat_interval: Duration,
    /// After that ping, the peer must show life within this or be closed
    /// (5 s; the connection's `idle_timeout` is the sum of the two).
    pub connection_timeout: Duration,
    /// Default grace period for in-flight requests at shutdown (10 s).
    pub shutdown_timeout: Duration,
    /// Bytes of unfinished (continued) requests all connections together
    /// may hold (64 MiB: four maximum-size messages at once). A connection
    /// whose next piece does not fit is closed with a typed error; the
    /// others keep going. Used unless `connection.reassembly_budget` is set.
    pub max_reassembly_bytes: usize,
    /// Handshake, keys, limits and timeouts of each connection.
    pub connection: ConnectionConfig,
}

/// The longest a server waits for a handshake by default.
const SERVER_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

impl ServerConfig {
    /// Defaults, listening on `address` with the given connection settings.
    /// A server gives a handshake at most 5 s (`connection.handshake_timeout`
    /// is shortened to that; set it after `new` to choose another): a peer
    /// that has not authenticated holds a slot no longer, and the file
    /// settings (`server.connection_timeout`, 5 s) say the same.
    pub fn new(address: Endpoint, mut connection: ConnectionConfig) -> Self {
        connection.handshake_timeout = connection.handshake_timeout.min(SERVER_HANDSHAKE_TIMEOUT);
        Self {
            address,
            max_connections: 1000,
            max_handshakes: 512,
            max_handshakes_per_source: 64,
            handshake_rate_per_source: 200.0,
            handshake_burst_per_source: 500,
            backpressure_limit: 32,
            backpressure_bytes: 4 * 1024 * 1024,
            max_request_bytes: 32 * 1024 * 1024,
            max_send_bytes: 32 * 1024 * 1024,
            heartbeat_interval: DEFAULT_KEEP_ALIVE,
            connection_timeout: DEFAULT_PONG_GRACE,
            shutdown_timeout: Duration::from_secs(10),
            max_reassembly_bytes: 64 * 1024 * 1024,
            connection,
        }
    }
}

/// Client settings. Defaults in parentheses.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Connecting and the handshake must each finish within this (5 s).
    pub connection_timeout: Duration,
    /// A request waiting for room in the connection's send buffer fails
    /// after this long without progress (the server reads nothing) (3 s). A
    /// busy connection that keeps writing is waited out: the call's
    /// `response_timeout` bounds it.
    pub operation_timeout: Duration,
    /// A call fails if no response arrives within this (30 s).
    pub response_timeout: Duration,
    /// A silent server is pinged after this by the connection core (15 s);
    /// it then has `connection_timeout` to answer before every pending call
    /// fails.
    pub heartbeat_interval: Duration,
    /// Reconnect when the connection has died (true).
    pub auto_reconnect: bool,
    /// Attempts per reconnection before the call fails (3).
    pub max_reconnect_attempts: u32,
    /// Delay before the first attempt, doubled for each next one, with
    /// jitter (1 s).
    pub reconnect_delay: Duration,
    /// Upper bound of the delay between attempts (30 s).
    pub max_reconnect_delay: Duration,
    /// How [`crate::Client::send`]'s one-way messages travel where the
    /// carrier can lose datagrams (UDP) (ordered: reliable and in order, as
    /// on a stream). Calls are always ordered.
    pub send_delivery: Delivery,
    /// Calls waiting for their answer at once; a further call waits for
    /// one to end (within its response timeout), and
    /// [`crate::ClientService`] is not ready (1024).
    pub max_in_flight: usize,
    /// Body encoding of [`crate::Client::request`] (postcard).
    pub codec: Codec,
    /// Handshake, keys, limits and timeouts of the connection.
    pub connection: ConnectionConfig,
    /// Handlers of extension frames ([`ClientConfig::extension`]).
    pub(crate) extensions: ExtensionHandlers,
}

impl ClientConfig {
    /// Handles extension frames of `kind` (`0x80`–`0xff`), which belongs to
    /// extension `id`, on every connection of this client: the extension is
    /// advertised in the handshake, and frames of `kind` from a server that
    /// advertised it too reach `handler` on the connection's reader (it must
    /// not block). A frame it returns is sent back if the send buffer has
    /// room. Send extension frames with [`crate::Client::send_extension`].
    ///
    /// # Errors
    /// [`crate::ServiceError::Transport`] with
    /// [`netproto_transport::TransportError::Extension`] if `kind` is not an
    /// extension kind or belongs to another id.
    pub fn extension<F>(mut self, id: ExtensionId, kind: u8, handler: F) -> crate::Result<Self>
    where
        F: Fn(Frame) -> Option<Frame> + Send + Sync + 'static,
    {
        self.extensions.register(id, kind, Arc::new(handler))?;
        Ok(self)
    }

    /// Defaults with the given connection settings.
    pub fn new(connection: ConnectionConfig) -> Self {
        Self {
            connection_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(3),
            response_timeout: Duration::from_secs(30),
            heartbeat_interval: DEFAULT_KEEP_ALIVE,
            auto_reconnect: true,
            max_reconnect_attempts: 3,
            reconnect_delay: Duration::from_secs(1),
            max_reconnect_delay: Duration::from_secs(30),
            send_delivery: Delivery::Ordered,
            max_in_flight: 1024,
            codec: Codec::Postcard,
            connection,
            extensions: ExtensionHandlers::default(),
        }
    }
}
