//! The `[udp]` section: settings of `udp://` endpoints (netproto-transport-udp).
//! The defaults are the UDP crate's own (`UdpConfig::default()`); the
//! facade's tests check that the two agree.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{duration_ms, ConfigError};

/// The `[udp]` section: used when an address is `udp://host:port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct UdpSection {
    /// Largest datagram sent, in bytes (576 to 65507).
    pub max_datagram: usize,
    /// Largest message, in bytes (at most 4 MiB less 16 KiB).
    pub max_message: usize,
    /// Unreliable messages of more datagrams than this are refused.
    pub max_unreliable_pieces: usize,
    /// Bytes a session may queue for sending (at least `max_message`).
    pub max_send_queue: usize,
    /// Most sessions one endpoint holds.
    pub max_sessions: usize,
    /// Kernel receive/send buffer asked for, in bytes.
    pub socket_buffer: usize,
    /// Retransmission timeout before any round trip was measured.
    #[serde(with = "duration_ms")]
    pub initial_rto: Duration,
    /// Smallest retransmission timeout.
    #[serde(with = "duration_ms")]
    pub min_rto: Duration,
    /// Largest retransmission timeout after backoff.
    #[serde(with = "duration_ms")]
    pub max_rto: Duration,
    /// Most time a receiver waits before acknowledging.
    #[serde(with = "duration_ms")]
    pub max_ack_delay: Duration,
    /// A reliable message not acknowledged by then fails.
    #[serde(with = "duration_ms")]
    pub delivery_deadline: Duration,
    /// Most transmissions of one piece before its message fails.
    pub max_attempts: u32,
    /// A handshake not complete by then fails (retransmitted until then).
    #[serde(with = "duration_ms")]
    pub handshake_timeout: Duration,
    /// Server: most handshakes in progress.
    pub max_pending_handshakes: usize,
    /// Server: from this many handshakes in progress on, clients must
    /// prove their address with a cookie round trip (0: always).
    pub cookie_threshold: usize,
    /// Server: handshake initiations per second per source address.
    pub per_source_rate: u32,
    /// Server: burst of the per-source rate.
    pub per_source_burst: u32,
    /// Unreliable multi-datagram messages partly received, at most.
    pub reassembly_max_pending: usize,
    /// Bytes held by those partial messages, at most.
    pub reassembly_max_buffered: usize,
    /// A partial unreliable message is dropped after this.
    #[serde(with = "duration_ms")]
    pub reassembly_timeout: Duration,
    /// Send a PING after this much silence from our side (0: never).
    #[serde(with = "duration_ms")]
    pub keep_alive: Duration,
    /// Close a session silent for this long.
    #[serde(with = "duration_ms")]
    pub idle_timeout: Duration,
    /// How a client's one-way messages travel: `"ordered"` (reliable, in
    /// order), `"reliable"` (reliable, as soon as whole) or `"unreliable"`
    /// (sent once). Calls are always ordered.
    pub delivery: String,
}

impl Default for UdpSection {
    fn default() -> Self {
        Self {
            max_datagram: 1200,
            max_message: 1 << 20,
            max_unreliable_pieces: 8,
            max_send_queue: 8 << 20,
            max_sessions: 4096,
            socket_buffer: 4 << 20,
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(50),
            max_rto: Duration::from_secs(8),
            max_ack_delay: Duration::from_millis(5),
            delivery_deadline: Duration::from_secs(30),
            max_attempts: 12,
            handshake_timeout: Duration::from_secs(10),
            max_pending_handshakes: 1024,
            cookie_threshold: 64,
            per_source_rate: 20,
            per_source_burst: 5,
            reassembly_max_pending: 64,
            reassembly_max_buffered: 4 << 20,
            reassembly_timeout: Duration::from_secs(5),
            keep_alive: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(20),
            delivery: "ordered".into(),
        }
    }
}

impl UdpSection {
    /// Checks ranges and consistency.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key, reason: &str| {
            Err(ConfigError::Invalid {
                key,
                reason: reason.to_owned(),
            })
        };
        if !(576..=65_507).contains(&self.max_datagram) {
            return bad("udp.max_datagram", "must be from 576 to 65507 bytes");
        }
        if !(1024..=(4 << 20) - (16 << 10)).contains(&self.max_message) {
            return bad(
                "udp.max_message",
                "must be from 1024 bytes to 4 MiB less 16 KiB",
            );
        }
        if self.max_send_queue < self.max_message {
            return bad("udp.max_send_queue", "must be at least udp.max_message");
        }
        for (key, n) in [
            ("udp.max_unreliable_pieces", self.max_unreliable_pieces),
            ("udp.max_sessions", self.max_sessions),
            ("udp.max_pending_handshakes", self.max_pending_handshakes),
            ("udp.reassembly_max_pending", self.reassembly_max_pending),
            ("udp.max_attempts", self.max_attempts as usize),
            ("udp.per_source_rate", self.per_source_rate as usize),
            ("udp.per_source_burst", self.per_source_burst as usize),
        ] {
            if n == 0 {
                return bad(key, "must be at least 1");
            }
        }
        for (key, d) in [
            ("udp.initial_rto", self.initial_rto),
            ("udp.min_rto", self.min_rto),
            ("udp.delivery_deadline", self.delivery_deadline),
            ("udp.handshake_timeout", self.handshake_timeout),
            ("udp.reassembly_timeout", self.reassembly_timeout),
            ("udp.idle_timeout", self.idle_timeout),
        ] {
            if d.is_zero() {
                return bad(key, "must be more than 0 ms");
            }
        }
        if self.min_rto > self.max_rto {
            return bad("udp.max_rto", "must be at least udp.min_rto");
        }
        if !self.keep_alive.is_zero() && self.keep_alive >= self.idle_timeout {
            return bad("udp.keep_alive", "must be shorter than udp.idle_timeout");
        }
        if !matches!(
            self.delivery.as_str(),
            "ordered" | "reliable" | "unreliable"
        ) {
            return bad(
                "udp.delivery",
                "must be \"ordered\", \"reliable\" or \"unreliable\"",
            );
        }
        Ok(())
    }
}
