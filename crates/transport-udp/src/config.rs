//! Limits and timings of a UDP endpoint, with the figures behind the defaults.

use std::time::Duration;

use netproto_wire::ReassemblyLimits;

/// Most pieces one message may be split into (a protocol constant:
/// 4096 × ~1150 bytes ≈ 4.6 MB at the default datagram size).
pub const MAX_PIECES: u64 = 4096;
/// Bytes of reliable messages a sender may have open (not yet wholly
/// acknowledged) per session, and that a receiver must be ready to hold.
pub const RELIABLE_WINDOW: usize = 4 << 20;
/// Reliable message ids a receiver remembers above its floor, and so how
/// far past its oldest unacknowledged reliable message a sender may start
/// one: 65,536.
pub const DEDUP_WINDOW: u64 = 1 << 16;
/// Most ACK ranges in one ACK item.
pub const MAX_ACK_RANGES: usize = 64;
/// Bookkeeping charged per announced piece slot, so tiny pieces with huge
/// counts cannot hold memory for free (the same figure as the wire
/// reassembler's).
pub(crate) const SLOT_COST: usize = 32;

/// Retransmission timing of reliable messages (RFC 6298 with RFC 9002's
/// ACK delay).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetransmitConfig {
    /// RTO before any RTT sample: 1 s (RFC 6298 §2.1).
    pub initial_rto: Duration,
    /// Smallest RTO: 50 ms. RFC 6298 asks for 1 s, which was set for 1990s
    /// WANs; QUIC has none. 50 ms keeps loopback and LAN recovery fast while
    /// covering timer granularity and delayed ACKs.
    pub min_rto: Duration,
    /// Largest RTO after backoff: 8 s.
    pub max_rto: Duration,
    /// Most time a receiver waits before acknowledging: 5 ms. The sender
    /// adds it to every RTO.
    pub max_ack_delay: Duration,
    /// A reliable message not acknowledged within this fails with
    /// [`crate::UdpError::DeliveryTimeout`]: 30 s.
    pub deadline: Duration,
    /// Most transmissions of one piece before the message fails: 12.
    pub max_attempts: u32,
}

impl Default for RetransmitConfig {
    fn default() -> Self {
        Self {
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(50),
            max_rto: Duration::from_secs(8),
            max_ack_delay: Duration::from_millis(5),
            deadline: Duration::from_secs(30),
            max_attempts: 12,
        }
    }
}

/// Handshake timing and the denial-of-service defence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandshakeLimits {
    /// First handshake retransmission after this (no RTT known yet): 1 s.
    pub initial_rto: Duration,
    /// Retransmission interval cap: 4 s.
    pub max_rto: Duration,
    /// Give up after this: 10 s.
    pub timeout: Duration,
    /// Responder: most handshakes in progress: 1024.
    pub max_pending: usize,
    /// Responder: from this many handshakes in progress on, initiations
    /// need a valid mac2 (a cookie round trip): 64. 0 = always.
    pub cookie_threshold: usize,
    /// Responder: initiations per second per source address: 20 (WireGuard's
    /// figure); burst 5.
    pub per_source_rate: u32,
    /// Responder: burst of the per-source limit.
    pub per_source_burst: u32,
    /// Responder: accept initiations whose mac1 was computed without our
    /// key (XX clients that trust on first use). Default `true`; set it
    /// `false` when every client knows the server key.
    pub accept_unkeyed_mac1: bool,
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        Self {
            initial_rto: Duration::from_secs(1),
            max_rto: Duration::from_secs(4),
            timeout: Duration::from_secs(10),
            max_pending: 1024,
            cookie_threshold: 64,
            per_source_rate: 20,
            per_source_burst: 5,
            accept_unkeyed_mac1: true,
        }
    }
}

/// Everything an endpoint needs besides keys.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UdpConfig {
    /// Largest datagram sent: 1200 bytes (fits the IPv6 minimum MTU of 1280
    /// with IP and UDP headers). Datagrams up to [`UdpConfig::MAX_DATAGRAM`]
    /// are received (a peer may be configured larger).
    pub max_datagram: usize,
    /// Largest message payload: 1 MiB; at least 1024 bytes (the
    /// protocol's minimum, so an ERR always fits), at most
    /// [`RELIABLE_WINDOW`] less 16 KiB (the frame around it).
    pub max_message: usize,
    /// Unreliable messages of more datagrams than this are refused: 8 (at
    /// 1 % loss one of 8 pieces is lost 7.7 % of the time).
    pub max_unreliable_pieces: usize,
    /// Bytes a session may queue for sending before `send` refuses: 8 MiB.
    pub max_send_queue: usize,
    /// Most sessions: 4096.
    pub max_sessions: usize,
    /// Retransmission timing.
    pub retransmit: RetransmitConfig,
    /// Handshake timing and defences.
    pub handshake: HandshakeLimits,
    /// Reassembly of unreliable multi-datagram messages.
    pub reassembly: ReassemblyLimits,
    /// A reliable message partly received and not completed within this is
    /// dropped by the receiver: 60 s (longer than the sender's deadline).
    pub reliable_reassembly_timeout: Duration,
    /// Send a PING after this much silence from our side: 15 s.
    pub keep_alive: Option<Duration>,
    /// Close a session from which nothing authentic arrived for this: 20 s.
    pub idle_timeout: Duration,
    /// Kernel receive and send buffer asked for on sockets the driver
    /// binds: 4 MiB (Linux caps it at `net.core.rmem_max` /
    /// `wmem_max`). Linux's 208 KiB default dropped 9 % of datagrams
    /// (UdpRcvbufErrors) with 200 clients calling one server.
    pub socket_buffer: usize,
}

impl Default for UdpConfig {
    fn default() -> Self {
        Self {
            max_datagram: netproto_wire::DEFAULT_MAX_DATAGRAM,
            max_message: 1 << 20,
            max_unreliable_pieces: 8,
            max_send_queue: 8 << 20,
            max_sessions: 4096,
            retransmit: RetransmitConfig::default(),
            handshake: HandshakeLimits::default(),
            reassembly: ReassemblyLimits::default(),
            reliable_reassembly_timeout: Duration::from_mins(1),
            keep_alive: Some(Duration::from_secs(15)),
            idle_timeout: Duration::from_secs(20),
            socket_buffer: 4 << 20,
        }
    }
}

impl UdpConfig {
    /// Smallest `max_datagram` accepted: a handshake message and its envelope
    /// must fit (the XX response with padding needs ~ 150 bytes; 576 is the
    /// IPv4 minimum reassembly size).
    pub const MIN_DATAGRAM: usize = 576;
    /// Largest `max_datagram`: a UDP payload over IPv4.
    pub const MAX_DATAGRAM: usize = 65_507;

    /// The configuration with limits clamped to what the protocol allows.
    pub(crate) fn normalized(mut self) -> Self {
        self.max_datagram = self
            .max_datagram
            .clamp(Self::MIN_DATAGRAM, Self::MAX_DATAGRAM);
        // Never below the protocol's minimum, so an ERR always fits.
        self.max_message = self.max_message.clamp(
            netproto_crypto::MIN_MESSAGE_LIMIT as usize,
            RELIABLE_WINDOW - (16 << 10),
        );
        self.max_unreliable_pieces = self.max_unreliable_pieces.max(1);
        self.max_sessions = self.max_sessions.max(1);
        self
    }
}
