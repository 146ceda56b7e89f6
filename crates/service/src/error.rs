//! The one error type of this crate.

use std::time::Duration;

use netproto_transport::TransportError;
use netproto_wire::{ErrorCode, WireError};

/// Everything a server or client call can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The connection failed or was refused (I/O, handshake, crypto, limits).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The connection is closed; pending and later calls fail with this.
    #[error("connection closed")]
    ConnectionClosed,
    /// The server sent GOAWAY and did not process this request (safe to
    /// send again; with `auto_reconnect` the client does so itself, once,
    /// on a new connection).
    #[error("the server is going away and did not process the request")]
    GoingAway,
    /// No response within the response timeout.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// The server answered with an ERR frame.
    // The reason is the server's text: control characters are escaped so it
    // cannot rewrite a terminal or forge log lines.
    #[error("server error {code}: {}", .reason.escape_debug())]
    Remote {
        /// The error code (`ErrorCode::UNKNOWN_OPCODE`, `BAD_REQUEST`, …).
        code: ErrorCode,
        /// The server's explanation.
        reason: String,
    },
    /// A typed body did not encode or decode (says which type, which
    /// codec, and why).
    #[error(transparent)]
    Codec(#[from] crate::codec::CodecError),
    /// A typed call was answered with a message that is not a typed body
    /// (not `Custom`).
    #[error("expected a typed (Custom) answer, got {opcode}")]
    UnexpectedAnswer {
        /// The opcode of what came back.
        opcode: String,
    },
    /// The server is at `max_connections` and refused us.
    #[error("server busy")]
    Busy,
    /// Reconnecting failed every attempt; `last` is the final attempt's error.
    #[error("reconnect failed after {attempts} attempts: {last}")]
    ReconnectFailed {
        /// Attempts made.
        attempts: u32,
        /// Why the last one failed.
        last: Box<ServiceError>,
    },
    /// The pool's circuit breaker is open for this endpoint: failing fast
    /// without trying to connect.
    #[error(
        "circuit open: {failures} consecutive connection failures; retrying after {retry_in:?}"
    )]
    CircuitOpen {
        /// Consecutive failures that opened it.
        failures: u32,
        /// Time left until a probe is allowed.
        retry_in: Duration,
    },
    /// No pooled connection became available within the acquire timeout.
    #[error("no connection available within {0:?}")]
    PoolTimeout(Duration),
}

impl From<WireError> for ServiceError {
    fn from(e: WireError) -> Self {
        Self::Transport(TransportError::Wire(e))
    }
}

/// Longest ERR reason sent, in bytes: a reason (which may quote the
/// request) never makes an answer larger than this.
pub const MAX_ERR_REASON: usize = 256;

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
pub(crate) fn prefix(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `reason` cut to [`MAX_ERR_REASON`] bytes.
pub(crate) fn bounded_reason(reason: &str) -> &str {
    prefix(reason, MAX_ERR_REASON)
}

/// What a handler returns when it cannot answer: the caller gets an ERR
/// frame with this code and text (at most [`MAX_ERR_REASON`] bytes of it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct HandlerError {
    /// The ERR code (default `INTERNAL`).
    pub code: ErrorCode,
    /// Text for the caller.
    pub reason: String,
}

impl HandlerError {
    /// An `INTERNAL` error with `reason`.
    pub fn internal(reason: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::INTERNAL,
            reason: reason.into(),
        }
    }

    /// A `BAD_REQUEST` error with `reason`.
    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::BAD_REQUEST,
            reason: reason.into(),
        }
    }
}

impl From<String> for HandlerError {
    fn from(reason: String) -> Self {
        Self::internal(reason)
    }
}

impl From<&str> for HandlerError {
    fn from(reason: &str) -> Self {
        Self::internal(reason)
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = ServiceError> = std::result::Result<T, E>;
