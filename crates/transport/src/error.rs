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
    /// Nothing arrived for the read idle timeout.
    ReadIdle,
    /// A packet that had started did not complete in time (slow sender).
    Packet,
    /// A write did not complete in time (peer not reading).
    Write,
    /// Connecting did not complete in time.
    Connect,
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
    /// We refused to send a frame that is not valid to send (nothing was sent;
    /// the connection goes on).
    #[error("invalid frame: {0}")]
    InvalidFrame(&'static str),
    /// A DATA payload did not decode as a `Message` (the connection goes on).
    #[error("undecodable message: {0}")]
    BadMessage(WireError),
    /// The peer broke the protocol's rules (for example plaintext after the
    /// handshake, or interleaved continuation frames).
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    /// The TLS handshake failed (TLS transport only).
    #[error("TLS: {reason}: {detail}")]
    Tls {
        /// What kind of failure, to act on.
        reason: TlsFailure,
        /// The TLS library's description.
        detail: String,
    },
    /// The peer answered a request with an ERR frame.
    #[error("peer error {code:?}: {reason}")]
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
    /// [`TransportError::BadEndpoint`]).
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            Self::Backpressure
                | Self::Remote { .. }
                | Self::MessageTooLarge { .. }
                | Self::InvalidFrame(_)
                | Self::BadMessage(_)
                | Self::BadEndpoint { .. }
        )
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = TransportError> = std::result::Result<T, E>;
