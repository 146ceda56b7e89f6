//! Connection settings.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use netproto_crypto::{HandshakeConfig, RekeyPolicy, TimestampGuard};
use netproto_wire::CompressionPolicy;

/// Settings of one connection. Defaults are in parentheses.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConnectionConfig {
    /// Pattern, keys, verifier, offered capabilities. Its transport label is
    /// replaced by the stream's when connecting through [`crate::connect`].
    pub handshake: HandshakeConfig,
    /// Shared by all connections of an IK server (the replay guard).
    pub timestamp_guard: Option<Arc<Mutex<TimestampGuard>>>,
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
}

impl ConnectionConfig {
    /// Defaults around a handshake configuration.
    pub fn new(handshake: HandshakeConfig) -> Self {
        Self {
            handshake,
            timestamp_guard: None,
            handshake_timeout: Duration::from_secs(10),
            read_idle_timeout: Some(Duration::from_secs(120)),
            packet_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_message_size: 16 * 1024 * 1024,
            write_queue: 1024,
            compression: CompressionPolicy::default(),
            rekey: RekeyPolicy::default(),
        }
    }
}
