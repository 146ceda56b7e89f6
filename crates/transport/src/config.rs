//! Connection settings.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use netproto_crypto::{HandshakeConfig, RekeyPolicy, TimestampGuard};

use crate::budget::MemoryBudget;
use netproto_wire::CompressionPolicy;

use crate::carrier::Dial;
use crate::endpoint::Endpoint;
use crate::extension::Extensions;

/// Keep-alive interval (network-protocol's heartbeat interval).
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long after a keep-alive PING the peer has to show life
/// (network-protocol's connection timeout).
pub const DEFAULT_PONG_GRACE: Duration = Duration::from_secs(5);

/// Settings of one connection. Defaults are in parentheses.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionConfig {
    /// Pattern, keys, verifier, offered capabilities, and the transport label
    /// bound into the prologue ([`crate::connect`] and
    /// [`ConnectionConfig::for_endpoint`] set it from the endpoint).
    pub handshake: HandshakeConfig,
    /// Shared by all connections of an IK server (the replay guard).
    pub timestamp_guard: Option<Arc<Mutex<TimestampGuard>>>,
    /// Connecting must succeed within this (10 s).
    pub connect_timeout: Duration,
    /// The whole handshake must finish within this (10 s).
    pub handshake_timeout: Duration,
    /// Send a PING when nothing has arrived for this long, so a silent
    /// peer is noticed and a quiet one is kept alive (`None`: never) (15 s).
    pub keep_alive: Option<Duration>,
    /// Close when nothing has arrived for this long — any authenticated
    /// record counts, continuation pieces of a large message included
    /// (`None`: never) (20 s: one keep-alive interval plus 5 s for the
    /// PONG). Both deadlines run only while the connection is being read:
    /// a connection whose application holds a frame is not idle.
    pub idle_timeout: Option<Duration>,
    /// A packet that has started must complete within this (10 s): drops
    /// peers that trickle bytes.
    pub packet_timeout: Duration,
    /// A socket write must complete within this (10 s).
    pub write_timeout: Duration,
    /// Largest message accepted (16 MiB); advertised in the handshake.
    /// Values below 1024 bytes count as 1024 (the protocol's minimum, so an
    /// ERR always fits).
    pub max_message_size: usize,
    /// Bytes of unfinished (continued) messages, shared by every connection
    /// that holds this `Arc`: a peer whose next piece does not fit is closed
    /// with [`crate::TransportError::ReassemblyBudget`] (`None`: only
    /// `max_message_size` per connection). The service's server sets one for
    /// all its connections.
    pub reassembly_budget: Option<Arc<MemoryBudget>>,
    /// Bytes queued for slow readers beyond each connection's first
    /// [`crate::SEND_FLOOR`] (64 KiB), shared by every connection that holds
    /// this `Arc`: a send that does not fit waits, as for a full
    /// `send_buffer`, until some connection's writer has written (`None`:
    /// only `send_buffer` per connection). A payload over 256 KiB reserves
    /// twice its size while it is encoded (through a scratch copy), so the
    /// budget must hold twice the largest message. The service's server sets one for
    /// all its connections, so that peers that read slowly cannot make it
    /// hold their answers without bound.
    pub send_budget: Option<Arc<MemoryBudget>>,
    /// A message continued over several records must complete within this
    /// (2 min: a 16 MiB message at 200 KiB/s takes 82 s).
    pub message_timeout: Duration,
    /// Bytes queued for the writer before `send` waits and `try_send_frame`
    /// refuses (1 MiB). One message larger than this is still accepted
    /// when the buffer has room, so it bounds what waits beyond the
    /// message being sent.
    pub send_buffer: usize,
    /// Compression of outgoing records (off). Used only if the peer
    /// advertised the codec.
    pub compression: CompressionPolicy,
    /// When session keys are replaced.
    pub rekey: RekeyPolicy,
    /// Dials connections in [`crate::connect`] (and so in the service's
    /// clients, reconnects and pools) instead of the built-in TCP /
    /// Unix-socket dialer; required for `tls://` and `udp://` endpoints
    /// (`None`).
    pub dialer: Option<Arc<dyn Dial>>,
    /// Also run the Noise handshake inside TLS (false). TLS already
    /// authenticates and encrypts; turning this on adds Noise's identity
    /// keys and a second layer of encryption at the cost of a second
    /// handshake and a second AEAD pass. Both sides must agree. Ignored for
    /// streams that declare no security of their own
    /// ([`crate::StreamSecurity::Plain`]), which always run Noise.
    pub noise_inside_tls: bool,
    /// Extensions this side speaks: their feature bits are advertised in
    /// the handshake, and their frames are delivered only once both sides
    /// advertised them (none). See [`crate::Extensions`].
    pub extensions: Extensions,
    /// Interleave the pieces of large messages so that a more urgent
    /// message overtakes them mid-flight (on). Used only if the peer
    /// advertises [`crate::features::INTERLEAVE`]; otherwise, or when off,
    /// messages leave in the order they were queued, whatever their
    /// [`crate::Priority`].
    pub priorities: bool,
}

impl ConnectionConfig {
    /// Defaults around a handshake configuration.
    pub fn new(handshake: HandshakeConfig) -> Self {
        Self {
            handshake,
            timestamp_guard: None,
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            keep_alive: Some(DEFAULT_KEEP_ALIVE),
            idle_timeout: Some(DEFAULT_KEEP_ALIVE + DEFAULT_PONG_GRACE),
            packet_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_message_size: 16 * 1024 * 1024,
            reassembly_budget: None,
            send_budget: None,
            message_timeout: Duration::from_mins(2),
            send_buffer: 1024 * 1024,
            compression: CompressionPolicy::default(),
            rekey: RekeyPolicy::default(),
            dialer: None,
            noise_inside_tls: false,
            extensions: Extensions::new(),
            priorities: true,
        }
    }

    /// Binds the handshake to `endpoint`'s transport (`"tcp"`, `"uds"` or
    /// `"tls"`); both sides must agree or the handshake fails.
    #[must_use]
    pub fn for_endpoint(mut self, endpoint: &Endpoint) -> Self {
        self.handshake.transport = endpoint.transport_label().into();
        self
    }

    /// Sets the keep-alive interval and the idle deadline the way the
    /// service's `heartbeat_interval` and `connection_timeout` describe
    /// them: PING after `interval` of silence, close if nothing arrives
    /// within `grace` after that.
    #[must_use]
    pub fn with_heartbeat(mut self, interval: Duration, grace: Duration) -> Self {
        self.keep_alive = Some(interval);
        self.idle_timeout = Some(interval + grace);
        self
    }
}
