//! The one error type of this crate, and why datagrams are dropped.

use std::time::Duration;

use netproto_crypto::CryptoError;
use netproto_wire::WireError;

/// What is wrong with a record's plaintext (docs/WIRE.md, "Datagram sessions").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordViolation {
    /// An item ends past the end of the record.
    #[error("item truncated")]
    Truncated,
    /// An item type this version does not know.
    #[error("unknown item type {0:#04x}")]
    UnknownItem(u8),
    /// Reserved PIECE flag bits are set.
    #[error("reserved piece flags {0:#04x}")]
    PieceFlags(u8),
    /// `count` is zero or above the limit, or `index >= count`.
    #[error("bad piece {index}/{count}")]
    BadPiece {
        /// The piece index.
        index: u64,
        /// The announced count.
        count: u64,
    },
    /// An ACK with more ranges than the limit.
    #[error("ACK with {0} ranges")]
    TooManyRanges(u64),
    /// An ACK whose ranges run below counter 0.
    #[error("ACK ranges run below zero")]
    AckUnderflow,
    /// A piece of a message whose pieces disagree on their count, or a
    /// message that does not hold exactly one frame.
    #[error("inconsistent message {0}")]
    BadMessage(u64),
}

/// Why the endpoint dropped a datagram (counted in [`crate::EndpointStats`]
/// and the `netproto_udp_dropped_total` metric, by this label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// The envelope or body did not parse.
    Malformed,
    /// Larger than the configured maximum datagram.
    Oversize,
    /// Names a session this endpoint does not have.
    UnknownSession,
    /// An initiation without a valid mac1.
    BadMac1,
    /// An initiation from a source over its rate limit.
    RateLimited,
    /// An initiation refused because the handshake table is full.
    HandshakesFull,
    /// A handshake message that failed (decryption, verifier, replay).
    HandshakeFailed,
    /// A record that failed authentication, was replayed or too old.
    Unauthentic,
    /// A record whose plaintext broke the rules.
    BadRecord,
    /// A cookie reply that did not open.
    BadCookie,
    /// An initiation on an endpoint that does not accept.
    NotAccepting,
    /// A handshake message already handled (a network duplicate or a
    /// retransmission that needs no answer).
    Duplicate,
}

impl DropReason {
    /// The metric label.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Oversize => "oversize",
            Self::UnknownSession => "unknown_session",
            Self::BadMac1 => "bad_mac1",
            Self::RateLimited => "rate_limited",
            Self::HandshakesFull => "handshakes_full",
            Self::HandshakeFailed => "handshake_failed",
            Self::Unauthentic => "unauthentic",
            Self::BadRecord => "bad_record",
            Self::BadCookie => "bad_cookie",
            Self::NotAccepting => "not_accepting",
            Self::Duplicate => "duplicate",
        }
    }
}

/// Everything that can go wrong on a UDP endpoint or session.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UdpError {
    /// The handshake or session cryptography failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// A frame or envelope did not encode or decode.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A record's plaintext broke the rules.
    #[error("bad record: {0}")]
    Record(#[from] RecordViolation),
    /// The handshake did not complete in time (every retransmission lost or
    /// unanswered).
    #[error("handshake timed out after {0:?}")]
    HandshakeTimeout(Duration),
    /// A reliable message was not acknowledged before its deadline.
    #[error("message {message} not delivered within {after:?}")]
    DeliveryTimeout {
        /// The message id.
        message: u64,
        /// The deadline it missed.
        after: Duration,
    },
    /// A reliable message needed more transmissions than allowed.
    #[error("message {message} not delivered after {attempts} transmissions")]
    TooManyAttempts {
        /// The message id.
        message: u64,
        /// Transmissions of its most-sent piece.
        attempts: u32,
    },
    /// The message is larger than the session allows.
    #[error("message of {len} bytes exceeds the limit of {max}")]
    MessageTooLarge {
        /// Encoded message length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An unreliable message needs more datagrams than allowed (one lost
    /// piece loses it all; send it reliably).
    #[error("unreliable message of {pieces} datagrams exceeds the limit of {max}")]
    UnreliableTooLarge {
        /// Datagrams it would take.
        pieces: usize,
        /// The limit.
        max: usize,
    },
    /// The session's send queue is full (in bytes): wait and retry.
    #[error("send queue full ({queued} of {limit} bytes)")]
    SendQueueFull {
        /// Bytes queued.
        queued: usize,
        /// The limit.
        limit: usize,
    },
    /// No such session (closed, or never existed).
    #[error("no session {0:#010x}")]
    UnknownSession(u32),
    /// The endpoint holds as many sessions as configured.
    #[error("session table full ({0} sessions)")]
    SessionTableFull(usize),
    /// Nothing arrived from the peer for the idle timeout.
    #[error("peer silent for {0:?}")]
    IdleTimeout(Duration),
    /// The peer said BYE.
    #[error("peer closed the session{}", .0.as_deref().map(|r| format!(": {}", r.escape_debug())).unwrap_or_default())]
    PeerClosed(Option<String>),
    /// An ordered message failed, so later ones cannot be delivered in
    /// order: the session ended.
    #[error("ordered message {0} was not delivered; the session ended")]
    OrderBroken(u64),
    /// This side closed the session.
    #[error("session closed")]
    Closed,
    /// The application did not read a connection's messages: more than
    /// this many bytes waited (they were acknowledged, so the session is
    /// closed instead of dropping one).
    #[error("receiver not reading: over {0} bytes unread")]
    ReadQueueFull(usize),
    /// The endpoint's driver stopped.
    #[error("endpoint closed")]
    EndpointClosed,
    /// A socket error.
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
}

/// Result with [`UdpError`].
pub type Result<T, E = UdpError> = std::result::Result<T, E>;
