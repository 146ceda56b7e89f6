//! The one error type of this crate.

use std::time::Duration;

use netproto_crypto::CryptoError;
use netproto_wire::{ErrorCode, WireError};

/// Which timeout fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// The handshake did not finish in time (includes peers that send nothing
    /// or trickle bytes).
    Handshake,
    /// Nothing arrived for `idle_timeout` while the connection was being
    /// read (the keep-alive PING went unanswered).
    ReadIdle,
    /// A packet that had started did not complete in time (slow sender).
    Packet,
    /// A write did not complete in time (peer not reading).
    Write,
    /// Connecting did not complete in time.
    Connect,
    /// A PING was not answered in time ([`crate::SendHalf::ping`]).
    Ping,
    /// A message continued over several records did not complete within
    /// `message_timeout`.
    Message,
    /// A reliable datagram message was not acknowledged within its
    /// delivery deadline (UDP).
    Delivery,
}

/// Why a datagram carrier (UDP) failed, where no other variant of
/// [`TransportError`] says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CarrierFailure {
    /// A reliable message needed more transmissions than allowed, or an
    /// ordered message failed so later ones cannot follow (the session
    /// ended).
    Undelivered,
    /// An unreliable message would take more datagrams than allowed (send
    /// it reliably; nothing was sent).
    TooManyPieces,
    /// The endpoint already holds as many sessions as configured.
    SessionTableFull,
    /// The application did not read the connection's messages and too many
    /// bytes waited (they were acknowledged, so the session was closed
    /// rather than drop one).
    ReadQueueFull,
    /// The peer sent a record that broke the datagram rules.
    BadRecord,
}

impl std::fmt::Display for CarrierFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Undelivered => "message not delivered",
            Self::TooManyPieces => "unreliable message too large",
            Self::SessionTableFull => "session table full",
            Self::ReadQueueFull => "receiver not reading",
            Self::BadRecord => "bad record",
        })
    }
}

/// Why a TLS handshake failed (reported by netproto-transport-tls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The peer's certificate chain does not lead to a trusted CA.
    UnknownCa,
    /// The peer's certificate is expired or not yet valid.
    Expired,
    /// The server's certificate is not valid for the name we dialled.
    NameMismatch,
    /// The certificate matches none of the configured pins.
    PinMismatch,
    /// The server requires a client certificate and none was sent.
    ClientCertRequired,
    /// The certificate was refused for another reason (bad signature, wrong
    /// key usage, revoked, unsupported, or refused by the peer).
    BadCertificate,
    /// The peer does not speak TLS (for example a plain netproto client on a
    /// TLS port, or a TLS client on a plain port).
    NotTls,
    /// No protocol version, cipher suite or ALPN protocol in common.
    NoCommonProtocol,
    /// Any other TLS failure (see the detail text).
    Other,
}

impl TlsFailure {
    /// The metric label (`unknown_ca`, `expired`, …).
    pub const fn label(self) -> &'static str {
        match self {
            Self::UnknownCa => "unknown_ca",
            Self::Expired => "expired",
            Self::NameMismatch => "name_mismatch",
            Self::PinMismatch => "pin_mismatch",
            Self::ClientCertRequired => "client_cert_required",
            Self::BadCertificate => "bad_certificate",
            Self::NotTls => "not_tls",
            Self::NoCommonProtocol => "no_common_protocol",
            Self::Other => "other",
        }
    }
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::UnknownCa => "certificate not issued by a trusted CA",
            Self::Expired => "certificate expired or not yet valid",
            Self::NameMismatch => "certificate not valid for the server name",
            Self::PinMismatch => "certificate matches no configured pin",
            Self::ClientCertRequired => "a client certificate is required",
            Self::BadCertificate => "certificate refused",
            Self::NotTls => "peer does not speak TLS",
            Self::NoCommonProtocol => "no TLS version, cipher suite or ALPN protocol in common",
            Self::Other => "TLS failure",
        })
    }
}

/// How the peer broke the protocol (the connection is closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolViolation {
    /// A handshake packet was sealed or compressed.
    #[error("handshake packets must be plain and uncompressed")]
    HandshakePacketNotPlain,
    /// A handshake packet held something other than exactly one HANDSHAKE
    /// frame.
    #[error("expected exactly one HANDSHAKE frame")]
    NotOneHandshakeFrame,
    /// The first bytes are a TLS record: the peer speaks TLS.
    #[error("the peer speaks TLS: use a tls:// endpoint")]
    PeerSpeaksTls,
    /// Inside TLS, one side runs a Noise handshake and the other does not.
    #[error("the peer {} a Noise handshake inside TLS: noise_inside_tls differs between the two sides", if *peer_runs_noise { "runs" } else { "runs no" })]
    NoiseInsideTlsMismatch {
        /// Whether the peer is the side that runs Noise.
        peer_runs_noise: bool,
    },
    /// A plain packet arrived after a Noise handshake.
    #[error("plaintext packet after the handshake")]
    PlaintextAfterHandshake,
    /// A sealed record arrived on a TLS connection that runs no Noise.
    #[error("sealed record on a TLS connection that runs no Noise handshake")]
    SealedWithoutNoise,
    /// A HANDSHAKE frame arrived after the handshake.
    #[error("handshake frame after the handshake")]
    HandshakeFrameAfterHandshake,
    /// A continuation piece of a different kind than its message's first
    /// piece (same stream id).
    #[error("continuation frames of different kinds on one stream")]
    InterleavedContinuation,
    /// More unfinished (continued) messages at once than a receiver keeps:
    /// 8, together at most twice its message limit.
    #[error("{messages} unfinished messages holding {bytes} bytes: over the limit of 8 and twice the message limit")]
    TooMuchUnfinished {
        /// Unfinished messages, counting the one refused.
        messages: usize,
        /// Their bytes, counting the piece refused.
        bytes: usize,
    },
    /// A continuation piece (a frame after the first of a message) carried
    /// a header block: headers ride on a message's first frame only.
    #[error("header block on a continuation piece")]
    HeadersOnContinuation,
    /// PING, PONG, BYE or GOAWAY on a stream other than 0.
    #[error("{kind:?} frame on stream {stream_id}: connection frames use stream 0")]
    ConnectionFrameOnStream {
        /// The frame's kind.
        kind: netproto_wire::FrameKind,
        /// The stream id it carried.
        stream_id: u64,
    },
    /// A stream reported an impossible state (a bug in a stream
    /// implementation, reported rather than panicking).
    #[error("stream in an impossible state")]
    ImpossibleStreamState,
}

/// Why a frame was refused for sending (nothing was sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidFrame {
    /// HANDSHAKE frames belong to the handshake.
    #[error("HANDSHAKE frames belong to the handshake")]
    Handshake,
    /// BYE is sent by `close()`.
    #[error("use close() to send BYE")]
    Bye,
    /// `more` is set: continuation is automatic.
    #[error("continuation is automatic: send the whole message with more = false")]
    Continuation,
    /// The header block exceeds the wire limits.
    #[error("header block exceeds 64 entries or 8 KiB")]
    HeadersTooLarge,
    /// The handshake has not finished yet.
    #[error("the handshake has not finished")]
    NotEstablished,
    /// PING, PONG and GOAWAY belong on stream 0.
    #[error("PING, PONG and GOAWAY use stream 0")]
    ConnectionFrameStream,
    /// An extension frame whose extension is not registered here, or which
    /// the peer did not also advertise in the handshake.
    #[error("extension frame kind {kind:#04x} is not negotiated with this peer")]
    ExtensionNotNegotiated {
        /// The frame kind.
        kind: u8,
    },
}

/// Why an extension could not be registered ([`crate::Extensions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExtensionError {
    /// Extension ids are 0–23 (feature bits 8–31).
    #[error("extension id {id} is out of range (0 to 23)")]
    IdOutOfRange {
        /// The id given.
        id: u8,
    },
    /// Extension frame kinds are 0x80–0xff.
    #[error("frame kind {kind:#04x} is not an extension kind (0x80 to 0xff)")]
    NotAnExtensionKind {
        /// The kind given.
        kind: u8,
    },
    /// Another extension already owns the kind.
    #[error("frame kind {kind:#04x} already belongs to extension {owner}")]
    KindTaken {
        /// The kind given.
        kind: u8,
        /// The id that owns it.
        owner: u8,
    },
}

/// Everything that can go wrong with a connection.
///
/// `Clone`, so one failure can be reported to every handle of a connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// An endpoint string does not parse.
    #[error("bad endpoint {input:?}: {reason}")]
    BadEndpoint {
        /// What was given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The operating system refused an I/O operation.
    #[error("I/O error ({kind:?}): {message}")]
    Io {
        /// The error kind.
        kind: std::io::ErrorKind,
        /// The OS message.
        message: String,
    },
    /// The peer sent bytes that are not valid netproto.
    #[error("wire format: {0}")]
    Wire(#[from] WireError),
    /// The handshake or a record failed cryptographically (including a peer
    /// key the verifier refused).
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
    /// A timeout fired.
    #[error("{kind:?} timeout after {after:?}")]
    Timeout {
        /// Which one.
        kind: TimeoutKind,
        /// The configured limit.
        after: Duration,
    },
    /// The connection is closed. `clean` is true only after the peer's BYE
    /// (or our own close); an EOF without BYE, or inside a packet, is unclean.
    #[error("connection closed ({})", if *clean { "clean" } else { "unclean" })]
    ConnectionClosed {
        /// Whether the peer said goodbye first.
        clean: bool,
    },
    /// The write queue is full (`try_send`), because the peer reads slower than
    /// we send.
    #[error("write queue full: the peer is not keeping up")]
    Backpressure,
    /// We refused to send a message larger than the peer accepts (nothing
    /// was sent; the connection goes on).
    #[error("message of {len} bytes exceeds the peer's limit of {max}")]
    MessageTooLarge {
        /// Message length.
        len: usize,
        /// The peer's advertised limit.
        max: usize,
    },
    /// The peer sent a message larger than our limit (the connection is closed).
    #[error("peer sent a message of {len} bytes; our limit is {max}")]
    PeerMessageTooLarge {
        /// Length received so far.
        len: usize,
        /// Our limit.
        max: usize,
    },
    /// The peer's unfinished message would take more of the shared
    /// reassembly budget than is left (the connection is closed; others
    /// keep theirs).
    #[error("reassembly budget exhausted: {held} bytes held here, {limit} for all connections")]
    ReassemblyBudget {
        /// Bytes this connection held for the message.
        held: usize,
        /// The budget shared by all connections.
        limit: usize,
    },
    /// An extension could not be registered (a configuration error).
    #[error("extension: {0}")]
    Extension(#[from] ExtensionError),
    /// A frame was refused for sending (nothing was sent; the connection
    /// goes on).
    #[error("invalid frame: {0}")]
    InvalidFrame(InvalidFrame),
    /// A DATA payload did not decode as a `Message` (the connection goes on).
    #[error("undecodable message: {0}")]
    BadMessage(WireError),
    /// The peer broke the protocol's rules (for example plaintext after the
    /// handshake, or interleaved continuation frames).
    #[error("protocol violation: {0}")]
    Protocol(ProtocolViolation),
    /// The TLS handshake failed (TLS transport only).
    #[error("TLS: {reason}: {detail}")]
    Tls {
        /// What kind of failure, to act on.
        reason: TlsFailure,
        /// The TLS library's description.
        detail: String,
    },
    /// A datagram carrier (UDP) failed in a way of its own.
    #[error("{carrier}: {reason}: {detail}")]
    Carrier {
        /// The carrier's label (`"udp"`).
        carrier: &'static str,
        /// What kind of failure, to act on.
        reason: CarrierFailure,
        /// The carrier's description.
        detail: String,
    },
    /// The peer answered a request with an ERR frame.
    #[error("peer error {code}: {reason}")]
    Remote {
        /// The error code.
        code: ErrorCode,
        /// The peer's reason text.
        reason: String,
        /// The request it answers.
        stream_id: u64,
    },
}

impl From<std::io::Error> for TransportError {
    /// A stream may carry a `TransportError` inside an `io::Error` (the TLS
    /// streams do, for alerts that arrive after the handshake); it is
    /// unwrapped here so the caller sees the real reason.
    fn from(e: std::io::Error) -> Self {
        if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<Self>()) {
            return inner.clone();
        }
        match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Self::ConnectionClosed { clean: false },
            kind => Self::Io {
                kind,
                message: e.to_string(),
            },
        }
    }
}

impl TransportError {
    /// True for errors that end the connection; false for refusals of one
    /// send or one message ([`TransportError::Backpressure`],
    /// [`TransportError::Remote`], [`TransportError::MessageTooLarge`],
    /// [`TransportError::InvalidFrame`], [`TransportError::BadMessage`],
    /// [`TransportError::BadEndpoint`], an unreliable datagram message too
    /// large, and one reliable datagram message past its deadline).
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            Self::Backpressure
                | Self::Remote { .. }
                | Self::MessageTooLarge { .. }
                | Self::InvalidFrame(_)
                | Self::Extension(_)
                | Self::BadMessage(_)
                | Self::BadEndpoint { .. }
                | Self::Carrier {
                    reason: CarrierFailure::TooManyPieces,
                    ..
                }
                | Self::Timeout {
                    kind: TimeoutKind::Delivery,
                    ..
                }
        )
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = TransportError> = std::result::Result<T, E>;
