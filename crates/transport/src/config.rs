//! Connection settings.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use netproto_crypto::{HandshakeConfig, RekeyPolicy, TimestampGuard};
use netproto_wire::CompressionPolicy;

use crate::endpoint::Endpoint;
use crate::transport::Connector;

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
    /// Close when nothing arrives for this long (`None`: never) (120 s).
    pub read_idle_timeout: Option<Duration>,
    /// A packet that has started must complete within this (10 s): drops
    /// peers that trickle bytes.
    pub packet_timeout: Duration,
    /// A socket write must complete within this (10 s).
    pub write_timeout: Duration,
    /// Largest message accepted (16 MiB); advertised in the handshake.
    pub max_message_size: usize,
    /// Messages queued for the writer before `send` waits (1024).
    pub write_queue: usize,
    /// Compression of outgoing records (off). Used only if the peer
    /// advertised the codec.
    pub compression: CompressionPolicy,
    /// When session keys are replaced.
    pub rekey: RekeyPolicy,
    /// Opens the stream in [`crate::connect`] instead of the built-in
    /// TCP/Unix transport; required for `tls://` endpoints (`None`).
    pub connector: Option<Arc<dyn Connector>>,
    /// Also run the Noise handshake inside TLS (false). TLS already
    /// authenticates and encrypts; turning this on adds Noise's identity
    /// keys and a second layer of encryption at the cost of a second
    /// handshake and a second AEAD pass. Both sides must agree. Ignored for
    /// other transports, which always run Noise.
    pub noise_inside_tls: bool,
}

impl ConnectionConfig {
    /// Defaults around a handshake configuration.
    pub fn new(handshake: HandshakeConfig) -> Self {
        Self {
            handshake,
            timestamp_guard: None,
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            read_idle_timeout: Some(Duration::from_mins(2)),
            packet_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_message_size: 16 * 1024 * 1024,
            write_queue: 1024,
            compression: CompressionPolicy::default(),
            rekey: RekeyPolicy::default(),
            connector: None,
            noise_inside_tls: false,
        }
    }

    /// Binds the handshake to `endpoint`'s transport (`"tcp"`, `"uds"` or
    /// `"tls"`); both sides must agree or the handshake fails.
    #[must_use]
    pub fn for_endpoint(mut self, endpoint: &Endpoint) -> Self {
        self.handshake.transport = endpoint.transport_label().into();
        self
    }

    /// Whether connections with this configuration run the Noise handshake:
    /// always, except over TLS with `noise_inside_tls` off.
    pub fn runs_noise(&self) -> bool {
        self.handshake.transport != "tls" || self.noise_inside_tls
    }
}
